/**
 * The part of the WebAssembly JavaScript API the codec sandbox uses. TypeScript
 * declares it only in the DOM library, which a Node project does not load.
 */
declare namespace WebAssembly {
  // biome-ignore lint/suspicious/noEmptyInterface: an opaque compiled module, as the DOM library declares it
  interface Module {}
  const Module: {
    prototype: Module;
    new (bytes: Uint8Array): Module;
  };
  interface Memory {
    readonly buffer: ArrayBuffer;
    grow(delta: number): number;
  }
  const Memory: {
    prototype: Memory;
    new (descriptor: { initial: number; maximum?: number }): Memory;
  };
}
