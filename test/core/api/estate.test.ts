import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../../lambdas/core/access/keys.ts';
import {
  cachedFirstPages,
  cachedTraffic,
  type EstateAnswer,
  type HourCount,
  handleEstateRequest,
  type TrafficCounts,
  uptimePlan,
} from '../../../lambdas/core/api/estate.ts';
import { createGate } from '../../../lambdas/core/api/gate.ts';
import type { HttpRequest } from '../../../lambdas/core/api/http.ts';
import type { PagedQueries } from '../../../lambdas/core/api/query.ts';
import type { AlertRule } from '../../../lambdas/core/estate/alerts.ts';
import { LAKE_PREFIXES } from '../../../lambdas/core/lake/layout.ts';
import { duckdbPagedQueries } from '../../../local/adapters/duckdb.ts';
import { AT, estateRecord, HOUR, MIN, TIMEOUTS } from '../../support/estate.ts';
import { memoryRegistry, UNLIMITED } from '../../support/fakes.ts';

const HOT: AlertRule = {
  name: 'hot',
  metric: 'temp',
  comparison: '>',
  threshold: 30,
  forMs: 0,
  hysteresis: 0,
  severity: 'critical',
};
const MASTER = 'master-key';
const north = createKey({ name: 'north', scopes: ['read'], devices: ['north-*'] }, 0);
const ingester = createKey({ name: 'ingester', scopes: ['ingest'] }, 0);
const gate = createGate({
  find: async (id) => [north, ingester].find((k) => k.record.id === id)?.record,
  masterKey: MASTER,
  limits: UNLIMITED,
});
const get = (query = '', key = MASTER): HttpRequest => ({
  method: 'GET',
  path: '/v1/estate',
  query,
  headers: { authorization: `Bearer ${key}` },
  body: Buffer.alloc(0),
  requestId: 'r',
  receivedAt: AT,
});

const raised = (since: number, value?: string) => ({
  state: 'raised' as const,
  since,
  ...(value ? { value } : {}),
});
const registry = memoryRegistry();
for (const r of [
  estateRecord('north-1', 'thermo', AT - MIN, {}, { hot: raised(AT - MIN) }),
  estateRecord('north-2', 'thermo', AT - 2 * HOUR, {}, { offline: raised(AT - HOUR, 'critical') }),
  estateRecord('south-1', 'tracker', AT - 2 * HOUR, {}, { offline: raised(AT - HOUR), gone: raised(AT) }),
  estateRecord('south-2', 'tracker', 0),
])
  registry.records.set(r.deviceId, r);

/** Two hours of traffic: 600 messages, 6 of them quarantined. */
const traffic: TrafficCounts & { asked: [number, number][] } = {
  source: 'test',
  asked: [],
  async hourly(from, to) {
    traffic.asked.push([from, to]);
    return [
      { hour: AT - HOUR, messages: 400, quarantined: 2 },
      { hour: AT - 2 * HOUR, messages: 200, quarantined: 4 },
    ];
  },
};

function engineAnswering(
  rows: Record<string, unknown>[],
  running = false,
): PagedQueries & { plans: unknown[] } {
  const plans: unknown[] = [];
  return {
    plans,
    page: async (plan) => {
      plans.push(plan);
      return running ? { rows: [], running: true, next: 't' } : { rows };
    },
  };
}

async function ask(query = '', options: { key?: string; engine?: PagedQueries } = {}) {
  const response = await handleEstateRequest(get(query, options.key), {
    gate,
    registry,
    timeouts: TIMEOUTS,
    rules: [HOT],
    offlineSeverity: 'warning',
    traffic,
    engine: options.engine ?? engineAnswering([]),
    now: () => AT,
  });
  return {
    status: response.statusCode,
    body: JSON.parse(response.body) as EstateAnswer & { error?: string; message?: string },
  };
}

describe('GET /v1/estate', () => {
  it('counts devices by status and open alerts by their rule severity', async () => {
    const { status, body } = await ask();
    expect(status).toBe(200);
    expect(body.devices).toEqual({ total: 4, online: 2, offline: 1, never: 1 });
    // hot: critical (its rule); offline: as raised (critical), else offline.severity; gone: no rule configured.
    expect(body.alerts).toEqual({ open: 4, bySeverity: { critical: 2, warning: 1, info: 0, unknown: 1 } });
  });

  it('gives messages a minute and the quarantine rate over the last 24 hours, hour by hour', async () => {
    const { body } = await ask();
    expect(traffic.asked.at(-1)).toEqual([Math.floor((AT - 24 * HOUR) / HOUR) * HOUR, AT]);
    expect(body.traffic).toEqual({
      source: 'test',
      from: new Date(AT - 24 * HOUR).toISOString(),
      to: new Date(AT).toISOString(),
      messages: 600,
      quarantined: 6,
      messagesPerMinute: 600 / 1440,
      quarantineRate: 0.01,
      hourly: [
        { hour: new Date(AT - 2 * HOUR).toISOString(), messages: 200, quarantined: 4 },
        { hour: new Date(AT - HOUR).toISOString(), messages: 400, quarantined: 2 },
      ],
    });
  });

  it('weighs uptime by observed time: the last day, and the last 7 days', async () => {
    const engine = engineAnswering([
      { day: '2026-11-23', offline_ms: '0', observed_ms: '86400000' },
      { day: '2026-11-24', offline_ms: '8640000', observed_ms: '86400000' },
    ]);
    const { body } = await ask('', { engine });
    expect(body.uptime).toEqual({
      last24h: { day: '2026-11-24', pct: 90 },
      last7d: { from: '2026-11-23', to: '2026-11-24', days: 2, pct: 95 },
    });
  });

  it('says uptime is null until daily_uptime has rows, and pending while the query runs', async () => {
    expect((await ask()).body.uptime).toEqual({ last24h: null, last7d: null });
    expect((await ask('', { engine: engineAnswering([], true) })).body.uptime).toEqual({
      last24h: null,
      last7d: null,
      pending: true,
    });
  });

  it('answers a key made for some devices with theirs only, and no estate-wide traffic', async () => {
    const engine = engineAnswering([]);
    const { body } = await ask('', { key: north.key, engine });
    expect(body.devices).toEqual({ total: 2, online: 1, offline: 1, never: 0 });
    expect(body.alerts.open).toBe(2);
    expect(body.traffic).toBeNull();
    expect(engine.plans).toEqual([uptimePlan(AT, ['north-*'])]);
  });

  it('needs the read scope and takes no parameters (400 with the reason)', async () => {
    expect((await ask('', { key: ingester.key })).status).toBe(403);
    const { status, body } = await ask('window=7d');
    expect(status).toBe(400);
    expect(body).toMatchObject({
      error: 'invalid_parameter',
      message: expect.stringMatching(/no parameter "window"/),
    });
  });
});

describe('cachedTraffic', () => {
  it('reads the source once a minute for the same range, again after a failure', async () => {
    let calls = 0;
    let fail = false;
    const source: TrafficCounts = {
      source: 's',
      hourly: async (): Promise<HourCount[]> => {
        calls++;
        if (fail) throw new Error('throttled');
        return [];
      },
    };
    let clock = AT;
    const cached = cachedTraffic(source, 60_000, () => clock);
    await cached.hourly(AT - HOUR, AT);
    clock += 30_000;
    await cached.hourly(AT - HOUR, AT + 10_000);
    expect(calls).toBe(1);
    clock += 31_000;
    fail = true;
    await expect(cached.hourly(AT - HOUR, AT + 10_000)).rejects.toThrow('throttled');
    fail = false;
    await cached.hourly(AT - HOUR, AT + 10_000);
    expect(calls).toBe(3);
  });
});

describe('cachedFirstPages', () => {
  it('asks the engine once per 10 minutes for a finished first page, every time while it runs', async () => {
    let clock = AT;
    let running = true;
    let asked = 0;
    const engine: PagedQueries = {
      page: async () => {
        asked++;
        return running ? { rows: [], running: true, next: 't' } : { rows: [{ day: 'x' }] };
      },
    };
    const cached = cachedFirstPages(engine, 600_000, () => clock);
    const plan = uptimePlan(AT, undefined);
    const options = { waitMs: 1, pageSize: 8 };
    await cached.page(plan, undefined, options);
    await cached.page(plan, undefined, options);
    expect(asked).toBe(2);
    running = false;
    expect((await cached.page(plan, undefined, options)).rows).toEqual([{ day: 'x' }]);
    clock += 599_000;
    await cached.page(plan, undefined, options);
    await cached.page(uptimePlan(AT, ['north-*']), undefined, options);
    expect(asked).toBe(4);
    clock += 2000;
    await cached.page(plan, undefined, options);
    expect(asked).toBe(5);
  });
});

describe('the uptime query on DuckDB over a lake folder', () => {
  let lake: string;
  let instance: DuckDBInstance;
  beforeAll(async () => {
    lake = mkdtempSync(join(tmpdir(), 'estate-uptime-'));
    instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    // Rows as the daily job writes them (another day, and a device row, that the estate figure must not count).
    const days = [
      ['2026-11-17', [['*', 0, 86_400_000]]],
      [
        '2026-11-23',
        [
          ['*', 0, 172_800_000],
          ['north-1', 0, 86_400_000],
          ['south-1', 0, 86_400_000],
        ],
      ],
      [
        '2026-11-24',
        [
          ['*', 17_280_000, 172_800_000],
          ['north-1', 17_280_000, 86_400_000],
          ['south-1', 0, 86_400_000],
        ],
      ],
    ] as const;
    for (const [day, rows] of days) {
      const dir = join(lake, LAKE_PREFIXES.dailyUptime, `dt=${day}`);
      mkdirSync(dir, { recursive: true });
      const values = rows
        .map(
          ([id, off, obs]) => `('${id}', 't', ${((obs - off) * 100) / obs}, ${off}::BIGINT, ${obs}::BIGINT)`,
        )
        .join(', ');
      await connection.run(
        `COPY (SELECT * FROM (VALUES ${values}) AS t(device_id, device_type, uptime_pct, offline_ms, observed_ms)) TO '${join(dir, 'data.parquet')}' (FORMAT PARQUET)`,
      );
    }
    connection.closeSync();
  });
  afterAll(() => instance.closeSync());

  it('reads the estate rows of the 7 days before today, or the sums of a key’s devices', async () => {
    const engine = duckdbPagedQueries(() => instance.connect(), lake);
    const response = async (key = MASTER) =>
      JSON.parse(
        (
          await handleEstateRequest(get('', key), {
            gate,
            registry,
            timeouts: TIMEOUTS,
            rules: [HOT],
            offlineSeverity: 'warning',
            traffic,
            engine,
            now: () => AT,
          })
        ).body,
      ) as EstateAnswer;
    expect((await response()).uptime).toEqual({
      last24h: { day: '2026-11-24', pct: 90 },
      last7d: { from: '2026-11-23', to: '2026-11-24', days: 2, pct: 95 },
    });
    expect((await response(north.key)).uptime).toEqual({
      last24h: { day: '2026-11-24', pct: 80 },
      last7d: { from: '2026-11-23', to: '2026-11-24', days: 2, pct: 90 },
    });
  });
});
