/**
 * The normalizer: what every decoder's data becomes, whatever the way in. One object
 * of metrics (or an array of them) becomes readings: `$id` checked against the
 * authenticated device, `$ts` and `$seq` read, nested objects flattened to dotted
 * metric names and arrays inside a reading to indexed ones (`messages.0.value`);
 * numbers, booleans and strings keep their type; `null` means "no value" and is left
 * out. A metric named like a column of the tables (`time`, `device_id`, ...) is stored
 * as `$<name>`. What the message says besides (the network's time, its sequence
 * number, radio metrics) comes typed from the format and sits under each reading's own
 * values. Every rule breaks with a reason, one reading at a time: a bad element never
 * takes its neighbours down, and a field that cannot be stored (a bad value or name,
 * too deep, past `maxMetrics`) never takes its reading down: it is left out with a
 * warning, and only a reading left with no metric at all is rejected.
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
  /** Attributes of the device the network sent (ChirpStack tags): each reading carries them to the registry. */
  readonly attributes?: Readonly<Record<string, string>>;
}

export interface NormalizeResult {
  readonly readings: Reading[];
  readonly rejections: Rejection[];
  /** Fields left out of readings that were stored, and why (`element 2: ` first in an array). */
  readonly warnings: string[];
}

const MAX_METRIC_NAME_BYTES = 256;

/** Top-level `$` keys the envelope reads (`$type` is reserved): never metrics, never warned about. */
const ENVELOPE_KEYS = new Set(['$id', '$ts', '$seq', '$type']);

/**
 * What a metric named like a reserved column is stored as: `$time`, `$device_id`. No
 * other name can take that form: a top-level `$` key is the envelope's, never a metric,
 * and every nested name has a dot before its first `$`.
 */
export const RENAMED_PREFIX = '$';

/** Field refusals kept word for word per reading; past them, counted. */
const MAX_FIELD_WARNINGS = 10;

/**
 * Readings from decoded data (one object of metrics or an array of them). `bytes` is
 * what is kept with a rejection of the whole.
 */
export function normalize(value: unknown, bytes: Buffer, context: NormalizeContext): NormalizeResult {
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0)
    return reject(context, 'invalid_shape', 'payload is an empty array; send at least one reading', bytes);
  const result: NormalizeResult = { readings: [], rejections: [], warnings: [] };
  const many = Array.isArray(value);
  for (let index = 0; index < items.length; index++) {
    const item: unknown = items[index];
    try {
      result.readings.push(toReading(item, index, many, context, result.warnings));
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
  return { readings: [], rejections: [{ code, reason, deviceId: context.deviceId, payload }], warnings: [] };
}

function toReading(
  item: unknown,
  index: number,
  many: boolean,
  context: NormalizeContext,
  warnings: string[],
): Reading {
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
  const state: Flattening = {
    metrics,
    limits: context.limits,
    seed: seeded > 0 ? context.metrics : undefined,
    overridden: undefined,
    count: seeded,
    refused: 0,
    code: undefined,
    warnings: undefined,
    past: 0,
    firstPast: '',
  };
  flatten(item, '', 1, state);
  if (state.refused > 0) {
    const said = refusals(state);
    if (state.count === 0) throw new RejectError(state.code ?? 'invalid_metric', said.join('; '));
    const where = many ? `element ${index}: ` : '';
    for (const text of said) warnings.push(`${where}not stored: ${text}`);
  }
  if (state.count === 0)
    throw new RejectError('no_metrics', 'the reading has no metric (only $-keys or nulls)');
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
    ...(context.attributes === undefined ? {} : { attributes: context.attributes }),
  };
}

/** One reading's metrics as they are flattened, and the fields refused on the way. */
interface Flattening {
  readonly metrics: Record<string, MetricValue>;
  readonly limits: ValidationLimits;
  /** The message's own metrics (radio), which a reading's value of the same name replaces. */
  readonly seed: Readonly<Record<string, number | string>> | undefined;
  /** Seed names the reading has set already: a second value is a duplicate like any other. */
  overridden: Set<string> | undefined;
  /** Metrics set, seed included. */
  count: number;
  /** Fields refused, past `maxMetrics` included. */
  refused: number;
  /** The first refusal's code: the rejection's when no metric is left. */
  code: RejectionCode | undefined;
  /** The first {@link MAX_FIELD_WARNINGS} refusals, in words; allocated on the first. */
  warnings: string[] | undefined;
  /** Fields past `maxMetrics`, and the first of them. */
  past: number;
  firstPast: string;
}

/**
 * Copies the metrics of `object` (an object, or an array inside a reading) into the
 * reading under dotted names, array elements under their index. Top-level `$` keys
 * are the envelope's, not metrics. Nothing here throws for a field: a field that
 * cannot be stored is counted and said, and the rest goes on.
 */
function flatten(object: object, prefix: string, depth: number, s: Flattening): void {
  if (Array.isArray(object)) {
    for (let i = 0; i < object.length; i++) visit(`${prefix}.${i}`, object[i], depth, s);
    return;
  }
  const record = object as Record<string, unknown>;
  for (const key in record) {
    if (depth > 1) {
      visit(`${prefix}.${key}`, record[key], depth, s);
      continue;
    }
    if (key.charCodeAt(0) === 36 /* $ */) {
      // $id, $ts, $seq: read as the envelope; other `$` keys are no metric, and said so.
      if (!ENVELOPE_KEYS.has(key) && record[key] !== null)
        refuse(
          s,
          'invalid_metric',
          `"${truncate(key)}" is a top-level "$" key: only $id, $ts and $seq are read`,
        );
      continue;
    }
    visit(key, record[key], depth, s);
  }
}

/** One field of a container at `depth`: a container flattened further, or a metric stored or refused. */
function visit(name: string, value: unknown, depth: number, s: Flattening): void {
  if (value === null) return;
  if (typeof value === 'object') {
    if (depth >= s.limits.maxDepth) {
      refuse(s, 'too_deep', `"${truncate(name)}" is nested deeper than ${s.limits.maxDepth} levels`);
    } else if (s.count >= s.limits.maxMetrics) {
      tooMany(s, name, leaves(value, depth + 1, s.limits.maxDepth));
    } else {
      flatten(value, name, depth + 1, s);
    }
    return;
  }
  const stored = storedName(name);
  if (stored === undefined) {
    refuse(
      s,
      'invalid_metric',
      `metric name "${truncate(name)}" must be 1-${MAX_METRIC_NAME_BYTES} bytes without control characters or outer spaces`,
    );
    return;
  }
  const problem = valueProblem(value);
  if (problem !== undefined) {
    refuse(s, 'invalid_metric', `metric "${truncate(stored)}" ${problem}`);
    return;
  }
  if (Object.hasOwn(s.metrics, stored)) {
    // The reading's own value of a message metric (radio) replaces it, counted once.
    if (s.seed !== undefined && Object.hasOwn(s.seed, stored) && !s.overridden?.has(stored)) {
      s.overridden ??= new Set();
      s.overridden.add(stored);
      setOwn(s.metrics, stored, value as MetricValue);
    } else {
      refuse(s, 'invalid_metric', `metric "${truncate(stored)}" is given twice; the first value is kept`);
    }
    return;
  }
  if (s.count >= s.limits.maxMetrics) {
    tooMany(s, stored, 1);
    return;
  }
  setOwn(s.metrics, stored, value as MetricValue);
  s.count++;
}

function refuse(s: Flattening, code: RejectionCode, text: string): void {
  s.refused++;
  s.code ??= code;
  s.warnings ??= [];
  if (s.warnings.length < MAX_FIELD_WARNINGS) s.warnings.push(text);
}

function tooMany(s: Flattening, name: string, fields: number): void {
  if (fields === 0) return;
  if (s.past === 0) s.firstPast = name;
  s.past += fields;
  s.refused += fields;
  s.code ??= 'too_many_metrics';
}

/** The refusals of a reading in words, bounded: the first ones, then how many more. */
function refusals(s: Flattening): string[] {
  const said = [...(s.warnings ?? [])];
  if (s.past > 0) {
    said.push(
      `${s.past} ${s.past === 1 ? 'field' : 'fields'} past validation.maxMetrics (more than ${s.limits.maxMetrics} metrics in one reading), from "${truncate(s.firstPast)}" on`,
    );
  }
  const unsaid = s.refused - s.past - (s.warnings?.length ?? 0);
  if (unsaid > 0) said.push(`and ${unsaid} more fields`);
  return said;
}

/** Non-null leaves of a container, counted without their names, down to the depth limit. */
function leaves(value: object, depth: number, maxDepth: number): number {
  let count = 0;
  const values = Array.isArray(value) ? value : Object.values(value);
  for (const v of values) {
    if (v === null) continue;
    if (typeof v !== 'object') count++;
    else if (depth < maxDepth) count += leaves(v, depth + 1, maxDepth);
    else count++;
  }
  return count;
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

/** Names already found valid, with the name each is stored under: fleets repeat the same few names millions of times. */
const storedNames = new Map<string, string>();

/**
 * The name a metric is stored under: its own, or `$<name>` for a reserved column name
 * (`time` is stored as `$time`); undefined when the name cannot be stored at all. A
 * reserved name has no dot, so only a top-level key can be one.
 */
export function storedMetricName(name: string): string | undefined {
  return storedName(name);
}

function storedName(name: string): string | undefined {
  const known = storedNames.get(name);
  if (known !== undefined) return known;
  // Control characters break CSV exports and log lines; names feed Timestream attribute names.
  if (
    Buffer.byteLength(name, 'utf8') > MAX_METRIC_NAME_BYTES ||
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
    /[\u0000-\u001f\u007f]/.test(name) ||
    name.trim() !== name ||
    name === ''
  ) {
    return undefined;
  }
  const stored = RESERVED_METRIC_NAMES.has(name) ? RENAMED_PREFIX + name : name;
  if (storedNames.size < 10_000) storedNames.set(name, stored);
  return stored;
}

/** Why a leaf cannot be stored as a metric value, or undefined when it can. */
function valueProblem(value: unknown): string | undefined {
  if (typeof value === 'number') {
    // JSON.parse never yields NaN or Infinity, but 1e999 parses to Infinity.
    return Number.isFinite(value) ? undefined : 'is not a finite number';
  }
  if (typeof value === 'boolean') return undefined;
  if (typeof value === 'string') {
    // A UTF-16 unit is at most 3 UTF-8 bytes: short strings need no count.
    return value.length * 3 > MAX_STRING_BYTES && Buffer.byteLength(value, 'utf8') > MAX_STRING_BYTES
      ? `is a string longer than ${MAX_STRING_BYTES} bytes`
      : undefined;
  }
  return `is ${describe(value)}; use a number, boolean, string, object or array`;
}
