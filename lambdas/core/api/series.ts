/**
 * The chart route: `GET /v1/devices/{id}/series?metric&from&to&points`, one metric of one
 * device downsampled to at most `points` time buckets of min, max, avg and count, planned
 * once for Athena and DuckDB as query.ts's plans are (parameters travel as parameters;
 * the only numbers spliced are the ones computed here).
 *
 * It reads one device, not the estate: days the daily job has compacted come from
 * `curated_readings` (Parquet sorted by device, so the engine reads only the row groups
 * whose device_id statistics hold it); the days not yet compacted (today, and yesterday
 * until the job has run) come from the NDJSON `readings`, pruned to the hours asked by
 * their `dt` and `hour` partitions.
 */

import { DEVICE_ID_PATTERN } from '../ids.ts';
import type { LakeStore } from '../ingest/ports.ts';
import { LAKE_PREFIXES, partitionOf } from '../lake/layout.ts';
import { lakeTimestamp } from '../lake/tables.ts';
import type { Gate } from './gate.ts';
import { type HttpRequest, type HttpResponse, json } from './http.ts';
import {
  admitDeviceRead,
  InvalidTokenError,
  METRIC_PATTERN,
  type PagedQueries,
  parseTime,
  type QueryParam,
  type QueryPlan,
} from './query.ts';

const DAY_MS = 86_400_000;
/** The widest range one series request may ask for. */
export const MAX_SERIES_DAYS = 30;
export const DEFAULT_POINTS = 2000;
export const MAX_POINTS = 5000;
const SERIES_PATH = /^\/v1\/devices\/([^/]+)\/series$/;

export function isSeriesPath(path: string): boolean {
  return SERIES_PATH.test(path);
}

/**
 * The bucket width for a range: whole seconds, so that `ceil(range / width)` buckets, at
 * most `points`, cover it (a range shorter than `points` seconds gets 1-second buckets).
 */
export function bucketWidthMs(from: number, to: number, points: number): number {
  if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && to > from))
    throw new RangeError('from and to must be epoch milliseconds, from before to');
  if (!(Number.isSafeInteger(points) && points >= 1 && points <= MAX_POINTS))
    throw new RangeError(`points must be 1 to ${MAX_POINTS}`);
  return Math.ceil((to - from) / points / 1000) * 1000;
}

/** The UTC days `YYYY-MM-DD` that [from, to) touches, in order. */
export function daysOf(from: number, to: number): string[] {
  const days: string[] = [];
  for (let day = Math.floor(from / DAY_MS) * DAY_MS; day < to; day += DAY_MS)
    days.push(new Date(day).toISOString().slice(0, 10));
  return days;
}

/** Which of these days the daily job has written curated readings for. */
export type CuratedDays = (days: readonly string[]) => Promise<ReadonlySet<string>>;

/** {@link CuratedDays} from the lake's keys: a day is compacted once its `curated/readings/dt=` prefix holds a file. */
export function curatedDaysOf(lake: Pick<LakeStore, 'list'>): CuratedDays {
  return async (days) => {
    const listed = await Promise.all(
      days.map(async (day) => [day, (await lake.list(`${LAKE_PREFIXES.curated}dt=${day}/`)).length] as const),
    );
    return new Set(listed.filter(([, files]) => files > 0).map(([day]) => day));
  };
}

export interface SeriesQuery {
  readonly deviceId: string;
  readonly metric: string;
  readonly from: number;
  readonly to: number;
  readonly points: number;
  /** Days of the range to read from `curated_readings`; the others come from `readings`. */
  readonly curated: ReadonlySet<string>;
}

const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/**
 * The plan: the numeric values of the metric in [from, to), from the curated Parquet for
 * compacted days and the NDJSON (each reading once, as compaction keeps it) for the
 * others, grouped by `floor((time - from) / width)`. The division is of doubles, exact
 * here: both are integers below 2^53, the quotient below 5,000 and a reading 1 ms short
 * of a bucket edge falls short by at least 1/width, far above a double's spacing there.
 */
export function seriesPlan(query: SeriesQuery): QueryPlan {
  const { deviceId, metric, from, to, points } = query;
  if (!DEVICE_ID_PATTERN.test(deviceId)) throw new RangeError(`device id must match ${DEVICE_ID_PATTERN}`);
  if (!METRIC_PATTERN.test(metric))
    throw new RangeError('metric must be 1-256 characters without control characters');
  const width = bucketWidthMs(from, to, points);
  if (to - from > MAX_SERIES_DAYS * DAY_MS) throw new RangeError(`at most ${MAX_SERIES_DAYS} days`);
  const days = daysOf(from, to);
  const curatedDays = days.filter((day) => query.curated.has(day));
  const recentDays = days.filter((day) => !query.curated.has(day));
  const start: QueryParam = { type: 'timestamp', value: lakeTimestamp(from) };
  const end: QueryParam = { type: 'timestamp', value: lakeTimestamp(to) };
  const device: QueryParam = { type: 'varchar', value: deviceId };
  const name: QueryParam = { type: 'varchar', value: metric };
  const day = (value: string): QueryParam => ({ type: 'varchar', value });
  const parts: string[] = [];
  const params: QueryParam[] = [start];
  if (curatedDays.length > 0) {
    parts.push(`SELECT time, value FROM curated_readings
  WHERE device_id = ? AND metric = ? AND dt IN (${placeholders(curatedDays.length)}) AND time >= ? AND time < ? AND value IS NOT NULL`);
    params.push(device, name, ...curatedDays.map(day), start, end);
  }
  if (recentDays.length > 0) {
    // The hours of the first and last day outside the range are not read (the `hour` partition).
    const first = partitionOf(from);
    const last = partitionOf(to - 1);
    parts.push(`SELECT DISTINCT time, value FROM readings
  WHERE device_id = ? AND metric = ? AND dt IN (${placeholders(recentDays.length)})
    AND (dt > ? OR hour >= ?) AND (dt < ? OR hour <= ?) AND time >= ? AND time < ? AND value IS NOT NULL`);
    params.push(
      device,
      name,
      ...recentDays.map(day),
      day(first.dt),
      day(first.hour),
      day(last.dt),
      day(last.hour),
      start,
      end,
    );
  }
  return {
    sql: `SELECT CAST(floor(CAST(date_diff('millisecond', ?, time) AS DOUBLE) / ${width}) AS BIGINT) AS bucket,
  min(value) AS min, max(value) AS max, avg(value) AS avg, count(*) AS count
FROM (${parts.join('\nUNION ALL\n')}) AS points
GROUP BY 1
ORDER BY 1`,
    params,
  };
}

export interface SeriesApiDeps {
  /** Authenticates and throttles; the route needs the `read` scope. */
  readonly gate: Gate;
  readonly engine: PagedQueries;
  /** Which days are compacted (read from Parquet); without it every day is read from NDJSON. */
  readonly curatedDays?: CuratedDays;
  /** How long a request waits for a running query before answering 202 with a token. */
  readonly waitMs?: number;
  readonly now?: () => number;
}

/** A bucket as the API answers it: its start time, and numbers as numbers (Athena hands back text). */
function bucketOf(row: Record<string, unknown>, from: number, width: number) {
  const bucket = Number(row.bucket);
  return {
    time: new Date(from + bucket * width).toISOString(),
    min: Number(row.min),
    max: Number(row.max),
    avg: Number(row.avg),
    count: Number(row.count),
  };
}

export async function handleSeriesRequest(request: HttpRequest, deps: SeriesApiDeps): Promise<HttpResponse> {
  const admitted = await admitDeviceRead(request, SERIES_PATH, deps.gate);
  if ('statusCode' in admitted) return admitted;
  const { deviceId, params } = admitted;
  const metric = params.get('metric');
  if (metric === null || !METRIC_PATTERN.test(metric))
    return json(400, {
      error: 'invalid_parameter',
      message: 'metric is required: 1-256 characters without control characters',
    });
  const from = parseTime(params.get('from'), 'from');
  const to = parseTime(params.get('to'), 'to');
  if (typeof from === 'object') return json(400, { error: 'invalid_parameter', message: from.error });
  if (typeof to === 'object') return json(400, { error: 'invalid_parameter', message: to.error });
  const pointsText = params.get('points');
  const points = pointsText === null ? DEFAULT_POINTS : Number(pointsText);
  if (!/^\d{1,4}$/.test(pointsText ?? '1') || !Number.isInteger(points) || points < 1 || points > MAX_POINTS)
    return json(400, { error: 'invalid_parameter', message: `points must be 1 to ${MAX_POINTS}` });
  // A `next` carries the range its first page resolved (`to` defaults to now, which moves on).
  const resumed = /^(\d{1,15})~(\d{1,15})~([A-Za-z0-9_.=-]{1,8192})$/.exec(params.get('next') ?? '');
  if (params.get('next') !== null && !resumed)
    return json(400, { error: 'invalid_token', message: 'next is not a token this API gave' });
  const end = to ?? (resumed ? Number(resumed[2]) : (deps.now ?? Date.now)());
  const start = from ?? (resumed ? Number(resumed[1]) : end - DAY_MS);
  if (start >= end) return json(400, { error: 'invalid_parameter', message: 'from must be before to' });
  if (end - start > MAX_SERIES_DAYS * DAY_MS)
    return json(400, { error: 'invalid_parameter', message: `At most ${MAX_SERIES_DAYS} days per request` });
  const curated = deps.curatedDays ? await deps.curatedDays(daysOf(start, end)) : new Set<string>();
  const width = bucketWidthMs(start, end, points);
  const plan = seriesPlan({ deviceId, metric, from: start, to: end, points, curated });
  // DuckDB answers the buckets in one page; Athena in pages of up to 1,000 rows, and a
  // query still running answers 202: `next` resumes either.
  const token = resumed?.[3];
  let page: Awaited<ReturnType<PagedQueries['page']>>;
  try {
    page = await deps.engine.page(plan, token, { waitMs: deps.waitMs ?? 20_000, pageSize: MAX_POINTS });
  } catch (error) {
    if (error instanceof InvalidTokenError)
      return json(400, { error: 'invalid_token', message: error.message });
    throw error;
  }
  return json(page.running ? 202 : 200, {
    deviceId,
    metric,
    from: new Date(start).toISOString(),
    to: new Date(end).toISOString(),
    bucketMs: width,
    // The tables read: curated_readings for compacted days, readings for the others.
    sources: [
      ...new Set(daysOf(start, end).map((day) => (curated.has(day) ? 'curated_readings' : 'readings'))),
    ],
    buckets: page.rows.map((row) => bucketOf(row, start, width)),
    ...(page.running ? { running: true } : {}),
    ...(page.next === undefined ? {} : { next: `${start}~${end}~${page.next}` }),
    ...(page.bytesScanned === undefined ? {} : { bytesScanned: page.bytesScanned }),
  });
}
