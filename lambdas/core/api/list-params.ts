/**
 * Parameters shared by the list routes over the lake (`GET /v1/alerts`,
 * `GET /v1/quarantine`): a time range, a page size, plain names and the continuation
 * token that carries the range its first page resolved. Each check answers with the
 * message a caller can act on; nothing unchecked reaches a plan.
 */
import { DEVICE_ID_PATTERN } from '../ids.ts';
import { InvalidTokenError, type QueryParam } from './query.ts';

export const DAY_MS = 86_400_000;
/** The widest range one request may ask for, as the readings API. */
export const MAX_LIST_RANGE_DAYS = 31;
export const MAX_LIST_PAGE = 1000;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const NAME_PATTERN = /^[^\u0000-\u001f\u007f]{1,256}$/;

/** A 400 to answer: the parameter and what is wrong with it. */
export class ParameterError extends Error {}

/** A time parameter: ISO-8601 with a zone (or a bare day), or epoch milliseconds. */
export function parseTime(text: string | null, name: string): number | undefined {
  if (text === null) return undefined;
  const ms = /^\d{1,15}$/.test(text)
    ? Number(text)
    : /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2}))?$/.test(text)
      ? Date.parse(text)
      : Number.NaN;
  if (Number.isNaN(ms))
    throw new ParameterError(
      `${name}=${text.slice(0, 40)} is not a time: use ISO-8601 (2026-11-24T06:00:00Z) or epoch milliseconds`,
    );
  return ms;
}

/**
 * `from`/`to`, or the range a `next` token carries, or the last `defaultMs` to now; at
 * most {@link MAX_LIST_RANGE_DAYS}.
 */
export function parseRange(
  params: URLSearchParams,
  resumed: { from: number; to: number } | undefined,
  now: number,
  defaultMs: number,
): { from: number; to: number } {
  const from = parseTime(params.get('from'), 'from');
  const to = parseTime(params.get('to'), 'to');
  const end = to ?? resumed?.to ?? now;
  const start = from ?? resumed?.from ?? end - defaultMs;
  if (start >= end) throw new ParameterError('from must be before to');
  if (end - start > MAX_LIST_RANGE_DAYS * DAY_MS)
    throw new ParameterError(`At most ${MAX_LIST_RANGE_DAYS} days per request; page through longer ranges`);
  return { from: start, to: end };
}

export function parseLimit(params: URLSearchParams, fallback: number): number {
  const text = params.get('limit');
  const size = text === null ? fallback : Number(text);
  if (!Number.isInteger(size) || size < 1 || size > MAX_LIST_PAGE)
    throw new ParameterError(`limit must be 1 to ${MAX_LIST_PAGE}`);
  return size;
}

/** A plain name (rule, device type, reason code): 1-256 characters without control characters. */
export function parseName(params: URLSearchParams, name: string): string | undefined {
  const value = params.get(name) ?? undefined;
  if (value !== undefined && !NAME_PATTERN.test(value))
    throw new ParameterError(`${name} must be 1-256 characters without control characters`);
  return value;
}

/** One of a fixed set of words. */
export function parseChoice<T extends string>(
  params: URLSearchParams,
  name: string,
  allowed: readonly T[],
): T | undefined {
  const value = params.get(name);
  if (value === null) return undefined;
  if (!(allowed as readonly string[]).includes(value))
    throw new ParameterError(`${name} must be one of ${allowed.join(', ')}, got "${value.slice(0, 40)}"`);
  return value as T;
}

/** `device`: checked against the device id pattern before it goes anywhere. */
export function parseDevice(params: URLSearchParams): string | undefined {
  const value = params.get('device') ?? undefined;
  if (value !== undefined && !DEVICE_ID_PATTERN.test(value))
    throw new ParameterError(`device must match ${DEVICE_ID_PATTERN}`);
  return value;
}

/**
 * SQL that keeps only a key's devices (`--devices id,prefix*`), with its parameters:
 * names compared as values, prefixes by `substr`, which Athena and DuckDB both have.
 */
export function devicesClause(devices: readonly string[]): { sql: string; params: QueryParam[] } {
  const params: QueryParam[] = [];
  const terms = devices.map((entry) => {
    if (entry.endsWith('*')) {
      const prefix = entry.slice(0, -1);
      params.push({ type: 'varchar', value: prefix });
      return `substr(device_id, 1, ${[...prefix].length}) = ?`;
    }
    params.push({ type: 'varchar', value: entry });
    return 'device_id = ?';
  });
  return { sql: terms.length === 0 ? 'false' : `(${terms.join(' OR ')})`, params };
}

/**
 * The API's `next`: `<from>~<to>~<engine token>`, so a caller who follows `next`
 * without repeating `from` and `to` pages through the same query (`to` defaults to
 * now, which moves on). The engine's token is bound to its plan.
 */
export function apiToken(range: { from: number; to: number }, inner: string): string {
  return `${range.from}~${range.to}~${inner}`;
}

export function readApiToken(text: string | null): { from: number; to: number; inner: string } | undefined {
  if (text === null) return undefined;
  const match = /^(\d{1,15})~(\d{1,15})~([A-Za-z0-9_.=-]{1,8192})$/.exec(text);
  if (!match) throw new InvalidTokenError('next is not a token this API gave');
  return { from: Number(match[1]), to: Number(match[2]), inner: match[3] as string };
}

/** A lake time (`2026-11-25 06:00:00.000`, as Athena and DuckDB print it) as ISO-8601 UTC. */
export function isoTime(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const match = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?/.exec(value);
  if (!match) return null;
  const millis = (match[3] ?? '.000').slice(1, 4).padEnd(3, '0');
  return `${match[1]}T${match[2]}.${millis}Z`;
}

/** A number column as a number (Athena answers text), null when absent. */
export function numberOf(value: unknown): number | null {
  if (value === null || value === undefined || value === '') return null;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

/** A text column, null when absent. */
export function textOf(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}
