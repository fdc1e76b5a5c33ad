import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { QueryCommand, TimestreamQueryClient } from '@aws-sdk/client-timestream-query';
import { DuckDBInstance } from '@duckdb/node-api';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { athenaPagedQueries } from '../../../lambdas/adapters/aws/athena.ts';
import { timestreamRecentReadings } from '../../../lambdas/adapters/aws/timestream-query.ts';
import { runDailyJob } from '../../../lambdas/core/analytics/daily.ts';
import type { HttpRequest } from '../../../lambdas/core/api/ingress.ts';
import {
  athenaLiteral,
  handleQueryRequest,
  type PagedQueries,
  readingsPlan,
} from '../../../lambdas/core/api/query.ts';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { decodeMessage } from '../../../lambdas/core/ingest/decode.ts';
import { writeBatch } from '../../../lambdas/core/ingest/write.ts';
import { duckdbEngine, duckdbPagedQueries } from '../../../local/adapters/duckdb.ts';
import { folderStore } from '../../../local/adapters/folder-store.ts';
import { ingestOf, mqttMessage } from '../../support/fakes.ts';

const KEY = 'k';
const NOW = Date.parse('2026-11-25T06:00:00Z');
const get = (path: string, query = ''): HttpRequest => ({
  method: 'GET',
  path,
  query,
  headers: { authorization: `Bearer ${KEY}` },
  body: Buffer.alloc(0),
  requestId: 'r',
  receivedAt: NOW,
});

describe('query API parameters', () => {
  const seen: unknown[] = [];
  const engine: PagedQueries = {
    page: async (plan) => {
      seen.push(plan);
      return { rows: [] };
    },
  };
  const ask = (path: string, query = '') =>
    handleQueryRequest(get(path, query), { apiKey: KEY, engine, now: () => NOW });

  it.each([
    ['/v1/devices/..%2Fetc/readings', '', 'invalid_device_id'],
    ["/v1/devices/dev-1'%20OR%201=1/readings", '', 'invalid_device_id'],
    ['/v1/devices/dev-1/readings', 'from=yesterday', 'invalid_parameter'],
    ['/v1/devices/dev-1/readings', 'from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z', 'invalid_parameter'],
    ['/v1/devices/dev-1/readings', 'from=2026-01-01T00:00:00Z', 'invalid_parameter'],
    ['/v1/devices/dev-1/readings', 'limit=5000', 'invalid_parameter'],
    ['/v1/devices/dev-1/readings', 'metric=%07bell', 'invalid_parameter'],
  ])('answers 400 for %s?%s, before any query runs', async (path, query, error) => {
    seen.length = 0;
    const response = await ask(path, query);
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body).error).toBe(error);
    expect(seen).toEqual([]);
  });

  it('passes a hostile metric as a parameter, never as SQL', async () => {
    seen.length = 0;
    const response = await ask(
      '/v1/devices/dev-1/readings',
      `metric=${encodeURIComponent("temp' OR '1'='1")}`,
    );
    expect(response.statusCode).toBe(200);
    const plan = seen[0] as { sql: string; params: { value: string }[] };
    expect(plan.sql).not.toContain("'1'='1");
    expect(plan.params.at(-1)?.value).toBe("temp' OR '1'='1");
    expect(athenaLiteral({ type: 'varchar', value: "temp' OR '1'='1" })).toBe("'temp'' OR ''1''=''1'");
  });

  it('defaults to the last day of readings and the last week of daily figures', async () => {
    const readings = JSON.parse((await ask('/v1/devices/dev-1/readings')).body);
    expect([readings.from, readings.to]).toEqual(['2026-11-24T06:00:00.000Z', '2026-11-25T06:00:00.000Z']);
    const daily = JSON.parse((await ask('/v1/devices/dev-1/daily')).body);
    expect(daily.from).toBe('2026-11-18T06:00:00.000Z');
    expect(
      (await handleQueryRequest({ ...get('/v1/devices/dev-1/daily'), headers: {} }, { apiKey: KEY, engine }))
        .statusCode,
    ).toBe(401);
  });
});

describe('query API on Athena', () => {
  const athena = mockClient(AthenaClient);
  afterEach(() => athena.reset());
  const engine = () =>
    athenaPagedQueries(new AthenaClient({}), {
      workGroup: 'wg',
      database: 'db',
      sleep: async () => undefined,
    });
  const plan = readingsPlan('dev-1', NOW - 3_600_000, NOW, undefined, 100_000);

  it('answers 202 with a token while the query runs, then pages the results with the token', async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q1' });
    const running = {
      QueryExecution: {
        Query: plan.sql,
        ExecutionParameters: plan.params.map(athenaLiteral),
        Status: { State: 'RUNNING' as const },
      },
    };
    athena.on(GetQueryExecutionCommand).resolves(running);
    const first = await handleQueryRequest(
      get('/v1/devices/dev-1/readings', `from=${NOW - 3_600_000}&to=${NOW}`),
      {
        apiKey: KEY,
        engine: engine(),
        waitMs: 0,
      },
    );
    expect(first.statusCode).toBe(202);
    const { next } = JSON.parse(first.body);
    expect(athena.commandCalls(StartQueryExecutionCommand)[0]?.args[0].input.ExecutionParameters).toEqual([
      "'dev-1'",
      "'2026-11-25'",
      "'2026-11-25'",
      "TIMESTAMP '2026-11-25 05:00:00.000'",
      "TIMESTAMP '2026-11-25 06:00:00.000'",
    ]);
    athena
      .on(GetQueryExecutionCommand)
      .resolves({ QueryExecution: { ...running.QueryExecution, Status: { State: 'SUCCEEDED' } } });
    athena.on(GetQueryResultsCommand).resolves({
      ResultSet: {
        ResultSetMetadata: {
          ColumnInfo: [
            { Name: 'metric', Type: 'varchar' },
            { Name: 'value', Type: 'double' },
          ],
        },
        Rows: [
          { Data: [{ VarCharValue: 'metric' }, { VarCharValue: 'value' }] },
          { Data: [{ VarCharValue: 'temp' }, { VarCharValue: '21.5' }] },
        ],
      },
      NextToken: 'athena-page-2',
    });
    const second = await handleQueryRequest(
      get('/v1/devices/dev-1/readings', `from=${NOW - 3_600_000}&to=${NOW}&next=${next}`),
      { apiKey: KEY, engine: engine(), waitMs: 0 },
    );
    expect(second.statusCode).toBe(200);
    const body = JSON.parse(second.body);
    expect(body.rows).toEqual([{ metric: 'temp', value: '21.5' }]);
    expect(JSON.parse(Buffer.from(body.next, 'base64url').toString())).toEqual({
      id: 'q1',
      page: 'athena-page-2',
    });
    expect(athena.commandCalls(StartQueryExecutionCommand)).toHaveLength(1);
  });

  it("asks Athena for at most its 1,000 rows a call, header included, at the API's largest page", async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q1' });
    athena.on(GetQueryExecutionCommand).resolves({ QueryExecution: { Status: { State: 'SUCCEEDED' } } });
    athena.on(GetQueryResultsCommand).resolves({ ResultSet: { Rows: [] } });
    await engine().page(plan, undefined, { waitMs: 0, pageSize: 1000 });
    await engine().page(plan, undefined, { waitMs: 0, pageSize: 10 });
    expect(athena.commandCalls(GetQueryResultsCommand).map((c) => c.args[0].input.MaxResults)).toEqual([
      1000, 11,
    ]);
  });

  it("refuses a token that belongs to another query (another device's results)", async () => {
    athena.on(GetQueryExecutionCommand).resolves({
      QueryExecution: { Query: plan.sql, ExecutionParameters: ["'dev-2'"], Status: { State: 'SUCCEEDED' } },
    });
    const token = Buffer.from(JSON.stringify({ id: 'someone-elses' })).toString('base64url');
    const response = await handleQueryRequest(get('/v1/devices/dev-1/readings', `next=${token}`), {
      apiKey: KEY,
      engine: engine(),
    });
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toEqual({
      error: 'invalid_token',
      message: 'next belongs to another query: repeat the same parameters',
    });
    const garbage = await handleQueryRequest(get('/v1/devices/dev-1/readings', 'next=%%%'), {
      apiKey: KEY,
      engine: engine(),
    });
    expect(garbage.statusCode).toBe(400);
  });
});

describe('query API on the local lake (DuckDB)', () => {
  let instance: DuckDBInstance;
  let engine: PagedQueries;
  const DAY = '2026-11-24';

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'query-api-'));
    const lake = folderStore(join(dir, 'lake'));
    const config = validateRuntimeConfig({});
    const base = Date.parse(`${DAY}T10:00:00Z`);
    const messages = Array.from({ length: 5 }, (_, i) =>
      mqttMessage(
        `m${i}`,
        { $ts: base + i * 60_000, temp: 20 + i, hum: 50 },
        'dt/thermo/dev-1',
        base + 86_400_000,
      ),
    );
    await writeBatch(
      messages.map((m) =>
        decodeMessage(
          m,
          ingestOf(config, () => base),
        ),
      ),
      { lake },
    );
    instance = await DuckDBInstance.create(':memory:');
    await runDailyJob(DAY, {
      engine: await duckdbEngine(await instance.connect(), join(dir, 'lake')),
      lake,
      bucket: 'b',
    });
    engine = duckdbPagedQueries(() => instance.connect(), join(dir, 'lake'));
  });
  afterAll(() => instance?.closeSync());

  it('pages the readings of a device in a time range, one metric', async () => {
    const range = `from=${DAY}T10:00:00Z&to=${DAY}T11:00:00Z&metric=temp&limit=2`;
    const first = JSON.parse(
      (await handleQueryRequest(get('/v1/devices/dev-1/readings', range), { apiKey: KEY, engine })).body,
    );
    expect(first.rows.map((r: { value: number }) => r.value)).toEqual([20, 21]);
    const rest = JSON.parse(
      (
        await handleQueryRequest(get('/v1/devices/dev-1/readings', `${range}&next=${first.next}`), {
          apiKey: KEY,
          engine,
        })
      ).body,
    );
    expect(rest.rows.map((r: { value: number }) => r.value)).toEqual([22, 23]);
  });

  it('answers the daily figures from the daily job', async () => {
    const response = await handleQueryRequest(
      get('/v1/devices/dev-1/daily', `from=${DAY}T00:00:00Z&to=2026-11-25T00:00:00Z`),
      {
        apiKey: KEY,
        engine,
      },
    );
    expect(JSON.parse(response.body).rows).toEqual([
      expect.objectContaining({ day: DAY, metric: 'hum', min: 50, max: 50, range: 0 }),
      expect.objectContaining({ day: DAY, metric: 'temp', min: 20, max: 24, range: 4, avg: 22 }),
    ]);
  });
});

describe('query API on Timestream for recent readings', () => {
  const ts = mockClient(TimestreamQueryClient);
  afterEach(() => ts.reset());
  const recent = () =>
    timestreamRecentReadings(new TimestreamQueryClient({}), {
      database: 'iot_pipeline_dev',
      table: 'readings',
      windowMs: 24 * 3_600_000,
    });
  const athena: PagedQueries = { page: async () => ({ rows: [{ from: 'lake' }] }) };

  it('answers a range inside the memory window from Timestream, in the long format of the lake', async () => {
    ts.on(QueryCommand).resolves({
      ColumnInfo: [
        { Name: 'device_id', Type: { ScalarType: 'VARCHAR' } },
        { Name: 'measure_name', Type: { ScalarType: 'VARCHAR' } },
        { Name: 'time', Type: { ScalarType: 'TIMESTAMP' } },
        { Name: 'temp', Type: { ScalarType: 'DOUBLE' } },
        { Name: 'door', Type: { ScalarType: 'BOOLEAN' } },
        { Name: 'fw', Type: { ScalarType: 'VARCHAR' } },
      ],
      Rows: [
        {
          Data: [
            { ScalarValue: 'dev-1' },
            { ScalarValue: 'telemetry' },
            { ScalarValue: '2026-11-25 05:00:00.000000000' },
            { ScalarValue: '21.5' },
            { ScalarValue: 'true' },
            { NullValue: true },
          ],
        },
      ],
      NextToken: 'ts-next',
    });
    const response = await handleQueryRequest(
      get('/v1/devices/dev-1/readings', `from=${NOW - 3_600_000}&to=${NOW}`),
      {
        apiKey: KEY,
        engine: athena,
        recent: recent(),
        now: () => NOW,
      },
    );
    const body = JSON.parse(response.body);
    expect(body.source).toBe('timeseries');
    expect(body.rows).toEqual([
      { time: '2026-11-25 05:00:00.000', metric: 'temp', value: 21.5, value_str: null, value_bool: null },
      { time: '2026-11-25 05:00:00.000', metric: 'door', value: null, value_str: null, value_bool: true },
    ]);
    expect(body.next).toBe(`ts.${Buffer.from('ts-next').toString('base64url')}`);
    expect(ts.commandCalls(QueryCommand)[0]?.args[0].input.QueryString).toBe(
      `SELECT * FROM "iot_pipeline_dev"."readings" WHERE device_id = 'dev-1' AND measure_name = 'telemetry' AND time >= from_milliseconds(${NOW - 3_600_000}) AND time < from_milliseconds(${NOW}) ORDER BY time`,
    );
  });

  it('answers older ranges from the lake', async () => {
    const response = await handleQueryRequest(
      get('/v1/devices/dev-1/readings', `from=${NOW - 3 * 86_400_000}&to=${NOW}`),
      {
        apiKey: KEY,
        engine: athena,
        recent: recent(),
        now: () => NOW,
      },
    );
    expect(JSON.parse(response.body)).toMatchObject({ source: 'lake', rows: [{ from: 'lake' }] });
    expect(ts.commandCalls(QueryCommand)).toHaveLength(0);
  });
});
