/**
 * Which decoder turns a device type's bytes into data: each device type in the config
 * may name one (a Sigfox grammar or a TS013 codec); a type with none sends JSON. The
 * decoders room owns its part of the config (`deviceTypes.<type>.decoder`): validated
 * here, built here, once per process (grammars parsed, codecs loaded in their
 * sandboxes), and handed to the ingest path as a {@link Decoders} set.
 */
import { ConfigError } from '../config-error.ts';
import { isObject } from '../ids.ts';
import {
  type Codec,
  CodecError,
  compileCodec,
  compileCodecs,
  type UplinkInput,
  type UplinkResult,
} from './codec.ts';
import { type Decoded, type DecodeInput, type Decoder, type Decoders, decodedData } from './decoder.ts';
import { decodeSigfox, FrameError, parseSigfoxGrammar, type SigfoxGrammar } from './sigfox-grammar.ts';

/**
 * A Sigfox custom payload grammar (`"temp::int:16*0.01 door::bool:7"`), or a TS013
 * codec file (`"codecs/lht65.js"`, read at synth/start time: `source` is its text).
 */
export type DecoderConfig = { readonly sigfox: string } | CodecConfig;

export interface CodecConfig {
  /** The codec's file, relative to the working directory. */
  readonly codec: string;
  /** Its text, read when the config is loaded. */
  readonly source: string;
  /** Time one message's decode may take, in ms (default 50). */
  readonly timeoutMs?: number;
  /** The codec's heap, in MB (default 16). */
  readonly memoryMb?: number;
  /** Readings from the codec's `normalizeUplink` instead of what `decodeUplink` returned (default false). */
  readonly normalize?: boolean;
}

/** The device types' decoder configs, by type: what {@link buildDecoders} reads. */
export type DecoderConfigs = Readonly<Record<string, { readonly decoder?: DecoderConfig }>>;

const CODEC_OPTIONS = ['codec', 'source', 'timeoutMs', 'memoryMb', 'normalize'];

/**
 * `deviceTypes.<type>.decoder`, checked: its shape, and a Sigfox grammar parsed (cheap
 * and pure). Codecs are loaded by {@link buildDecoders}, which the synth, `start` and a
 * cold start call.
 */
export function validateDecoderConfig(key: string, value: unknown): DecoderConfig | undefined {
  if (value === 'json') return undefined;
  if (isObject(value) && typeof value.sigfox === 'string' && Object.keys(value).length === 1) {
    try {
      parseSigfoxGrammar(value.sigfox);
    } catch (error) {
      throw new ConfigError(key, value.sigfox, `a working decoder: ${(error as Error).message}`);
    }
    return { sigfox: value.sigfox };
  }
  if (isObject(value) && typeof value.codec === 'string') {
    if (typeof value.source !== 'string') {
      throw new ConfigError(key, value, `the codec's source: the file ${value.codec} was not read`);
    }
    for (const option of Object.keys(value)) {
      if (!CODEC_OPTIONS.includes(option)) {
        throw new ConfigError(
          `${key}.${option}`,
          value[option],
          `one of ${CODEC_OPTIONS.slice(2).join(', ')}`,
        );
      }
    }
    const { timeoutMs, memoryMb, normalize } = value;
    const within = (option: string, n: unknown, min: number, max: number) => {
      if (n !== undefined && (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max)) {
        throw new ConfigError(`${key}.${option}`, n, `an integer from ${min} to ${max}`);
      }
    };
    // Past 10 s a batch of codec messages could outlast the ingest Lambda; past 256 MB, its memory.
    within('timeoutMs', timeoutMs, 1, 10_000);
    within('memoryMb', memoryMb, 1, 256);
    if (normalize !== undefined && typeof normalize !== 'boolean') {
      throw new ConfigError(`${key}.normalize`, normalize, 'true or false');
    }
    return {
      codec: value.codec,
      source: value.source,
      ...(timeoutMs === undefined ? {} : { timeoutMs: timeoutMs as number }),
      ...(memoryMb === undefined ? {} : { memoryMb: memoryMb as number }),
      ...(normalize === undefined ? {} : { normalize }),
    };
  }
  throw new ConfigError(key, value, '"json", { "sigfox": "<grammar>" } or { "codec": "<file.js>" }');
}

/**
 * Builds every configured decoder, the codecs side by side.
 *
 * @throws ConfigError naming the first device type whose decoder cannot be built and
 *   why: how a bad codec fails the synth, `start` or a cold start
 */
export function buildDecoders(deviceTypes: DecoderConfigs): Decoders {
  const decoders = new Map<string, Decoder>();
  const codecs: [string, CodecConfig][] = [];
  for (const [type, { decoder }] of Object.entries(deviceTypes)) {
    if (!decoder) continue;
    if ('codec' in decoder) codecs.push([type, decoder]);
    else decoders.set(type, sigfoxDecoder(parseSigfoxGrammar(decoder.sigfox), type));
  }
  const compiled = compileCodecs(codecs.map(([, config]) => codecRequest(config)));
  const failed = compiled.findIndex((codec) => codec instanceof CodecError);
  if (failed >= 0) {
    for (const codec of compiled) if (!(codec instanceof CodecError)) void codec.close();
    const [type, config] = codecs[failed] as [string, CodecConfig];
    throw new ConfigError(
      `deviceTypes.${type}.decoder`,
      config.codec,
      `a working decoder: ${(compiled[failed] as CodecError).message}`,
    );
  }
  compiled.forEach((codec, i) => {
    decoders.set((codecs[i] as [string, CodecConfig])[0], codecDecoder(codec as Codec));
  });
  return {
    of: (deviceType) => decoders.get(deviceType),
    types: [...decoders.keys()],
    close: async () => {
      await Promise.all([...decoders.values()].map((d) => d.close?.()));
    },
  };
}

/** Builds the decoders to prove they can be built, then frees them: the synth's check. */
export async function checkDecoders(deviceTypes: DecoderConfigs): Promise<void> {
  await buildDecoders(deviceTypes).close();
}

/** One device type's decoder, on its own (`iot-pipeline decode --sigfox/--codec`). */
export function buildDecoder(config: DecoderConfig, label: string): Decoder {
  if ('sigfox' in config) return sigfoxDecoder(parseSigfoxGrammar(config.sigfox), label);
  const { source, name, options } = codecRequest(config);
  return codecDecoder(compileCodec(source, name, options));
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

export function sigfoxDecoder(grammar: SigfoxGrammar, name: string): Decoder {
  return {
    name,
    decode({ bytes }) {
      try {
        const { values, warnings } = decodeSigfox(grammar, bytes);
        return decodedData(values, warnings);
      } catch (error) {
        if (error instanceof FrameError)
          return { ok: false, code: 'decode_failed', reason: `Sigfox grammar of ${name}: ${error.message}` };
        throw error;
      }
    },
  };
}

function toDecoded(result: UplinkResult): Decoded {
  if (result.errors.length > 0) return { ok: false, code: 'decode_failed', reason: result.errors.join('; ') };
  return decodedData(result.data, result.warnings);
}

function uplinkInput({ bytes, fPort, receivedAt }: DecodeInput): UplinkInput {
  return { bytes, fPort, recvTime: new Date(receivedAt) };
}

export function codecDecoder(codec: Codec): Decoder {
  return {
    name: codec.name,
    decode: (input) => toDecoded(codec.decodeUplink(uplinkInput(input))),
    async decodeMany(inputs) {
      return (await codec.decodeUplinks(inputs.map(uplinkInput))).map(toDecoded);
    },
    close: () => codec.close(),
  };
}
