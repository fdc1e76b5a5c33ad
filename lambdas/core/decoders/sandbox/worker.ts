/**
 * The codec sandbox's worker thread: loads one codec into a QuickJS engine, then
 * decodes what the host sends, one message at a time, each from the loaded state.
 * Progress is published in the shared control array so the host's watchdog can tell a
 * busy engine from a stuck one, and outcomes are sent in pieces so a worker the host
 * has to stop loses only the message it was stuck on.
 */
import './silence.ts';
import { parentPort, workerData } from 'node:worker_threads';
import { Engine, LoadError } from './engine.ts';
import { Control, type DecodeRequest, type Outcome, Phase, type Reply, type WorkerInit } from './protocol.ts';

/** Outcomes are sent at least this often, in ms. */
const FLUSH_MS = 10;

const init = workerData as WorkerInit;
const control = new Int32Array(init.control);
const reply = (message: Reply) => init.replies.postMessage(message);

/** Marks the start of a load phase ({@link Phase}) or of message `current` of the request. */
function starting(current: number): void {
  Atomics.store(control, Control.current, current);
  Atomics.add(control, Control.started, 1);
}

function finished(seq: number): void {
  Atomics.store(control, Control.done, seq);
  Atomics.notify(control, Control.done);
}

async function load(): Promise<Engine> {
  starting(Phase.setup);
  // The load limit covers the codec's code only: making the engine is ours to pay for.
  return Engine.load(init, () => starting(Phase.loading));
}

async function decode(engine: Engine, request: DecodeRequest): Promise<Engine> {
  let current = engine;
  let pending: Outcome[] = [];
  let from = 0;
  let flushed = performance.now();
  const flush = (next: number) => {
    if (pending.length > 0) reply({ kind: 'outcomes', seq: request.seq, from, outcomes: pending });
    pending = [];
    from = next;
    flushed = performance.now();
  };
  for (const [index, input] of request.inputs.entries()) {
    if (!current.usable) {
      try {
        current = await load();
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        while (pending.length + from < request.inputs.length) pending.push({ failed: reason });
        break;
      }
    }
    starting(index);
    pending.push(current.decode(input));
    if (performance.now() - flushed >= FLUSH_MS) flush(index + 1);
  }
  flush(request.inputs.length);
  reply({ kind: 'done', seq: request.seq });
  finished(request.seq);
  return current;
}

try {
  let engine = await load();
  reply({
    kind: 'loaded',
    entry: engine.entry,
    examples: engine.examples,
    layout: engine.effectiveLayout,
    heapBytes: engine.heapBytes,
    snapshotBytes: engine.snapshotBytes,
    loadMs: engine.loadMs,
  });
  finished(0);
  // One request at a time, in order: the host sends the next only after this one's `done`.
  let queue = Promise.resolve();
  parentPort?.on('message', (request: DecodeRequest) => {
    queue = queue.then(async () => {
      engine = await decode(engine, request);
    });
  });
} catch (error) {
  reply({
    kind: 'load-failed',
    reason:
      error instanceof LoadError
        ? error.message
        : `codec ${init.name}: the sandbox could not start: ${(error as Error).message}`,
  });
  finished(0);
}
