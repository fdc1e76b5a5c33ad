/**
 * The curated readings' layout: sorted by device (then metric and time) in row groups of
 * CURATED_ROW_GROUP_ROWS, so that a query of one device reads only the row groups whose
 * device_id statistics hold it. Asserted on the file the daily job writes, with DuckDB's
 * parquet_metadata, and with the plan the engine runs.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CURATED_ROW_GROUP_ROWS,
  curatedReadingsSelect,
  runDailyJob,
} from '../../../lambdas/core/analytics/daily.ts';
import { readingsKey } from '../../../lambdas/core/lake/layout.ts';
import { toNdjsonRows } from '../../../lambdas/core/reading.ts';
import { duckdbEngine } from '../../../local/adapters/duckdb.ts';
import { folderStore } from '../../../local/adapters/folder-store.ts';

const DAY = '2026-11-24';
const DEVICES = 50;
// 50 devices, a reading a minute of two metrics: 144,000 rows, three row groups.
const ROWS = DEVICES * 1440 * 2;

describe('curated readings layout', () => {
  let instance: DuckDBInstance;
  let connection: DuckDBConnection;
  let file: string;

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'curated-layout-'));
    const lakeDir = join(dir, 'lake');
    const lake = folderStore(lakeDir);
    const start = Date.parse(`${DAY}T00:00:00Z`);
    // As the ingest path writes them: per hour, objects holding every device's readings,
    // devices interleaved (the order compaction must undo).
    for (let hour = 0; hour < 24; hour++) {
      const lines: string[] = [];
      for (let minute = 0; minute < 60; minute++) {
        for (let d = DEVICES - 1; d >= 0; d--) {
          const time = start + hour * 3_600_000 + minute * 60_000 + d * 100;
          lines.push(
            ...toNdjsonRows({
              deviceId: `dev-${String(d).padStart(3, '0')}`,
              deviceType: 'thermo',
              time,
              receivedAt: time + 250,
              source: 'mqtt',
              messageId: `${d}-${hour}-${minute}`,
              metrics: { temp: 20 + ((d + minute) % 7), battery: 3.6 - minute * 0.001 },
              key: `ts:${time}`,
            }),
          );
        }
      }
      await lake.put(
        readingsKey(start + hour * 3_600_000, `h${hour}`),
        gzipSync(`${lines.join('\n')}\n`),
        'application/x-ndjson',
        'gzip',
      );
    }
    instance = await DuckDBInstance.create(':memory:');
    connection = await instance.connect();
    await runDailyJob(DAY, { engine: await duckdbEngine(connection, lakeDir), lake, bucket: 'lake' });
    file = join(lakeDir, 'curated', 'readings', `dt=${DAY}`, 'data.parquet');
  }, 60_000);
  afterAll(() => {
    connection?.closeSync();
    instance?.closeSync();
  });

  const rows = async (sql: string) => (await connection.runAndReadAll(sql)).getRowObjectsJson();

  it('sorts the day by device, metric and time', async () => {
    expect(curatedReadingsSelect(DAY)).toMatch(/ORDER BY device_id, metric, time\s*$/);
    const [order] = await rows(`SELECT count(*)::INTEGER AS n,
        count(*) FILTER (WHERE prev_device IS NOT NULL AND (device_id, metric, time) < (prev_device, prev_metric, prev_time))::INTEGER AS out_of_order
      FROM (SELECT device_id, metric, time,
          lag(device_id) OVER (ORDER BY file_row_number) AS prev_device,
          lag(metric) OVER (ORDER BY file_row_number) AS prev_metric,
          lag(time) OVER (ORDER BY file_row_number) AS prev_time
        FROM read_parquet('${file}', file_row_number = true))`);
    expect(order).toEqual({ n: ROWS, out_of_order: 0 });
  });

  it("cuts row groups whose device_id ranges do not overlap, so one device's query reads one or two", async () => {
    const groups = await rows(`SELECT row_group_id::INTEGER AS id, row_group_num_rows::INTEGER AS n,
        stats_min_value AS lo, stats_max_value AS hi
      FROM parquet_metadata('${file}') WHERE path_in_schema = 'device_id' ORDER BY row_group_id`);
    expect(groups.map((g) => g.n)).toEqual([
      CURATED_ROW_GROUP_ROWS,
      CURATED_ROW_GROUP_ROWS,
      ROWS - 2 * CURATED_ROW_GROUP_ROWS,
    ]);
    for (let i = 1; i < groups.length; i++)
      expect(String(groups[i - 1]?.hi) <= String(groups[i]?.lo)).toBe(true);
    // The row groups a `WHERE device_id = ...` must read, by their statistics.
    const holding = (device: string) =>
      groups.filter((g) => String(g.lo) <= device && device <= String(g.hi)).map((g) => g.id);
    expect(holding('dev-000')).toEqual([0]);
    expect(holding('dev-049')).toEqual([2]);
    for (let d = 0; d < DEVICES; d++)
      expect(holding(`dev-${String(d).padStart(3, '0')}`).length).toBeLessThanOrEqual(2);
  });

  it("reads only the device's rows through the curated_readings view (the engine prunes the rest)", async () => {
    const [count] = await rows(
      `SELECT count(*)::INTEGER AS n, min(time)::VARCHAR AS first FROM curated_readings WHERE device_id = 'dev-000' AND dt = '${DAY}'`,
    );
    expect(count).toEqual({ n: 2880, first: `${DAY} 00:00:00` });
    // DuckDB's plan for the one-device query: the filter is pushed into the Parquet scan,
    // where row groups are skipped by their min/max statistics.
    const plan = await rows(`EXPLAIN SELECT value FROM read_parquet('${file}') WHERE device_id = 'dev-000'`);
    const text = plan.map((r) => String(r.explain_value)).join('\n');
    expect(text).toMatch(/READ_PARQUET/);
    expect(text).toMatch(/Filters:[\s\S]*device_id='dev-000'/);
  });
});
