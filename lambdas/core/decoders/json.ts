/**
 * The JSON property-value format: `{ "$id": "12345", "temp": 32, "battery": 3.4 }`,
 * with an optional `$ts` (ISO-8601, epoch seconds or epoch milliseconds) and `$seq`
 * (sequence number), or an array of such objects. Nested objects flatten to dotted
 * metric names; numbers, booleans and strings keep their type; `null` means "no value"
 * and is left out. Every rule breaks with a reason, one reading at a time: a bad
 * element never takes its neighbours down.
 */
import type { ValidationLimits } from '../config.ts';
import type { Source } from '../lake/layout.ts';
import { type MetricValue, RESERVED_METRIC_NAMES, type Reading } from '../reading.ts';
import { DEVICE_ID_PATTERN, truncate } from '../topics.ts';

export interface DecodeContext {
  /** The authenticated device id (from the topic); a `$id` that disagrees is rejected. */
  readonly deviceId?: string;
  readonly deviceType: string;
  readonly source: Source;
  readonly messageId: string;
  readonly receivedAt: number;
  readonly limits: ValidationLimits;
}

/** Why something was not stored; `code` is stable (analysts group by it), `reason` says what to fix. */
export interface Rejection {
  readonly code: RejectionCode;
  readonly reason: string;
  readonly deviceId?: string;
  /** What was rejected: the element of an array, or the whole payload. */
  readonly payload: Buffer;
}

export type RejectionCode =
  | 'invalid_envelope'
  | 'invalid_topic'
  | 'payload_too_large'
  | 'invalid_json'
  | 'invalid_shape'
  | 'invalid_device_id'
  | 'device_id_mismatch'
  | 'invalid_timestamp'
  | 'timestamp_in_future'
  | 'timestamp_too_old'
  | 'invalid_sequence'
  | 'invalid_metric'
  | 'too_many_metrics'
  | 'too_deep'
  | 'forbidden_key'
  | 'no_metrics'
  | 'decode_failed'
  | 'invalid_callback'
  | 'timestream_rejected';

export interface DecodeResult {
  readonly readings: Reading[];
  readonly rejections: Rejection[];
}

/** Longest string value kept: Timestream's VARCHAR measure limit is 2 KB. */
export const MAX_STRING_BYTES = 2048;
const MAX_METRIC_NAME_BYTES = 256;
/** Keys that would reach an object's prototype if anything downstream assigned them naively. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
// Epoch values below this are seconds (1e11 s is the year 5138; 1e11 ms is 1973).
const SECONDS_LIMIT = 1e11;

class RejectError extends Error {
  constructor(
    readonly code: RejectionCode,
    message: string,
  ) {
    super(message);
  }
}

/** Decodes a JSON payload into readings and rejections. Never throws. */
export function decodeJson(bytes: Buffer, context: DecodeContext): DecodeResult {
  if (bytes.length > context.limits.maxPayloadBytes) {
    return reject(
      context,
      'payload_too_large',
      `payload is ${bytes.length} bytes; the limit is ${context.limits.maxPayloadBytes}`,
      bytes,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    return reject(context, 'invalid_json', `payload is not JSON: ${(error as Error).message}`, bytes);
  }
  return readingsFrom(value, bytes, context);
}

/**
 * Readings from a decoded value (one object of metrics or an array of them), what
 * JSON payloads and binary decoders alike produce. `bytes` is what is kept with a
 * rejection.
 */
export function readingsFrom(value: unknown, bytes: Buffer, context: DecodeContext): DecodeResult {
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0)
    return reject(context, 'invalid_shape', 'payload is an empty array; send at least one reading', bytes);
  const result: DecodeResult = { readings: [], rejections: [] };
  for (let index = 0; index < items.length; index++) {
    const item: unknown = items[index];
    try {
      result.readings.push(toReading(item, index, context));
    } catch (error) {
      if (!(error instanceof RejectError)) throw error;
      const element = Array.isArray(value) ? elementBytes(item, bytes) : bytes;
      // The authenticated id when there is one: a claimed `$id` is what was wrong.
      const deviceId =
        context.deviceId ??
        (isObject(item) && typeof item.$id === 'string' && DEVICE_ID_PATTERN.test(item.$id)
          ? item.$id
          : undefined);
      const where = Array.isArray(value) ? `element ${index}: ` : '';
      result.rejections.push({ code: error.code, reason: where + error.message, deviceId, payload: element });
    }
  }
  return result;
}

/** The element's own JSON, or the whole payload when it cannot be re-serialized (absurd nesting). */
function elementBytes(item: unknown, whole: Buffer): Buffer {
  try {
    return Buffer.from(JSON.stringify(item) ?? 'null', 'utf8');
  } catch {
    return whole;
  }
}

function reject(context: DecodeContext, code: RejectionCode, reason: string, payload: Buffer): DecodeResult {
  return { readings: [], rejections: [{ code, reason, deviceId: context.deviceId, payload }] };
}

function toReading(item: unknown, index: number, context: DecodeContext): Reading {
  if (!isObject(item))
    throw new RejectError('invalid_shape', `expected a JSON object of metrics, got ${describe(item)}`);
  const deviceId = readDeviceId(item.$id, context.deviceId);
  const time = item.$ts === undefined ? undefined : readTimestamp(item.$ts, context);
  const seq = readSequence(item.$seq);
  // Plain object: __proto__, constructor and prototype are refused before any assignment.
  const metrics: Record<string, MetricValue> = {};
  const count = flatten(item, '', 1, metrics, 0, context.limits);
  if (count === 0) throw new RejectError('no_metrics', 'the reading has no metric (only $-keys or nulls)');
  const key =
    seq !== undefined
      ? `seq:${seq}`
      : time !== undefined
        ? `ts:${time}`
        : `msg:${context.messageId}#${index}`;
  return {
    deviceId,
    deviceType: context.deviceType,
    time: time ?? context.receivedAt,
    receivedAt: context.receivedAt,
    source: context.source,
    messageId: context.messageId,
    metrics,
    key,
  };
}

/**
 * Copies the metrics of `object` into `metrics` under dotted names; returns the
 * running metric count. Top-level `$` keys are the envelope's, not metrics.
 */
function flatten(
  object: Record<string, unknown>,
  prefix: string,
  depth: number,
  metrics: Record<string, MetricValue>,
  count: number,
  limits: ValidationLimits,
): number {
  if (depth > limits.maxDepth) {
    throw new RejectError(
      'too_deep',
      `"${truncate(prefix)}" is nested deeper than ${limits.maxDepth} levels`,
    );
  }
  let total = count;
  for (const key in object) {
    if (depth === 1 && key.charCodeAt(0) === 36 /* $ */) continue; // $id, $ts, $seq and future envelope keys
    if (FORBIDDEN_KEYS.has(key)) throw new RejectError('forbidden_key', `key "${key}" is not allowed`);
    const value = object[key];
    const name = prefix ? `${prefix}.${key}` : key;
    if (value === null) continue;
    if (isObject(value)) {
      total = flatten(value, name, depth + 1, metrics, total, limits);
      continue;
    }
    checkMetricName(name);
    metrics[name] = readValue(name, value);
    if (++total > limits.maxMetrics) {
      throw new RejectError('too_many_metrics', `more than ${limits.maxMetrics} metrics in one reading`);
    }
  }
  return total;
}

function readDeviceId(id: unknown, authenticated: string | undefined): string {
  if (id === undefined) {
    if (authenticated) return authenticated;
    throw new RejectError('invalid_device_id', 'no "$id": say which device the reading is from');
  }
  if (typeof id !== 'string' || !DEVICE_ID_PATTERN.test(id)) {
    throw new RejectError(
      'invalid_device_id',
      `"$id" ${truncate(JSON.stringify(id) ?? String(id))} must match ${DEVICE_ID_PATTERN}`,
    );
  }
  if (authenticated && id !== authenticated) {
    throw new RejectError(
      'device_id_mismatch',
      `"$id" "${id}" disagrees with the authenticated device "${authenticated}"`,
    );
  }
  return id;
}

/** `$ts` as epoch ms: ISO-8601 with a zone, epoch seconds or epoch milliseconds, within the configured window. */
export function readTimestamp(ts: unknown, context: Pick<DecodeContext, 'receivedAt' | 'limits'>): number {
  let ms: number;
  if (typeof ts === 'number') {
    if (!Number.isFinite(ts) || ts < 0)
      throw new RejectError('invalid_timestamp', `"$ts" ${ts} is not a valid epoch time`);
    ms = Math.round(ts < SECONDS_LIMIT ? ts * 1000 : ts);
  } else if (typeof ts === 'string') {
    // A zone is required: a local time would be read in the server's zone.
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/.test(ts)) {
      throw new RejectError(
        'invalid_timestamp',
        `"$ts" "${truncate(ts)}" is not ISO-8601 with a zone (e.g. 2026-11-25T06:00:00Z)`,
      );
    }
    ms = Date.parse(ts);
    if (Number.isNaN(ms) || !isCalendarDate(ts))
      throw new RejectError('invalid_timestamp', `"$ts" "${truncate(ts)}" is not a real date`);
  } else {
    throw new RejectError(
      'invalid_timestamp',
      `"$ts" must be an ISO-8601 string or epoch number, got ${describe(ts)}`,
    );
  }
  const { maxFutureSeconds, maxAgeDays } = context.limits;
  if (ms > context.receivedAt + maxFutureSeconds * 1000) {
    throw new RejectError(
      'timestamp_in_future',
      `"$ts" ${new Date(ms).toISOString()} is more than ${maxFutureSeconds} s ahead of arrival`,
    );
  }
  if (ms < context.receivedAt - maxAgeDays * 86_400_000) {
    throw new RejectError(
      'timestamp_too_old',
      `"$ts" ${new Date(ms).toISOString()} is more than ${maxAgeDays} days old`,
    );
  }
  return ms;
}

/** V8 reads 2026-02-31 as March 3rd; a device clock that says so is wrong, not early. */
function isCalendarDate(iso: string): boolean {
  const [y, m, d, hh, mm, ss] = (iso.match(/\d+/g) ?? []).map(Number) as number[];
  if (y === undefined || m === undefined || d === undefined) return false;
  const daysInMonth = new Date(Date.UTC(y, m, 0)).getUTCDate();
  return (
    m >= 1 && m <= 12 && d >= 1 && d <= daysInMonth && (hh ?? 0) < 24 && (mm ?? 0) < 60 && (ss ?? 0) < 60
  );
}

function readSequence(seq: unknown): number | undefined {
  if (seq === undefined) return undefined;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    throw new RejectError('invalid_sequence', `"$seq" must be a non-negative integer, got ${describe(seq)}`);
  }
  return seq;
}

/** Names already found valid: fleets repeat the same few names millions of times. */
const validNames = new Set<string>();

function checkMetricName(name: string): void {
  if (validNames.has(name)) return;
  if (RESERVED_METRIC_NAMES.has(name))
    throw new RejectError('invalid_metric', `metric name "${name}" is reserved`);
  // Control characters break CSV exports and log lines; names feed Timestream attribute names.
  if (
    Buffer.byteLength(name, 'utf8') > MAX_METRIC_NAME_BYTES ||
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
    /[\u0000-\u001f\u007f]/.test(name) ||
    name.trim() !== name ||
    name === ''
  ) {
    throw new RejectError(
      'invalid_metric',
      `metric name "${truncate(name)}" must be 1-${MAX_METRIC_NAME_BYTES} bytes without control characters or outer spaces`,
    );
  }
  if (validNames.size < 10_000) validNames.add(name);
}

function readValue(name: string, value: unknown): MetricValue {
  if (typeof value === 'number') {
    // JSON.parse never yields NaN or Infinity, but 1e999 parses to Infinity.
    if (!Number.isFinite(value))
      throw new RejectError('invalid_metric', `metric "${truncate(name)}" is not a finite number`);
    return value;
  }
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    // A UTF-16 unit is at most 3 UTF-8 bytes: short strings need no count.
    if (value.length * 3 > MAX_STRING_BYTES && Buffer.byteLength(value, 'utf8') > MAX_STRING_BYTES) {
      throw new RejectError(
        'invalid_metric',
        `metric "${truncate(name)}" is a string longer than ${MAX_STRING_BYTES} bytes`,
      );
    }
    return value;
  }
  throw new RejectError(
    'invalid_metric',
    `metric "${truncate(name)}" is ${describe(value)}; use a number, boolean, string or object`,
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object'
    ? 'an object'
    : `${typeof value} ${truncate(JSON.stringify(value) ?? String(value))}`;
}

export { RejectError };
