/**
 * Reading times: a device's `$ts` in the forms devices send (ISO-8601 with a zone,
 * epoch seconds, epoch milliseconds), and the window any reading time must fall in
 * (`maxFutureSeconds` ahead of arrival, `maxAgeDays` before it).
 */
import { truncate } from '../ids.ts';
import type { ValidationLimits } from './limits.ts';
import { RejectError } from './rejection.ts';

export interface TimeContext {
  /** Arrival, epoch ms. */
  readonly receivedAt: number;
  readonly limits: ValidationLimits;
}

// Epoch values below this are seconds (1e11 s is the year 5138; 1e11 ms is 1973).
const SECONDS_LIMIT = 1e11;
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

/**
 * `$ts` as epoch ms, within the window.
 *
 * @throws RejectError `invalid_timestamp`, `timestamp_in_future` or `timestamp_too_old`
 */
export function readTimestamp(ts: unknown, context: TimeContext): number {
  let ms: number;
  if (typeof ts === 'number') {
    if (!Number.isFinite(ts) || ts < 0)
      throw new RejectError('invalid_timestamp', `"$ts" ${ts} is not a valid epoch time`);
    ms = Math.round(ts < SECONDS_LIMIT ? ts * 1000 : ts);
  } else if (typeof ts === 'string') {
    ms = readIsoTime(ts, '"$ts"');
  } else {
    throw new RejectError(
      'invalid_timestamp',
      `"$ts" must be an ISO-8601 string or epoch number, got ${describe(ts)}`,
    );
  }
  return withinWindow(ms, context, '"$ts"');
}

/**
 * An ISO-8601 time with a zone (nanoseconds allowed, as The Things Stack writes them), as epoch ms.
 *
 * @throws RejectError `invalid_timestamp`, naming the field by `label`
 */
export function readIsoTime(text: string, label: string): number {
  // A zone is required: a local time would be read in the server's zone.
  if (!ISO_WITH_ZONE.test(text)) {
    throw new RejectError(
      'invalid_timestamp',
      `${label} "${truncate(text)}" is not ISO-8601 with a zone (e.g. 2026-11-25T06:00:00Z)`,
    );
  }
  const ms = Date.parse(text);
  if (Number.isNaN(ms) || !isCalendarDate(text))
    throw new RejectError('invalid_timestamp', `${label} "${truncate(text)}" is not a real date`);
  return ms;
}

/**
 * The time if it lies in the window around arrival.
 *
 * @throws RejectError `timestamp_in_future` or `timestamp_too_old`, naming the time by `label`
 */
export function withinWindow(ms: number, context: TimeContext, label: string): number {
  const { maxFutureSeconds, maxAgeDays } = context.limits;
  if (ms > context.receivedAt + maxFutureSeconds * 1000) {
    throw new RejectError(
      'timestamp_in_future',
      `${label} ${new Date(ms).toISOString()} is more than ${maxFutureSeconds} s ahead of arrival`,
    );
  }
  if (ms < context.receivedAt - maxAgeDays * 86_400_000) {
    throw new RejectError(
      'timestamp_too_old',
      `${label} ${new Date(ms).toISOString()} is more than ${maxAgeDays} days old`,
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

/** How a value is named in a reason: its kind, and for a scalar its (shortened) JSON. */
export function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object'
    ? 'an object'
    : `${typeof value} ${truncate(JSON.stringify(value) ?? String(value))}`;
}
