import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CODEC_LIMITS } from '../../../lambdas/core/decoders/codec.ts';
import { Engine } from '../../../lambdas/core/decoders/sandbox/engine.ts';
import { quickjsWasm, readLayout, wasmPath } from '../../../lambdas/core/decoders/sandbox/wasm.ts';

const { module, layout } = quickjsWasm();
const load = (source: string) =>
  Engine.load({
    wasm: module,
    layout,
    name: 'probe.js',
    source,
    limits: DEFAULT_CODEC_LIMITS,
    normalize: false,
  });
const message = (bytes: number[]) => JSON.stringify({ bytes, fPort: 2, recvTime: '2026-11-25T06:00:00Z' });

describe('QuickJS engine memory', () => {
  it('reads the layout emscripten gave the module: data, then a stack, then the heap', () => {
    const read = readLayout(readFileSync(wasmPath()));
    expect(read.initialPages).toBeGreaterThanOrEqual(1);
    expect(read.staticEnd).toBeLessThan(read.heapBase);
    expect(read.heapBase).toBeLessThan(read.initialPages * 65_536);
    expect(() => readLayout(Uint8Array.from([0, 97, 115, 109, 1, 0, 0, 0]))).toThrow(/memory layout/);
  });

  it('is, after a restore, byte for byte what it was once the codec had loaded, whatever the message did', async () => {
    // Arrange: a codec whose messages leave state everywhere they can: globals, prototypes,
    // closures, a growing heap, deep recursion, a thrown error, a pending job.
    const engine = await load(`
      var kept = [];
      function deep(n) { return n === 0 ? [] : [deep(n - 1)]; }
      function decodeUplink(input) {
        kept.push(new Array(50000).fill(input.bytes[0]));
        globalThis['g' + input.bytes[0]] = input.bytes;
        Object.prototype.polluted = input.bytes[0];
        Promise.resolve().then(function () { kept.push(1); });
        deep(200);
        if (input.bytes[0] === 3) throw new Error('three');
        return { data: { n: kept.length } };
      }`);
    const loaded = engine.memoryBytes.slice();
    for (const bytes of [[1], [2], [3], Array(200).fill(7)]) {
      // Act
      const outcome = engine.decode(message(bytes));
      expect(engine.memoryBytes.length).toBeGreaterThanOrEqual(loaded.length);
      engine.restore();
      // Assert: every message met the loaded state, and left nothing of itself.
      if (bytes[0] === 3) expect(outcome).toEqual({ failed: 'codec probe.js threw: three' });
      else expect(outcome).toEqual({ json: '{"result":{"data":{"n":1}}}' });
      const now = engine.memoryBytes;
      let differing = 0;
      for (let i = 0; i < loaded.length; i++) if (now[i] !== loaded[i]) differing++;
      for (let i = loaded.length; i < now.length; i++) if (now[i] !== 0) differing++;
      expect(differing).toBe(0);
    }
  });

  it('restores a few hundred KB per message for a device-repository-sized codec', async () => {
    const engine = await load(readFileSync('codecs/lht65.js', 'utf8'));
    expect(engine.heapBytes).toBeLessThan(1024 * 1024);
    expect(engine.snapshotBytes).toBeLessThan(2 * 1024 * 1024);
    expect(
      engine.decode(message([0xcb, 0xf6, 0x09, 0x92, 0x02, 0x65, 0x01, 0xfe, 0xbf, 0x7f, 0xff])),
    ).toEqual({
      json: '{"result":{"data":{"battery":3.062,"temperature":24.5,"humidity":61.3,"batteryStatus":"good","externalTemperature":-3.21},"warnings":[]}}',
    });
  });
});
