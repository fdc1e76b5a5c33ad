import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { DuckDBInstance } from '@duckdb/node-api';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { athenaPagedQueries } from '../../../lambdas/adapters/aws/athena.ts';
import { createKey } from '../../../lambdas/core/access/keys.ts';
import { createGate } from '../../../lambdas/core/api/gate.ts';
import type { HttpRequest } from '../../../lambdas/core/api/http.ts';
import { athenaLiteral, type PagedQueries, type QueryPlan } from '../../../lambdas/core/api/query.ts';
import {
  handleRawRequest,
  isRawPath,
  MAX_RAW_ROWS,
  rawPlan,
  rawRow,
  warningsOf,
} from '../../../lambdas/core/api/raw.ts';
import { writeObjects } from '../../../lambdas/core/ingest/lake-objects.ts';
import { rawKey } from '../../../lambdas/core/lake/layout.ts';
import { lakeTimestamp } from '../../../lambdas/core/lake/tables.ts';
import { duckdbPagedQueries } from '../../../local/adapters/duckdb.ts';
import { folderStore } from '../../../local/adapters/folder-store.ts';
import { NOW, UNLIMITED } from '../../support/fakes.ts';

const MASTER = 'master-key';
const north = createKey({ name: 'north', scopes: ['read'], devices: ['north-*'] }, 0);
const ingester = createKey({ name: 'ingester', scopes: ['ingest:telemetry'] }, 0);
const gate = createGate({
  find: async (id) => [north, ingester].find((k) => k.record.id === id)?.record,
  masterKey: MASTER,
  limits: UNLIMITED,
});
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const get = (path: string, query = '', key: string | null = MASTER, method = 'GET'): HttpRequest => ({
  method,
  path,
  query,
  headers: key === null ? {} : { 'x-api-key': key },
  body: Buffer.alloc(0),
  requestId: 'r',
  receivedAt: NOW,
});

describe('the raw plan', () => {
  it('reads one device, only the days and hours of the range, every value a parameter', () => {
    // 22:30 one day to 01:30 two days later: three days, the first from hour 22, the last to hour 01.
    const from = Date.parse('2026-11-23T22:30:00Z');
    const to = Date.parse('2026-11-25T01:30:00Z');
    const plan = rawPlan({ deviceId: 'dev-1', from, to });
    expect(plan.sql).toContain('FROM raw');
    expect(plan.sql).toContain('ORDER BY received_at DESC, message_id');
    expect(plan.sql).toContain(`LIMIT ${MAX_RAW_ROWS}`);
    expect(plan.sql).toContain('(dt > ? OR hour >= ?) AND (dt < ? OR hour <= ?)');
    expect(plan.sql).not.toContain('dev-1');
    expect(plan.sql).not.toContain('2026');
    expect((plan.sql.match(/\?/g) ?? []).length).toBe(plan.params.length);
    expect(plan.params.map(athenaLiteral)).toEqual([
      "'dev-1'",
      "'2026-11-23'",
      "'2026-11-24'",
      "'2026-11-25'",
      "'2026-11-23'",
      "'22'",
      "'2026-11-25'",
      "'01'",
      "TIMESTAMP '2026-11-23 22:30:00.000'",
      "TIMESTAMP '2026-11-25 01:30:00.000'",
    ]);
  });

  it('prunes a range ending on an hour edge to the hours before it', () => {
    const plan = rawPlan({ deviceId: 'd', from: NOW - HOUR, to: NOW });
    // 05:00 to 06:00: one day, hours 05 to 05.
    expect(plan.params.slice(1, 6).map((p) => p.value)).toEqual([
      '2026-11-25',
      '2026-11-25',
      '05',
      '2026-11-25',
      '05',
    ]);
  });

  it('refuses what the handler would have refused', () => {
    expect(() => rawPlan({ deviceId: "d' OR '1'='1", from: NOW - HOUR, to: NOW })).toThrow(RangeError);
    expect(() => rawPlan({ deviceId: 'd', from: NOW, to: NOW })).toThrow(RangeError);
    expect(() => rawPlan({ deviceId: 'd', from: NOW - 7 * DAY - 1, to: NOW })).toThrow(RangeError);
    expect(() => rawPlan({ deviceId: 'd', from: NOW - 0.5, to: NOW })).toThrow(RangeError);
  });

  it('reads the warnings column as an array, whatever it holds', () => {
    expect(warningsOf(null)).toEqual([]);
    expect(warningsOf('')).toEqual([]);
    expect(warningsOf('["a","b"]')).toEqual(['a', 'b']);
    expect(warningsOf('[1,{"x":2}]')).toEqual(['1', '{"x":2}']);
    expect(warningsOf('not json')).toEqual(['not json']);
    expect(warningsOf('{"a":1}')).toEqual(['{"a":1}']);
  });

  it('answers a row with its decode command, none without a device type', () => {
    const row = rawRow({
      received_at: '2026-11-25 05:59:00.123',
      message_id: 'm',
      source: 'mqtt',
      topic: 'dt/thermo/d',
      device_type: 'thermo',
      payload: 'e30=',
      warnings: null,
    });
    expect(row).toEqual({
      receivedAt: '2026-11-25T05:59:00.123Z',
      messageId: 'm',
      source: 'mqtt',
      topic: 'dt/thermo/d',
      deviceType: 'thermo',
      payload: 'e30=',
      warnings: [],
      decode: 'npm run cli -- decode --type thermo --base64 e30=',
    });
    expect(rawRow({ payload: 'e30=', device_type: null }).decode).toBeNull();
  });
});

describe('GET /v1/devices/{id}/raw parameters and scopes', () => {
  const plans: QueryPlan[] = [];
  const engine: PagedQueries = {
    page: async (plan) => {
      plans.push(plan);
      return { rows: [] };
    },
  };
  const ask = (device: string, query = '', key: string | null = MASTER) =>
    handleRawRequest(get(`/v1/devices/${device}/raw`, query, key), { gate, engine, now: () => NOW });

  it('matches its path only', () => {
    expect(isRawPath('/v1/devices/dev-1/raw')).toBe(true);
    expect(isRawPath('/v1/devices/dev-1/raw/x')).toBe(false);
    expect(isRawPath('/v1/devices//raw')).toBe(false);
    expect(isRawPath('/v1/devices/dev-1/series')).toBe(false);
  });

  it.each([
    ['dev-1', 'limit=0', 'invalid_parameter', /limit must be 1 to 25/],
    ['dev-1', 'limit=26', 'invalid_parameter', /limit must be 1 to 25/],
    ['dev-1', 'limit=1e1', 'invalid_parameter', /limit must be 1 to 25/],
    ['dev-1', 'limit=2.5', 'invalid_parameter', /limit must be 1 to 25/],
    ['dev-1', 'limit=', 'invalid_parameter', /limit must be 1 to 25/],
    ['dev-1', 'from=2026-11-18T05:59:59Z', 'invalid_parameter', /At most 7 days/],
    ['dev-1', 'from=2026-09-01T00:00:00Z', 'invalid_parameter', /At most 7 days/],
    // A token made up with a wider range than the route gives.
    ['dev-1', `next=${NOW - 9 * DAY}~${NOW}~x`, 'invalid_parameter', /At most 7 days/],
    ['dev-1', 'from=2026-11-25T07:00:00Z', 'invalid_parameter', /from must be before to/],
    ['dev-1', 'from=yesterday', 'invalid_parameter', /from=yesterday is not a time/],
    ['dev-1', "to=1'%20OR%20'1'='1", 'invalid_parameter', /is not a time/],
    ['dev-1', 'next=garbage', 'invalid_token', /next is not a token/],
    ['dev-1', "next=1~2~'%3B%20DROP", 'invalid_token', /next is not a token/],
    ["dev-1'%20OR%20'1'='1", '', 'invalid_device_id', /device id must match/],
    ['dev-1%3B%20DROP%20TABLE%20raw', '', 'invalid_device_id', /device id must match/],
    ['%ZZ', '', 'invalid_device_id', /malformed/],
    ['a%2Fb', '', 'invalid_device_id', /device id must match/],
  ])('answers 400 for %s?%s before any query', async (device, query, error, message) => {
    plans.length = 0;
    const response = await ask(device, query);
    const body = JSON.parse(response.body);
    expect([response.statusCode, body.error]).toEqual([400, error]);
    expect(body.message).toMatch(message);
    expect(plans).toEqual([]);
  });

  it('answers 401 without a key, 403 to an ingest-only key and to a key for other devices, 405 to a POST', async () => {
    plans.length = 0;
    expect((await ask('north-1', '', null)).statusCode).toBe(401);
    expect((await ask('north-1', '', ingester.key)).statusCode).toBe(403);
    const other = await ask('south-1', '', north.key);
    expect([other.statusCode, JSON.parse(other.body).error]).toEqual([403, 'forbidden_device']);
    expect(plans).toEqual([]);
    const posted = await handleRawRequest(get('/v1/devices/north-1/raw', '', MASTER, 'POST'), {
      gate,
      engine,
    });
    expect(posted.statusCode).toBe(405);
    const own = await ask('north-1', '', north.key);
    expect(own.statusCode).toBe(200);
    expect(plans).toHaveLength(1);
  });

  it('reads the last day by default, and a metric-like hostile time never reaches the SQL', async () => {
    plans.length = 0;
    const response = await ask('dev-1.a:b_c');
    expect(response.statusCode).toBe(200);
    const body = JSON.parse(response.body);
    expect([body.from, body.to, body.rows]).toEqual([
      new Date(NOW - DAY).toISOString(),
      new Date(NOW).toISOString(),
      [],
    ]);
    expect(plans[0]?.params[0]).toEqual({ type: 'varchar', value: 'dev-1.a:b_c' });
    expect(plans[0]?.sql).not.toContain('dev-1.a:b_c');
    // Seven days exactly is allowed.
    expect((await ask('dev-1', `from=${NOW - 7 * DAY}&to=${NOW}`)).statusCode).toBe(200);
  });
});

describe('raw messages on DuckDB', () => {
  let lakeDir: string;
  let database: DuckDBInstance;
  const record = (id: string, at: number, device: string | null, payload: string, warnings?: string[]) => ({
    message_id: id,
    received_at: lakeTimestamp(at),
    source: 'mqtt' as const,
    topic: `dt/thermo/${device}`,
    client_id: device,
    device_id: device,
    device_type: 'thermo',
    payload: Buffer.from(payload).toString('base64'),
    ...(warnings ? { warnings: JSON.stringify(warnings) } : {}),
  });

  beforeAll(async () => {
    lakeDir = await mkdtemp(join(tmpdir(), 'iot-raw-'));
    database = await DuckDBInstance.create(':memory:');
    const rows = [
      record('m0', NOW - 2 * DAY, 'dev-1', '{"old":1}'),
      record('m1', NOW - 3 * HOUR + 5, 'dev-1', '{"t":1}'),
      record('m2', NOW - 2 * HOUR, 'dev-1', '{"t":2}', ['field "x" refused']),
      record('m3', NOW - HOUR + 1, 'dev-1', '{"t":3}'),
      record('m4', NOW - 60_000, 'dev-1', '{"t":4}'),
      record('o1', NOW - 30_000, 'dev-2', '{"t":99}'),
      record('n1', NOW - 20_000, null, '{"t":98}'),
      // At `to`: outside [from, to).
      record('m5', NOW, 'dev-1', '{"t":5}'),
    ];
    await writeObjects(
      folderStore(lakeDir),
      rows.map((r) => ({
        messageId: r.message_id,
        keyFor: (id: string) => rawKey(r.source, Date.parse(`${r.received_at.replace(' ', 'T')}Z`), id),
        lines: [JSON.stringify(r)],
      })),
      (_, error) => {
        throw error;
      },
    );
  });
  afterAll(() => database.closeSync());

  const ask = (query: string, device = 'dev-1') =>
    handleRawRequest(get(`/v1/devices/${device}/raw`, query), {
      gate,
      engine: duckdbPagedQueries(() => database.connect(), lakeDir),
      now: () => NOW,
    });

  it('lists the device’s messages newest first, with payload and warnings, and pages with next', async () => {
    const response = await ask('limit=2');
    expect(response.statusCode).toBe(200);
    const body = JSON.parse(response.body);
    expect(body.rows.map((r: { messageId: string }) => r.messageId)).toEqual(['m4', 'm3']);
    expect(body.rows[0]).toEqual({
      receivedAt: '2026-11-25T05:59:00.000Z',
      messageId: 'm4',
      source: 'mqtt',
      topic: 'dt/thermo/dev-1',
      deviceType: 'thermo',
      payload: Buffer.from('{"t":4}').toString('base64'),
      warnings: [],
      decode: `npm run cli -- decode --type thermo --base64 ${Buffer.from('{"t":4}').toString('base64')}`,
    });
    expect(typeof body.next).toBe('string');
    // A minute later, `next` alone: the same range (the token carries it).
    const next = JSON.parse(
      (
        await handleRawRequest(
          get('/v1/devices/dev-1/raw', `limit=2&next=${encodeURIComponent(body.next)}`),
          {
            gate,
            engine: duckdbPagedQueries(() => database.connect(), lakeDir),
            now: () => NOW + 60_000,
          },
        )
      ).body,
    );
    expect(next.to).toBe(new Date(NOW).toISOString());
    expect(next.rows.map((r: { messageId: string }) => r.messageId)).toEqual(['m2', 'm1']);
    expect(next.rows[0].warnings).toEqual(['field "x" refused']);
    expect(Buffer.from(next.rows[1].payload, 'base64').toString()).toBe('{"t":1}');
    expect(next.next).toBeUndefined();
    // Bound to its device: the token of dev-1 is refused for dev-2.
    expect((await ask(`limit=2&next=${encodeURIComponent(body.next)}`, 'dev-2')).statusCode).toBe(400);
  });

  it('reads only the range asked: the old message with a range around it, none outside', async () => {
    const old = JSON.parse((await ask(`from=${NOW - 2 * DAY - HOUR}&to=${NOW - 2 * DAY + 1}`)).body);
    expect(old.rows.map((r: { messageId: string }) => r.messageId)).toEqual(['m0']);
    const hour = JSON.parse((await ask(`from=${NOW - HOUR}&to=${NOW}`)).body);
    expect(hour.rows.map((r: { messageId: string }) => r.messageId)).toEqual(['m4', 'm3']);
    const other = JSON.parse((await ask('', 'dev-2')).body);
    expect(other.rows.map((r: { messageId: string }) => r.messageId)).toEqual(['o1']);
  });
});

describe('raw messages on Athena', () => {
  it('answers 202 while the query runs, then the page the same query gives', async () => {
    const athena = mockClient(AthenaClient);
    try {
      const plan = rawPlan({ deviceId: 'dev-1', from: NOW - DAY, to: NOW });
      const execution = { Query: plan.sql, ExecutionParameters: plan.params.map(athenaLiteral) };
      athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q1' });
      athena
        .on(GetQueryExecutionCommand)
        .resolves({ QueryExecution: { ...execution, Status: { State: 'RUNNING' } } });
      const deps = {
        gate,
        engine: athenaPagedQueries(new AthenaClient({}), {
          workGroup: 'wg',
          database: 'db',
          sleep: async () => undefined,
        }),
        waitMs: 0,
        now: () => NOW,
      };
      const first = await handleRawRequest(get('/v1/devices/dev-1/raw'), deps);
      const running = JSON.parse(first.body);
      expect([first.statusCode, running.running, running.rows]).toEqual([202, true, []]);
      athena.on(GetQueryExecutionCommand).resolves({
        QueryExecution: {
          ...execution,
          Status: { State: 'SUCCEEDED' },
          Statistics: { DataScannedInBytes: 42 },
        },
      });
      const columns = ['received_at', 'message_id', 'source', 'topic', 'device_type', 'payload', 'warnings'];
      athena.on(GetQueryResultsCommand).resolves({
        ResultSet: {
          ResultSetMetadata: { ColumnInfo: columns.map((Name) => ({ Name, Type: 'varchar' })) },
          Rows: [
            { Data: columns.map((VarCharValue) => ({ VarCharValue })) },
            {
              Data: [
                { VarCharValue: '2026-11-25 05:00:00.000' },
                { VarCharValue: 'm' },
                { VarCharValue: 'http' },
                { VarCharValue: '/v1/telemetry' },
                { VarCharValue: 'thermo' },
                { VarCharValue: 'e30=' },
                {},
              ],
            },
          ],
        },
      });
      const second = await handleRawRequest(
        get('/v1/devices/dev-1/raw', `next=${encodeURIComponent(running.next)}`),
        { ...deps, now: () => NOW + 60_000 },
      );
      const done = JSON.parse(second.body);
      expect([
        second.statusCode,
        done.to,
        done.bytesScanned,
        done.rows[0]?.messageId,
        done.rows[0]?.warnings,
      ]).toEqual([200, new Date(NOW).toISOString(), 42, 'm', []]);
      expect(athena.commandCalls(StartQueryExecutionCommand)).toHaveLength(1);
      expect(athena.commandCalls(StartQueryExecutionCommand)[0]?.args[0].input.QueryString).not.toContain(
        'dev-1',
      );
    } finally {
      athena.restore();
    }
  });
});
