import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { athenaPagedQueries } from '../../../lambdas/adapters/aws/athena.ts';
import type { HttpRequest } from '../../../lambdas/core/api/ingress.ts';
import { athenaLiteral, type PagedQueries, type QueryPlan } from '../../../lambdas/core/api/query.ts';
import {
  bucketWidthMs,
  curatedDaysOf,
  daysOf,
  handleSeriesRequest,
  isSeriesPath,
  MAX_POINTS,
  seriesPlan,
} from '../../../lambdas/core/api/series.ts';
import { folderStore } from '../../../local/adapters/folder-store.ts';
import { masterGate } from '../../support/fakes.ts';

const KEY = 'k';
const NOW = Date.parse('2026-11-25T06:00:00Z');
const HOUR = 3_600_000;
const get = (path: string, query = ''): HttpRequest => ({
  method: 'GET',
  path,
  query,
  headers: { authorization: `Bearer ${KEY}` },
  body: Buffer.alloc(0),
  requestId: 'r',
  receivedAt: NOW,
});

describe('series bucket math', () => {
  it('cuts a range into whole-second buckets, never more than `points`', () => {
    expect(bucketWidthMs(0, 48 * HOUR, 48)).toBe(HOUR);
    expect(bucketWidthMs(0, 30 * 24 * HOUR, 2000)).toBe(1_296_000);
    // 7 days into 2,000 points: 302.4 s, up to 303 s.
    expect(bucketWidthMs(0, 7 * 24 * HOUR, 2000)).toBe(303_000);
    expect(bucketWidthMs(0, 1, 5000)).toBe(1000);
    for (const [from, to, points] of [
      [NOW, NOW + 7 * 24 * HOUR + 1, 2000],
      [NOW + 17, NOW + 30 * 24 * HOUR, MAX_POINTS],
      [NOW, NOW + 999, 1],
      [NOW, NOW + 1_000_001, 1000],
    ] as const) {
      const width = bucketWidthMs(from, to, points);
      expect(Math.ceil((to - from) / width)).toBeLessThanOrEqual(points);
      expect(width % 1000).toBe(0);
    }
    expect(() => bucketWidthMs(NOW, NOW, 10)).toThrow(RangeError);
    expect(() => bucketWidthMs(NOW, NOW + 1, 5001)).toThrow(RangeError);
    expect(() => bucketWidthMs(NOW, NOW + 1, 1.5)).toThrow(RangeError);
  });

  it('names the UTC days a range touches, its end excluded', () => {
    const day = Date.parse('2026-11-24T00:00:00Z');
    expect(daysOf(day, day + 24 * HOUR)).toEqual(['2026-11-24']);
    expect(daysOf(day - 1, day + 24 * HOUR + 1)).toEqual(['2026-11-23', '2026-11-24', '2026-11-25']);
  });
});

describe('series plan', () => {
  const from = Date.parse('2026-11-23T05:30:00Z');
  const to = Date.parse('2026-11-25T06:00:00Z');

  it('reads compacted days from curated_readings and the others from readings, hours pruned', () => {
    const plan = seriesPlan({
      deviceId: 'dev-1',
      metric: 'temp',
      from,
      to,
      points: 100,
      curated: new Set(['2026-11-23']),
    });
    expect(plan.sql).toContain('FROM curated_readings');
    expect(plan.sql).toContain('FROM readings');
    expect(plan.sql).toContain(`/ ${bucketWidthMs(from, to, 100)}) AS BIGINT)`);
    expect(plan.params.map(athenaLiteral)).toEqual([
      "TIMESTAMP '2026-11-23 05:30:00.000'",
      "'dev-1'",
      "'temp'",
      "'2026-11-23'",
      "TIMESTAMP '2026-11-23 05:30:00.000'",
      "TIMESTAMP '2026-11-25 06:00:00.000'",
      "'dev-1'",
      "'temp'",
      "'2026-11-24'",
      "'2026-11-25'",
      "'2026-11-23'",
      "'05'",
      "'2026-11-25'",
      // The last millisecond of the range is 05:59:59.999: hour 05 is the last read.
      "'05'",
      "TIMESTAMP '2026-11-23 05:30:00.000'",
      "TIMESTAMP '2026-11-25 06:00:00.000'",
    ]);
    expect((plan.sql.match(/\?/g) ?? []).length).toBe(plan.params.length);
  });

  it('reads only the table a range needs', () => {
    const all = new Set(['2026-11-23', '2026-11-24', '2026-11-25']);
    const curated = seriesPlan({ deviceId: 'dev-1', metric: 'm', from, to, points: 10, curated: all });
    expect([curated.sql.includes('FROM readings'), curated.sql.includes('FROM curated_readings')]).toEqual([
      false,
      true,
    ]);
    const recent = seriesPlan({ deviceId: 'dev-1', metric: 'm', from, to, points: 10, curated: new Set() });
    expect([recent.sql.includes('FROM readings'), recent.sql.includes('FROM curated_readings')]).toEqual([
      true,
      false,
    ]);
  });

  it('refuses a device id or metric that is not one, whoever calls it', () => {
    const base = { deviceId: 'dev-1', metric: 'temp', from, to, points: 10, curated: new Set<string>() };
    expect(() => seriesPlan({ ...base, deviceId: "dev-1' OR '1'='1" })).toThrow(RangeError);
    expect(() => seriesPlan({ ...base, metric: 'a\u0000b' })).toThrow(RangeError);
    expect(() => seriesPlan({ ...base, to: from + 31 * 24 * HOUR })).toThrow(RangeError);
  });
});

describe('series route', () => {
  const seen: QueryPlan[] = [];
  const engine: PagedQueries = {
    page: async (plan) => {
      seen.push(plan);
      return { rows: [{ bucket: '2', min: '1.5', max: '3', avg: '2.25', count: '4' }] };
    },
  };
  const ask = (path: string, query = '') =>
    handleSeriesRequest(get(path, query), { gate: masterGate(KEY), engine, now: () => NOW });

  it('routes only the series path', () => {
    expect(isSeriesPath('/v1/devices/dev-1/series')).toBe(true);
    expect(isSeriesPath('/v1/devices/dev-1/series/x')).toBe(false);
    expect(isSeriesPath('/v1/devices/dev-1/readings')).toBe(false);
  });

  it.each([
    ['/v1/devices/..%2Fetc/series', 'metric=temp', 'invalid_device_id'],
    ["/v1/devices/dev-1'%20OR%201=1/series", 'metric=temp', 'invalid_device_id'],
    ['/v1/devices/%E0%A4%A/series', 'metric=temp', 'invalid_device_id'],
    ['/v1/devices/dev-1/series', '', 'invalid_parameter'],
    ['/v1/devices/dev-1/series', 'metric=%07bell', 'invalid_parameter'],
    ['/v1/devices/dev-1/series', 'metric=temp&from=yesterday', 'invalid_parameter'],
    ['/v1/devices/dev-1/series', 'metric=temp&from=2026-10-25T05:59:59Z', 'invalid_parameter'],
    ['/v1/devices/dev-1/series', 'metric=temp&from=2026-11-25T07:00:00Z', 'invalid_parameter'],
    ['/v1/devices/dev-1/series', 'metric=temp&points=5001', 'invalid_parameter'],
    ['/v1/devices/dev-1/series', 'metric=temp&points=1e3', 'invalid_parameter'],
    ['/v1/devices/dev-1/series', 'metric=temp&points=-1', 'invalid_parameter'],
    ['/v1/devices/dev-1/series', 'metric=temp&next=%27%3B', 'invalid_token'],
  ])('answers 400 for %s?%s, before any query runs', async (path, query, error) => {
    seen.length = 0;
    const response = await ask(path, query);
    expect([response.statusCode, JSON.parse(response.body).error]).toEqual([400, error]);
    expect(seen).toEqual([]);
  });

  it('takes 30 days, passes a hostile metric as a parameter and answers numbers per bucket start', async () => {
    seen.length = 0;
    const metric = "temp' OR '1'='1";
    const response = await ask(
      '/v1/devices/dev-1/series',
      `metric=${encodeURIComponent(metric)}&from=2026-10-26T06:00:00Z&points=5000`,
    );
    expect(response.statusCode).toBe(200);
    expect(seen[0]?.sql).not.toContain("'1'='1");
    expect(seen[0]?.params.filter((p) => p.value === metric)).toHaveLength(1);
    const body = JSON.parse(response.body);
    expect(body.bucketMs).toBe(519_000);
    expect(body.buckets).toEqual([
      {
        time: new Date(Date.parse('2026-10-26T06:00:00Z') + 2 * 519_000).toISOString(),
        min: 1.5,
        max: 3,
        avg: 2.25,
        count: 4,
      },
    ]);
  });

  it('reports the bytes Athena scanned for the range', async () => {
    const athena = mockClient(AthenaClient);
    try {
      athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q1' });
      athena.on(GetQueryExecutionCommand).resolves({
        QueryExecution: { Status: { State: 'SUCCEEDED' }, Statistics: { DataScannedInBytes: 123_456 } },
      });
      athena.on(GetQueryResultsCommand).resolves({
        ResultSet: {
          ResultSetMetadata: {
            ColumnInfo: ['bucket', 'min', 'max', 'avg', 'count'].map((Name) => ({ Name, Type: 'varchar' })),
          },
          Rows: [
            { Data: ['bucket', 'min', 'max', 'avg', 'count'].map((VarCharValue) => ({ VarCharValue })) },
            { Data: ['0', '1', '2', '1.5', '2'].map((VarCharValue) => ({ VarCharValue })) },
          ],
        },
      });
      const response = await handleSeriesRequest(
        get('/v1/devices/dev-1/series', `metric=temp&from=${NOW - HOUR}&to=${NOW}&points=60`),
        {
          gate: masterGate(KEY),
          engine: athenaPagedQueries(new AthenaClient({}), {
            workGroup: 'wg',
            database: 'db',
            sleep: async () => undefined,
          }),
        },
      );
      const body = JSON.parse(response.body);
      expect([response.statusCode, body.bytesScanned, body.buckets]).toEqual([
        200,
        123_456,
        [{ time: new Date(NOW - HOUR).toISOString(), min: 1, max: 2, avg: 1.5, count: 2 }],
      ]);
      const input = athena.commandCalls(StartQueryExecutionCommand)[0]?.args[0].input;
      expect(input?.ExecutionParameters?.[0]).toBe("TIMESTAMP '2026-11-25 05:00:00.000'");
      expect(input?.QueryString).not.toContain('dev-1');
    } finally {
      athena.restore();
    }
  });

  it('answers 202 while Athena runs, and the next request resumes the same range with only `next`', async () => {
    const athena = mockClient(AthenaClient);
    try {
      const plan = seriesPlan({
        deviceId: 'dev-1',
        metric: 'temp',
        from: NOW - 7 * 24 * HOUR,
        to: NOW,
        points: 2000,
        curated: new Set(),
      });
      const execution = { Query: plan.sql, ExecutionParameters: plan.params.map(athenaLiteral) };
      athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q1' });
      athena
        .on(GetQueryExecutionCommand)
        .resolves({ QueryExecution: { ...execution, Status: { State: 'RUNNING' } } });
      const deps = (now: number) => ({
        gate: masterGate(KEY),
        engine: athenaPagedQueries(new AthenaClient({}), {
          workGroup: 'wg',
          database: 'db',
          sleep: async () => undefined,
        }),
        waitMs: 0,
        now: () => now,
      });
      const first = await handleSeriesRequest(
        get('/v1/devices/dev-1/series', `metric=temp&from=${NOW - 7 * 24 * HOUR}`),
        deps(NOW),
      );
      expect(first.statusCode).toBe(202);
      const { next } = JSON.parse(first.body) as { next: string };
      expect(next.startsWith(`${NOW - 7 * 24 * HOUR}~${NOW}~`)).toBe(true);
      athena
        .on(GetQueryExecutionCommand)
        .resolves({ QueryExecution: { ...execution, Status: { State: 'SUCCEEDED' } } });
      athena.on(GetQueryResultsCommand).resolves({ ResultSet: { Rows: [] } });
      // A minute later: the range is the token's, not "now".
      const second = await handleSeriesRequest(
        get('/v1/devices/dev-1/series', `metric=temp&next=${encodeURIComponent(next)}`),
        deps(NOW + 60_000),
      );
      expect([second.statusCode, JSON.parse(second.body).to]).toEqual([200, new Date(NOW).toISOString()]);
      expect(athena.commandCalls(StartQueryExecutionCommand)).toHaveLength(1);
    } finally {
      athena.restore();
    }
  });

  it('tells compacted days by the files under curated/readings/', async () => {
    const lake = folderStore(await mkdtemp(join(tmpdir(), 'series-lake-')));
    await lake.put(
      'curated/readings/dt=2026-11-23/data.parquet',
      Buffer.from('x'),
      'application/octet-stream',
    );
    await lake.put('readings/dt=2026-11-24/hour=00/b.ndjson.gz', Buffer.from('x'), 'application/gzip');
    expect([...(await curatedDaysOf(lake)(['2026-11-23', '2026-11-24']))]).toEqual(['2026-11-23']);
  });
});
