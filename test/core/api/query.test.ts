import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import {
  QueryCommand,
  type QueryCommandInput,
  TimestreamQueryClient,
} from '@aws-sdk/client-timestream-query';
import { DuckDBInstance } from '@duckdb/node-api';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { athenaPagedQueries } from '../../../lambdas/adapters/aws/athena.ts';
import { timestreamRecentReadings } from '../../../lambdas/adapters/aws/timestream-query.ts';
import { runDailyJob } from '../../../lambdas/core/analytics/daily.ts';
import type { Gate } from '../../../lambdas/core/api/gate.ts';
import type { HttpRequest } from '../../../lambdas/core/api/ingress.ts';
import { NOT_A_TOKEN, OTHER_QUERY } from '../../../lambdas/core/api/page-token.ts';
import {
  athenaLiteral,
  dailyPlan,
  handleQueryRequest,
  InvalidTokenError,
  type PagedQueries,
  readingsPlan,
} from '../../../lambdas/core/api/query.ts';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { decodeMessage } from '../../../lambdas/core/ingest/decode.ts';
import { writeBatch } from '../../../lambdas/core/ingest/write.ts';
import { duckdbEngine, duckdbPagedQueries } from '../../../local/adapters/duckdb.ts';
import { folderStore } from '../../../local/adapters/folder-store.ts';
import { ingestOf, masterGate, mqttMessage } from '../../support/fakes.ts';

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
    handleQueryRequest(get(path, query), { gate: masterGate(KEY), engine, now: () => NOW });

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
      (
        await handleQueryRequest(
          { ...get('/v1/devices/dev-1/daily'), headers: {} },
          { gate: masterGate(KEY), engine },
        )
      ).statusCode,
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

  it('answers 400, never a 5xx, for a malformed %-escape in the device id, asking Athena nothing', async () => {
    for (const path of ['/v1/devices/%E0%A4%A/readings', '/v1/devices/%/daily', '/v1/devices/a%2/readings']) {
      const response = await handleQueryRequest(get(path), { gate: masterGate(KEY), engine: engine() });
      expect([path, response.statusCode, JSON.parse(response.body).error]).toEqual([
        path,
        400,
        'invalid_device_id',
      ]);
    }
    expect(athena.calls()).toHaveLength(0);
  });

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
        gate: masterGate(KEY),
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
      { gate: masterGate(KEY), engine: engine(), waitMs: 0 },
    );
    expect(second.statusCode).toBe(200);
    const body = JSON.parse(second.body);
    expect(body.rows).toEqual([{ metric: 'temp', value: '21.5' }]);
    // The API's next: the range, then Athena's own token.
    const [range, inner] = [body.next.split('~').slice(0, 2).join('~'), body.next.split('~')[2]];
    expect(range).toBe(`${NOW - 3_600_000}~${NOW}`);
    expect(JSON.parse(Buffer.from(inner, 'base64url').toString())).toEqual({
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
    const token = `0~1~${Buffer.from(JSON.stringify({ id: 'someone-elses' })).toString('base64url')}`;
    const response = await handleQueryRequest(get('/v1/devices/dev-1/readings', `next=${token}`), {
      gate: masterGate(KEY),
      engine: engine(),
    });
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toEqual({
      error: 'invalid_token',
      message: 'next belongs to another query: repeat the same parameters',
    });
    const garbage = await handleQueryRequest(get('/v1/devices/dev-1/readings', 'next=%%%'), {
      gate: masterGate(KEY),
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
      (await handleQueryRequest(get('/v1/devices/dev-1/readings', range), { gate: masterGate(KEY), engine }))
        .body,
    );
    expect(first.rows.map((r: { value: number }) => r.value)).toEqual([20, 21]);
    const rest = JSON.parse(
      (
        await handleQueryRequest(get('/v1/devices/dev-1/readings', `${range}&next=${first.next}`), {
          gate: masterGate(KEY),
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
        gate: masterGate(KEY),
        engine,
      },
    );
    expect(JSON.parse(response.body).rows).toEqual([
      expect.objectContaining({ day: DAY, metric: 'hum', min: 50, max: 50, range: 0 }),
      expect.objectContaining({ day: DAY, metric: 'temp', min: 20, max: 24, range: 4, avg: 22 }),
    ]);
  });

  const from = Date.parse(`${DAY}T10:00:00Z`);
  const to = Date.parse(`${DAY}T11:00:00Z`);
  const options = { waitMs: 0, pageSize: 2 };

  it('pages through the same query to its end with the tokens it hands', async () => {
    const plan = readingsPlan('dev-1', from, to, 'temp', 100_000);
    const values: unknown[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await engine.page(plan, token, options);
      values.push(...page.rows.map((r) => r.value));
      token = page.next;
      pages++;
    } while (token !== undefined);
    expect(values).toEqual([20, 21, 22, 23, 24]);
    expect(pages).toBe(3);
  });

  it("refuses a page token for another device's query, another metric, range or route", async () => {
    const { next } = await engine.page(readingsPlan('dev-1', from, to, 'temp', 100_000), undefined, options);
    expect(next).toMatch(/^[A-Za-z0-9_-]+$/);
    for (const other of [
      readingsPlan('dev-2', from, to, 'temp', 100_000),
      readingsPlan('dev-1', from, to, 'hum', 100_000),
      readingsPlan('dev-1', from, to, undefined, 100_000),
      readingsPlan('dev-1', from - 60_000, to, 'temp', 100_000),
      readingsPlan('dev-1', from, to + 60_000, 'temp', 100_000),
      dailyPlan('dev-1', DAY, DAY, 'temp'),
    ]) {
      await expect(engine.page(other, next, options)).rejects.toThrow(new InvalidTokenError(OTHER_QUERY));
    }
    // Through the API: 400 with the reason, for the device the token was not made for.
    const range = `from=${DAY}T10:00:00Z&to=${DAY}T11:00:00Z&metric=temp&limit=2`;
    const response = await handleQueryRequest(
      get('/v1/devices/dev-2/readings', `${range}&next=0~1~${next}`),
      {
        gate: masterGate(KEY),
        engine,
      },
    );
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toEqual({ error: 'invalid_token', message: OTHER_QUERY });
  });

  it('refuses a tampered or made-up page token', async () => {
    const plan = readingsPlan('dev-1', from, to, 'temp', 100_000);
    const { next = '' } = await engine.page(plan, undefined, options);
    const state = JSON.parse(Buffer.from(next, 'base64url').toString()) as { q: string; o: number };
    expect(state).toEqual({ q: expect.any(String), o: 2 });
    const made = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    for (const [token, message] of [
      ['2', NOT_A_TOKEN], // the bare offset tokens used to be
      [next.slice(0, -3), NOT_A_TOKEN],
      [`${next}%`, NOT_A_TOKEN],
      ['', NOT_A_TOKEN],
      [made({ ...state, o: -2 }), NOT_A_TOKEN],
      [made({ ...state, o: '2' }), NOT_A_TOKEN],
      [made({ o: 2 }), NOT_A_TOKEN],
      [made([state.q, 2]), NOT_A_TOKEN],
      [
        // One character of the digest changed.
        made({ ...state, q: state.q.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) }),
        OTHER_QUERY,
      ],
    ] as const) {
      await expect(engine.page(plan, token, options)).rejects.toThrow(new InvalidTokenError(message));
    }
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
  const FROM = NOW - 3_600_000;
  const COLUMNS = [
    { Name: 'device_id', Type: { ScalarType: 'VARCHAR' } },
    { Name: 'device_type', Type: { ScalarType: 'VARCHAR' } },
    { Name: 'source', Type: { ScalarType: 'VARCHAR' } },
    { Name: 'measure_name', Type: { ScalarType: 'VARCHAR' } },
    { Name: 'time', Type: { ScalarType: 'TIMESTAMP' } },
    { Name: 'temp', Type: { ScalarType: 'DOUBLE' } },
    { Name: 'door', Type: { ScalarType: 'BOOLEAN' } },
  ] as const;
  /** Timestream's way of writing a time: UTC, a space, nanoseconds. */
  const tsTime = (ms: number) => `${new Date(ms).toISOString().replace('T', ' ').slice(0, 23)}000000`;

  interface Rec {
    readonly device: string;
    readonly type: string;
    readonly source: string;
    readonly time: number;
    readonly temp: number;
  }
  // Records of two devices, several at the same millisecond (another source or type, as
  // Timestream's record key allows), and some outside the range.
  const RECORDS: Rec[] = [];
  const add = (device: string, seconds: number, keys: readonly [string, string][]) => {
    for (const [type, source] of keys) {
      // dev-1 reads 0-99, dev-2 100 and up: a row shows whose it is.
      const temp = (device === 'dev-1' ? 0 : 100) + RECORDS.length;
      RECORDS.push({ device, type, source, time: FROM + seconds * 1000, temp });
    }
  };
  const FOUR: [string, string][] = [
    ['thermo', 'ttn'],
    ['thermo', 'mqtt'],
    ['door', 'sigfox'],
    ['thermo', 'http-json'],
  ];
  add('dev-1', -1, [['thermo', 'mqtt']]);
  add('dev-1', 0, FOUR);
  add('dev-1', 10, [['thermo', 'mqtt']]);
  add('dev-1', 20, FOUR.slice(0, 3));
  add('dev-1', 30, [['thermo', 'mqtt']]);
  add('dev-1', 31, FOUR);
  add('dev-1', 3600, [['thermo', 'mqtt']]); // at `to`: outside
  add('dev-2', 0, FOUR.slice(0, 2));
  add('dev-2', 20, FOUR);
  add('dev-2', 25, [['thermo', 'mqtt']]);
  const byKey = (a: Rec, b: Rec) =>
    a.time - b.time || a.type.localeCompare(b.type) || a.source.localeCompare(b.source);
  const longRows = (records: readonly Rec[], metric?: string) =>
    [...records].sort(byKey).flatMap((r) =>
      [
        {
          time: tsTime(r.time).slice(0, 23),
          metric: 'temp',
          value: r.temp,
          value_str: null,
          value_bool: null,
        },
        {
          time: tsTime(r.time).slice(0, 23),
          metric: 'door',
          value: null,
          value_str: null,
          value_bool: r.temp % 2 === 0,
        },
      ].filter((row) => metric === undefined || row.metric === metric),
    );
  /** A device's records in the range, in the order of the query. */
  const inRange = (device: string) =>
    RECORDS.filter((r) => r.device === device && r.time >= FROM && r.time < NOW).sort(byKey);

  const QUERY =
    /^SELECT \* FROM "iot_pipeline_dev"\."readings" WHERE device_id = '([^']+)' AND measure_name = 'telemetry' AND time >= from_milliseconds\((\d+)\) AND time < from_milliseconds\((\d+)\) ORDER BY time, device_type, source LIMIT (\d+)$/;
  /**
   * Timestream, for the queries this adapter sends: it runs the query, then answers in
   * parts of `part` rows at most (the first part empty, as Timestream may), each with a
   * NextToken that only continues the query string that made it. Every query and every
   * NextToken it is sent are kept in `calls`.
   */
  const fakeTimestream = (part = 2) => {
    const issued = new Map<string, { query: string; rows: Rec[]; offset: number }>();
    const calls: { query: string; nextToken?: string; maxRows?: number }[] = [];
    let counter = 0;
    ts.on(QueryCommand).callsFake((input: QueryCommandInput) => {
      const queryString = input.QueryString ?? '';
      calls.push({ query: queryString, nextToken: input.NextToken, maxRows: input.MaxRows });
      let run: { query: string; rows: Rec[]; offset: number };
      if (input.NextToken === undefined) {
        const match = QUERY.exec(queryString);
        if (!match) throw new Error(`not a query of the adapter: ${queryString}`);
        const [, device, at, to, limit] = match;
        const rows = RECORDS.filter((r) => r.device === device && r.time >= Number(at) && r.time < Number(to))
          .sort(byKey)
          .slice(0, Number(limit));
        run = { query: queryString, rows, offset: -1 };
      } else {
        const found = issued.get(input.NextToken);
        if (found?.query !== queryString) throw new Error(`Invalid pagination token ${input.NextToken}`);
        issued.delete(input.NextToken);
        run = found;
      }
      const start = Math.max(run.offset, 0);
      const size = run.offset < 0 ? 0 : Math.min(part, input.MaxRows ?? part);
      const slice = run.rows.slice(start, start + size);
      const more = start + size < run.rows.length;
      const nextToken = more ? `timestream-${++counter}` : undefined;
      if (nextToken) issued.set(nextToken, { ...run, offset: start + size });
      return {
        QueryId: `q-${counter}`,
        ColumnInfo: [...COLUMNS],
        Rows: slice.map((r) => ({
          Data: [
            { ScalarValue: r.device },
            { ScalarValue: r.type },
            { ScalarValue: r.source },
            { ScalarValue: 'telemetry' },
            { ScalarValue: tsTime(r.time) },
            { ScalarValue: String(r.temp) },
            { ScalarValue: String(r.temp % 2 === 0) },
          ],
        })),
        ...(nextToken ? { NextToken: nextToken } : {}),
      };
    });
    return { calls };
  };
  const stateOf = (next: string) =>
    JSON.parse(Buffer.from(next.slice(3), 'base64url').toString()) as Record<string, unknown>;
  const made = (value: unknown) => `ts.${Buffer.from(JSON.stringify(value)).toString('base64url')}`;
  type Query = Parameters<ReturnType<typeof recent>['page']>[0];
  const query = { deviceId: 'dev-1', from: FROM, to: NOW, metric: 'temp' };
  /** Every page of a query, from the first, as the API's caller would page. */
  const pageThrough = async (q: Query, pageSize: number, first?: string) => {
    const pages: { rows: readonly Record<string, unknown>[]; next?: string }[] = [];
    let token = first;
    do {
      const page = await recent().page(q, token, { pageSize });
      pages.push(page);
      token = page.next;
    } while (token !== undefined && pages.length < 100);
    return pages;
  };

  it('answers a range inside the memory window from Timestream, in the long format of the lake', async () => {
    // Timestream's first answer may be no rows and a NextToken: it is followed, not handed out.
    ts.on(QueryCommand)
      .resolvesOnce({ ColumnInfo: [...COLUMNS], Rows: [], NextToken: 'ts-part-2' })
      .resolvesOnce({
        ColumnInfo: [...COLUMNS, { Name: 'fw', Type: { ScalarType: 'VARCHAR' } }],
        Rows: [
          {
            Data: [
              { ScalarValue: 'dev-1' },
              { ScalarValue: 'thermo' },
              { ScalarValue: 'mqtt' },
              { ScalarValue: 'telemetry' },
              { ScalarValue: '2026-11-25 05:00:00.000000000' },
              { ScalarValue: '21.5' },
              { ScalarValue: 'true' },
              { NullValue: true },
            ],
          },
        ],
      });
    const response = await handleQueryRequest(get('/v1/devices/dev-1/readings', `from=${FROM}&to=${NOW}`), {
      gate: masterGate(KEY),
      engine: athena,
      recent: recent(),
      now: () => NOW,
    });
    const body = JSON.parse(response.body);
    expect(body.source).toBe('timeseries');
    expect(body.rows).toEqual([
      { time: '2026-11-25 05:00:00.000', metric: 'temp', value: 21.5, value_str: null, value_bool: null },
      { time: '2026-11-25 05:00:00.000', metric: 'door', value: null, value_str: null, value_bool: true },
    ]);
    expect(body.next).toBeUndefined();
    const inputs = ts.commandCalls(QueryCommand).map((c) => c.args[0].input);
    // The default page is 500 records: one more is asked for, to know whether more follow.
    const queryString = `SELECT * FROM "iot_pipeline_dev"."readings" WHERE device_id = 'dev-1' AND measure_name = 'telemetry' AND time >= from_milliseconds(${FROM}) AND time < from_milliseconds(${NOW}) ORDER BY time, device_type, source LIMIT 501`;
    expect(inputs).toEqual([
      { QueryString: queryString, MaxRows: 501 },
      { QueryString: queryString, MaxRows: 501, NextToken: 'ts-part-2' },
    ]);
  });

  it('answers older ranges from the lake', async () => {
    const response = await handleQueryRequest(
      get('/v1/devices/dev-1/readings', `from=${NOW - 3 * 86_400_000}&to=${NOW}`),
      {
        gate: masterGate(KEY),
        engine: athena,
        recent: recent(),
        now: () => NOW,
      },
    );
    expect(JSON.parse(response.body)).toMatchObject({ source: 'lake', rows: [{ from: 'lake' }] });
    expect(ts.commandCalls(QueryCommand)).toHaveLength(0);
  });

  it.each([1, 2, 3, 4, 5, 7, 100])(
    'pages %i records at a time through records at the same time, losing and repeating nothing',
    async (pageSize) => {
      const timestream = fakeTimestream(2);
      for (const metric of [undefined, 'temp']) {
        const pages = await pageThrough({ ...query, metric }, pageSize);
        expect(pages.flatMap((p) => p.rows)).toEqual(longRows(inRange('dev-1'), metric));
        // A page is `pageSize` records (of two metrics each, or of the one asked for).
        const perRecord = metric === undefined ? 2 : 1;
        const sizes: number[] = [];
        for (let left = inRange('dev-1').length; left > 0; left -= pageSize)
          sizes.push(Math.min(left, pageSize));
        expect(pages.map((p) => p.rows.length / perRecord)).toEqual(sizes);
        // A token is a position and nothing else: no Timestream NextToken leaves the adapter.
        for (const { next } of pages.slice(0, -1)) {
          expect(next).toMatch(/^ts\.[A-Za-z0-9_-]+$/);
          expect(Object.keys(stateOf(next as string)).sort()).toEqual(['at', 'q', 'skip']);
          expect(Buffer.from((next as string).slice(3), 'base64url').toString()).not.toContain('timestream-');
        }
      }
      // Each NextToken sent was one Timestream gave for that same query string.
      for (const call of timestream.calls) expect(call.query).toContain("device_id = 'dev-1'");
      expect(timestream.calls.filter((c) => c.nextToken !== undefined).length).toBeGreaterThan(0);
    },
  );

  it('keeps the position: the last record time in ms and how many at that time came already', async () => {
    fakeTimestream(3);
    const [first, second] = await pageThrough({ ...query, metric: undefined }, 3);
    // Records at FROM: four of them; a page of three ends among them.
    expect(stateOf(first?.next as string)).toEqual({
      q: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      at: FROM,
      skip: 3,
    });
    // The next page re-asks from FROM, skips the three, and ends at FROM + 20 s after one of three there.
    expect(stateOf(second?.next as string)).toMatchObject({ at: FROM + 20_000, skip: 1 });
    const asked = ts.commandCalls(QueryCommand).map((c) => c.args[0].input.QueryString as string);
    expect(asked.filter((q) => !q.includes(`from_milliseconds(${FROM})`)).length).toBeGreaterThan(0);
    // LIMIT skip + pageSize + 1: 0 + 3 + 1 first, then 3 + 3 + 1, then 1 + 3 + 1.
    expect([...new Set(asked.map((q) => q.replace(/^.* LIMIT /, '')))]).toEqual(['4', '7', '5']);
  });

  /** GET a device's readings through the API. */
  const readings = (gate: Gate, device: string, parameters: string) =>
    handleQueryRequest(get(`/v1/devices/${device}/readings`, parameters), {
      gate,
      engine: athena,
      recent: recent(),
      now: () => NOW,
    });
  /** The adapter's token (`ts.…`) inside the API's `next`, whatever the API wraps it in. */
  const innerOf = (apiNext: string) => apiNext.slice(apiNext.indexOf('ts.'));
  /** The API's `next` with the adapter's token in it swapped for `inner`. */
  const withInner = (apiNext: string, inner: string) => `${apiNext.slice(0, apiNext.indexOf('ts.'))}${inner}`;

  it("refuses a token of another device's query, another metric or range, before asking Timestream", async () => {
    fakeTimestream();
    const first = await readings(masterGate(KEY), 'dev-1', `from=${FROM}&to=${NOW}&metric=temp&limit=1`);
    const apiNext = JSON.parse(first.body).next as string;
    const next = innerOf(apiNext);
    expect(next).toMatch(/^ts\./);
    ts.resetHistory();
    for (const other of [
      { ...query, deviceId: 'dev-2' },
      { ...query, metric: 'hum' },
      { ...query, metric: undefined },
      { ...query, from: query.from + 1 },
      { ...query, to: query.to - 1 },
    ]) {
      await expect(recent().page(other, next, { pageSize: 10 })).rejects.toThrow(
        new InvalidTokenError(OTHER_QUERY),
      );
    }
    const response = await readings(
      masterGate(KEY),
      'dev-2',
      `from=${query.from}&to=${query.to}&metric=temp&next=${apiNext}`,
    );
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toEqual({ error: 'invalid_token', message: OTHER_QUERY });
    expect(ts.commandCalls(QueryCommand)).toHaveLength(0);
  });

  it("pages only the caller's own device with a token of another device rewrapped in its digest", async () => {
    const timestream = fakeTimestream();
    // Device A's token, from a log; device B's own token, for its digest.
    // A key allowed to read dev-2 only, and device A's token (dev-1), say from a log.
    const onlyB: Gate = { admit: async () => ({ name: 'b-only', scopes: ['read'], devices: ['dev-2'] }) };
    const [, , a] = await pageThrough({ ...query, metric: undefined }, 2);
    const stateA = stateOf(a?.next as string);
    expect(stateA).toMatchObject({ at: FROM + 20_000, skip: 1 });
    // B's own first page gives B's digest: A's position rewrapped in it.
    const b = JSON.parse((await readings(onlyB, 'dev-2', `from=${FROM}&to=${NOW}&limit=1`)).body)
      .next as string;
    const qB = stateOf(innerOf(b)).q;
    const forged = withInner(b, made({ q: qB, at: stateA.at, skip: stateA.skip }));
    timestream.calls.length = 0;
    ts.resetHistory();
    expect((await readings(onlyB, 'dev-1', `from=${FROM}&to=${NOW}&next=${forged}`)).statusCode).toBe(403);
    const rows: Record<string, unknown>[] = [];
    let next: string | undefined = forged;
    while (next !== undefined) {
      const response = await readings(onlyB, 'dev-2', `from=${FROM}&to=${NOW}&limit=2&next=${next}`);
      expect(response.statusCode).toBe(200);
      const body = JSON.parse(response.body);
      rows.push(...body.rows);
      next = body.next;
    }
    // Only B's readings (100 and up), from A's position (one record in at FROM + 20 s) on, each once.
    const expected = longRows(
      inRange('dev-2')
        .filter((r) => r.time >= FROM + 20_000)
        .slice(1),
    );
    expect(rows.length).toBeGreaterThan(0);
    expect(rows).toEqual(expected);
    expect(rows.every((r) => r.metric !== 'temp' || (r.value as number) >= 100)).toBe(true);
    // Timestream saw only B's query and only NextTokens it gave within the same request.
    expect(timestream.calls.length).toBeGreaterThan(0);
    for (const call of timestream.calls) {
      expect(call.query).toContain("device_id = 'dev-2'");
      expect(call.query).not.toContain('dev-1');
    }
    // Rewrapping one of Timestream's NextTokens, as the old tokens carried, is no token.
    for (const token of [
      made({ q: qB, t: 'timestream-1' }),
      made({ q: qB, at: stateA.at, skip: 0, t: 'timestream-1' }),
    ]) {
      await expect(
        recent().page({ ...query, deviceId: 'dev-2', metric: undefined }, token, { pageSize: 2 }),
      ).rejects.toThrow(new InvalidTokenError(NOT_A_TOKEN));
    }
    expect(timestream.calls.every((c) => c.query.includes("device_id = 'dev-2'"))).toBe(true);
  });

  it('refuses a tampered, out-of-range or made-up token', async () => {
    fakeTimestream();
    const [{ next } = {}] = await pageThrough(query, 1);
    ts.resetHistory();
    const state = stateOf(next as string) as { q: string; at: number; skip: number };
    for (const token of [
      `ts.${Buffer.from('ts-next').toString('base64url')}`, // the unbound tokens used to be
      made({ q: state.q, t: 'ts-next' }), // the NextToken tokens used to be
      (next as string).slice(0, -4),
      'ts.',
      'ts.%%%',
      `ts.${'A'.repeat(9000)}`,
      (next as string).slice(3), // no prefix
      made([state.q, state.at, state.skip]),
      made({ q: state.q }),
      made({ at: state.at, skip: state.skip }),
      made({ ...state, at: undefined }),
      made({ ...state, skip: undefined }),
      made({ ...state, at: String(state.at) }),
      made({ ...state, skip: '1' }),
      made({ ...state, at: state.at + 0.5 }),
      made({ ...state, skip: 1.5 }),
      made({ ...state, skip: -1 }),
      made({ ...state, skip: 101 }),
      made({ ...state, skip: 1e300 }),
      made({ ...state, at: query.from - 1 }),
      made({ ...state, at: query.to }),
      made({ ...state, at: Number.MAX_SAFE_INTEGER + 2 }),
      made({ ...state, o: 5 }),
    ]) {
      await expect(recent().page(query, token, { pageSize: 10 })).rejects.toThrow(
        new InvalidTokenError(NOT_A_TOKEN),
      );
    }
    await expect(
      recent().page(query, made({ ...state, q: 'x'.repeat(22) }), { pageSize: 10 }),
    ).rejects.toThrow(new InvalidTokenError(OTHER_QUERY));
    expect(ts.commandCalls(QueryCommand)).toHaveLength(0);
    // In bounds is a token: the range's first and last millisecond, the largest skip.
    const start = await recent().page(query, made({ q: state.q, at: query.from, skip: 0 }), { pageSize: 10 });
    expect(start.rows).toEqual(longRows(inRange('dev-1').slice(0, 10), 'temp'));
    expect(
      await recent().page(query, made({ q: state.q, at: query.to - 1, skip: 100 }), { pageSize: 10 }),
    ).toEqual({
      rows: [],
    });
  });
});
