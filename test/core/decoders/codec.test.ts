import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CodecError, compileCodec } from '../../../lambdas/core/decoders/codec.ts';

const input = (bytes: number[], fPort = 1) => ({
  bytes: Uint8Array.from(bytes),
  fPort,
  recvTime: new Date('2026-11-25T06:00:00Z'),
});
const run = (source: string, bytes: number[] = [1, 2], fPort = 1) =>
  compileCodec(source, 'test.js').decodeUplink(input(bytes, fPort));

describe('LoRaWAN codec sandbox (TS013 decodeUplink)', () => {
  it('runs a plain ES5 codec with top-level helpers', () => {
    const source = `
      function u16(b, i) { return (b[i] << 8) | b[i + 1]; }
      function decodeUplink(input) {
        return { data: { value: u16(input.bytes, 0), port: input.fPort, year: input.recvTime.getUTCFullYear() } };
      }`;
    expect(run(source, [1, 2], 3)).toEqual({
      data: { value: 258, port: 3, year: 2026 },
      warnings: [],
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
    ['NaN', 'function decodeUplink() { return { data: { t: 0 / 0 } }; }', 'returned NaN at "t"'],
    ['Infinity', 'function decodeUplink() { return { data: { t: 1 / 0 } }; }', 'returned Infinity at "t"'],
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
      'no decodeUplink at all',
      'function decode() { return {}; }',
      'the codec defines no decodeUplink function',
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

  it('decodes a batch in one sandbox entry with the same results as one by one', () => {
    const codec = compileCodec(readFileSync('codecs/lht65.js', 'utf8'), 'lht65.js');
    const inputs = codec.examples.map((e) => ({
      bytes: Uint8Array.from(e.input.bytes),
      fPort: e.input.fPort,
      recvTime: new Date('2026-11-25T06:00:00Z'),
    }));
    expect(codec.decodeUplinks(inputs)).toEqual(inputs.map((i) => codec.decodeUplink(i)));
  });

  it('fails only the payload that runs too long when a batch overruns its time limit', () => {
    const codec = compileCodec(
      'function decodeUplink(i) { if (i.bytes[0] === 9) for (;;) {} return { data: { b: i.bytes[0] } }; }',
      'slow.js',
    );
    const results = codec.decodeUplinks([input([1]), input([9]), input([3]), input(Array(2000).fill(0))]);
    expect(results.map((r) => r.errors[0] ?? r.data)).toEqual([
      { b: 1 },
      'codec slow.js ran longer than 50 ms',
      { b: 3 },
      'payload is 2000 bytes; codecs take at most 1024',
    ]);
  });

  it('refuses payloads above the input limit before running the codec', () => {
    const result = run('function decodeUplink() { return { data: { ok: 1 } }; }', Array(2000).fill(0));
    expect(result.errors[0]).toContain('payload is 2000 bytes; codecs take at most 1024');
  });

  it.each([
    [
      'this.constructor.constructor',
      'return { data: { p: typeof this.constructor.constructor("return process")() } };',
    ],
    [
      "the input's constructor chain",
      'return { data: { p: typeof input.bytes.constructor.constructor("return process")() } };',
    ],
    ['Function', 'return { data: { p: typeof Function("return process")() } };'],
    ['eval', 'return { data: { p: eval("typeof process") } };'],
    ['process', 'return { data: { p: typeof process.env } };'],
    ['require', 'return { data: { p: typeof require("fs") } };'],
  ])('gives no way out through %s', (_, body) => {
    const result = run(`function decodeUplink(input) { ${body} }`);
    // Either the attempt throws inside the sandbox, or it finds nothing of the host.
    if (result.errors.length === 0) expect(result.data).toEqual({ p: 'undefined' });
    else expect(result.errors[0]).toMatch(/threw/);
  });

  it('has no host globals in the context', () => {
    const source = `function decodeUplink() { return { data: {
      process: typeof process, require: typeof require, setTimeout: typeof setTimeout, fetch: typeof fetch, Buffer: typeof Buffer } }; }`;
    expect(run(source).data).toEqual({
      process: 'undefined',
      require: 'undefined',
      setTimeout: 'undefined',
      fetch: 'undefined',
      Buffer: 'undefined',
    });
  });

  it('keeps working after a codec tampered with JSON or its own globals', () => {
    const codec = compileCodec(
      'JSON.stringify = function () { return "{}"; }; function decodeUplink(i) { return { data: { b: i.bytes[0] } }; }',
      'tamper.js',
    );
    expect(codec.decodeUplink(input([7])).data).toEqual({ b: 7 });
  });

  it('fails at compile time, saying so, for a codec that does not parse or loops while loading', () => {
    expect(() => compileCodec('function decodeUplink( {', 'broken.js')).toThrow(CodecError);
    expect(() => compileCodec('function decodeUplink( {', 'broken.js')).toThrow(
      'codec broken.js does not compile',
    );
    expect(() => compileCodec('while (true) {}', 'loop.js')).toThrow('codec loop.js failed while loading');
  });
});

describe('codecs shipped in codecs/', () => {
  const dir = join(import.meta.dirname, '../../../codecs');
  const files = readdirSync(dir).filter((f) => f.endsWith('.js'));

  it('has at least one codec with examples', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    const codec = compileCodec(readFileSync(join(dir, file), 'utf8'), file);
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
