/**
 * What the codec sandbox's host (the pipeline's thread) and its worker (the thread
 * that runs QuickJS) say to each other. Only strings, numbers and a compiled
 * WebAssembly module cross: never an object the codec made.
 */
import type { MessagePort } from 'node:worker_threads';

/** Limits one codec runs under; every one holds for any code, builtins included. */
export interface SandboxLimits {
  /** Wall-clock time of one message's decode, in ms. */
  readonly timeoutMs: number;
  /** Wall-clock time of loading the codec (its top-level code and examples), in ms. */
  readonly loadTimeoutMs: number;
  /** The QuickJS heap, codec and message together, in bytes. */
  readonly memoryBytes: number;
  /** Largest JSON a decode may return, in bytes. */
  readonly maxOutputBytes: number;
}

/**
 * Where the QuickJS WebAssembly module keeps its state in linear memory, read from the
 * binary (data segments, the stack pointer's initial value) and probed once (the
 * address of the allocator's break), so a snapshot is restored by copying only the
 * bytes that hold state.
 */
export interface MemoryLayout {
  /** Pages (64 KiB) of linear memory the module asks for at least. */
  readonly initialPages: number;
  /** Pages the module's memory may grow to at most. */
  readonly maximumPages: number;
  /** End of the static data and bss: everything below is restored. */
  readonly staticEnd: number;
  /** Top of the C stack, where the heap begins. */
  readonly heapBase: number;
  /** Address of the 32-bit word holding the heap's current end; undefined until probed. */
  readonly breakAddress?: number;
}

/** One codec to load into an engine. */
export interface EngineSpec {
  readonly wasm: WebAssembly.Module;
  readonly layout: MemoryLayout;
  /** The codec's file name, in every reason. */
  readonly name: string;
  readonly source: string;
  readonly limits: SandboxLimits;
  /** Use the codec's `normalizeUplink` on what it decoded. */
  readonly normalize: boolean;
}

/** Given to the worker at start (`workerData`). */
export interface WorkerInit extends EngineSpec {
  /** `Int32Array` over it: see {@link Control}. */
  readonly control: SharedArrayBuffer;
  /** The worker answers on this port; the host reads it synchronously (`receiveMessageOnPort`). */
  readonly replies: MessagePort;
}

/** Slots of the shared control array. */
export const Control = {
  /** Sequence number of the last request the worker finished (0: the load). */
  done: 0,
  /** Counts every load or message the worker has started: the host's watchdog reads it. */
  started: 1,
  /**
   * Index in the current request of the message being decoded; {@link Phase.loading}
   * while the codec's own code loads, {@link Phase.setup} while the engine is made.
   */
  current: 2,
} as const;

/** Values of `current` that are not a message's index. */
export const Phase = {
  /** The codec's top-level code and examples run: under the load limit. */
  loading: -1,
  /** The engine is instantiated (no codec code yet): under the worker's boot bound. */
  setup: -2,
} as const;

/** Length of the control array, in 32-bit slots. */
export const CONTROL_SLOTS = 3;

/** Host to worker: decode these inputs (each a JSON text `{ bytes, fPort, recvTime }`). */
export interface DecodeRequest {
  readonly seq: number;
  readonly inputs: readonly string[];
}

/** The codec's entry point, found at load. */
export type EntryPoint = 'decodeUplink' | 'Decoder' | 'Decode';

/** One message's outcome: the codec's result as JSON text, or why there is none. */
export type Outcome = { readonly json: string } | { readonly failed: string };

/** Worker to host, in the order sent. */
export type Reply =
  | {
      readonly kind: 'loaded';
      readonly entry: EntryPoint;
      /** The codec's `examples`, as JSON text. */
      readonly examples: string;
      readonly layout: MemoryLayout;
      /** Bytes of QuickJS heap in use once the codec is loaded. */
      readonly heapBytes: number;
      /** Bytes restored before each message. */
      readonly snapshotBytes: number;
      readonly loadMs: number;
    }
  | { readonly kind: 'load-failed'; readonly reason: string }
  /** Outcomes of `inputs[from ...]`; sent in pieces, so a worker killed mid-request loses little. */
  | { readonly kind: 'outcomes'; readonly seq: number; readonly from: number; readonly outcomes: Outcome[] }
  | { readonly kind: 'done'; readonly seq: number };
