import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeSigfox,
  GrammarError,
  parseSigfoxGrammar,
} from '../../../lambdas/core/decoders/sigfox-grammar.ts';

const decode = (grammar: string, hex: string) =>
  decodeSigfox(parseSigfoxGrammar(grammar), Buffer.from(hex, 'hex'));

describe('Sigfox custom payload grammar', () => {
  it.each([
    // [grammar, frame (hex), expected values]
    ['int1::uint:8 int2::uint:8', '1234', { int1: 0x12, int2: 0x34 }],
    ['b1::bool:7 b2::bool:6 i1:1:uint:16', 'C01234', { b1: true, b2: true, i1: 0x1234 }],
    // A bool's bit is a bit offset: an omitted index after it stays in the same byte.
    ['b0::bool:0 b7::bool:7 same::uint:8', '01', { b0: true, b7: false, same: 1 }],
    ['b0::bool:0 next:1:uint:8', '0142', { b0: true, next: 0x42 }],
    ['i::uint:16:little-endian', '3412', { i: 0x1234 }],
    ['i::uint:16:big-endian', '1234', { i: 0x1234 }],
    ['i::int:16', 'FF06', { i: -250 }],
    ['i::int:16:little-endian', '06FF', { i: -250 }],
    ['i::int:8', '80', { i: -128 }],
    ['s::char:5 n::uint:8', '48656c6c6f07', { s: 'Hello', n: 7 }],
    ['s::char:4', '4869000000'.slice(0, 8), { s: 'Hi' }],
    ['f::float:32', '41C80000', { f: 25 }],
    ['f::float:32:little-endian', '0000C841', { f: 25 }],
    ['f::float:64', '400921FB54442D18', { f: Math.PI }],
    // Sub-byte fields: the upper nibble, then (explicit index and bit offset) the lower one.
    ['speed::uint:8 direction::uint:4 status:1:uint:4::3', '2A5C', { speed: 42, direction: 5, status: 12 }],
    // Omitted index after a field with a bit offset: the last byte used, not the next one.
    ['hi::uint:4::7 lo::uint:4::3', 'A7', { hi: 0xa, lo: 0x7 }],
    // Without a bit offset the next field moves on a byte (the classic mistake).
    ['hi::uint:4 lo::uint:4', 'A0B0', { hi: 0xa, lo: 0xb }],
    // A bool after a multi-byte field stays in that field's last byte.
    ['n::uint:16 flag::bool:0', '0101', { n: 257, flag: true }],
    // Signed sub-byte value and a field spanning a byte boundary from a bit offset.
    ['t::int:4::3', '0F', { t: -1 }],
    ['x::uint:12::3', '0ABC', { x: 0xabc }],
    ['x:1:uint:3::5 y::uint:3::2', '00FF', { x: 7, y: 7 }],
    ['x::uint:3::2 y::uint:5::7', '2D', { x: 5, y: 5 }],
  ] as const)('%s on %s', (grammar, hex, expected) => {
    expect(decode(grammar, hex)).toEqual({ values: expected, warnings: [] });
  });

  it('returns 64-bit integers beyond 2^53 exactly, as decimal strings, and says so', () => {
    const result = decode('u::uint:64 i::int:64', 'FFFFFFFFFFFFFFFF8000000000000000');
    expect(result.values).toEqual({ u: '18446744073709551615', i: '-9223372036854775808' });
    expect(result.warnings).toEqual([
      'u: 18446744073709551615 does not fit a JSON number exactly; kept as a decimal string',
      'i: -9223372036854775808 does not fit a JSON number exactly; kept as a decimal string',
    ]);
    expect(decode('u::uint:64', '001FFFFFFFFFFFFF').values).toEqual({ u: Number.MAX_SAFE_INTEGER });
  });

  it('applies our scaling extension (factor, then offset) to numbers', () => {
    expect(decode('t::int:16*0.01 h::uint:8*0.5 k::uint:8-40 v::uint:8*2+1', '09927B3205').values).toEqual({
      t: 24.5,
      h: 61.5,
      k: 10,
      v: 11,
    });
  });

  it('refuses frames that are too short, saying so', () => {
    expect(() => decode('a::uint:16 b::uint:8', '0102')).toThrow(
      'frame has 2 bytes; the grammar reads 3 (truncated)',
    );
  });

  it('decodes the leading bytes of a longer frame, as Sigfox does, and warns of the rest', () => {
    expect(decode('a::uint:8', '0102')).toEqual({
      values: { a: 1 },
      warnings: ['frame has 2 bytes; the grammar reads 1: 1 extra byte(s) not decoded (02)'],
    });
  });

  it('warns of extra bytes exactly when the frame is longer than the grammar', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 12 }), (frame) => {
        const { values, warnings } = decodeSigfox(parseSigfoxGrammar('a::uint:8 b::uint:8'), frame);
        expect(values).toEqual({ a: frame[0], b: frame[1] });
        expect(warnings.length).toBe(frame.length > 2 ? 1 : 0);
      }),
    );
  });

  it.each([
    ['', 1, 'at least one field'],
    ['temp', 1, 'name:byteIndex:type'],
    ['temp::integer:16', 7, 'a type: bool, char, uint, int or float'],
    ['temp::uint:65', 12, 'a number of bits from 1 to 64'],
    ['temp::uint:', 12, 'the number of bits, 1 to 64'],
    ['a::uint:8 b:x:uint:8', 13, 'a byte index'],
    ['a::bool:8', 9, 'a bit from 0 to 7'],
    ['a::float:16', 10, '32 or 64'],
    ['a::uint:8:middle-endian', 11, '"little-endian", "big-endian" or nothing'],
    ['a::uint:8::9', 12, 'a bit offset from 0 to 7'],
    ['a::uint:12:little-endian', 12, 'whole bytes for little-endian'],
    ['a::uint:8 a::uint:8', 11, 'a name not used by an earlier field'],
    ['a::bool:1*2', 10, 'no scaling on a bool field'],
    ['a::char:2:3', 11, 'at most 1 parameters for char'],
  ])('rejects %j at column %d, expecting %s', (grammar, column, expected) => {
    try {
      parseSigfoxGrammar(grammar);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(GrammarError);
      expect((error as GrammarError).message).toContain(`column ${column}:`);
      expect((error as GrammarError).message).toContain(expected);
    }
  });

  it('decodes any frame of the right length with any valid grammar, never throwing, widths respected (property)', () => {
    const field = fc.oneof(
      fc.record({ type: fc.constant('bool'), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ type: fc.constant('char'), length: fc.integer({ min: 1, max: 4 }) }),
      fc.record({
        type: fc.constantFrom('uint', 'int'),
        length: fc.integer({ min: 1, max: 64 }),
        offset: fc.option(fc.integer({ min: 0, max: 7 })),
      }),
      fc.record({ type: fc.constant('float'), length: fc.constantFrom(32, 64), little: fc.boolean() }),
    );
    fc.assert(
      fc.property(
        fc.array(field, { minLength: 1, maxLength: 8 }),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (fields, bytes) => {
          const grammar = fields
            .map((f, i) => {
              const name = `f${i}`;
              if (f.type === 'bool') return `${name}::bool:${f.bit}`;
              if (f.type === 'char') return `${name}::char:${f.length}`;
              if (f.type === 'float') return `${name}::float:${f.length}${f.little ? ':little-endian' : ''}`;
              return `${name}::${f.type}:${f.length}${f.offset === null ? '' : `::${f.offset}`}`;
            })
            .join(' ');
          const parsed = parseSigfoxGrammar(grammar);
          const { values } = decodeSigfox(parsed, bytes.subarray(0, parsed.bytes));
          fields.forEach((f, i) => {
            const value = values[`f${i}`];
            if (f.type === 'uint' && typeof value === 'number') expect(value).toBeLessThan(2 ** f.length);
            if (f.type === 'uint' && typeof value === 'number') expect(value).toBeGreaterThanOrEqual(0);
            if (f.type === 'int' && typeof value === 'number') {
              expect(value).toBeGreaterThanOrEqual(-(2 ** (f.length - 1)));
              expect(value).toBeLessThan(2 ** (f.length - 1));
            }
            if (f.type === 'bool') expect(typeof value).toBe('boolean');
            if (typeof value === 'string' && f.type !== 'char') expect(BigInt(value).toString()).toBe(value);
          });
        },
      ),
      { numRuns: 500 },
    );
  });
});
