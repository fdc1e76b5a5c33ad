/**
 * `chart.*`: what one device's 7-day chart reads, on the old path (the NDJSON.gz
 * `readings` of those days, which Athena reads whole: every device's objects) and on the
 * series route's (the curated Parquet sorted by device, read by row groups whose
 * device_id statistics hold it), plus the curated Parquet as it was sorted before
 * (metric, time, device: every row group holds every device).
 *
 * The lake is generated with DuckDB in the lake's layout (`readings/dt=/hour=/`, the
 * columns and time format the ingest path writes) and compacted by the daily job, at
 * `CHART_DEVICES` devices (1,000 by default) x 7 days, a reading a minute of two metrics.
 * Scaled to 10,000 devices: the NDJSON bytes grow with the devices; a device's row groups
 * stay the same size (the row group holds a fixed number of rows, the device's day sits
 * in one or two), and the Parquet footers (read once per file) grow with the row groups.
 * Bytes read are what an engine that skips row groups by their statistics reads: the
 * column chunks the query uses, of the row groups that may hold the device, and each
 * file's footer. Milliseconds are DuckDB's, locally (Athena adds its own start-up).
 */
import { readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { athenaCost, runDailyJob } from '../lambdas/core/analytics/daily.ts';
import type { QueryPlan } from '../lambdas/core/api/query.ts';
import { readingsPlan } from '../lambdas/core/api/query.ts';
import { daysOf, seriesPlan } from '../lambdas/core/api/series.ts';
import { duckdbEngine, duckdbPagedQueries } from '../local/adapters/duckdb.ts';
import { folderStore } from '../local/adapters/folder-store.ts';
import type { BenchResult } from './types.ts';

const DEVICES = Number(process.env.CHART_DEVICES ?? 1000);
const TARGET_DEVICES = 10_000;
const DAYS = 7;
const FIRST = Date.parse('2026-11-18T00:00:00Z');
const DEVICE = `dev-${String(Math.floor(DEVICES / 2)).padStart(5, '0')}`;
const METRIC = 'temp';
/** Columns the series plan reads from the curated Parquet (dt is the path's). */
const SERIES_COLUMNS = ['device_id', 'metric', 'time', 'value'];

async function generate(connection: DuckDBConnection, lakeDir: string): Promise<void> {
  for (let day = 0; day < DAYS; day++) {
    const dayStart = FIRST + day * 86_400_000;
    const dt = new Date(dayStart).toISOString().slice(0, 10);
    for (let hour = 0; hour < 24; hour++) {
      const dir = join(lakeDir, 'readings', `dt=${dt}`, `hour=${String(hour).padStart(2, '0')}`);
      await mkdir(dir, { recursive: true });
      const minute0 = day * 1440 + hour * 60;
      await connection.run(`COPY (
        SELECT printf('dev-%05d', d) AS device_id, 'thermo' AS device_type,
          strftime(epoch_ms(${FIRST} + m * 60000 + (d % 60) * 1000), '%Y-%m-%d %H:%M:%S.%g') AS time,
          metric,
          CASE WHEN metric = 'temp' THEN round(20 + 5 * sin(m / 229 + d), 2) ELSE round(3.6 - m * 0.00002 - d * 0.0001, 3) END AS value,
          NULL::VARCHAR AS value_str, NULL::BOOLEAN AS value_bool, 'mqtt' AS source,
          strftime(epoch_ms(${FIRST} + m * 60000 + (d % 60) * 1000 + 250), '%Y-%m-%d %H:%M:%S.%g') AS received_at,
          printf('%d-%d-0b7c6a1e-9f2d-4d6e-8a8b-3c5e2f1a9d%02d', d, m, d % 100) AS message_id
        FROM range(${minute0}, ${minute0 + 60}) u(m), range(${DEVICES}) t(d), (VALUES ('temp'), ('battery')) v(metric)
        ORDER BY m, d, metric
      ) TO '${join(dir, 'batch.ndjson.gz')}' (FORMAT JSON, COMPRESSION GZIP)`);
    }
  }
}

function bytesUnder(dir: string): number {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => statSync(join(dir, f)))
    .filter((s) => s.isFile())
    .reduce((n, s) => n + s.size, 0);
}

/** Bytes of the row groups that may hold the device and metric (their statistics), for the columns read; and the footers. */
async function parquetBytes(
  connection: DuckDBConnection,
  files: readonly string[],
): Promise<{ groups: number; footers: number; rowGroupsRead: number; rowGroups: number }> {
  let groups = 0;
  let footers = 0;
  let rowGroupsRead = 0;
  let rowGroups = 0;
  for (const file of files) {
    const [row] = (
      await connection.runAndReadAll(`WITH m AS (SELECT * FROM parquet_metadata('${file}')),
        holding AS (SELECT row_group_id FROM m WHERE path_in_schema = 'device_id'
            AND stats_min_value <= '${DEVICE}' AND stats_max_value >= '${DEVICE}'
          INTERSECT SELECT row_group_id FROM m WHERE path_in_schema = 'metric'
            AND stats_min_value <= '${METRIC}' AND stats_max_value >= '${METRIC}')
      SELECT (SELECT sum(total_compressed_size) FROM m WHERE row_group_id IN (SELECT row_group_id FROM holding)
          AND path_in_schema IN (${SERIES_COLUMNS.map((c) => `'${c}'`).join(', ')}))::BIGINT AS groups,
        (SELECT count(*) FROM holding)::BIGINT AS read,
        (SELECT count(DISTINCT row_group_id) FROM m)::BIGINT AS all_groups,
        (SELECT footer_size FROM parquet_file_metadata('${file}'))::BIGINT AS footer`)
    ).getRowObjectsJson();
    groups += Number(row?.groups ?? 0);
    footers += Number(row?.footer ?? 0);
    rowGroupsRead += Number(row?.read ?? 0);
    rowGroups += Number(row?.all_groups ?? 0);
  }
  return { groups, footers, rowGroupsRead, rowGroups };
}

/** Median milliseconds of running the plan through the local query engine. */
async function timePlan(instance: DuckDBInstance, lakeDir: string, plan: QueryPlan): Promise<number> {
  const engine = duckdbPagedQueries(() => instance.connect(), lakeDir);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const began = performance.now();
    await engine.page(plan, undefined, { waitMs: 60_000, pageSize: 100_000 });
    times.push(performance.now() - began);
  }
  return times.sort((a, b) => a - b)[2] ?? 0;
}

export async function run(): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-chart-'));
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const lakeDir = join(dir, 'lake');
    const lake = folderStore(lakeDir);
    await generate(connection, lakeDir);
    const from = FIRST;
    const to = FIRST + DAYS * 86_400_000;
    const days = daysOf(from, to);
    const ndjsonBytes = days.reduce((n, day) => n + bytesUnder(join(lakeDir, 'readings', `dt=${day}`)), 0);
    const oldMs = await timePlan(instance, lakeDir, readingsPlan(DEVICE, from, to, METRIC, 100_000));
    const engine = await duckdbEngine(connection, lakeDir);
    for (const day of days) await runDailyJob(day, { engine, lake, bucket: 'lake' });
    const files = days.map((day) => join(lakeDir, 'curated', 'readings', `dt=${day}`, 'data.parquet'));
    const curated = await parquetBytes(connection, files);
    const plan = seriesPlan({
      deviceId: DEVICE,
      metric: METRIC,
      from,
      to,
      points: 2000,
      curated: new Set(days),
    });
    const newMs = await timePlan(instance, lakeDir, plan);
    // The order the curated Parquet had before: metric, time, device (snappy, V1, default row groups).
    const before: string[] = [];
    for (const day of days) {
      const file = join(dir, `before-${day}.parquet`);
      await connection.run(
        `COPY (SELECT * EXCLUDE (dt) FROM curated_readings WHERE dt = '${day}' ORDER BY metric, time, device_id) TO '${file}' (FORMAT PARQUET, COMPRESSION 'snappy')`,
      );
      before.push(file);
    }
    const metricFirst = await parquetBytes(connection, before);

    const scale = TARGET_DEVICES / DEVICES;
    const oldAt10k = ndjsonBytes * scale;
    const newAt10k = curated.groups + curated.footers * scale;
    const metricFirstAt10k = (metricFirst.groups + metricFirst.footers) * scale;
    console.log(
      `chart: ${DEVICES} devices x ${DAYS} days (${DEVICE}, temp): NDJSON ${ndjsonBytes} B in ${oldMs.toFixed(0)} ms; ` +
        `curated by device ${curated.groups} B of ${curated.rowGroupsRead}/${curated.rowGroups} row groups + ${curated.footers} B footers in ${newMs.toFixed(0)} ms; ` +
        `curated metric-first ${metricFirst.groups} B of ${metricFirst.rowGroupsRead}/${metricFirst.rowGroups} row groups. ` +
        `At ${TARGET_DEVICES}: ${oldAt10k.toFixed(0)} B ($${athenaCost(oldAt10k).toFixed(6)}) vs ${newAt10k.toFixed(0)} B ($${athenaCost(newAt10k).toFixed(6)}) vs metric-first ${metricFirstAt10k.toFixed(0)} B`,
    );
    return [
      {
        name: 'chart.bytes_per_view',
        value: Math.round(newAt10k),
        unit: `bytes read, one device 7 days at ${TARGET_DEVICES} devices (curated by device)`,
        baseline: Math.round(oldAt10k),
        ratio: newAt10k / oldAt10k,
        target: '<= 0.01 (about one device of the estate)',
        met: newAt10k / oldAt10k <= 0.01,
      },
      {
        name: 'chart.bytes_vs_metric_first',
        value: Math.round(newAt10k),
        unit: 'bytes read, curated by device vs by metric first',
        baseline: Math.round(metricFirstAt10k),
        ratio: newAt10k / metricFirstAt10k,
        target: 'none (the sort order chosen by it)',
        met: true,
      },
      {
        name: 'chart.ms_per_view',
        value: Math.round(newMs),
        unit: `ms, DuckDB, ${DEVICES} devices (series plan vs readings plan)`,
        baseline: Math.round(oldMs),
        ratio: newMs / oldMs,
        target: 'none (local latency)',
        met: true,
      },
      {
        name: 'chart.cost_per_view',
        value: athenaCost(newAt10k),
        unit: `$ per chart view at ${TARGET_DEVICES} devices (Athena, 10 MB minimum)`,
        baseline: athenaCost(oldAt10k),
        ratio: athenaCost(newAt10k) / athenaCost(oldAt10k),
        target: 'none (from the bytes above)',
        met: true,
      },
    ];
  } finally {
    connection.closeSync();
    instance.closeSync();
    await rm(dir, { recursive: true, force: true });
  }
}
