/**
 * The Sigfox custom payload configuration ("custom grammar"), as the Sigfox backend
 * documents it: space-separated fields `name:byteIndex:type[:length][:endianness][:bitOffset]`.
 *
 * - `bool:<bit>`: one bit (7 = most significant) of the byte.
 * - `char:<bytes>`: that many bytes as a string (UTF-8; trailing NUL padding removed).
 * - `uint:<1-64>` / `int:<1-64>`: unsigned / two's complement signed integers of that
 *   many bits, big-endian unless `little-endian`; with a bit offset the value starts at
 *   that bit of the byte (7 = most significant) and runs towards bit 0 and on into the
 *   next bytes. Without one it starts at bit 7.
 * - `float:32|64`: IEEE 754, big-endian unless `little-endian`.
 * - An omitted byte index means: 0 for the first field; the current byte for a bool;
 *   the last byte used when the previous field had a bit offset; else the next byte.
 *
 * Integers beyond 2^53 - 1 (possible from 54 bits up) are returned exactly, as a decimal
 * string, and the result says so in `warnings`.
 *
 * Our extension, not Sigfox's: a field may end in `*<factor>` and/or `+<offset>` /
 * `-<offset>` (`temp::int:16*0.01-40`), applied to numbers after decoding.
 *
 * Pure: no AWS import. A grammar is parsed once (at synth, at start, at cold start).
 */
import { setOwn } from '../ids.ts';
import { MAX_STRING_BYTES } from '../readings/limits.ts';

export interface SigfoxField {
  readonly name: string;
  /** Resolved: the byte the field starts in. */
  readonly byte: number;
  readonly type: 'bool' | 'char' | 'uint' | 'int' | 'float';
  /** Bits for bool/uint/int/float; bytes for char. */
  readonly length: number;
  readonly littleEndian: boolean;
  /** Bit (7..0) the value starts at, for bool, uint and int. */
  readonly bit: number;
  /** Bits from the start of the frame to the field's first bit. */
  readonly startBit: number;
  readonly scale?: { readonly factor: number; readonly offset: number; readonly rounding: number };
}

export interface SigfoxGrammar {
  readonly source: string;
  readonly fields: readonly SigfoxField[];
  /** Bytes the grammar reads: a shorter frame is refused; bytes past them are a warning. */
  readonly bytes: number;
}

/** A grammar that cannot be parsed: where, what was found, and what was expected. */
export class GrammarError extends Error {
  constructor(
    readonly position: number,
    found: string,
    expected: string,
  ) {
    super(`Sigfox grammar, column ${position + 1}: found "${found}", expected ${expected}`);
    this.name = 'GrammarError';
  }
}

/** A frame the grammar cannot decode (too short). */
export class FrameError extends Error {}

const NAME = /^[A-Za-z0-9#_-]+$/;
const NUMBER = '[0-9]+(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?';
const SCALE = new RegExp(`(?:\\*(-?${NUMBER}))?(?:([-+])(${NUMBER}))?$`);

export function parseSigfoxGrammar(source: string): SigfoxGrammar {
  const fields: SigfoxField[] = [];
  const names = new Set<string>();
  let lastByte = -1; // last byte the previous field used
  let previousHadBitOffset = false;
  let end = 0; // bytes the grammar covers
  const tokens = [...source.matchAll(/\S+/g)];
  if (tokens.length === 0) throw new GrammarError(0, source, 'at least one field such as temp::int:16');
  for (const token of tokens) {
    const at = token.index ?? 0;
    const text = token[0];
    const scaleMatch = SCALE.exec(text);
    const scaleText = scaleMatch?.[0] ?? '';
    const definition = scaleText ? text.slice(0, text.length - scaleText.length) : text;
    const parts = definition.split(':');
    const column = (i: number) => at + parts.slice(0, i).reduce((n, p) => n + p.length + 1, 0);
    const [name = '', index = '', type = '', ...params] = parts;
    if (!NAME.test(name)) throw new GrammarError(at, name, 'a field name of letters, digits, #, _ or -');
    if (names.has(name)) throw new GrammarError(at, name, 'a name not used by an earlier field');
    if (parts.length < 3) throw new GrammarError(at, text, 'name:byteIndex:type, e.g. temp::int:16');
    if (index !== '' && !/^\d+$/.test(index))
      throw new GrammarError(column(1), index, 'a byte index (0, 1, ...) or nothing');
    const explicit = index === '' ? undefined : Number(index);
    const param = (i: number, what: string) => {
      const value = params[i];
      if (value === undefined || value === '') throw new GrammarError(column(3 + i), value ?? '', what);
      return value;
    };
    const endianness = (i: number) => {
      const value = params[i] ?? '';
      if (value === '' || value === 'big-endian') return false;
      if (value === 'little-endian') return true;
      throw new GrammarError(column(3 + i), value, '"little-endian", "big-endian" or nothing');
    };
    const bitOffset = (i: number) => {
      const value = params[i];
      if (value === undefined || value === '') return undefined;
      if (!/^[0-7]$/.test(value)) throw new GrammarError(column(3 + i), value, 'a bit offset from 0 to 7');
      return Number(value);
    };
    const tooMany = (count: number) => {
      if (params.length > count)
        throw new GrammarError(
          column(3 + count),
          params[count] ?? '',
          `at most ${count} parameters for ${type}`,
        );
    };

    let length: number;
    let littleEndian = false;
    let bit = 7;
    let hasBitOffset = false;
    switch (type) {
      case 'bool': {
        tooMany(1);
        const value = param(0, 'the bit of the byte, 0 to 7 (7 is the most significant)');
        if (!/^[0-7]$/.test(value)) throw new GrammarError(column(3), value, 'a bit from 0 to 7');
        length = 1;
        bit = Number(value);
        hasBitOffset = true;
        break;
      }
      case 'char': {
        tooMany(1);
        const value = param(0, 'the number of bytes of the string');
        if (!/^\d+$/.test(value) || Number(value) < 1)
          throw new GrammarError(column(3), value, 'a byte count of 1 or more');
        length = Number(value);
        break;
      }
      case 'uint':
      case 'int': {
        tooMany(3);
        const value = param(0, 'the number of bits, 1 to 64');
        if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 64)
          throw new GrammarError(column(3), value, 'a number of bits from 1 to 64');
        length = Number(value);
        littleEndian = endianness(1);
        const offset = bitOffset(2);
        if (offset !== undefined) {
          bit = offset;
          hasBitOffset = true;
        }
        if (littleEndian && (length % 8 !== 0 || (hasBitOffset && bit !== 7))) {
          throw new GrammarError(
            column(4),
            'little-endian',
            `whole bytes for little-endian (${length} bits from bit ${bit})`,
          );
        }
        break;
      }
      case 'float': {
        tooMany(2);
        const value = param(0, '32 or 64');
        if (value !== '32' && value !== '64') throw new GrammarError(column(3), value, '32 or 64');
        length = Number(value);
        littleEndian = endianness(1);
        break;
      }
      default:
        throw new GrammarError(column(2), type, 'a type: bool, char, uint, int or float');
    }
    let byte: number;
    if (explicit !== undefined) byte = explicit;
    else if (fields.length === 0) byte = 0;
    else if (type === 'bool' || previousHadBitOffset) byte = Math.max(lastByte, 0);
    else byte = lastByte + 1;
    const startBit = byte * 8 + (7 - bit);
    const bits = type === 'char' ? length * 8 : length;
    lastByte = Math.floor((startBit + bits - 1) / 8);
    previousHadBitOffset = hasBitOffset;
    end = Math.max(end, lastByte + 1);
    let scale: SigfoxField['scale'];
    if (scaleText) {
      if (type === 'bool' || type === 'char')
        throw new GrammarError(at + definition.length, scaleText, `no scaling on a ${type} field`);
      const factor = scaleMatch?.[1] === undefined ? 1 : Number(scaleMatch[1]);
      const offset =
        scaleMatch?.[3] === undefined ? 0 : Number(scaleMatch[3]) * (scaleMatch[2] === '-' ? -1 : 1);
      scale = { factor, offset, rounding: roundingOf(factor, offset) };
    }
    names.add(name);
    fields.push({ name, byte, type, length, littleEndian, bit, startBit, ...(scale ? { scale } : {}) });
  }
  return { source, fields, bytes: end };
}

export interface SigfoxDecoded {
  readonly values: Record<string, number | boolean | string>;
  readonly warnings: string[];
}

/**
 * Decodes a frame with a parsed grammar. Throws {@link FrameError} when the frame is
 * shorter than the grammar reads; bytes past the grammar are left, with a warning.
 */
export function decodeSigfox(grammar: SigfoxGrammar, frame: Uint8Array): SigfoxDecoded {
  if (frame.length < grammar.bytes) {
    throw new FrameError(`frame has ${frame.length} bytes; the grammar reads ${grammar.bytes} (truncated)`);
  }
  const values: Record<string, number | boolean | string> = {};
  const warnings: string[] = [];
  // Sigfox's own custom payload decoding reads the leading bytes and ignores the rest;
  // so do we, and say which bytes were left.
  if (frame.length > grammar.bytes) {
    const rest = Buffer.from(frame.subarray(grammar.bytes)).toString('hex');
    warnings.push(
      `frame has ${frame.length} bytes; the grammar reads ${grammar.bytes}: ${frame.length - grammar.bytes} extra byte(s) not decoded (${rest})`,
    );
  }
  for (const field of grammar.fields) {
    switch (field.type) {
      case 'bool':
        setOwn(values, field.name, (((frame[field.byte] ?? 0) >> field.bit) & 1) === 1);
        break;
      case 'char': {
        const text = Buffer.from(frame.subarray(field.byte, field.byte + field.length)).toString('utf8');
        setOwn(values, field.name, trimNulPadding(text).slice(0, MAX_STRING_BYTES));
        break;
      }
      case 'float': {
        const view = new DataView(frame.buffer, frame.byteOffset + field.byte, field.length / 8);
        const value =
          field.length === 32
            ? view.getFloat32(0, field.littleEndian)
            : view.getFloat64(0, field.littleEndian);
        setOwn(values, field.name, applyScale(value, field));
        break;
      }
      default: {
        if (field.length <= 32) {
          // Up to 32 bits: plain numbers, no BigInt.
          let raw = readSmall(frame, field);
          if (field.type === 'int' && raw >= 2 ** (field.length - 1)) raw -= 2 ** field.length;
          setOwn(values, field.name, applyScale(raw, field));
          break;
        }
        let raw = readBits(frame, field);
        if (field.type === 'int' && raw >> BigInt(field.length - 1) === 1n) raw -= 1n << BigInt(field.length);
        if (raw > BigInt(Number.MAX_SAFE_INTEGER) || raw < BigInt(Number.MIN_SAFE_INTEGER)) {
          setOwn(values, field.name, raw.toString());
          warnings.push(`${field.name}: ${raw} does not fit a JSON number exactly; kept as a decimal string`);
        } else {
          setOwn(values, field.name, applyScale(Number(raw), field));
        }
      }
    }
  }
  return { values, warnings };
}

/** Fields of up to 32 bits, in plain numbers; whole big-endian bytes are read a byte at a time. */
function readSmall(frame: Uint8Array, field: SigfoxField): number {
  if (field.littleEndian) {
    let value = 0;
    for (let i = field.length / 8 - 1; i >= 0; i--) value = value * 256 + (frame[field.byte + i] ?? 0);
    return value;
  }
  if (field.bit === 7 && field.length % 8 === 0) {
    let value = 0;
    for (let i = 0; i < field.length / 8; i++) value = value * 256 + (frame[field.byte + i] ?? 0);
    return value;
  }
  let value = 0;
  for (let i = 0; i < field.length; i++) {
    const position = field.startBit + i;
    value = value * 2 + (((frame[position >> 3] ?? 0) >> (7 - (position & 7))) & 1);
  }
  return value;
}

/** Fields of 33 to 64 bits, as BigInt: they may not fit a JS number. */
function readBits(frame: Uint8Array, field: SigfoxField): bigint {
  let value = 0n;
  if (field.littleEndian) {
    for (let i = field.length / 8 - 1; i >= 0; i--)
      value = (value << 8n) | BigInt(frame[field.byte + i] ?? 0);
    return value;
  }
  for (let i = 0; i < field.length; i++) {
    const position = field.startBit + i;
    value = (value << 1n) | BigInt(((frame[position >> 3] ?? 0) >> (7 - (position & 7))) & 1);
  }
  return value;
}

/** Devices pad short strings with NUL bytes; those are not part of the value. */
function trimNulPadding(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0) end--;
  return text.slice(0, end);
}

function applyScale(value: number, field: SigfoxField): number {
  const scale = field.scale;
  if (!scale) return value;
  // Round away binary noise (3 * 0.1 = 0.30000000000000004) at the decimals the factor and offset have.
  return Math.round((value * scale.factor + scale.offset) * scale.rounding) / scale.rounding;
}

/** 10^(decimal places of the factor or offset, whichever has more), at most 10^12. */
function roundingOf(...numbers: number[]): number {
  const places = Math.max(
    ...numbers.map((n) => {
      const [mantissa = '', exponent = '0'] = n.toExponential().split('e');
      const decimals = (mantissa.split('.')[1] ?? '').length - Number(exponent);
      return Math.max(0, decimals);
    }),
  );
  return 10 ** Math.min(places, 12);
}
