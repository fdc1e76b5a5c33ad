import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../../lambdas/core/access/keys.ts';
import { alertsHistoryPlan, handleAlertsRequest, openAlerts } from '../../../lambdas/core/api/alerts.ts';
import { createGate } from '../../../lambdas/core/api/gate.ts';
import type { HttpRequest } from '../../../lambdas/core/api/http.ts';
import { OTHER_QUERY } from '../../../lambdas/core/api/page-token.ts';
import type { PagedQueries, QueryPlan } from '../../../lambdas/core/api/query.ts';
import { withAlertHistory } from '../../../lambdas/core/estate/alert-history.ts';
import type { AlertRule, DeviceRecord } from '../../../lambdas/core/estate/alerts.ts';
import { updateEstate } from '../../../lambdas/core/estate/update.ts';
import type { Reading } from '../../../lambdas/core/reading.ts';
import { duckdbPagedQueries } from '../../../local/adapters/duckdb.ts';
import { folderStore } from '../../../local/adapters/folder-store.ts';
import { memoryRegistry, NOW, UNLIMITED } from '../../support/fakes.ts';

const HOT: AlertRule = {
  name: 'hot',
  metric: 'temp',
  comparison: '>',
  threshold: 30,
  forMs: 0,
  hysteresis: 0,
  severity: 'critical',
};
const CONFIG = { alertRules: [HOT], offline: { severity: 'warning' as const }, deviceTypes: {} };
const MASTER = 'master-key';
const reader = createKey({ name: 'reader', scopes: ['read'] }, 0);
const north = createKey({ name: 'north', scopes: ['read'], devices: ['north-*'] }, 0);
const ingester = createKey({ name: 'ingester', scopes: ['ingest'] }, 0);
const gate = createGate({
  find: async (id) => [reader, north, ingester].find((k) => k.record.id === id)?.record,
  masterKey: MASTER,
  limits: UNLIMITED,
});

const get = (query: string, key: string | null = MASTER): HttpRequest => ({
  method: 'GET',
  path: '/v1/alerts',
  query,
  headers: key === null ? {} : { authorization: `Bearer ${key}` },
  body: Buffer.alloc(0),
  requestId: 'r',
  receivedAt: NOW,
});

const reading = (deviceId: string, time: number, temp: number): Reading => ({
  deviceId,
  deviceType: 'thermo',
  time,
  receivedAt: time,
  source: 'mqtt',
  metrics: { temp },
  key: String(time),
  messageId: `${deviceId}-${time}`,
});

describe('GET /v1/alerts parameters and scopes', () => {
  const plans: QueryPlan[] = [];
  const engine: PagedQueries = {
    page: async (plan) => {
      plans.push(plan);
      return { rows: [] };
    },
  };
  const deps = { gate, engine, registry: memoryRegistry(), rules: [HOT], now: () => NOW };
  const ask = (query: string, key: string | null = MASTER) => handleAlertsRequest(get(query, key), deps);

  it.each([
    ['state=closed', /state must be one of open, all/],
    ['severity=fatal', /severity must be one of info, warning, critical/],
    ['device=a%20b', /device must match/],
    ['device=../x', /device must match/],
    ['state=all&from=yesterday', /from=yesterday is not a time/],
    ['state=all&from=2026-11-01T00:00:00Z&to=2026-12-15T00:00:00Z', /At most 31 days/],
    ['state=all&from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z', /from must be before to/],
    ['limit=0', /limit must be 1 to 1000/],
    ['limit=1001', /limit must be 1 to 1000/],
    ['rule=%01', /rule must be 1-256 characters/],
    ['from=2026-11-24T00:00:00Z', /from and to are for state=all/],
  ])('refuses %s with 400', async (query, message) => {
    const response = await ask(query);
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body).message).toMatch(message);
    expect(plans).toHaveLength(0);
  });

  it('answers 401 without a key and 403 to an ingest-only key', async () => {
    expect((await ask('', null)).statusCode).toBe(401);
    const refused = await ask('', ingester.key);
    expect(refused.statusCode).toBe(403);
    expect(JSON.parse(refused.body).message).toMatch(/needs scope "read"/);
  });

  it("refuses another device to a key made for some, and keeps the history to the key's devices", async () => {
    expect((await ask('device=south-1', north.key)).statusCode).toBe(403);
    const response = await ask('state=all', north.key);
    expect(response.statusCode).toBe(200);
    const plan = plans.at(-1) as QueryPlan;
    expect(plan.sql).toContain('substr(device_id, 1, 6) = ?');
    expect(plan.params.at(-1)).toEqual({ type: 'varchar', value: 'north-' });
  });

  it('puts every filter in a parameter, never in the SQL', () => {
    const plan = alertsHistoryPlan(NOW - 3_600_000, NOW, {
      severity: 'critical',
      rule: "x' OR 1=1 --",
      type: 'thermo',
      device: 'dev-1',
    });
    expect(plan.sql).not.toContain('OR 1=1');
    expect(plan.params.map((p) => p.value)).toEqual([
      '2026-11-25',
      '2026-11-25',
      '2026-11-25 05:00:00.000',
      '2026-11-25 06:00:00.000',
      'critical',
      "x' OR 1=1 --",
      'thermo',
      'dev-1',
    ]);
  });
});

describe('open alerts from the registry', () => {
  const record = (deviceId: string, alerts: DeviceRecord['alerts']): DeviceRecord => ({
    deviceId,
    deviceType: 'thermo',
    attributes: {},
    firstSeen: NOW,
    lastSeen: NOW,
    lastValues: {},
    lostMessages: 0,
    alerts,
    version: 1,
  });
  const records = [
    record('dev-1', { hot: { state: 'raised', since: NOW, value: 31 } }),
    record('dev-2', {
      hot: { state: 'pending', since: NOW, value: 31 },
      offline: { state: 'raised', since: NOW - 1000, value: 'warning' },
    }),
    record('north-1', { gone: { state: 'raised', since: NOW - 5000, value: 1 } }),
  ];

  it('lists raised alerts (not pending ones), newest first, with the rule from the config', () => {
    expect(openAlerts(records, [HOT], {})).toEqual([
      {
        deviceId: 'dev-1',
        deviceType: 'thermo',
        rule: 'hot',
        severity: 'critical',
        since: '2026-11-25T06:00:00.000Z',
        metric: 'temp',
        value: 31,
        comparison: '>',
        threshold: 30,
      },
      expect.objectContaining({ deviceId: 'dev-2', rule: 'offline', severity: 'warning', value: null }),
      // A rule no longer configured: still open, its severity unknown.
      expect.objectContaining({ deviceId: 'north-1', rule: 'gone', severity: null }),
    ]);
  });

  it.each([
    [{ severity: 'warning' as const }, ['dev-2']],
    [{ rule: 'hot' }, ['dev-1']],
    [{ device: 'dev-2' }, ['dev-2']],
    [{ type: 'other' }, []],
    [{ devices: ['north-*'] }, ['north-1']],
  ])('filters on %j', (filter, devices) => {
    expect(openAlerts(records, [HOT], filter).map((a) => a.deviceId)).toEqual(devices);
  });

  it('pages with a token bound to its filter', async () => {
    const registry = memoryRegistry();
    for (const r of records) registry.records.set(r.deviceId, r);
    const deps = { gate, engine: { page: async () => ({ rows: [] }) }, registry, rules: [HOT] };
    const first = JSON.parse((await handleAlertsRequest(get('limit=2'), deps)).body);
    expect(first.rows).toHaveLength(2);
    const second = JSON.parse((await handleAlertsRequest(get(`limit=2&next=${first.next}`), deps)).body);
    expect(second.rows.map((a: { deviceId: string }) => a.deviceId)).toEqual(['north-1']);
    expect(second.next).toBeUndefined();
    const other = await handleAlertsRequest(get(`limit=2&rule=hot&next=${first.next}`), deps);
    expect(other.statusCode).toBe(400);
    expect(JSON.parse(other.body).message).toBe(OTHER_QUERY);
  });
});

describe('alert history on DuckDB', () => {
  let lakeDir: string;
  let database: DuckDBInstance;
  const registry = memoryRegistry();

  beforeAll(async () => {
    lakeDir = await mkdtemp(join(tmpdir(), 'iot-alerts-'));
    database = await DuckDBInstance.create(':memory:');
    const publisher = withAlertHistory({ publish: async () => undefined }, folderStore(lakeDir));
    const deps = { registry, publisher, config: CONFIG };
    // Three raises and two clears over two days, on two devices.
    await updateEstate([reading('dev-1', NOW - 86_400_000, 31)], deps);
    await updateEstate([reading('dev-1', NOW - 86_000_000, 20)], deps);
    await updateEstate([reading('dev-2', NOW - 3_600_000, 35)], deps);
    await updateEstate([reading('dev-1', NOW - 1000, 32)], deps);
    await updateEstate([reading('dev-2', NOW - 500, 10)], deps);
  });
  afterAll(() => database.closeSync());

  const history = (query: string) =>
    handleAlertsRequest(get(`state=all&${query}`), {
      gate,
      registry,
      rules: [HOT],
      engine: duckdbPagedQueries(() => database.connect(), lakeDir),
      now: () => NOW,
    });

  it('answers the events of the range, newest first, with ISO times and numbers', async () => {
    const body = JSON.parse((await history('from=2026-11-23T00:00:00Z')).body);
    expect(body.rows.map((r: { deviceId: string; state: string }) => `${r.deviceId} ${r.state}`)).toEqual([
      'dev-2 cleared',
      'dev-1 raised',
      'dev-2 raised',
      'dev-1 cleared',
      'dev-1 raised',
    ]);
    expect(body.rows[1]).toMatchObject({
      time: '2026-11-25T05:59:59.000Z',
      rule: 'hot',
      severity: 'critical',
      value: 32,
      threshold: 30,
      comparison: '>',
      lastSeen: null,
    });
  });

  it('filters on device and state of the range, and pages with a token bound to the query', async () => {
    const one = JSON.parse((await history('from=2026-11-23T00:00:00Z&device=dev-1&limit=2')).body);
    expect(one.rows).toHaveLength(2);
    expect(one.next).toMatch(/^\d+~\d+~/);
    // Following next without from/to keeps the range of the first page.
    const two = JSON.parse((await history(`device=dev-1&limit=2&next=${one.next}`)).body);
    expect(two.rows.map((r: { state: string }) => r.state)).toEqual(['raised']);
    const other = await history(`device=dev-2&limit=2&next=${one.next}`);
    expect(other.statusCode).toBe(400);
    expect(JSON.parse(other.body).error).toBe('invalid_token');
  });

  it('finds nothing for a device that has no alerts, and only open ones by default', async () => {
    expect(JSON.parse((await history('device=dev-9')).body).rows).toEqual([]);
    const open = JSON.parse(
      (
        await handleAlertsRequest(get(''), {
          gate,
          registry,
          rules: [HOT],
          engine: { page: async () => ({ rows: [] }) },
        })
      ).body,
    );
    expect(open.rows.map((a: { deviceId: string }) => a.deviceId)).toEqual(['dev-1']);
  });
});
