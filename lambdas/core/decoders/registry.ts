/**
 * Which decoder turns a device type's bytes into readings: each device type in the
 * config names one (a Sigfox grammar or a TS013 codec); a type with none is JSON.
 * Decoders are built once per config (grammars parsed, codecs compiled) and reused.
 */
import type { DecoderConfig, RuntimeConfig } from '../config.ts';
import { type Codec, compileCodec, type UplinkResult } from './codec.ts';
import { decodeSigfox, FrameError, parseSigfoxGrammar, type SigfoxGrammar } from './sigfox.ts';

export interface BinaryInput {
  readonly fPort?: number;
  readonly recvTime: Date;
}

/** A decoded payload: an object of readings (or an array of them), or why there is none. */
export type Decoded =
  | { readonly ok: true; readonly data: unknown; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly reason: string };

export type Decoder =
  | { readonly kind: 'json' }
  | {
      readonly kind: 'sigfox' | 'codec';
      readonly name: string;
      decode(bytes: Buffer, input: BinaryInput): Decoded;
      /** Many payloads at once, in order; what a batch uses when the decoder has it. */
      decodeMany?(items: readonly { bytes: Buffer; input: BinaryInput }[]): Decoded[];
    };

export const JSON_DECODER: Decoder = { kind: 'json' };

const built = new WeakMap<RuntimeConfig['deviceTypes'], Map<string, Decoder>>();

/** Keeps decoders built while validating a config, so they are not built twice. */
export function rememberDecoders(
  deviceTypes: RuntimeConfig['deviceTypes'],
  decoders: Map<string, Decoder>,
): void {
  built.set(deviceTypes, decoders);
}

/** The decoder of a device type; JSON when the type has none configured. */
export function decoderFor(deviceTypes: RuntimeConfig['deviceTypes'], deviceType: string): Decoder {
  let decoders = built.get(deviceTypes);
  if (!decoders) {
    decoders = buildDecoders(deviceTypes);
    built.set(deviceTypes, decoders);
  }
  return decoders.get(deviceType) ?? JSON_DECODER;
}

/**
 * Builds every configured decoder; throws (GrammarError, CodecError) on the first that
 * cannot be built, which is how a bad config fails the synth or the start.
 */
export function buildDecoders(deviceTypes: RuntimeConfig['deviceTypes']): Map<string, Decoder> {
  const decoders = new Map<string, Decoder>();
  for (const [type, config] of Object.entries(deviceTypes)) {
    if (config.decoder) decoders.set(type, buildDecoder(config.decoder, type));
  }
  return decoders;
}

export function buildDecoder(config: DecoderConfig, label: string): Decoder {
  if ('sigfox' in config) return sigfoxDecoder(parseSigfoxGrammar(config.sigfox), label);
  if ('codec' in config) return codecDecoder(compileCodec(config.source, config.codec));
  return JSON_DECODER;
}

export function sigfoxDecoder(grammar: SigfoxGrammar, name: string): Decoder {
  return {
    kind: 'sigfox',
    name,
    decode(bytes) {
      try {
        const { values, warnings } = decodeSigfox(grammar, bytes);
        return { ok: true, data: values, warnings };
      } catch (error) {
        if (error instanceof FrameError)
          return { ok: false, reason: `Sigfox grammar of ${name}: ${error.message}` };
        throw error;
      }
    },
  };
}

function toDecoded(result: UplinkResult): Decoded {
  if (result.errors.length > 0) return { ok: false, reason: result.errors.join('; ') };
  return { ok: true, data: result.data, warnings: result.warnings };
}

export function codecDecoder(codec: Codec): Decoder {
  return {
    kind: 'codec',
    name: codec.name,
    decode(bytes, input) {
      return toDecoded(codec.decodeUplink({ bytes, fPort: input.fPort, recvTime: input.recvTime }));
    },
    decodeMany(items) {
      return codec
        .decodeUplinks(
          items.map(({ bytes, input }) => ({ bytes, fPort: input.fPort, recvTime: input.recvTime })),
        )
        .map(toDecoded);
    },
  };
}
