/**
 * LoRaWAN Payload Codec API (TS013): a JavaScript file that defines
 * `decodeUplink({ bytes, fPort, recvTime })` and returns `{ data, warnings, errors }`,
 * as the device repositories publish them (plain ES5/ES2015 functions, helpers at top
 * level). The codec runs in a `node:vm` context of its own:
 *
 * - nothing of the host is reachable: no `require`, `process`, `globalThis` of Node, no
 *   timers, no network; string code generation (`eval`, `new Function`) is off;
 * - the input is built inside the context from JSON and the output leaves it as JSON,
 *   so no object crosses between the two worlds (the classic `constructor.constructor`
 *   escape has nothing to climb);
 * - every call has a CPU time limit, and input and output sizes are bounded.
 *
 * A codec is compiled once (per cold start, per device type) and called per message.
 */
import { type Context, createContext, Script } from 'node:vm';

export interface CodecLimits {
  /** CPU time of one `decodeUplink` call, in ms. */
  readonly timeoutMs: number;
  /** Largest payload handed to the codec (LoRaWAN's is 242 bytes). */
  readonly maxInputBytes: number;
  /** Largest JSON the codec may return. */
  readonly maxOutputBytes: number;
}

export const DEFAULT_CODEC_LIMITS: CodecLimits = {
  timeoutMs: 50,
  maxInputBytes: 1024,
  maxOutputBytes: 64 * 1024,
};

export interface UplinkInput {
  readonly bytes: Uint8Array;
  readonly fPort?: number;
  readonly recvTime: Date;
}

/** What `decodeUplink` returned, checked; `errors` non-empty means the message is quarantined. */
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
  decodeUplink(input: UplinkInput): UplinkResult;
  /** Many at once, in order: one entry into the sandbox for all of them. */
  decodeUplinks(inputs: readonly UplinkInput[]): UplinkResult[];
  /** The codec's own example vectors, if it defines `examples`. */
  readonly examples: readonly CodecExample[];
}

/** A codec that does not compile or breaks the API. */
export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

// Runs before the codec: keeps our own references to JSON, unreachable for the codec,
// and turns whatever the codec throws into a string inside the context (under the time
// limit), so the host never touches an object the codec made.
const PRELUDE = `
Object.defineProperty(globalThis, '__iotPipelineInput', { value: '', writable: true, configurable: false });
(function (parse, stringify, isFinite, String, Date, map) {
  function check(key, value) {
    if (typeof value === 'number' && !isFinite(value)) throw new Error('returned ' + value + ' at "' + key + '"');
    if (typeof value === 'function') throw new Error('returned a function at "' + key + '"');
    if (typeof value === 'bigint') throw new Error('returned a BigInt at "' + key + '"');
    return value;
  }
  function runOne(input) {
    try {
      if (typeof decodeUplink !== 'function') throw new Error('the codec defines no decodeUplink function');
      var result = decodeUplink({ bytes: input.bytes, fPort: input.fPort, recvTime: new Date(input.recvTime) });
      return stringify({ result: result === undefined ? null : result }, check);
    } catch (error) {
      var message;
      try { message = String(error && error.message !== undefined ? error.message : error); } catch (e) { message = 'an unprintable error'; }
      return stringify({ threw: message });
    }
  }
  Object.defineProperty(globalThis, '__iotPipelineRun', {
    value: function (inputJson) { return runOne(parse(inputJson)); },
    writable: false, configurable: false,
  });
  Object.defineProperty(globalThis, '__iotPipelineRunMany', {
    value: function (inputsJson) { return stringify(map.call(parse(inputsJson), runOne)); },
    writable: false, configurable: false,
  });
})(JSON.parse, JSON.stringify, isFinite, String, Date, Array.prototype.map);`;

export function compileCodec(
  source: string,
  name: string,
  limits: CodecLimits = DEFAULT_CODEC_LIMITS,
): Codec {
  const context: Context = createContext(Object.create(null), {
    name: `codec ${name}`,
    codeGeneration: { strings: false, wasm: false },
  });
  new Script(PRELUDE, { filename: 'iot-pipeline-prelude.js' }).runInContext(context);
  let script: Script;
  try {
    script = new Script(source, { filename: name });
  } catch (error) {
    throw new CodecError(`codec ${name} does not compile: ${(error as Error).message}`);
  }
  try {
    script.runInContext(context, { timeout: limits.timeoutMs * 10 });
  } catch (error) {
    throw new CodecError(`codec ${name} failed while loading: ${(error as Error).message}`);
  }
  const call = new Script('__iotPipelineRun(__iotPipelineInput)', { filename: `${name} (call)` });
  const callMany = new Script('__iotPipelineRunMany(__iotPipelineInput)', { filename: `${name} (batch)` });
  const enter = (script: Script, input: string, timeout: number): string | UplinkResult => {
    // A primitive string is all that crosses into the context.
    context.__iotPipelineInput = input;
    try {
      const output: unknown = script.runInContext(context, { timeout });
      return typeof output === 'string' ? output : failure(`codec ${name} returned no JSON`);
    } catch (error) {
      // Only the host's own errors get here (the time limit); the codec's are caught inside.
      if ((error as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
        return failure(`codec ${name} ran longer than ${limits.timeoutMs} ms`);
      }
      return failure(`codec ${name} failed: ${(error as Error).message}`);
    } finally {
      context.__iotPipelineInput = '';
    }
  };
  const interpret = (output: string): UplinkResult => {
    if (output.length > limits.maxOutputBytes) {
      return failure(
        `codec ${name} returned ${output.length} bytes of JSON; the limit is ${limits.maxOutputBytes}`,
      );
    }
    let parsed: { result?: unknown; threw?: string };
    try {
      parsed = JSON.parse(output) as typeof parsed;
    } catch {
      return failure(`codec ${name} returned something that is not JSON`);
    }
    if (typeof parsed.threw === 'string')
      return failure(`codec ${name} threw: ${parsed.threw.slice(0, 500)}`);
    return checkResult(parsed.result, name);
  };
  const inputJson = (input: UplinkInput) => ({
    bytes: Array.from(input.bytes),
    fPort: input.fPort,
    recvTime: input.recvTime.toISOString(),
  });
  const tooLarge = (input: UplinkInput) =>
    input.bytes.length > limits.maxInputBytes
      ? failure(`payload is ${input.bytes.length} bytes; codecs take at most ${limits.maxInputBytes}`)
      : undefined;
  const decodeOne = (input: UplinkInput): UplinkResult => {
    const refused = tooLarge(input);
    if (refused) return refused;
    const output = enter(call, JSON.stringify(inputJson(input)), limits.timeoutMs);
    return typeof output === 'string' ? interpret(output) : output;
  };
  const examples = readExamples(context, name, limits);
  return {
    name,
    examples,
    decodeUplink: decodeOne,
    decodeUplinks(inputs) {
      const results: (UplinkResult | undefined)[] = inputs.map(tooLarge);
      const indexes = inputs.flatMap((_, i) => (results[i] ? [] : [i]));
      if (indexes.length <= 1) return inputs.map((input, i) => results[i] ?? decodeOne(input));
      // One entry for all, under one time limit (the per-message limit, up to ten of them);
      // past it, each message again on its own, so one slow payload fails alone.
      const budget = limits.timeoutMs * Math.min(indexes.length, 10);
      const output = enter(
        callMany,
        JSON.stringify(indexes.map((i) => inputJson(inputs[i] as UplinkInput))),
        budget,
      );
      let outputs: unknown;
      try {
        outputs = typeof output === 'string' ? JSON.parse(output) : undefined;
      } catch {
        outputs = undefined;
      }
      if (
        !Array.isArray(outputs) ||
        outputs.length !== indexes.length ||
        !outputs.every((o) => typeof o === 'string')
      ) {
        return inputs.map((input, i) => results[i] ?? decodeOne(input));
      }
      indexes.forEach((index, k) => {
        results[index] = interpret(outputs[k] as string);
      });
      return results as UplinkResult[];
    },
  };
}

function checkResult(result: unknown, name: string): UplinkResult {
  if (typeof result !== 'object' || result === null || Array.isArray(result)) {
    return failure(
      `codec ${name} returned ${describe(result)}; decodeUplink must return { data, warnings, errors }`,
    );
  }
  const r = result as Record<string, unknown>;
  const strings = (value: unknown, key: string): string[] | string => {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) return `"${key}" is ${describe(value)}, not an array of strings`;
    return value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
  };
  const errors = strings(r.errors, 'errors');
  const warnings = strings(r.warnings, 'warnings');
  if (typeof errors === 'string') return failure(`codec ${name}: ${errors}`);
  if (typeof warnings === 'string') return failure(`codec ${name}: ${warnings}`);
  if (errors.length > 0) return { data: r.data, warnings, errors };
  if (typeof r.data !== 'object' || r.data === null) {
    return failure(`codec ${name} returned data ${describe(r.data)}; expected an object of readings`);
  }
  return { data: r.data, warnings, errors: [] };
}

function readExamples(context: Context, name: string, limits: CodecLimits): CodecExample[] {
  let json: unknown;
  try {
    json = new Script('typeof examples === "undefined" ? "[]" : JSON.stringify(examples)').runInContext(
      context,
      {
        timeout: limits.timeoutMs * 10,
      },
    );
  } catch (error) {
    throw new CodecError(`codec ${name}: its examples cannot be read: ${(error as Error).message}`);
  }
  let examples: unknown;
  try {
    examples = JSON.parse(String(json));
  } catch {
    throw new CodecError(`codec ${name}: "examples" is not plain data`);
  }
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

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
