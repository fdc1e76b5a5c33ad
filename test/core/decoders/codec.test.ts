import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Codec,
  CodecError,
  type CodecOptions,
  compileCodec,
} from '../../../lambdas/core/decoders/codec.ts';

// Every codec runs in a worker thread of its own: close them all at the end.
const opened: Codec[] = [];
afterAll(() => Promise.all(opened.map((codec) => codec.close())));

function load(source: string, name = 'test.js', options?: CodecOptions): Codec {
  const codec = compileCodec(source, name, options);
  opened.push(codec);
  return codec;
}

const RECV = new Date('2026-11-25T06:00:00Z');
const input = (bytes: number[], fPort?: number) => ({
  bytes: Uint8Array.from(bytes),
  fPort,
  recvTime: RECV,
});
const run = (source: string, bytes: number[] = [1, 2], fPort = 1) =>
  load(source).decodeUplink(input(bytes, fPort));

describe('LoRaWAN codec sandbox (TS013 decodeUplink)', () => {
  it('runs a plain ES5 codec with top-level helpers, recvTime a Date', () => {
    const source = `
      function u16(b, i) { return (b[i] << 8) | b[i + 1]; }
      function decodeUplink(input) {
        return { data: { value: u16(input.bytes, 0), port: input.fPort, year: input.recvTime.getUTCFullYear(),
          isDate: input.recvTime instanceof Date, iso: input.recvTime.toISOString() } };
      }`;
    expect(run(source, [1, 2], 3)).toEqual({
      data: { value: 258, port: 3, year: 2026, isDate: true, iso: '2026-11-25T06:00:00.000Z' },
      warnings: [],
      errors: [],
    });
  });

  it('runs the ES2020 that codecs use: let/const, arrows, templates, destructuring, typed arrays, fromCharCode.apply', () => {
    const source = `
      const toText = (bytes) => String.fromCharCode.apply(null, bytes);
      function decodeUplink({ bytes, fPort }) {
        const [first, ...rest] = bytes;
        let view = new DataView(new Uint8Array(bytes).buffer);
        const big = 2n ** 40n;
        return { data: { first, rest: rest.length, text: toText(bytes.slice(1)), label: \`port \${fPort ?? 0}\`,
          u16: view.getUint16(0), big: Number(big), has: [1, 2].includes(2), obj: { ...{ a: 1 } }.a } };
      }`;
    expect(run(source, [0x01, 0x48, 0x69], 7).data).toEqual({
      first: 1,
      rest: 2,
      text: 'Hi',
      label: 'port 7',
      u16: 0x0148,
      big: 2 ** 40,
      has: true,
      obj: 1,
    });
  });

  it('takes the older Decoder(bytes, port) entry point, as The Things Stack falls back to', () => {
    expect(run('function Decoder(bytes, port) { return { b: bytes[0], port: port }; }', [9], 4)).toEqual({
      data: { b: 9, port: 4 },
      warnings: [],
      errors: [],
    });
  });

  it("takes ChirpStack v3's Decode(fPort, bytes, variables)", () => {
    expect(
      run(
        'function Decode(fPort, bytes, variables) { return { b: bytes[1], port: fPort, v: typeof variables }; }',
        [1, 5],
      ).data,
    ).toEqual({ b: 5, port: 1, v: 'object' });
  });

  it('hands a codec an undefined fPort when the network gave none', () => {
    const codec = load('function decodeUplink(i) { return { data: { port: String(i.fPort) } }; }');
    expect(codec.decodeUplink(input([1], undefined)).data).toEqual({ port: 'undefined' });
  });

  it('takes { data: {} } as a valid decode with no readings', () => {
    expect(run('function decodeUplink() { return { data: {} }; }')).toEqual({
      data: {},
      warnings: [],
      errors: [],
    });
  });

  it('uses normalizeUplink only when asked to', () => {
    const source = `
      function decodeUplink(i) { return { data: { t: i.bytes[0] }, warnings: ['raw'] }; }
      function normalizeUplink(input) { return { data: { air: { temperature: input.data.t / 2 } }, warnings: ['normalized'] }; }`;
    expect(load(source).decodeUplink(input([40])).data).toEqual({ t: 40 });
    expect(load(source, 'n.js', { normalize: true }).decodeUplink(input([40]))).toEqual({
      data: { air: { temperature: 20 } },
      warnings: ['raw', 'normalized'],
      errors: [],
    });
  });

  it("hands on the codec's errors and warnings in its own words", () => {
    expect(
      run(
        'function decodeUplink() { return { errors: ["battery frame too short"], warnings: ["old firmware"] }; }',
      ),
    ).toEqual({
      data: undefined,
      warnings: ['old firmware'],
      errors: ['battery frame too short'],
    });
  });

  it.each([
    [
      'a codec that throws',
      'function decodeUplink() { throw new Error("index out of range"); }',
      'codec test.js threw: index out of range',
    ],
    ['a codec that throws a non-error', 'function decodeUplink() { throw 42; }', 'codec test.js threw: 42'],
    ['an endless loop', 'function decodeUplink() { for (;;) {} }', 'codec test.js ran longer than 50 ms'],
    [
      'a memory bomb',
      'function decodeUplink() { return { data: { n: new Array(268435456).fill(1.5).length } }; }',
      'codec test.js ran out of memory (16 MB)',
    ],
    [
      'endless recursion',
      'function f(n) { return f(n + 1) + 1; } function decodeUplink() { return { data: { n: f(0) } }; }',
      'codec test.js ran out of stack (recursion too deep)',
    ],
    ['NaN', 'function decodeUplink() { return { data: { t: 0 / 0 } }; }', 'returned NaN at "t"'],
    ['Infinity', 'function decodeUplink() { return { data: { t: 1 / 0 } }; }', 'returned Infinity at "t"'],
    ['a BigInt', 'function decodeUplink() { return { data: { t: 1n } }; }', 'returned a BigInt at "t"'],
    [
      'a non-object',
      'function decodeUplink() { return 42; }',
      'returned a number; decodeUplink must return { data, warnings, errors }',
    ],
    [
      'no data',
      'function decodeUplink() { return {}; }',
      'returned data nothing; expected an object of readings',
    ],
    [
      'errors that are not a list',
      'function decodeUplink() { return { errors: "bad" }; }',
      '"errors" is a string, not an array of strings',
    ],
    [
      'a huge result',
      'function decodeUplink() { var s = "x"; while (s.length < 100000) s += s; return { data: { s: s } }; }',
      'bytes of JSON; the limit is 65536',
    ],
  ])('quarantines %s with a reason', (_, source, reason) => {
    const result = run(source);
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toContain(reason);
  });

  it('decodes a batch asynchronously with the same results as one by one', async () => {
    const codec = load(readFileSync('codecs/lht65.js', 'utf8'), 'lht65.js');
    const inputs = codec.examples.map((e) => ({
      bytes: Uint8Array.from(e.input.bytes),
      fPort: e.input.fPort,
      recvTime: RECV,
    }));
    expect(await codec.decodeUplinks(inputs)).toEqual(inputs.map((i) => codec.decodeUplink(i)));
  });

  it('fails only the payload that runs too long, whether JavaScript or a builtin, and the batch goes on', async () => {
    const codec = load(
      `function decodeUplink(i) {
        if (i.bytes[0] === 9) for (;;) {}
        if (i.bytes[0] === 8) { var a = new Array(1e6).fill(0); for (var k = 0; k < 1e4; k++) a.indexOf(1); }
        return { data: { b: i.bytes[0] } };
      }`,
      'slow.js',
    );
    const results = await codec.decodeUplinks([
      input([1]),
      input([9]),
      input([3]),
      input([8]),
      input([4]),
      input(Array(2000).fill(0)),
    ]);
    expect(results.map((r) => r.errors[0] ?? r.data)).toEqual([
      { b: 1 },
      'codec slow.js ran longer than 50 ms',
      { b: 3 },
      'codec slow.js ran longer than 50 ms',
      { b: 4 },
      'payload is 2000 bytes; codecs take at most 1024',
    ]);
    // The worker stopped for the builtin was replaced: the codec still answers.
    expect(codec.decodeUplink(input([5])).data).toEqual({ b: 5 });
  });

  it('keeps its limits configurable: more time, less memory', () => {
    const slow =
      'function decodeUplink() { var t = Date.now(); while (Date.now() - t < 80) {} return { data: { ok: 1 } }; }';
    expect(load(slow, 'slow.js', { limits: { timeoutMs: 500 } }).decodeUplink(input([1])).data).toEqual({
      ok: 1,
    });
    const hungry = 'function decodeUplink() { return { data: { n: new Uint8Array(6e6).length } }; }';
    expect(load(hungry, 'hungry.js').decodeUplink(input([1])).data).toEqual({ n: 6e6 });
    expect(
      load(hungry, 'small.js', { limits: { memoryBytes: 4 * 1024 * 1024 } }).decodeUplink(input([1])).errors,
    ).toEqual(['codec small.js ran out of memory (4 MB)']);
  });

  it('refuses payloads above the input limit before running the codec', () => {
    const result = run('function decodeUplink() { return { data: { ok: 1 } }; }', Array(2000).fill(0));
    expect(result.errors[0]).toContain('payload is 2000 bytes; codecs take at most 1024');
  });

  it('lets no message see what an earlier one left, in a batch or one by one', async () => {
    const codec = load(
      'var seen = []; function decodeUplink(i) { seen.push(i.bytes[0]); globalThis.leak = i.bytes[0]; return { data: { seen: seen.join(","), leak: String(globalThis.previous) } }; } globalThis.previous = "none";',
    );
    const results = await codec.decodeUplinks([input([1]), input([2]), input([3])]);
    expect(results.map((r) => r.data)).toEqual([
      { seen: '1', leak: 'none' },
      { seen: '2', leak: 'none' },
      { seen: '3', leak: 'none' },
    ]);
    expect(codec.decodeUplink(input([4])).data).toEqual({ seen: '4', leak: 'none' });
  });

  it('reports what loading cost', () => {
    const { info } = load(readFileSync('codecs/lht65.js', 'utf8'), 'lht65.js');
    expect(info.entry).toBe('decodeUplink');
    expect(info.heapBytes).toBeGreaterThan(0);
    expect(info.heapBytes).toBeLessThan(16 * 1024 * 1024);
    expect(info.snapshotBytes).toBeGreaterThan(info.heapBytes);
  });

  it.each([
    ['does not compile', 'function decodeUplink( {', 'codec broken.js does not compile: '],
    ['defines no entry point', 'function decode() {}', 'codec broken.js defines no decodeUplink function'],
    ['throws at top level', 'throw new TypeError("no")', 'codec broken.js failed while loading: threw: no'],
    ['loops at top level', 'while (true) {}', 'codec broken.js ran longer than 1000 ms while loading'],
    [
      'runs out of memory at top level',
      'var all = new Array(268435456).fill(0);',
      'codec broken.js ran out of memory (16 MB) while loading',
    ],
    [
      'has examples that are not a list',
      'function decodeUplink() {} var examples = 3;',
      '"examples" must be an array',
    ],
  ])('fails to load, saying so, a codec that %s', (_, source, reason) => {
    expect(() => load(source, 'broken.js')).toThrow(CodecError);
    expect(() => load(source, 'broken.js')).toThrow(reason);
  });
});

describe('codecs shipped in codecs/', () => {
  const dir = join(import.meta.dirname, '../../../codecs');
  const files = readdirSync(dir).filter((f) => f.endsWith('.js'));

  it('has at least one codec with examples', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    const codec = load(readFileSync(join(dir, file), 'utf8'), file);
    it(`${file} carries example vectors`, () => {
      expect(codec.examples.length).toBeGreaterThan(0);
    });
    codec.examples.forEach((example, i) => {
      it(`${file} example ${i}: ${example.description ?? ''}`, () => {
        const result = codec.decodeUplink({
          bytes: Uint8Array.from(example.input.bytes),
          fPort: example.input.fPort,
          recvTime: new Date(example.input.recvTime ?? '2026-01-01T00:00:00Z'),
        });
        if (example.output.errors?.length) expect(result.errors).toEqual(example.output.errors);
        else {
          expect(result.errors).toEqual([]);
          expect(result.data).toEqual(example.output.data);
          expect(result.warnings).toEqual(example.output.warnings ?? []);
        }
      });
    });
  }
});
