/**
 * Which decoder turns a device type's bytes into readings: each device type in the
 * config names one (a Sigfox grammar or a TS013 codec); a type with none is JSON.
 * Decoders are built once per config (grammars parsed, codecs compiled) and reused.
 */
import type { CodecConfig, DecoderConfig, RuntimeConfig } from '../config.ts';
import { type Codec, CodecError, compileCodec, compileCodecs, type UplinkResult } from './codec.ts';
import { decodeSigfox, FrameError, parseSigfoxGrammar, type SigfoxGrammar } from './sigfox-grammar.ts';

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
      /** Many payloads at once, in order, without blocking the thread; what a batch uses when the decoder has it. */
      decodeMany?(items: readonly { bytes: Buffer; input: BinaryInput }[]): Promise<Decoded[]>;
      /** Frees what the decoder holds (a codec's worker thread). */
      close?(): Promise<void>;
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

/** A device type whose decoder cannot be built, and why (a GrammarError or a CodecError). */
export class DecoderBuildError extends Error {
  constructor(
    readonly deviceType: string,
    readonly decoder: DecoderConfig,
    readonly cause: Error,
  ) {
    super(cause.message);
    this.name = 'DecoderBuildError';
  }
}

/**
 * Builds every configured decoder, the codecs side by side; throws a DecoderBuildError
 * naming the first type whose decoder cannot be built, which is how a bad config fails
 * the synth or the start.
 */
export function buildDecoders(deviceTypes: RuntimeConfig['deviceTypes']): Map<string, Decoder> {
  const decoders = new Map<string, Decoder>();
  const codecs: [string, CodecConfig][] = [];
  for (const [type, { decoder }] of Object.entries(deviceTypes)) {
    if (!decoder) continue;
    if ('codec' in decoder) codecs.push([type, decoder]);
    else {
      try {
        decoders.set(type, buildDecoder(decoder, type));
      } catch (error) {
        throw new DecoderBuildError(type, decoder, error as Error);
      }
    }
  }
  const compiled = compileCodecs(codecs.map(([, config]) => codecRequest(config)));
  const failed = compiled.findIndex((codec) => codec instanceof CodecError);
  if (failed >= 0) {
    for (const codec of compiled) if (!(codec instanceof CodecError)) void codec.close();
    const [type, config] = codecs[failed] as [string, CodecConfig];
    throw new DecoderBuildError(type, config, compiled[failed] as CodecError);
  }
  compiled.forEach((codec, i) => {
    decoders.set((codecs[i] as [string, CodecConfig])[0], codecDecoder(codec as Codec));
  });
  return decoders;
}

function codecRequest(config: CodecConfig) {
  return {
    source: config.source,
    name: config.codec,
    options: {
      limits: {
        ...(config.timeoutMs === undefined ? {} : { timeoutMs: config.timeoutMs }),
        ...(config.memoryMb === undefined ? {} : { memoryBytes: config.memoryMb * 1024 * 1024 }),
      },
      normalize: config.normalize ?? false,
    },
  };
}

/** Closes the decoders built for these device types (codec worker threads); the next use builds them again. */
export async function closeDecoders(deviceTypes: RuntimeConfig['deviceTypes']): Promise<void> {
  const decoders = built.get(deviceTypes);
  built.delete(deviceTypes);
  await Promise.all(
    [...(decoders?.values() ?? [])].map((d) => (d.kind === 'json' ? undefined : d.close?.())),
  );
}

export function buildDecoder(config: DecoderConfig, label: string): Decoder {
  if ('sigfox' in config) return sigfoxDecoder(parseSigfoxGrammar(config.sigfox), label);
  if ('codec' in config) {
    const { source, name, options } = codecRequest(config);
    return codecDecoder(compileCodec(source, name, options));
  }
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
    async decodeMany(items) {
      const results = await codec.decodeUplinks(
        items.map(({ bytes, input }) => ({ bytes, fPort: input.fPort, recvTime: input.recvTime })),
      );
      return results.map(toDecoded);
    },
    close: () => codec.close(),
  };
}
