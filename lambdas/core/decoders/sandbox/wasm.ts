/**
 * The QuickJS WebAssembly module, compiled once per process and handed to every
 * sandbox worker (a compiled `WebAssembly.Module` crosses threads without being
 * compiled again), and the layout of its linear memory, read from the binary.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { MemoryLayout } from './protocol.ts';

/** File names of the sandbox next to a Lambda bundle's `index.mjs` (see `lib/constructs/ingest.ts`). */
export const SANDBOX_FILES = { worker: 'codec-worker.mjs', wasm: 'quickjs.wasm' } as const;

/** The bss after the static data is small (3 KB in this build); restore this much past the data. */
const BSS_MARGIN = 64 * 1024;

/** Running from TypeScript sources (tsx, vitest) rather than from a bundle. */
export const FROM_SOURCES = import.meta.url.endsWith('.ts');

/** Where the QuickJS WebAssembly binary is: in node_modules, or next to the bundle. */
export function wasmPath(): string {
  return FROM_SOURCES
    ? createRequire(import.meta.url).resolve('@jitl/quickjs-wasmfile-release-sync/wasm')
    : fileURLToPath(new URL(`./${SANDBOX_FILES.wasm}`, import.meta.url));
}

let compiled: { readonly module: WebAssembly.Module; readonly layout: MemoryLayout } | undefined;

/** The compiled module and its memory layout; compiled on the first call only. */
export function quickjsWasm(): { readonly module: WebAssembly.Module; readonly layout: MemoryLayout } {
  if (!compiled) {
    const bytes = readFileSync(wasmPath());
    compiled = { module: new WebAssembly.Module(bytes), layout: readLayout(bytes) };
  }
  return compiled;
}

/**
 * Reads what the memory snapshot needs from the binary: the imported memory's minimum
 * size, the end of the static data (the highest active data segment), and the stack
 * pointer's initial value, the top of emscripten's stack, where its heap starts.
 *
 * @throws Error when the binary is not laid out as emscripten lays out QuickJS
 */
export function readLayout(bytes: Uint8Array): MemoryLayout {
  let offset = 8; // magic + version
  const leb = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = bytes[offset++] ?? 0;
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (byte < 0x80) return result;
    }
  };
  const sleb = (): number => {
    let result = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[offset++] ?? 0;
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte >= 0x80);
    return byte & 0x40 ? result - 2 ** shift : result;
  };
  const skipName = () => {
    const length = leb();
    offset += length;
  };
  let initialPages: number | undefined;
  let maximumPages = 65_536;
  let stackTop: number | undefined;
  let dataEnd = 0;
  while (offset < bytes.length) {
    const id = bytes[offset++];
    const size = leb();
    const end = offset + size;
    if (id === 2) {
      // Imports: find the memory's limits.
      for (let count = leb(); count > 0; count--) {
        skipName();
        skipName();
        const kind = bytes[offset++];
        if (kind === 0) leb();
        else if (kind === 1) {
          offset++;
          const flags = leb();
          leb();
          if (flags & 1) leb();
        } else if (kind === 2) {
          const flags = leb();
          initialPages = leb();
          if (flags & 1) maximumPages = leb();
        } else if (kind === 3) offset += 2;
        else throw new Error(`QuickJS wasm: unknown import kind ${kind}`);
      }
    } else if (id === 6 && stackTop === undefined) {
      // Globals: the first, a mutable i32 set by i32.const, is emscripten's stack pointer.
      leb();
      const type = bytes[offset++];
      const mutable = bytes[offset++];
      const opcode = bytes[offset++];
      if (type === 0x7f && mutable === 1 && opcode === 0x41) stackTop = sleb();
    } else if (id === 11) {
      for (let count = leb(); count > 0; count--) {
        const flags = leb();
        if (flags !== 0 || bytes[offset++] !== 0x41) break; // only active segments at constant offsets
        const at = sleb();
        offset++; // end
        const length = leb();
        dataEnd = Math.max(dataEnd, at + length);
        offset += length;
      }
    }
    offset = end;
  }
  if (initialPages === undefined || stackTop === undefined || dataEnd === 0 || stackTop <= dataEnd) {
    throw new Error('QuickJS wasm: not the emscripten memory layout the codec sandbox expects');
  }
  return {
    initialPages,
    maximumPages,
    staticEnd: Math.min(stackTop, dataEnd + BSS_MARGIN),
    heapBase: stackTop,
  };
}
