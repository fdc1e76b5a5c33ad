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
  dailyUptimeSelect,
  NAMED_QUERIES,
  quicksightManifest,
  REPORT_COLUMNS,
  runDailyJob,
  timeoutSql,
  UPTIME_LOOKBACK_DAYS,
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
    expect(VIEWS.map((v) => v.name)).toEqual(['v_readings', 'v_daily_metrics', 'v_uptime']);
  });
});

describe('daily uptime (the SQL Athena runs, run by DuckDB over known readings with known gaps)', () => {
  const HOUR = 3_600_000;
  const DAY_MS = 24 * HOUR;
  const MIN = 60_000;
  const midnight = Date.parse(`${DAY}T00:00:00Z`);
  // 30 minutes by default; trackers 2 hours.
  const config = validateRuntimeConfig({
    offline: { after: '30m' },
    deviceTypes: { tracker: { offlineAfter: '2h' } },
  });
  const every = (from: number, to: number, step: number) =>
    Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);
  /** Readings of one device: one message per time, received a minute later. */
  const device = (type: string, id: string, times: readonly number[]) =>
    times.map((t, i) => ({ id: `${id}-${i}`, type, device: id, t }));
  const fleet = [
    // Every 20 minutes from yesterday 23:40 to 23:40, timeout 30 min: never offline.
    ...device('thermo', 'always-on', every(midnight - 20 * MIN, midnight + DAY_MS - 20 * MIN, 20 * MIN)),
    // The same, but silent from 08:00 to 14:30: offline 08:30 to 14:30, 6 h past its timeout.
    ...device('thermo', 'gap', [
      ...every(midnight - 20 * MIN, midnight + 8 * HOUR, 20 * MIN),
      ...every(midnight + 14.5 * HOUR, midnight + DAY_MS - 10 * MIN, 20 * MIN),
    ]),
    // First seen at noon, hourly, silent 13:00 to 21:00 (2 h timeout): offline 15:00 to 21:00.
    ...device('tracker', 'noon', [
      midnight + 12 * HOUR,
      midnight + 13 * HOUR,
      ...every(midnight + 21 * HOUR, midnight + 23 * HOUR, HOUR),
    ]),
    // Silent since yesterday 22:00 (timeout 30 min): offline from midnight, all day.
    ...device('thermo', 'silent', every(midnight - 3 * HOUR, midnight - 2 * HOUR, 20 * MIN)),
    // Silent since yesterday 23:00, a 2 h timeout: online until 01:00, then offline.
    ...device('tracker', 'fading', [midnight - 2 * HOUR, midnight - HOUR]),
    // Last heard before the lookback: gone, no row.
    ...device('thermo', 'gone', [midnight - (UPTIME_LOOKBACK_DAYS + 1) * DAY_MS]),
    // The next day's reading is not the day's.
    ...device('thermo', 'tomorrow', [midnight + DAY_MS + 10 * MIN]),
  ];
  const expected = [
    { device_id: 'always-on', device_type: 'thermo', offline_ms: 0, observed_ms: DAY_MS },
    { device_id: 'fading', device_type: 'tracker', offline_ms: 23 * HOUR, observed_ms: DAY_MS },
    { device_id: 'gap', device_type: 'thermo', offline_ms: 6 * HOUR, observed_ms: DAY_MS },
    { device_id: 'noon', device_type: 'tracker', offline_ms: 6 * HOUR, observed_ms: 12 * HOUR },
    { device_id: 'silent', device_type: 'thermo', offline_ms: DAY_MS, observed_ms: DAY_MS },
  ];
  let dir: string;
  let instance: DuckDBInstance;
  let lake: ReturnType<typeof folderStore>;

  const write = (readings: readonly { id: string; type: string; device: string; t: number }[]) =>
    writeBatch(
      readings.map((r) =>
        decodeMessage(
          mqttMessage(r.id, { $ts: r.t, temp: 1 }, `dt/${r.type}/${r.device}`, r.t + MIN),
          ingestOf(config, () => r.t + MIN),
        ),
      ),
      { lake },
    );
  const engine = async () => duckdbEngine(await instance.connect(), join(dir, 'lake'));
  const uptime = async () =>
    (
      await (
        await engine()
      ).run(
        `SELECT device_id, device_type, uptime_pct, offline_ms::INT AS offline_ms, observed_ms::INT AS observed_ms FROM daily_uptime WHERE dt = '${DAY}' ORDER BY device_id`,
      )
    ).rows;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uptime-'));
    lake = folderStore(join(dir, 'lake'));
    await write(fleet);
    instance = await DuckDBInstance.create(':memory:');
    await runDailyJob(DAY, { engine: await engine(), lake, bucket: 'b', config });
  });
  afterAll(() => instance?.closeSync());

  it("gives each device the share of the day it was not offline by its type's timeout", async () => {
    const rows = await uptime();
    expect(rows.filter((r) => r.device_id !== '*')).toEqual(
      expected.map((e) => ({ ...e, uptime_pct: (100 * (e.observed_ms - e.offline_ms)) / e.observed_ms })),
    );
    // The rule, in figures: always on 100; silent 6 h past its timeout (24 - 6) / 24; first
    // seen at noon 6 h offline of 12 h observed; silent since yesterday 0.
    expect(Object.fromEntries(rows.map((r) => [r.device_id, r.uptime_pct]))).toMatchObject({
      'always-on': 100,
      gap: 75,
      noon: 50,
      silent: 0,
    });
  });

  it("adds one estate row ('*'), each device weighted by its observed time", async () => {
    const observed = expected.reduce((sum, e) => sum + e.observed_ms, 0);
    const offline = expected.reduce((sum, e) => sum + e.offline_ms, 0);
    const estate = (await uptime()).filter((r) => r.device_id === '*');
    expect(estate).toEqual([
      {
        device_id: '*',
        device_type: '*',
        uptime_pct: (100 * (observed - offline)) / observed,
        offline_ms: offline,
        observed_ms: observed,
      },
    ]);
    // 4.5 device-days observed, 59 h of them offline (23 + 6 + 6 + 24).
    expect(estate[0]?.uptime_pct).toBeCloseTo((100 * (108 - 59)) / 108, 9);
  });

  it('has exactly the columns of its lake table, and the v_uptime view over it', async () => {
    const described = (await (await engine()).run('DESCRIBE SELECT * FROM daily_uptime')).rows;
    expect(described.map((c) => `${c.column_name} ${c.column_type}`)).toEqual([
      'device_id VARCHAR',
      'device_type VARCHAR',
      'uptime_pct DOUBLE',
      'offline_ms BIGINT',
      'observed_ms BIGINT',
      'dt VARCHAR',
    ]);
    const view = (
      await (
        await engine()
      ).run(
        `SELECT CAST(day AS VARCHAR) AS day, uptime_pct FROM v_uptime WHERE device_id = 'gap' AND day = DATE '${DAY}'`,
      )
    ).rows;
    // The view keeps the last 30 days: the fixed test day is within them only until 2026-12-24.
    if (Date.now() < midnight + 30 * DAY_MS) expect(view).toEqual([{ day: DAY, uptime_pct: 75 }]);
    else expect(view).toEqual([]);
  });

  it('replaces the day on a re-run: late data counts, nothing twice', async () => {
    // Arrange: the silent device's readings of the afternoon arrive late.
    const late = every(midnight + 18 * HOUR, midnight + 23 * HOUR + 40 * MIN, 20 * MIN);
    await write(device('thermo', 'silent', late).map((r) => ({ ...r, id: `late-${r.id}` })));
    // Act
    await runDailyJob(DAY, { engine: await engine(), lake, bucket: 'b', config });
    // Assert: offline until 18:00, then not (23:40 + 30 min is tomorrow); one file, one row a device.
    const rows = await uptime();
    expect(rows.find((r) => r.device_id === 'silent')).toEqual({
      device_id: 'silent',
      device_type: 'thermo',
      uptime_pct: 25,
      offline_ms: 18 * HOUR,
      observed_ms: DAY_MS,
    });
    expect(rows.map((r) => r.device_id)).toEqual(['*', 'always-on', 'fading', 'gap', 'noon', 'silent']);
    expect(await lake.list(`curated/daily_uptime/dt=${DAY}/`)).toEqual([
      `curated/daily_uptime/dt=${DAY}/data.parquet`,
    ]);
  });

  it('counts a device with no timeout (none for its type, no default) as never offline', async () => {
    const none = validateRuntimeConfig({ deviceTypes: { tracker: {} } });
    const rows = (await (await engine()).run(dailyUptimeSelect(DAY, none))).rows;
    expect(rows.every((r) => Number(r.offline_ms) === 0 && r.uptime_pct === 100)).toBe(true);
    expect(rows).toHaveLength(6);
  });

  it('renders the timeouts per type into the SQL, quoted, the default after', () => {
    expect(timeoutSql(config)).toBe(
      "CASE device_type WHEN 'tracker' THEN CAST(7200000 AS BIGINT) ELSE CAST(1800000 AS BIGINT) END",
    );
    expect(timeoutSql(validateRuntimeConfig({}))).toBe('CAST(NULL AS BIGINT)');
    expect(() => dailyUptimeSelect("2026-11-24' --", config)).toThrow('is not a day');
  });
});
