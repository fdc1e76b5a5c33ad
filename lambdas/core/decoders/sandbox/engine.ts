/**
 * One codec in QuickJS, compiled to WebAssembly: an engine with its own heap in its
 * own linear memory, where nothing of Node exists (no `require`, `process`, timers,
 * `import()`, `WebAssembly`, `Atomics`). It runs in the sandbox's worker thread (see
 * `worker.ts`), so the host can stop it whatever it is doing; here are the limits
 * QuickJS itself enforces:
 *
 * - memory: QuickJS's allocator refuses past `memoryBytes` (an `out of memory` error
 *   inside the engine), and the linear memory cannot grow past a bound above it;
 * - time: an interrupt handler stops JavaScript at the deadline (an uncatchable error);
 *   builtins that never poll it are the watchdog's (`host.ts`);
 * - stack: recursion past 256 KiB is a `stack overflow` error, before the thread's own
 *   stack runs out.
 *
 * No state crosses messages: once the codec's top-level code has run, the engine's
 * memory is snapshotted, and before each message every byte that can hold state (static
 * data, the top of the stack, the heap) is copied back and the heap grown since is
 * zeroed. A message sees the codec as it was after loading, never what another
 * message (of the same device or another) left behind.
 */
import variant from '@jitl/quickjs-wasmfile-release-sync';
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from 'quickjs-emscripten-core';
import { preludeSource } from './prelude.ts';
import type { EngineSpec, EntryPoint, MemoryLayout, Outcome } from './protocol.ts';

/** JavaScript recursion QuickJS allows, in bytes of its (shadow) stack. */
const STACK_BYTES = 256 * 1024;
/** The part of the stack restored before each message: what a call can reach, with margin. */
const STACK_WINDOW = STACK_BYTES + 64 * 1024;
const PAGE = 65_536;

/** A codec that cannot be loaded, with the reason in words. */
export class LoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoadError';
  }
}

/** The emscripten module under quickjs-emscripten's wrapper: its allocator. */
interface EmscriptenAllocator {
  _malloc(bytes: number): number;
  _free(pointer: number): void;
}

/** The deadline the interrupt handler reads; one per engine. */
interface Clock {
  deadline: number;
}

export class Engine {
  private dirty = false;
  private broken = false;
  /** The snapshot: static data, and the top of the stack through the heap's end, as loaded. */
  private readonly low: Uint8Array;
  private readonly high: Uint8Array;
  private readonly highStart: number;
  private readonly snapshotBreak: number;

  private constructor(
    private readonly spec: EngineSpec,
    private readonly layout: MemoryLayout & { readonly breakAddress: number },
    private readonly memory: WebAssembly.Memory,
    private readonly runtime: QuickJSRuntime,
    private readonly context: QuickJSContext,
    private readonly run: QuickJSHandle,
    private readonly clock: Clock,
    readonly entry: EntryPoint,
    /** The codec's `examples`, as JSON text. */
    readonly examples: string,
    /** How long the codec's top-level code and examples took, in ms. */
    readonly loadMs: number,
  ) {
    const bytes = new Uint8Array(memory.buffer);
    this.snapshotBreak = this.readBreak();
    this.highStart = Math.max(layout.staticEnd, layout.heapBase - STACK_WINDOW);
    this.low = bytes.slice(0, layout.staticEnd);
    this.high = bytes.slice(this.highStart, this.snapshotBreak);
  }

  /**
   * Creates an engine and loads the codec in it, under the load time limit and the
   * memory limit. Probes the allocator's break address first when the layout lacks it.
   * `codecStarts` is called once the engine is made, just before the codec's code runs.
   *
   * @throws LoadError saying why the codec cannot be used
   */
  static async load(spec: EngineSpec, codecStarts: () => void = () => undefined): Promise<Engine> {
    const memory = new WebAssembly.Memory({
      initial: spec.layout.initialPages,
      // Bounded whatever QuickJS does: its heap limit, with room for the allocator's own overhead.
      maximum: Math.min(
        spec.layout.maximumPages,
        Math.max(
          spec.layout.initialPages,
          Math.ceil((spec.layout.heapBase + 2 * spec.limits.memoryBytes + 8 * 1024 * 1024) / PAGE),
        ),
      ),
    });
    const module = await newQuickJSWASMModuleFromVariant(
      newVariant(variant, { wasmModule: spec.wasm, wasmMemory: memory }),
    );
    const layout = {
      ...spec.layout,
      breakAddress: spec.layout.breakAddress ?? probeBreakAddress(module, memory, spec.layout),
    };
    const clock: Clock = { deadline: Number.POSITIVE_INFINITY };
    const runtime = module.newRuntime({
      memoryLimitBytes: spec.limits.memoryBytes,
      maxStackSizeBytes: STACK_BYTES,
      interruptHandler: () => performance.now() > clock.deadline,
    });
    // No module loader: `import()` rejects inside the engine, and no host code is called.
    runtime.removeModuleLoader();
    const context = runtime.newContext();
    const prelude = context.evalCode(preludeSource(spec), 'iot-pipeline-prelude.js', { type: 'global' });
    if (prelude.error) throw new LoadError(`the sandbox prelude failed: ${context.dump(prelude.error)}`);
    const run = context.getProp(prelude.value, 0);
    const describe = context.getProp(prelude.value, 1);
    codecStarts();
    const started = performance.now();
    clock.deadline = started + spec.limits.loadTimeoutMs;
    const failed = (phase: 'load' | 'examples', error: QuickJSHandle) =>
      new LoadError(loadFailure(context, runtime, error, phase, spec, performance.now() > clock.deadline));
    const loaded = context.evalCode(spec.source, spec.name, { type: 'global' });
    if (loaded.error) throw failed('load', loaded.error);
    const described = context.callFunction(describe, context.undefined);
    if (described.error) throw failed('examples', described.error);
    clock.deadline = Number.POSITIVE_INFINITY;
    const { entry, examples } = JSON.parse(context.getString(described.value)) as {
      entry: EntryPoint | '';
      examples: string;
    };
    if (!entry) {
      throw new LoadError(
        `codec ${spec.name} defines no decodeUplink function (nor the older Decoder(bytes, port) or Decode(fPort, bytes))`,
      );
    }
    return new Engine(
      spec,
      layout,
      memory,
      runtime,
      context,
      run,
      clock,
      entry,
      examples,
      performance.now() - started,
    );
  }

  /** False once the engine failed in a way that leaves it unusable (a trap): load another. */
  get usable(): boolean {
    return !this.broken;
  }

  /** Bytes copied back before each message. */
  get snapshotBytes(): number {
    return this.low.length + this.high.length;
  }

  /** Bytes of heap the loaded codec holds. */
  get heapBytes(): number {
    return this.snapshotBreak - this.layout.heapBase;
  }

  /** The layout with the break address probed: later workers need not probe again. */
  get effectiveLayout(): MemoryLayout {
    return this.layout;
  }

  /** The engine's linear memory, for tests that compare it byte for byte. */
  get memoryBytes(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  /** Decodes one message (`{ bytes, fPort, recvTime }` as JSON text) from the loaded state. */
  decode(input: string): Outcome {
    if (this.broken) return { failed: `codec ${this.spec.name}: the engine is not usable` };
    this.restore();
    const { context, runtime, spec } = this;
    this.dirty = true;
    const deadline = performance.now() + spec.limits.timeoutMs;
    this.clock.deadline = deadline;
    let result: ReturnType<QuickJSContext['callFunction']>;
    try {
      result = context.callFunction(this.run, context.undefined, context.newString(input));
    } catch (error) {
      // A trap inside the WebAssembly (the thread's stack, an abort): its state is undefined now.
      this.broken = true;
      return { failed: trapReason(spec.name, error) };
    }
    const timedOut = performance.now() > deadline;
    this.clock.deadline = Number.POSITIVE_INFINITY;
    // Reading the answer may need a little memory the codec left none of; the restore resets the limit.
    runtime.setMemoryLimit(-1);
    if (result.error) {
      if (timedOut) return { failed: `codec ${spec.name} ran longer than ${spec.limits.timeoutMs} ms` };
      const { name, message } = errorOf(context, result.error);
      return { failed: `codec ${spec.name} ${thrown(name, message, spec)}` };
    }
    // The prelude's answer: a tag, then the result's JSON, a thrown error's JSON or an oversize length.
    const text = context.getString(result.value);
    const body = text.slice(1);
    if (text.startsWith('r') && body.length <= spec.limits.maxOutputBytes) return { json: body };
    if (text.startsWith('t')) {
      let thrownError = { name: '', message: 'an error it could not describe' };
      try {
        thrownError = JSON.parse(body) as typeof thrownError;
      } catch {
        // The prelude's own JSON: the generic words stay.
      }
      return { failed: `codec ${spec.name} ${thrown(thrownError.name, thrownError.message, spec)}` };
    }
    return { failed: tooLarge(spec, text.startsWith('s') ? Number(body) : body.length) };
  }

  /** Puts back the state after loading; `decode` does it first, tests call it to compare memory. */
  restore(): void {
    if (!this.dirty) return;
    const grownTo = this.readBreak();
    const bytes = new Uint8Array(this.memory.buffer);
    bytes.set(this.low, 0);
    bytes.set(this.high, this.highStart);
    if (grownTo > this.snapshotBreak) bytes.fill(0, this.snapshotBreak, Math.min(grownTo, bytes.length));
    this.dirty = false;
  }

  private readBreak(): number {
    return new Uint32Array(this.memory.buffer, this.layout.breakAddress, 1)[0] ?? 0;
  }
}

/**
 * The name and message of an error that left the engine's call: raised by the engine
 * itself (out of memory, stack overflow inside the prelude's own error handling), so
 * plain data properties; read defensively all the same.
 */
function errorOf(context: QuickJSContext, error: QuickJSHandle): { name: string; message: string } {
  const read = (key: string) => {
    try {
      const value = context.getProp(error, key);
      return context.typeof(value) === 'string' ? context.getString(value).slice(0, 500) : '';
    } catch {
      return '';
    }
  };
  return { name: read('name'), message: read('message') || 'an error it could not describe' };
}

function thrown(name: string, message: string, spec: EngineSpec): string {
  if (name === 'InternalError' && message === 'out of memory') {
    return `ran out of memory (${formatBytes(spec.limits.memoryBytes)})`;
  }
  return describeThrown(message);
}

function describeThrown(message: string): string {
  // QuickJS raises its stack overflow as an InternalError, or a SyntaxError inside JSON.parse.
  if (message === 'stack overflow') return 'ran out of stack (recursion too deep)';
  return `threw: ${message}`;
}

function trapReason(name: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/call stack/i.test(message)) return `codec ${name} ran out of stack (recursion too deep)`;
  return `codec ${name} crashed the engine (${message.slice(0, 200)})`;
}

function tooLarge(spec: EngineSpec, size: number): string {
  return `codec ${spec.name} returned ${size} bytes of JSON; the limit is ${spec.limits.maxOutputBytes}`;
}

function loadFailure(
  context: QuickJSContext,
  runtime: QuickJSRuntime,
  error: QuickJSHandle,
  phase: 'load' | 'examples',
  spec: EngineSpec,
  timedOut: boolean,
): string {
  if (timedOut) return `codec ${spec.name} ran longer than ${spec.limits.loadTimeoutMs} ms while loading`;
  runtime.setMemoryLimit(-1);
  const { name, message } = errorOf(context, error);
  let where = '';
  try {
    const stack = context.getProp(error, 'stack');
    const text = context.typeof(stack) === 'string' ? context.getString(stack) : '';
    where = /at (?:[^\n(]*\()?(?<at>[^()\n]+:\d+(?::\d+)?)/.exec(text)?.groups?.at ?? '';
  } catch {
    // No stack to say where: the words stay without a line.
  }
  if (name === 'InternalError' && message === 'out of memory') {
    return `codec ${spec.name} ran out of memory (${formatBytes(spec.limits.memoryBytes)}) while loading`;
  }
  const at = where ? ` (${where})` : '';
  if (phase === 'examples') return `codec ${spec.name}: its examples cannot be read: ${message}${at}`;
  if (name === 'SyntaxError' && where.startsWith(`${spec.name}:`)) {
    return `codec ${spec.name} does not compile: ${message}${at}`;
  }
  return `codec ${spec.name} failed while loading: ${describeThrown(message)}${at}`;
}

export function formatBytes(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KB`;
  return `${bytes} bytes`;
}

/**
 * Finds the address of emscripten's heap break (`sbrk`'s variable), before anything
 * else runs in the engine: a word of static data that grows by about what an
 * allocation larger than the free heap took. The allocator's top-chunk pointer moves
 * too; the break is the higher of the two, and a snapshot must reach at least that far
 * (the memory test checks that a restore leaves no byte behind). The probe's block is
 * freed, and the codec's own allocations reuse it.
 */
function probeBreakAddress(
  module: QuickJSWASMModule,
  memory: WebAssembly.Memory,
  layout: MemoryLayout,
): number {
  const allocator = (module as unknown as { module: EmscriptenAllocator }).module;
  const words = () => new Uint32Array(memory.buffer, 0, Math.floor(layout.staticEnd / 4));
  for (const size of [128 * 1024, 4 * 1024 * 1024]) {
    const before = words().slice();
    const pointer = allocator._malloc(size);
    const after = words();
    let best: { address: number; value: number } | undefined;
    for (let i = 0; i < after.length; i++) {
      const value = after[i] ?? 0;
      const grew = value - (before[i] ?? 0);
      if (grew >= size / 2 && value >= layout.heapBase + size && value <= memory.buffer.byteLength) {
        if (!best || value > best.value) best = { address: i * 4, value };
      }
    }
    allocator._free(pointer);
    if (best) return best.address;
  }
  throw new LoadError('the QuickJS engine does not have the memory layout this sandbox expects');
}
