/**
 * The pipeline's side of the codec sandbox: one worker thread per codec, running
 * QuickJS (see `engine.ts`), and a watchdog that stops the thread when a load or a
 * message runs past its hard limit, which holds for any code: a builtin that never
 * yields to QuickJS's interrupt (a sort, a fill, an `indexOf` over a large array) is
 * stopped with its thread. The worker is then started again and the batch goes on;
 * only the message it was stuck on fails.
 *
 * Calls are synchronous (config loading, the CLI) or asynchronous (the ingest path,
 * so the local runtime keeps answering while a batch decodes); both drive the same
 * steps, waiting on the shared control array with `Atomics.wait` or
 * `Atomics.waitAsync`, and both read replies with `receiveMessageOnPort`.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { sandboxWorkerBundle } from './bundle.ts';
import {
  CONTROL_SLOTS,
  Control,
  type DecodeRequest,
  type EngineSpec,
  type EntryPoint,
  type MemoryLayout,
  type Outcome,
  Phase,
  type Reply,
  type SandboxLimits,
  type WorkerInit,
} from './protocol.ts';
import { FROM_SOURCES, quickjsWasm, SANDBOX_FILES } from './wasm.ts';

/** A codec to open: the engine's spec without what the host supplies (the compiled module, its layout). */
export type SandboxSpec = Omit<EngineSpec, 'wasm' | 'layout'>;

/** What a loaded codec offers and cost. */
export interface SandboxInfo {
  readonly entry: EntryPoint;
  /** The codec's `examples`, as JSON text. */
  readonly examples: string;
  /** QuickJS heap the loaded codec holds, in bytes. */
  readonly heapBytes: number;
  /** Bytes copied back before each message. */
  readonly snapshotBytes: number;
  /** The codec's top-level code, in ms. */
  readonly loadMs: number;
  /** From starting the worker to the codec loaded, in ms. */
  readonly startMs: number;
}

/** A worker's start (Node, and tsx when running from sources) is not the codec's to pay for, but has a bound. */
const BOOT_MS = 30_000;
/** Stops of the worker in one call with no message decoded in between, before the rest fail. */
const MAX_FRUITLESS_RESTARTS = 3;

/** The hard limits: the engine's own limit, twice, plus room for a noisy machine. */
function hardLimits(limits: SandboxLimits): { readonly messageMs: number; readonly loadMs: number } {
  return { messageMs: 2 * limits.timeoutMs + 100, loadMs: 2 * limits.loadTimeoutMs + 500 };
}

interface Live {
  readonly worker: Worker;
  readonly replies: MessagePort;
  readonly control: Int32Array;
  seq: number;
  exited: boolean;
}

/** What a step waits for: `control[done]` to move off `expected`, for at most `ms`. */
interface Wait {
  readonly control: Int32Array;
  readonly expected: number;
  readonly ms: number;
}

type Steps<T> = Generator<Wait, T, void>;

/**
 * The worker's entry file: next to a Lambda bundle, the one bundled with it; from
 * sources, the TypeScript bundled by esbuild once per process.
 */
function workerEntry(): URL | string {
  if (!FROM_SOURCES) return new URL(`./${SANDBOX_FILES.worker}`, import.meta.url);
  return sandboxWorkerBundle({ minify: false, target: 'node20' });
}

/** Learnt from the first worker of the process (the allocator's break address); saves the next ones a probe. */
let knownLayout: MemoryLayout | undefined;

export class CodecSandbox {
  private live?: Live;
  private closed = false;
  private inflight?: Job<Outcome[]>;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly spec: SandboxSpec,
    readonly info: SandboxInfo,
    live: Live,
  ) {
    this.live = live;
  }

  /**
   * Starts the codec's worker and loads the codec in it, waiting synchronously.
   *
   * @returns the sandbox, or why the codec cannot be loaded
   */
  static open(spec: SandboxSpec): CodecSandbox | { readonly failed: string } {
    return CodecSandbox.openAll([spec])[0] as CodecSandbox | { readonly failed: string };
  }

  /** Opens several at once: their workers start and load side by side. */
  static openAll(specs: readonly SandboxSpec[]): (CodecSandbox | { readonly failed: string })[] {
    const started = performance.now();
    const jobs = specs.map((spec) => new Job(spawn(spec)));
    return jobs.map((job, i) => {
      const result = job.finishSync();
      if ('failed' in result) return result;
      const spec = specs[i] as SandboxSpec;
      return new CodecSandbox(spec, { ...result.info, startMs: performance.now() - started }, result.live);
    });
  }

  /** Decodes each input (`{ bytes, fPort, recvTime }` as JSON text), waiting synchronously. */
  decodeSync(inputs: readonly string[]): Outcome[] {
    // The worker answers in order: one that is being waited for asynchronously is finished first.
    this.inflight?.finishSync();
    return new Job(this.decodeAll(inputs)).finishSync();
  }

  /** Decodes each input without blocking the thread; calls are answered in order. */
  decode(inputs: readonly string[]): Promise<Outcome[]> {
    const run = this.tail.then(async () => {
      const job = new Job(this.decodeAll(inputs));
      this.inflight = job;
      try {
        return await job.finish();
      } finally {
        if (this.inflight === job) this.inflight = undefined;
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Stops the worker; later calls fail with a reason. */
  async close(): Promise<void> {
    this.closed = true;
    const live = this.live;
    this.live = undefined;
    if (live) await stop(live);
  }

  private *decodeAll(inputs: readonly string[]): Steps<Outcome[]> {
    const { name } = this.spec;
    const outcomes: (Outcome | undefined)[] = inputs.map(() => undefined);
    const fail = (reason: string) => outcomes.map((o) => o ?? { failed: reason });
    let fruitless = 0;
    for (;;) {
      const todo = outcomes.flatMap((o, i) => (o === undefined ? [i] : []));
      if (todo.length === 0) return outcomes as Outcome[];
      if (this.closed) return fail(`codec ${name}: the sandbox is closed`);
      if (!this.live) {
        const spawned = yield* spawn(this.spec);
        if ('failed' in spawned) return fail(spawned.failed);
        this.live = spawned.live;
      }
      const live = this.live;
      const seq = ++live.seq;
      const request: DecodeRequest = { seq, inputs: todo.map((i) => inputs[i] as string) };
      live.worker.postMessage(request);
      const watch = new Watchdog(live, this.spec.limits);
      let decodedBefore = outcomes.filter((o) => o !== undefined).length;
      const take = (from: number, list: Outcome[]) =>
        list.forEach((outcome, k) => {
          const index = todo[from + k];
          if (index !== undefined) outcomes[index] = outcome;
        });
      for (;;) {
        const done = drain(live, seq, take);
        if (done) break;
        if (live.exited || watch.stuck()) {
          const current = Atomics.load(live.control, Control.current);
          const exited = live.exited;
          this.live = undefined;
          void stop(live);
          // What the worker sent before it stopped is kept; only the stuck message fails.
          drain(live, seq, take);
          const culprit = current >= 0 ? todo[current] : undefined;
          if (culprit !== undefined && outcomes[culprit] === undefined) {
            outcomes[culprit] = {
              failed: exited
                ? `codec ${name} stopped its sandbox (the worker thread exited)`
                : `codec ${name} ran longer than ${this.spec.limits.timeoutMs} ms`,
            };
          }
          const decoded = outcomes.filter((o) => o !== undefined).length;
          fruitless = decoded > decodedBefore ? 0 : fruitless + 1;
          decodedBefore = decoded;
          if (fruitless >= MAX_FRUITLESS_RESTARTS) {
            return fail(`codec ${name}: its sandbox stopped answering ${fruitless} times in a row`);
          }
          break;
        }
        yield { control: live.control, expected: seq - 1, ms: watch.nextCheckMs() };
      }
    }
  }
}

/** Starts a worker for the codec and waits until it has loaded it (or failed to). */
function* spawn(
  spec: SandboxSpec,
): Steps<{ live: Live; info: Omit<SandboxInfo, 'startMs'> } | { failed: string }> {
  const { module, layout } = quickjsWasm();
  const control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
  control[Control.done] = -1;
  const { port1, port2 } = new MessageChannel();
  const init: WorkerInit = {
    wasm: module,
    layout: knownLayout ?? layout,
    name: spec.name,
    source: spec.source,
    limits: spec.limits,
    normalize: spec.normalize,
    control: control.buffer as SharedArrayBuffer,
    replies: port2,
  };
  const worker = new Worker(workerEntry(), {
    workerData: init,
    transferList: [port2],
    // Not the process's own flags (a loader, --input-type): the worker is plain JavaScript.
    execArgv: [],
    // Nothing of the pipeline's environment (keys, credentials) reaches the codec's thread.
    env: {},
    // The engine's memory is WebAssembly's, bounded in engine.ts; this bounds the thread's own JavaScript.
    resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 },
    name: `codec ${spec.name}`,
  });
  const live: Live = { worker, replies: port1, control, seq: 0, exited: false };
  // A worker that fails to start exits; the watchdog tells the caller.
  worker.on('error', () => undefined);
  worker.on('exit', () => {
    live.exited = true;
    Atomics.notify(control, Control.done);
  });
  // An idle codec keeps no process alive (a CLI run, a synth); Job.finish holds one while it waits.
  worker.unref();
  port1.unref();
  const watch = new Watchdog(live, spec.limits);
  for (;;) {
    let reply: Reply | undefined;
    for (let m = receiveMessageOnPort(port1); m; m = receiveMessageOnPort(port1)) {
      reply = m.message as Reply;
      if (reply.kind === 'loaded' || reply.kind === 'load-failed') break;
    }
    if (reply?.kind === 'loaded') {
      knownLayout ??= reply.layout;
      const { entry, examples, heapBytes, snapshotBytes, loadMs } = reply;
      return { live, info: { entry, examples, heapBytes, snapshotBytes, loadMs } };
    }
    if (reply?.kind === 'load-failed') {
      void stop(live);
      return { failed: reply.reason };
    }
    if (live.exited || watch.stuck()) {
      const loading =
        Atomics.load(control, Control.started) > 0 &&
        Atomics.load(control, Control.current) === Phase.loading;
      void stop(live);
      return {
        failed: loading
          ? `codec ${spec.name} ran longer than ${spec.limits.loadTimeoutMs} ms while loading`
          : `codec ${spec.name}: the sandbox's worker did not start`,
      };
    }
    yield { control, expected: -1, ms: watch.nextCheckMs() };
  }
}

/** Reads the replies to request `seq`; true once its `done` has arrived. */
function drain(live: Live, seq: number, take: (from: number, outcomes: Outcome[]) => void): boolean {
  for (let m = receiveMessageOnPort(live.replies); m; m = receiveMessageOnPort(live.replies)) {
    const reply = m.message as Reply;
    if (reply.kind === 'outcomes' && reply.seq === seq) take(reply.from, reply.outcomes);
    else if (reply.kind === 'done' && reply.seq === seq) return true;
  }
  return false;
}

async function stop(live: Live): Promise<void> {
  live.replies.close();
  await live.worker.terminate().catch(() => undefined);
}

/**
 * Tells a busy worker from a stuck one: the worker counts each message (or load) it
 * starts; one that has not moved on within the hard limit is stuck.
 */
class Watchdog {
  private seen: number;
  private since = performance.now();
  private readonly hard: { readonly messageMs: number; readonly loadMs: number };

  constructor(
    private readonly live: Live,
    limits: SandboxLimits,
  ) {
    this.seen = Atomics.load(live.control, Control.started);
    this.hard = hardLimits(limits);
  }

  private limitMs(): number {
    if (Atomics.load(this.live.control, Control.started) === 0) return BOOT_MS;
    const current = Atomics.load(this.live.control, Control.current);
    if (current === Phase.setup) return BOOT_MS;
    return current === Phase.loading ? this.hard.loadMs : this.hard.messageMs;
  }

  stuck(): boolean {
    const now = performance.now();
    const started = Atomics.load(this.live.control, Control.started);
    if (started !== this.seen) {
      this.seen = started;
      this.since = now;
      return false;
    }
    return now - this.since > this.limitMs();
  }

  /** How long to wait before looking again: soon enough to stop a stuck worker near its limit. */
  nextCheckMs(): number {
    const left = this.limitMs() - (performance.now() - this.since);
    return Math.max(1, Math.min(left + 1, this.hard.messageMs / 4));
  }
}

const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
      timeout: number,
    ): { async: boolean; value: Promise<string> | string };
  }
).waitAsync;

/**
 * A sequence of steps driven to its end synchronously or asynchronously, or both: a
 * synchronous caller may finish what an asynchronous one started.
 */
class Job<T> {
  private step: IteratorResult<Wait, T>;

  constructor(private readonly steps: Steps<T>) {
    this.step = steps.next();
  }

  finishSync(): T {
    while (!this.step.done) {
      const { control, expected, ms } = this.step.value;
      Atomics.wait(control, Control.done, expected, ms);
      this.step = this.steps.next();
    }
    return this.step.value;
  }

  async finish(): Promise<T> {
    // Atomics.waitAsync holds no handle open: this does, while the call is waited for.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    try {
      while (!this.step.done) {
        const wait = this.step.value;
        const { value } = waitAsync(wait.control, Control.done, wait.expected, wait.ms);
        await value;
        // A synchronous caller may have taken this job further meanwhile.
        if (!this.step.done && this.step.value === wait) this.step = this.steps.next();
      }
      return this.step.value;
    } finally {
      clearInterval(keepAlive);
    }
  }
}
