/**
 * LoRaWAN Payload Codec API (TS013) codecs, as the device repositories publish them:
 * a JavaScript file defining `decodeUplink({ bytes, fPort, recvTime })` that returns
 * `{ data, warnings, errors }` (or, in older files, `Decoder(bytes, port)` or
 * ChirpStack v3's `Decode(fPort, bytes, variables)`), optionally `normalizeUplink`.
 *
 * Codecs are third-party code. Each runs in a sandbox of its own (`sandbox/`): QuickJS
 * compiled to WebAssembly, in a worker thread, with its own heap and a hard cap on it,
 * a time limit that holds for any code (builtins included: the thread is stopped), no
 * host object, function or error crossing (bytes in, JSON text out), and the state
 * after loading restored before every message, so nothing one message leaves behind
 * reaches the next. A failure quarantines that message with the reason; the process and
 * the batch go on.
 */

import { kind } from '../ids.ts';
import { CodecSandbox, type SandboxInfo } from './sandbox/host.ts';
import type { Outcome } from './sandbox/protocol.ts';

export interface CodecLimits {
  /** Time one message's decode may take, in ms. */
  readonly timeoutMs: number;
  /** Time loading the codec (its top-level code and examples) may take, in ms. */
  readonly loadTimeoutMs: number;
  /** The codec's heap (QuickJS's), in bytes. */
  readonly memoryBytes: number;
  /** Largest payload handed to the codec (LoRaWAN's is 242 bytes). */
  readonly maxInputBytes: number;
  /** Largest JSON the codec may return. */
  readonly maxOutputBytes: number;
}

export const DEFAULT_CODEC_LIMITS: CodecLimits = {
  timeoutMs: 50,
  // The largest public codecs tried (abeeway's 321 KB bundle) load in about 50 ms.
  loadTimeoutMs: 1000,
  memoryBytes: 16 * 1024 * 1024,
  maxInputBytes: 1024,
  maxOutputBytes: 64 * 1024,
};

export interface CodecOptions {
  readonly limits?: Partial<CodecLimits>;
  /** Readings from the codec's `normalizeUplink` (TS013's normalized payload) rather than from what it decoded. */
  readonly normalize?: boolean;
}

export interface UplinkInput {
  readonly bytes: Uint8Array;
  readonly fPort?: number;
  readonly recvTime: Date;
}

/** What the codec returned, checked; `errors` non-empty means the message is quarantined. */
export interface UplinkResult {
  readonly data: unknown;
  readonly warnings: readonly string[];
  readonly errors: readonly string[];
}

/** An example vector carried by the codec file (`var examples = [...]`). */
export interface CodecExample {
  readonly description?: string;
  readonly input: { readonly bytes: readonly number[]; readonly fPort?: number; readonly recvTime?: string };
  readonly output: {
    readonly data?: unknown;
    readonly warnings?: readonly string[];
    readonly errors?: readonly string[];
  };
}

export interface Codec {
  readonly name: string;
  readonly limits: CodecLimits;
  /** The codec's own example vectors, if it defines `examples`. */
  readonly examples: readonly CodecExample[];
  /** What loading it found and cost (entry point, heap, load and start time). */
  readonly info: SandboxInfo;
  /** One message, waiting synchronously (the CLI, tests). */
  decodeUplink(input: UplinkInput): UplinkResult;
  /** Many messages, in order, without blocking the thread (the ingest path). */
  decodeUplinks(inputs: readonly UplinkInput[]): Promise<UplinkResult[]>;
  /** Stops the codec's worker thread. */
  close(): Promise<void>;
}

/** A codec that does not load: it does not compile, defines no entry point, or fails, loops or runs out of memory at top level. */
export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

/**
 * Loads a codec into a sandbox of its own, running its top-level code there under the
 * load limits, and reads its examples.
 *
 * @throws CodecError saying why the codec cannot be used
 */
export function compileCodec(source: string, name: string, options: CodecOptions = {}): Codec {
  const [codec] = compileCodecs([{ source, name, options }]);
  if (codec instanceof CodecError) throw codec;
  return codec as Codec;
}

/** Loads several codecs side by side (each in its own worker); each entry is the codec or why it does not load. */
export function compileCodecs(
  codecs: readonly { source: string; name: string; options?: CodecOptions }[],
): (Codec | CodecError)[] {
  const specs = codecs.map(({ source, name, options = {} }) => ({
    name,
    source,
    limits: { ...DEFAULT_CODEC_LIMITS, ...options.limits },
    normalize: options.normalize ?? false,
  }));
  return CodecSandbox.openAll(specs).map((opened, i) => {
    if ('failed' in opened) return new CodecError(opened.failed);
    const { name, limits } = specs[i] as (typeof specs)[number];
    try {
      return sandboxedCodec(opened, name, limits);
    } catch (error) {
      void opened.close();
      if (error instanceof CodecError) return error;
      throw error;
    }
  });
}

function sandboxedCodec(sandbox: CodecSandbox, name: string, limits: CodecLimits): Codec {
  const examples = readExamples(sandbox.info.examples, name);
  const refused = (input: UplinkInput) =>
    input.bytes.length > limits.maxInputBytes
      ? failure(`payload is ${input.bytes.length} bytes; codecs take at most ${limits.maxInputBytes}`)
      : undefined;
  const interpret = (outcome: Outcome | undefined): UplinkResult => {
    if (!outcome) return failure(`codec ${name} gave no answer`);
    if ('failed' in outcome) return failure(outcome.failed);
    let parsed: { result: unknown };
    try {
      parsed = JSON.parse(outcome.json) as { result: unknown };
    } catch {
      return failure(`codec ${name} returned something that is not JSON`);
    }
    return checkResult(parsed.result, name);
  };
  // Each batch: refused payloads answered here, the rest in one request to the sandbox.
  const prepare = (inputs: readonly UplinkInput[]) => {
    const results = inputs.map(refused);
    const sent = inputs.flatMap((input, i) => (results[i] ? [] : [inputJson(input)]));
    const merge = (outcomes: readonly Outcome[]) => {
      let k = 0;
      return results.map((result) => result ?? interpret(outcomes[k++]));
    };
    return { sent, merge };
  };
  return {
    name,
    limits,
    examples,
    info: sandbox.info,
    decodeUplink(input) {
      const { sent, merge } = prepare([input]);
      return merge(sent.length > 0 ? sandbox.decodeSync(sent) : [])[0] as UplinkResult;
    },
    async decodeUplinks(inputs) {
      const { sent, merge } = prepare(inputs);
      return merge(sent.length > 0 ? await sandbox.decode(sent) : []);
    },
    close: () => sandbox.close(),
  };
}

/** The input as the prelude reads it: `bytes` a plain array of numbers, `recvTime` ISO-8601. */
function inputJson(input: UplinkInput): string {
  return JSON.stringify({
    bytes: Array.from(input.bytes),
    fPort: input.fPort,
    recvTime: input.recvTime.toISOString(),
  });
}

function checkResult(result: unknown, name: string): UplinkResult {
  if (typeof result !== 'object' || result === null || Array.isArray(result)) {
    return failure(
      `codec ${name} returned ${kind(result)}; decodeUplink must return { data, warnings, errors }`,
    );
  }
  const r = result as Record<string, unknown>;
  const strings = (value: unknown, key: string): string[] | string => {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) return `"${key}" is ${kind(value)}, not an array of strings`;
    return value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
  };
  const errors = strings(r.errors, 'errors');
  const warnings = strings(r.warnings, 'warnings');
  if (typeof errors === 'string') return failure(`codec ${name}: ${errors}`);
  if (typeof warnings === 'string') return failure(`codec ${name}: ${warnings}`);
  if (errors.length > 0) return { data: r.data, warnings, errors };
  if (typeof r.data !== 'object' || r.data === null) {
    return failure(`codec ${name} returned data ${kind(r.data)}; expected an object of readings`);
  }
  return { data: r.data, warnings, errors: [] };
}

function readExamples(json: string, name: string): CodecExample[] {
  const examples: unknown = JSON.parse(json);
  if (!Array.isArray(examples)) throw new CodecError(`codec ${name}: "examples" must be an array`);
  examples.forEach((example, i) => {
    const bytes = (example as CodecExample | null)?.input?.bytes;
    if (!Array.isArray(bytes) || !bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
      throw new CodecError(`codec ${name}: examples[${i}].input.bytes must be an array of bytes (0-255)`);
    }
    if (typeof (example as CodecExample).output !== 'object') {
      throw new CodecError(`codec ${name}: examples[${i}].output must be an object ({ data } or { errors })`);
    }
  });
  return examples as CodecExample[];
}

function failure(reason: string): UplinkResult {
  return { data: undefined, warnings: [], errors: [reason] };
}
