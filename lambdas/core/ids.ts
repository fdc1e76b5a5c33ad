/**
 * The shapes outside names must have before they reach an S3 key, a Timestream
 * dimension, a topic or a query, and how outside text is shortened for an error
 * message. A leaf: every room may import it.
 */

/** A JSON object (not an array, not null): what outside input must be before its keys are read. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * What a record holds under `key` itself, never what its prototype lends: outside
 * names (`constructor`, `toString`, `__proto__`) are plain names, found only when set.
 */
export function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/**
 * Sets `key` as the record's own property. Assignment would take `"__proto__"` as the
 * record's prototype (and drop the value); this defines it, as `JSON.parse` does.
 */
export function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__')
    Object.defineProperty(record, key, { value, writable: true, enumerable: true, configurable: true });
  else record[key] = value;
}

/** Device ids reach S3 keys, Timestream dimensions and SQL: this is the only shape allowed. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Device type names travel in topics, keys and Timestream dimensions: keep them plain. */
export const DEVICE_TYPE_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Shortens outside input before it goes into an error message. */
export function truncate(text: string, max = 64): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** What kind of value outside input holds, for a reason: `an object`, `an array`, `null`, `a string`... */
export function kind(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
