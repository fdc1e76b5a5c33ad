import { readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ATHENA_PRICE,
  athenaCost,
  checkDay,
  dailyMetricsSelect,
  NAMED_QUERIES,
  quicksightManifest,
  REPORT_COLUMNS,
  runDailyJob,
  VIEWS,
} from '../../../lambdas/core/analytics/daily.ts';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { decodeMessage } from '../../../lambdas/core/ingest/decode.ts';
import { writeBatch } from '../../../lambdas/core/ingest/write.ts';
import { duckdbEngine } from '../../../local/adapters/duckdb.ts';
import { folderStore } from '../../../local/adapters/folder-store.ts';
import { PRICES_FILE } from '../../../tools/cost/report.ts';
import { ingestOf, mqttMessage } from '../../support/fakes.ts';

const DAY = '2026-11-24';

/** RFC 4180: fields separated by commas, optionally quoted, quotes doubled inside quotes. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else if (c !== '\r') field += c;
  }
  if (field || row.length) rows.push([...row, field]);
  return rows;
}
const at = (hhmm: string) => Date.parse(`${DAY}T${hhmm}:00Z`);

describe('daily job on a local lake built from known readings (the SQL Athena runs, run by DuckDB)', () => {
  let dir: string;
  let instance: DuckDBInstance;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'daily-'));
    const lake = folderStore(join(dir, 'lake'));
    const config = validateRuntimeConfig({});
    const now = at('23:59') + 60_000;
    const messages = [
      mqttMessage('a1', { $ts: at('00:10'), temp: 20, door: true, fw: '1.2' }, 'dt/thermo/dev-a', now),
      mqttMessage('a2', { $ts: at('12:00'), temp: 26 }, 'dt/thermo/dev-a', now),
      mqttMessage('a3', { $ts: at('23:50'), temp: 23 }, 'dt/thermo/dev-a', now),
      mqttMessage('b1', { $ts: at('08:00'), temp: -5, battery: 3.6 }, 'dt/thermo/dev-b', now),
      mqttMessage('b2', { $ts: at('09:00'), temp: -7, battery: 3.5 }, 'dt/thermo/dev-b', now),
      // A metric name with a comma and a quote: the CSV report must keep its columns.
      mqttMessage('b3', { $ts: at('10:00'), 'flow,"in"': 4 }, 'dt/thermo/dev-b', now),
      // Another day: not part of the aggregate.
      mqttMessage('c1', { $ts: at('00:00') - 1000, temp: 99 }, 'dt/thermo/dev-a', now),
    ];
    await writeBatch(
      messages.map((m) =>
        decodeMessage(
          m,
          ingestOf(config, () => now),
        ),
      ),
      { lake },
    );
    instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    const engine = await duckdbEngine(connection, join(dir, 'lake'));
    await runDailyJob(DAY, { engine, lake, bucket: 'lake-bucket' });
    // Re-running a day replaces its outputs.
    await runDailyJob(DAY, { engine, lake, bucket: 'lake-bucket' });
  });
  afterAll(() => instance?.closeSync());

  const query = async (sql: string) => {
    const connection = await instance.connect();
    const engine = await duckdbEngine(connection, join(dir, 'lake'));
    return (await engine.run(sql)).rows;
  };

  it('writes the daily aggregates with the expected numbers', async () => {
    const rows = await query(
      'SELECT device_id, metric, CAST(day AS VARCHAR) AS day, min, max, avg, count::INT AS count, CAST(first_time AS VARCHAR) AS first_time, CAST(last_time AS VARCHAR) AS last_time FROM daily_metrics ORDER BY 1, 2',
    );
    expect(rows).toEqual([
      {
        device_id: 'dev-a',
        metric: 'temp',
        day: DAY,
        min: 20,
        max: 26,
        avg: 23,
        count: 3,
        first_time: `${DAY} 00:10:00`,
        last_time: `${DAY} 23:50:00`,
      },
      {
        device_id: 'dev-b',
        metric: 'battery',
        day: DAY,
        min: 3.5,
        max: 3.6,
        avg: 3.55,
        count: 2,
        first_time: `${DAY} 08:00:00`,
        last_time: `${DAY} 09:00:00`,
      },
      {
        device_id: 'dev-b',
        metric: 'flow,"in"',
        day: DAY,
        min: 4,
        max: 4,
        avg: 4,
        count: 1,
        first_time: `${DAY} 10:00:00`,
        last_time: `${DAY} 10:00:00`,
      },
      {
        device_id: 'dev-b',
        metric: 'temp',
        day: DAY,
        min: -7,
        max: -5,
        avg: -6,
        count: 2,
        first_time: `${DAY} 08:00:00`,
        last_time: `${DAY} 09:00:00`,
      },
    ]);
  });

  it('compacts the day into Parquet with every row, text and boolean values included, once after a re-run', async () => {
    const rows = await query(
      `SELECT metric, count(*)::INT AS n FROM curated_readings WHERE dt = '${DAY}' GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual([
      { metric: 'battery', n: 2 },
      { metric: 'door', n: 1 },
      { metric: 'flow,"in"', n: 1 },
      { metric: 'fw', n: 1 },
      { metric: 'temp', n: 5 },
    ]);
  });

  it('writes the report as RFC 4180 CSV with the daily range, and a QuickSight manifest pointing at it', async () => {
    const csv = await readFile(join(dir, 'lake', 'reports', 'daily', `dt=${DAY}`, 'data.csv'), 'utf8');
    expect(csv.trim().split('\n')[0]).toBe(
      `"dev-a","temp","${DAY}",20.0,26.0,6.0,23.0,3,"${DAY} 00:10:00","${DAY} 23:50:00"`,
    );
    // Parsed as QuickSight reads it (comma, quote qualifier): every row has its ten columns.
    const rows = parseCsv(csv);
    expect(rows.every((row) => row.length === REPORT_COLUMNS.length)).toBe(true);
    expect(rows.find((row) => row[1] === 'flow,"in"')).toEqual([
      'dev-b',
      'flow,"in"',
      DAY,
      '4.0',
      '4.0',
      '0.0',
      '4.0',
      '1',
      `${DAY} 10:00:00`,
      `${DAY} 10:00:00`,
    ]);
    const manifest = JSON.parse(await readFile(join(dir, 'lake', 'reports', 'manifest.json'), 'utf8'));
    expect(manifest).toEqual({
      fileLocations: [{ URIPrefixes: [`s3://lake-bucket/reports/daily/dt=${DAY}/`] }],
      globalUploadSettings: { format: 'CSV', delimiter: ',', textqualifier: '"', containsHeader: 'false' },
    });
  });

  it('gives each view exactly the columns the Glue catalog declares for it', async () => {
    const types: Record<string, string> = {
      VARCHAR: 'string',
      DOUBLE: 'double',
      TIMESTAMP: 'timestamp',
      DATE: 'date',
      BIGINT: 'bigint',
      BOOLEAN: 'boolean',
    };
    for (const view of VIEWS) {
      const described = await query(`DESCRIBE SELECT * FROM ${view.name}`);
      expect(
        described.map((c) => ({ name: c.column_name, type: types[String(c.column_type)] ?? c.column_type })),
        view.name,
      ).toEqual(view.columns);
    }
  });

  it('gives analysts the views Athena has', async () => {
    const rows = await query(`SELECT device_id, range FROM v_daily_metrics WHERE metric = 'temp' ORDER BY 1`);
    expect(rows).toEqual([
      { device_id: 'dev-a', range: 6 },
      { device_id: 'dev-b', range: 2 },
    ]);
    const text = await query(
      `SELECT text_value FROM v_readings WHERE metric IN ('door', 'fw') ORDER BY metric`,
    );
    expect(text).toEqual([{ text_value: 'true' }, { text_value: '1.2' }]);
  });

  it('runs the named queries that need no parameter on DuckDB too', async () => {
    for (const named of NAMED_QUERIES.filter((q) => !q.sql.includes('?'))) {
      await expect(query(named.sql), named.name).resolves.toBeInstanceOf(Array);
    }
  });
});

describe('analytics SQL and manifest', () => {
  it('refuses a day that is not a day before it reaches SQL', () => {
    for (const bad of ["2026-11-24' OR 1=1 --", '2026-02-30', '24.11.2026', '']) {
      expect(() => dailyMetricsSelect(bad)).toThrow('is not a day; write YYYY-MM-DD');
    }
    expect(checkDay('2028-02-29')).toBe('2028-02-29');
  });

  it("keeps the manifest within QuickSight's file limit, newest days first", () => {
    const keys = ['2026-11-01', '2026-11-02', '2026-11-03'].flatMap((day) =>
      Array.from({ length: 400 }, (_, i) => `reports/daily/dt=${day}/part-${i}.csv`),
    );
    const manifest = quicksightManifest('b', [...keys, 'reports/manifest.json']);
    expect(manifest.fileLocations[0]?.URIPrefixes).toEqual([
      's3://b/reports/daily/dt=2026-11-03/',
      's3://b/reports/daily/dt=2026-11-02/',
    ]);
  });

  it('prices Athena as aws-prices.json does', () => {
    const prices = JSON.parse(readFileSync(PRICES_FILE, 'utf8'));
    expect(ATHENA_PRICE).toEqual(prices.athena);
    expect(athenaCost(1024 ** 4)).toBe(5);
    expect(athenaCost(1)).toBeCloseTo((10 * 1024 * 1024 * 5) / 1024 ** 4);
  });

  it('defines views over the Glue tables', () => {
    expect(VIEWS.map((v) => v.name)).toEqual(['v_readings', 'v_daily_metrics']);
  });
});
