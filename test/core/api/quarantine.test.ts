import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../../lambdas/core/access/keys.ts';
import { createGate } from '../../../lambdas/core/api/gate.ts';
import type { HttpRequest } from '../../../lambdas/core/api/http.ts';
import {
  bucketOf,
  decodeCommand,
  handleQuarantineRequest,
  quarantineCountsPlan,
  quarantineExamplesPlan,
} from '../../../lambdas/core/api/quarantine.ts';
import type { PagedQueries, QueryPlan } from '../../../lambdas/core/api/query.ts';
import { writeObjects } from '../../../lambdas/core/ingest/lake-objects.ts';
import { quarantineKey } from '../../../lambdas/core/lake/layout.ts';
import { lakeTimestamp } from '../../../lambdas/core/lake/tables.ts';
import { duckdbPagedQueries } from '../../../local/adapters/duckdb.ts';
import { folderStore } from '../../../local/adapters/folder-store.ts';
import { NOW, UNLIMITED } from '../../support/fakes.ts';

const MASTER = 'master-key';
const north = createKey({ name: 'north', scopes: ['read'], devices: ['north-1'] }, 0);
const ingester = createKey({ name: 'ingester', scopes: ['ingest:telemetry'] }, 0);
const gate = createGate({
  find: async (id) => [north, ingester].find((k) => k.record.id === id)?.record,
  masterKey: MASTER,
  limits: UNLIMITED,
});
const HOUR = 3_600_000;

const get = (query: string, key: string | null = MASTER): HttpRequest => ({
  method: 'GET',
  path: '/v1/quarantine',
  query,
  headers: key === null ? {} : { 'x-api-key': key },
  body: Buffer.alloc(0),
  requestId: 'r',
  receivedAt: NOW,
});

describe('GET /v1/quarantine parameters and scopes', () => {
  const plans: QueryPlan[] = [];
  const engine: PagedQueries = {
    page: async (plan) => {
      plans.push(plan);
      return { rows: [] };
    },
  };
  const ask = (query: string, key: string | null = MASTER) =>
    handleQuarantineRequest(get(query, key), { gate, engine, now: () => NOW });

  it.each([
    ['source=carrier-pigeon', /source must be one of mqtt, http/],
    ['device=a;b', /device must match/],
    ['reason=%7F', /reason must be 1-256 characters/],
    ['limit=26', /limit must be 1 to 25/],
    ['from=2026-10-01T00:00:00Z', /At most 31 days/],
    ['next=garbage', /next is not a token this API gave/],
    ['next=1~2~notparts', /next is not a token this API gave/],
  ])('refuses %s with 400', async (query, message) => {
    const response = await ask(query);
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body).message).toMatch(message);
    expect(plans).toHaveLength(0);
  });

  it('answers 401 without a key, 403 to an ingest-only key and to another device', async () => {
    expect((await ask('', null)).statusCode).toBe(401);
    expect((await ask('', ingester.key)).statusCode).toBe(403);
    expect((await ask('device=south-1', north.key)).statusCode).toBe(403);
    expect((await ask('', north.key)).statusCode).toBe(200);
    expect(plans.at(-1)?.params.at(-1)).toEqual({ type: 'varchar', value: 'north-1' });
  });

  it('counts per hour up to two days and per day beyond', () => {
    expect(bucketOf(NOW - 48 * HOUR, NOW)).toBe('hour');
    expect(bucketOf(NOW - 48 * HOUR - 1, NOW)).toBe('day');
    expect(quarantineCountsPlan(NOW - HOUR, NOW, {}).sql).toContain("date_trunc('hour', received_at)");
    expect(quarantineCountsPlan(NOW - 3 * 24 * HOUR, NOW, {}).sql).toContain(
      "date_trunc('day', received_at)",
    );
  });

  it('puts the filters in parameters', () => {
    const plan = quarantineExamplesPlan(NOW - HOUR, NOW, { reason: "a' --", source: 'mqtt', device: 'd' });
    expect(plan.sql).not.toContain("a' --");
    expect(plan.params.slice(4).map((p) => p.value)).toEqual(["a' --", 'mqtt', 'd']);
  });

  it('gives a decode command with the payload as --base64 takes it, quoting what the shell would read', () => {
    expect(decodeCommand('thermo', 'eyJ0IjoxfQ==')).toBe(
      'npm run cli -- decode --type thermo --base64 eyJ0IjoxfQ==',
    );
    expect(decodeCommand("it's", 'AA==')).toBe("npm run cli -- decode --type 'it'\\''s' --base64 AA==");
    expect(decodeCommand(null, 'AA==')).toBeNull();
  });
});

describe('quarantine on DuckDB', () => {
  let lakeDir: string;
  let database: DuckDBInstance;
  const record = (id: string, at: number, reason: string, payload: string) => ({
    message_id: id,
    received_at: lakeTimestamp(at),
    source: 'mqtt',
    topic: 'dt/thermo/dev-1',
    device_id: 'dev-1',
    device_type: 'thermo',
    reason_code: reason,
    reason: `${reason} it was`,
    payload: Buffer.from(payload).toString('base64'),
  });

  beforeAll(async () => {
    lakeDir = await mkdtemp(join(tmpdir(), 'iot-quarantine-'));
    database = await DuckDBInstance.create(':memory:');
    const rows = [
      record('m1', NOW - 3 * HOUR + 5, 'invalid_json', '{not json'),
      record('m2', NOW - 3 * HOUR + 10, 'invalid_json', '{nor this'),
      record('m3', NOW - HOUR + 1, 'too_many_metrics', '{}'),
      record('m4', NOW - 60_000, 'invalid_json', '[1,'),
    ];
    await writeObjects(
      folderStore(lakeDir),
      rows.map((q) => ({
        messageId: q.message_id,
        keyFor: (id: string) => quarantineKey(NOW, id),
        lines: [JSON.stringify(q)],
      })),
      (_, error) => {
        throw error;
      },
    );
  });
  afterAll(() => database.closeSync());

  const ask = (query: string) =>
    handleQuarantineRequest(get(query), {
      gate,
      engine: duckdbPagedQueries(() => database.connect(), lakeDir),
      now: () => NOW,
    });

  it('counts reasons per hour and lists the latest records with their payload', async () => {
    const response = await ask('limit=2');
    expect(response.statusCode).toBe(200);
    const body = JSON.parse(response.body);
    expect(body.bucket).toBe('hour');
    expect(body.counts).toEqual([
      { bucket: '2026-11-25T03:00:00.000Z', reasonCode: 'invalid_json', count: 2 },
      { bucket: '2026-11-25T05:00:00.000Z', reasonCode: 'invalid_json', count: 1 },
      { bucket: '2026-11-25T05:00:00.000Z', reasonCode: 'too_many_metrics', count: 1 },
    ]);
    expect(body.examples.map((e: { messageId: string }) => e.messageId)).toEqual(['m4', 'm3']);
    expect(body.examples[0]).toMatchObject({
      receivedAt: '2026-11-25T05:59:00.000Z',
      reasonCode: 'invalid_json',
      topic: 'dt/thermo/dev-1',
      payload: Buffer.from('[1,').toString('base64'),
      decode: `npm run cli -- decode --type thermo --base64 ${Buffer.from('[1,').toString('base64')}`,
    });
    // The next page: examples only, the counts came with the first.
    const next = JSON.parse((await ask(`limit=2&next=${body.next}`)).body);
    expect(next.counts).toBeUndefined();
    expect(next.examples.map((e: { messageId: string }) => e.messageId)).toEqual(['m2', 'm1']);
    expect(next.next).toBeUndefined();
    // Bound to its query: the same token with another reason is refused.
    expect((await ask(`limit=2&reason=invalid_json&next=${body.next}`)).statusCode).toBe(400);
  });

  it('filters on the reason', async () => {
    const body = JSON.parse((await ask('reason=too_many_metrics')).body);
    expect(body.counts).toEqual([
      { bucket: '2026-11-25T05:00:00.000Z', reasonCode: 'too_many_metrics', count: 1 },
    ]);
    expect(body.examples.map((e: { messageId: string }) => e.messageId)).toEqual(['m3']);
  });
});
