/**
 * The normalizer: what every decoder's data becomes, whatever the way in. One object
 * of metrics (or an array of them) becomes readings: `$id` checked against the
 * authenticated device, `$ts` and `$seq` read, nested objects flattened to dotted
 * metric names; numbers, booleans and strings keep their type; `null` means "no
 * value" and is left out. What the message says besides (the network's time, its
 * sequence number, radio metrics) comes typed from the format and sits under each
 * reading's own values. Every rule breaks with a reason, one reading at a time: a bad
 * element never takes its neighbours down.
 */

import type { Source } from '../formats/index.ts';
import { DEVICE_ID_PATTERN, isObject, setOwn, truncate } from '../ids.ts';
import { type MetricValue, RESERVED_METRIC_NAMES, type Reading } from '../reading.ts';
import { MAX_STRING_BYTES, type ValidationLimits } from '../readings/limits.ts';
import { RejectError, type Rejection, type RejectionCode } from '../readings/rejection.ts';
import { describe, readTimestamp, withinWindow } from '../readings/timestamp.ts';

export interface NormalizeContext {
  /** The authenticated device id (from the topic or the network); a `$id` that disagrees is rejected. */
  readonly deviceId?: string;
  readonly deviceType: string;
  readonly source: Source;
  readonly messageId: string;
  readonly receivedAt: number;
  readonly limits: ValidationLimits;
  /** The network's time of the message, epoch ms: each reading's unless it has its own `$ts`. */
  readonly time?: number;
  /** The network's sequence number: the reading's unless it has its own `$seq` (an array's elements get none). */
  readonly seq?: number;
  /** Metrics of the message itself (radio), under each reading's own. */
  readonly metrics?: Readonly<Record<string, number | string>>;
}

export interface NormalizeResult {
  readonly readings: Reading[];
  readonly rejections: Rejection[];
}

const MAX_METRIC_NAME_BYTES = 256;

/**
 * Readings from decoded data (one object of metrics or an array of them). `bytes` is
 * what is kept with a rejection of the whole.
 */
export function normalize(value: unknown, bytes: Buffer, context: NormalizeContext): NormalizeResult {
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0)
    return reject(context, 'invalid_shape', 'payload is an empty array; send at least one reading', bytes);
  const result: NormalizeResult = { readings: [], rejections: [] };
  const many = Array.isArray(value);
  for (let index = 0; index < items.length; index++) {
    const item: unknown = items[index];
    try {
      result.readings.push(toReading(item, index, many, context));
    } catch (error) {
      if (!(error instanceof RejectError)) throw error;
      const element = many ? elementBytes(item, bytes) : bytes;
      // The authenticated id when there is one: a claimed `$id` is what was wrong.
      const deviceId =
        context.deviceId ??
        (isObject(item) && typeof item.$id === 'string' && DEVICE_ID_PATTERN.test(item.$id)
          ? item.$id
          : undefined);
      const where = many ? `element ${index}: ` : '';
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

export function reject(
  context: Pick<NormalizeContext, 'deviceId'>,
  code: RejectionCode,
  reason: string,
  payload: Buffer,
): NormalizeResult {
  return { readings: [], rejections: [{ code, reason, deviceId: context.deviceId, payload }] };
}

function toReading(item: unknown, index: number, many: boolean, context: NormalizeContext): Reading {
  if (!isObject(item))
    throw new RejectError('invalid_shape', `expected a JSON object of metrics, got ${describe(item)}`);
  const deviceId = readDeviceId(item.$id, context.deviceId);
  const time =
    item.$ts !== undefined
      ? readTimestamp(item.$ts, context)
      : context.time === undefined
        ? undefined
        : withinWindow(context.time, context, "the network's time");
  const seq = item.$seq !== undefined ? readSequence(item.$seq) : many ? undefined : context.seq;
  // Metric names are plain names: `__proto__`, `constructor` and `toString` are own
  // properties like any other (setOwn), never the object's prototype or its methods.
  const metrics: Record<string, MetricValue> = {};
  let seeded = 0;
  if (context.metrics) {
    for (const name in context.metrics) {
      setOwn(metrics, name, context.metrics[name] as MetricValue);
      seeded++;
    }
  }
  const count = flatten(item, '', 1, metrics, seeded, context.limits, seeded > 0);
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
    seq,
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
  seeded: boolean,
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
    const value = object[key];
    const name = prefix ? `${prefix}.${key}` : key;
    if (value === null) continue;
    if (isObject(value)) {
      total = flatten(value, name, depth + 1, metrics, total, limits, seeded);
      continue;
    }
    checkMetricName(name);
    // A message metric the reading sets again is counted once.
    const known = seeded && Object.hasOwn(metrics, name);
    setOwn(metrics, name, readValue(name, value));
    if (!known && ++total > limits.maxMetrics) {
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
