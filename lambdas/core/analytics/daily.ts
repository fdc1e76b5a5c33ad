/**
 * The daily analytics job without AWS: for one day, compact `readings/` into Parquet
 * under `curated/readings/`, write the per device and metric aggregates (min, max,
 * avg, count, first and last time) as Parquet under `curated/daily_metrics/` and as CSV
 * under `reports/daily/`, each device's uptime under `curated/daily_uptime/`, and
 * refresh the QuickSight manifest. (The views are the stack's:
 * they exist from the first deployment.)
 * Idempotent: each output of the day is deleted before it is written again, so a day
 * can be re-run (late data) and gives the same result.
 *
 * The SQL is written once, in the dialect Athena (Trino) and DuckDB share, so the
 * local runtime and the tests run exactly what Athena runs.
 */

import type { RuntimeConfig } from '../config.ts';
import type { LakeStore } from '../ingest/ports.ts';
import { LAKE_PREFIXES } from '../lake/layout.ts';
import type { ColumnType } from '../lake/tables.ts';

/** A query engine: Athena in AWS, DuckDB locally. */
export interface QueryEngine {
  /** Runs a statement; resolves with its rows (as strings or JSON values) and the bytes it scanned. */
  run(sql: string): Promise<{ rows: Record<string, unknown>[]; bytesScanned: number }>;
  /**
   * Writes the rows of `select` under the lake key prefix: as Parquet, or as headerless
   * comma-separated text with each value written as it is, neither quoted nor escaped
   * (Athena's TEXTFILE does exactly that): the select makes its text fields RFC 4180
   * itself, with {@link csvText}.
   */
  unload(select: string, prefix: string, format: 'parquet' | 'csv', options?: UnloadOptions): Promise<void>;
}

/** How a Parquet output is laid out, where the engine lets the writer be told. */
export interface UnloadOptions {
  /**
   * Rows per Parquet row group. DuckDB honours it; Athena's UNLOAD has no such property
   * (its writer cuts row groups by size), so there it is ignored.
   */
  readonly rowGroupRows?: number;
}

/**
 * A text value as an RFC 4180 field: quoted, its quotes doubled, NULL an empty field.
 * In the SQL Athena and DuckDB share, so both write the same CSV (metric names may hold
 * commas and quotes; control characters are refused at ingest, so no line breaks).
 */
export function csvText(expression: string): string {
  return `COALESCE('"' || replace(CAST(${expression} AS VARCHAR), '"', '""') || '"', '')`;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** A `YYYY-MM-DD` day, checked: it goes into SQL and keys. */
export function checkDay(day: string): string {
  if (
    !DAY.test(day) ||
    Number.isNaN(Date.parse(`${day}T00:00:00Z`)) ||
    new Date(`${day}T00:00:00Z`).toISOString().slice(0, 10) !== day
  ) {
    throw new Error(`"${day}" is not a day; write YYYY-MM-DD`);
  }
  return day;
}

/**
 * The readings of a day, each (device, time, metric) once. The ingest path stores a
 * reading once, except when a write succeeded but its answer was lost (a timeout after
 * S3 took the object): the message is then retried in another batch and its readings
 * land twice under another key. Compaction keeps the first copy.
 */
function dedupedReadings(day: string): string {
  return `(SELECT *, row_number() OVER (PARTITION BY device_id, time, metric ORDER BY received_at, message_id) AS copy
  FROM readings WHERE dt = '${checkDay(day)}') AS once`;
}

/**
 * Rows per row group of the curated readings. Sorted by device, a device's day (2,880
 * rows at one reading a minute of two metrics) sits in one or two row groups, which a
 * `WHERE device_id = ...` picks by their min/max statistics and the rest are skipped.
 * `npm run bench -- chart`: 14 of the 308 row groups of 7 days of 1,000 devices, and
 * about 3.1 MB for one device's 7 days at 10,000 devices, footers included.
 */
export const CURATED_ROW_GROUP_ROWS = 65_536;

/**
 * The readings of a day, as the curated (Parquet) table holds them, sorted by device,
 * metric and time: a chart of one device reads the row groups whose device_id range
 * holds it (their statistics say which), not the estate's day; within a device and
 * metric, times step evenly (delta-encoded) and values drift (small dictionaries).
 * `npm run bench -- chart` (10,000 devices): one device's 7 days read 3.1 MB, where the
 * metric-first order this replaces read 195 MB (its row groups each held every device)
 * and the NDJSON 2.0 GB.
 */
export function curatedReadingsSelect(day: string): string {
  return `SELECT device_id, device_type, time, metric, value, value_str, value_bool, source, received_at
FROM ${dedupedReadings(day)}
WHERE copy = 1
ORDER BY device_id, metric, time`;
}

/** Per device and metric: min, max, avg, count, first and last time of the numeric values of a day. */
export function dailyMetricsSelect(day: string): string {
  return `SELECT device_id, metric, DATE '${checkDay(day)}' AS day,
  min(value) AS min, max(value) AS max, avg(value) AS avg, count(*) AS count,
  min(time) AS first_time, max(time) AS last_time
FROM ${dedupedReadings(day)}
WHERE copy = 1 AND value IS NOT NULL
GROUP BY device_id, metric`;
}

/**
 * The report rows (RFC 4180 CSV for QuickSight, which the manifest declares): the
 * aggregates and the day's range (max - min); text fields quoted, numbers as numbers.
 */
export function dailyReportSelect(day: string): string {
  return `SELECT ${csvText('device_id')} AS device_id, ${csvText('metric')} AS metric, ${csvText(`DATE '${checkDay(day)}'`)} AS day,
  min(value) AS min, max(value) AS max, max(value) - min(value) AS range, avg(value) AS avg, count(*) AS count,
  ${csvText('min(time)')} AS first_time, ${csvText('max(time)')} AS last_time
FROM ${dedupedReadings(day)}
WHERE copy = 1 AND value IS NOT NULL
GROUP BY device_id, metric
ORDER BY device_id, metric`;
}

/** Columns of the CSV reports, in order (they carry no header). */
export const REPORT_COLUMNS = [
  'device_id',
  'metric',
  'day',
  'min',
  'max',
  'range',
  'avg',
  'count',
  'first_time',
  'last_time',
];

/** The offline timeouts the uptime is measured by: `offline.after` and each type's `offlineAfter`. */
export type UptimeConfig = Pick<RuntimeConfig, 'offline' | 'deviceTypes'>;

/**
 * Days before the day whose readings tell how a device entered it. A device last heard
 * within them is observed from midnight (offline from midnight if its timeout had run
 * out by then); one silent longer is taken as gone, and counted again from its next
 * reading. Seven, so a device dead all week still shows in the estate's 7-day uptime.
 */
export const UPTIME_LOOKBACK_DAYS = 7;

const DAY_MS = 86_400_000;

/** `YYYY-MM-DD` of the day `offset` days after `day`. */
function dayPlus(day: string, offset: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + offset * DAY_MS).toISOString().slice(0, 10);
}

/**
 * Each device type's offline timeout in ms as a SQL expression over `device_type`:
 * a CASE of the configured types (each its own timeout, else the default), else the
 * default; NULL where none applies (such a device is never offline, as for the estate).
 */
export function timeoutSql(config: UptimeConfig): string {
  const ms = (value: number | undefined) =>
    value === undefined ? 'CAST(NULL AS BIGINT)' : `CAST(${Math.round(value)} AS BIGINT)`;
  const types = Object.keys(config.deviceTypes).sort();
  const fallback = ms(config.offline.afterMs);
  if (types.length === 0) return fallback;
  const arms = types.map(
    // The rule of the estate's offline check (`offlineTimeout`): the type's, else the default.
    (type) =>
      `WHEN '${type.replaceAll("'", "''")}' THEN ${ms(config.deviceTypes[type]?.offlineAfterMs ?? config.offline.afterMs)}`,
  );
  return `CASE device_type ${arms.join(' ')} ELSE ${fallback} END`;
}

/**
 * Each device's uptime for a day, and the estate's: the share of the time observed
 * that the device was not offline by its type's timeout. A device is offline from
 * `reading + timeout` until its next reading (or the end of the day); it is observed
 * from midnight when it was heard in the {@link UPTIME_LOOKBACK_DAYS} before (so one
 * silent since yesterday is offline from midnight, or from when its timeout ran out),
 * else from its first reading of the day. The estate row (`'*'`, `'*'`) weighs each
 * device by its observed time: total online time over total observed time. Times are
 * milliseconds from midnight (`date_diff`), so Athena and DuckDB do the same integer
 * arithmetic; GREATEST never sees a NULL (DuckDB skips NULLs there, Trino returns NULL).
 */
export function dailyUptimeSelect(day: string, config: UptimeConfig): string {
  checkDay(day);
  const from = dayPlus(day, -UPTIME_LOOKBACK_DAYS);
  const midnight = `TIMESTAMP '${day} 00:00:00'`;
  const end = `TIMESTAMP '${dayPlus(day, 1)} 00:00:00'`;
  const ms = (time: string) => `date_diff('millisecond', ${midnight}, ${time})`;
  const device = 'PARTITION BY device_id';
  // Nested selects, not WITH: UNLOAD's documented form wraps a SELECT. One scan of readings.
  const seen = `SELECT device_id, time, max(device_type) AS device_type
    FROM readings
    WHERE dt BETWEEN '${from}' AND '${day}' AND time >= TIMESTAMP '${from} 00:00:00' AND time < ${end}
    GROUP BY device_id, time`;
  const gaps = `SELECT device_id,
    first_value(device_type) OVER (${device} ORDER BY time DESC) AS device_type,
    ${ms(`min(time) OVER (${device})`)} AS first_ms,
    ${ms('time')} AS at_ms,
    ${ms(`COALESCE(lead(time) OVER (${device} ORDER BY time), ${end})`)} AS next_ms
  FROM (${seen}) AS seen`;
  const timed = `SELECT device_id, device_type, first_ms, at_ms, next_ms, ${timeoutSql(config)} AS timeout_ms
FROM (${gaps}) AS gaps`;
  const perDevice = `SELECT device_id AS dev_id, device_type AS dev_type,
  CAST(${DAY_MS} - GREATEST(min(first_ms), 0) AS BIGINT) AS observed_ms,
  CAST(sum(CASE WHEN timeout_ms IS NULL THEN 0 ELSE GREATEST(next_ms - GREATEST(at_ms + timeout_ms, 0), 0) END) AS BIGINT) AS offline_ms
FROM (${timed}) AS timed
GROUP BY device_id, device_type`;
  // One row a device, and the estate's (the empty grouping set), none when no device was heard.
  const estate = 'grouping(dev_id) = 1';
  return `SELECT CASE WHEN ${estate} THEN '*' ELSE dev_id END AS device_id,
  CASE WHEN ${estate} THEN '*' ELSE dev_type END AS device_type,
  CAST(sum(observed_ms) - sum(offline_ms) AS DOUBLE) * 100 / sum(observed_ms) AS uptime_pct,
  CAST(sum(offline_ms) AS BIGINT) AS offline_ms,
  CAST(sum(observed_ms) AS BIGINT) AS observed_ms
FROM (${perDevice}) AS per_device
GROUP BY GROUPING SETS ((dev_id, dev_type), ())
HAVING count(*) > 0`;
}

/** A view for QuickSight and analysts, with the columns it gives (the Glue catalog needs them). */
export interface LakeView {
  readonly name: string;
  readonly sql: string;
  readonly columns: readonly { readonly name: string; readonly type: ColumnType }[];
}

/**
 * Views for QuickSight and analysts: text values made one column; the daily range
 * ("max - min"); uptime over the last 30 days. On AWS they are Glue tables the stack creates, so they exist from the
 * first deployment; locally, DuckDB views.
 */
export const VIEWS: readonly LakeView[] = [
  {
    name: 'v_readings',
    sql: `SELECT device_id, device_type, time, metric, value,
  COALESCE(value_str, CAST(value_bool AS VARCHAR)) AS text_value, source, received_at, dt
FROM readings`,
    columns: [
      { name: 'device_id', type: 'string' },
      { name: 'device_type', type: 'string' },
      { name: 'time', type: 'timestamp' },
      { name: 'metric', type: 'string' },
      { name: 'value', type: 'double' },
      { name: 'text_value', type: 'string' },
      { name: 'source', type: 'string' },
      { name: 'received_at', type: 'timestamp' },
      { name: 'dt', type: 'string' },
    ],
  },
  {
    name: 'v_daily_metrics',
    sql: `SELECT device_id, metric, day, min, max, max - min AS range, avg, count, first_time, last_time, dt
FROM daily_metrics`,
    columns: [
      { name: 'device_id', type: 'string' },
      { name: 'metric', type: 'string' },
      { name: 'day', type: 'date' },
      { name: 'min', type: 'double' },
      { name: 'max', type: 'double' },
      { name: 'range', type: 'double' },
      { name: 'avg', type: 'double' },
      { name: 'count', type: 'bigint' },
      { name: 'first_time', type: 'timestamp' },
      { name: 'last_time', type: 'timestamp' },
      { name: 'dt', type: 'string' },
    ],
  },
  {
    // The last 30 days (partition projection reads only those): per device and day, and
    // the estate's ('*') row; `day` typed, for QuickSight's time axis.
    name: 'v_uptime',
    sql: `SELECT device_id, device_type, CAST(dt AS DATE) AS day, uptime_pct, offline_ms, observed_ms, dt
FROM daily_uptime
WHERE dt >= CAST(current_date - INTERVAL '30' DAY AS VARCHAR)`,
    columns: [
      { name: 'device_id', type: 'string' },
      { name: 'device_type', type: 'string' },
      { name: 'day', type: 'date' },
      { name: 'uptime_pct', type: 'double' },
      { name: 'offline_ms', type: 'bigint' },
      { name: 'observed_ms', type: 'bigint' },
      { name: 'dt', type: 'string' },
    ],
  },
];

/** Saved queries for the common questions (named queries in the Athena workgroup). */
export const NAMED_QUERIES: readonly {
  readonly name: string;
  readonly description: string;
  readonly sql: string;
}[] = [
  {
    name: 'latest-value-per-device',
    description: 'Latest value of each metric of each device, today',
    sql: `SELECT device_id, metric, max_by(value, time) AS value, max(time) AS time
FROM readings
WHERE dt = CAST(current_date AS VARCHAR)
GROUP BY device_id, metric
ORDER BY device_id, metric`,
  },
  {
    name: 'daily-min-max-per-device',
    description: 'Daily min, max and range of each metric per device, last 7 days',
    sql: `SELECT device_id, metric, day, min, max, range, avg, count
FROM v_daily_metrics
WHERE dt >= CAST(current_date - INTERVAL '7' DAY AS VARCHAR)
ORDER BY device_id, metric, day`,
  },
  {
    name: 'devices-silent-since',
    description: 'Devices whose last reading in the last 30 days is older than a day',
    sql: `SELECT device_id, max(time) AS last_seen
FROM readings
WHERE dt >= CAST(current_date - INTERVAL '30' DAY AS VARCHAR)
GROUP BY device_id
HAVING max(time) < current_timestamp - INTERVAL '1' DAY
ORDER BY last_seen`,
  },
  {
    name: 'readings-of-one-device',
    description: 'Readings of one device in a time range (run with the device id as the parameter)',
    sql: `SELECT time, metric, value, value_str, value_bool
FROM readings
WHERE device_id = ? AND dt BETWEEN CAST(current_date - INTERVAL '1' DAY AS VARCHAR) AND CAST(current_date AS VARCHAR)
ORDER BY time, metric`,
  },
  {
    name: 'quarantine-reasons',
    description: 'Why messages were quarantined, by count, last 7 days',
    sql: `SELECT reason_code, count(*) AS messages, min(reason) AS example
FROM quarantine
WHERE dt >= CAST(current_date - INTERVAL '7' DAY AS VARCHAR)
GROUP BY reason_code
ORDER BY messages DESC`,
  },
];

/** QuickSight reads at most this many files through one S3 manifest. */
export const QUICKSIGHT_MAX_FILES = 1000;

export interface QuickSightManifest {
  readonly fileLocations: readonly { readonly URIPrefixes: readonly string[] }[];
  readonly globalUploadSettings: {
    readonly format: 'CSV';
    readonly delimiter: ',';
    readonly textqualifier: '"';
    readonly containsHeader: 'false';
  };
}

/**
 * The manifest of the newest report days whose files fit QuickSight's limit, from the
 * keys under `reports/daily/`. One URI prefix per day, newest first.
 */
export function quicksightManifest(
  bucket: string,
  reportKeys: readonly string[],
  maxFiles = QUICKSIGHT_MAX_FILES,
): QuickSightManifest {
  const files = new Map<string, number>();
  for (const key of reportKeys) {
    const day = /^reports\/daily\/dt=(\d{4}-\d{2}-\d{2})\//.exec(key)?.[1];
    if (day) files.set(day, (files.get(day) ?? 0) + 1);
  }
  const prefixes: string[] = [];
  let total = 0;
  for (const day of [...files.keys()].sort().reverse()) {
    const count = files.get(day) ?? 0;
    if (total + count > maxFiles) break;
    total += count;
    prefixes.push(`s3://${bucket}/${LAKE_PREFIXES.reports}daily/dt=${day}/`);
  }
  return {
    fileLocations: [{ URIPrefixes: prefixes }],
    globalUploadSettings: { format: 'CSV', delimiter: ',', textqualifier: '"', containsHeader: 'false' },
  };
}

export interface DailyJobDeps {
  readonly engine: QueryEngine;
  readonly lake: LakeStore;
  /** Bucket name, for the manifest's S3 URIs. */
  readonly bucket: string;
  /**
   * The offline timeouts uptime is measured by (the run-time config's `offline` and
   * `deviceTypes`).
   *
   * @default none: every device counts as never offline, as the estate treats it then
   */
  readonly config?: UptimeConfig;
  readonly log?: (line: string) => void;
}

export interface DailyJobReport {
  readonly day: string;
  /** Days listed in the QuickSight manifest. */
  readonly reportDays: number;
}

const NO_TIMEOUTS: UptimeConfig = { offline: { severity: 'warning' }, deviceTypes: {} };

/** Runs the daily job for one day (re-runnable). */
export async function runDailyJob(day: string, deps: DailyJobDeps): Promise<DailyJobReport> {
  checkDay(day);
  const outputs = [
    {
      prefix: `${LAKE_PREFIXES.curated}dt=${day}/`,
      select: curatedReadingsSelect(day),
      format: 'parquet' as const,
      options: { rowGroupRows: CURATED_ROW_GROUP_ROWS },
    },
    {
      prefix: `${LAKE_PREFIXES.dailyMetrics}dt=${day}/`,
      select: dailyMetricsSelect(day),
      format: 'parquet' as const,
    },
    {
      prefix: `${LAKE_PREFIXES.reports}daily/dt=${day}/`,
      select: dailyReportSelect(day),
      format: 'csv' as const,
    },
    {
      prefix: `${LAKE_PREFIXES.dailyUptime}dt=${day}/`,
      select: dailyUptimeSelect(day, deps.config ?? NO_TIMEOUTS),
      format: 'parquet' as const,
    },
  ];
  for (const output of outputs) {
    // UNLOAD writes only to an empty location: what an earlier run wrote goes first.
    for (const key of await deps.lake.list(output.prefix)) await deps.lake.delete(key);
    await deps.engine.unload(output.select, output.prefix, output.format, output.options);
    deps.log?.(`daily ${day}: wrote ${output.prefix}`);
  }
  const manifest = quicksightManifest(deps.bucket, await deps.lake.list(`${LAKE_PREFIXES.reports}daily/`));
  await deps.lake.put(
    `${LAKE_PREFIXES.reports}manifest.json`,
    Buffer.from(JSON.stringify(manifest, null, 2)),
    'application/json',
  );
  return { day, reportDays: manifest.fileLocations[0]?.URIPrefixes.length ?? 0 };
}

/** Athena's us-east-1 price: $ per TB scanned, with a 10 MB minimum per query (a test keeps these equal to aws-prices.json). */
export const ATHENA_PRICE = { perTbScanned: 5, minimumBytesPerQuery: 10 * 1024 * 1024 } as const;

/** What a query that scanned this many bytes costs. */
export function athenaCost(bytesScanned: number): number {
  return (Math.max(bytesScanned, ATHENA_PRICE.minimumBytesPerQuery) / 1024 ** 4) * ATHENA_PRICE.perTbScanned;
}

/** The day before `now`, in UTC: what the schedule compacts. */
export function yesterday(now: number): string {
  return new Date(now - 86_400_000).toISOString().slice(0, 10);
}
