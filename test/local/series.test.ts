/**
 * The chart route through the local runtime: readings of one device over two days
 * sent over HTTP, `GET /v1/devices/{id}/series` answering each bucket's min, max, avg and
 * count, first from the NDJSON, then (after the daily job) from the curated Parquet.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runDailyJob } from '../../lambdas/core/analytics/daily.ts';
import { duckdbEngine } from '../../local/adapters/duckdb.ts';
import { folderStore } from '../../local/adapters/folder-store.ts';
import { type LocalRuntime, startLocalRuntime } from '../../local/runtime.ts';

const API_KEY = 'test-key-0123456789';
const HOUR = 3_600_000;
// Two whole days ending at the last whole hour: every reading is in the past.
const TO = Math.floor(Date.now() / HOUR) * HOUR;
const FROM = TO - 48 * HOUR;

interface Bucket {
  readonly time: string;
  readonly min: number;
  readonly max: number;
  readonly avg: number;
  readonly count: number;
}
interface SeriesBody {
  readonly bucketMs: number;
  readonly sources: string[];
  readonly buckets: Bucket[];
  readonly error?: string;
}

describe('series route, local runtime end to end', () => {
  let rt: LocalRuntime;
  const series = (query: string, device = 'chart-1') =>
    fetch(`http://127.0.0.1:${rt.httpPort}/v1/devices/${device}/series?${query}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
  const body = async (query: string) => (await (await series(query)).json()) as SeriesBody;

  beforeAll(async () => {
    rt = await startLocalRuntime({
      dataDir: await mkdtemp(join(tmpdir(), 'iot-series-')),
      mqttPort: 0,
      httpPort: 0,
      apiKey: API_KEY,
      queue: { batchWindowMs: 20, retryDelayMs: 20 },
    });
    // Each hour h: value h on its first millisecond, h + 0.5 on its last (1 ms before the
    // next bucket's edge); one reading 1 ms before the range and one at its end (excluded);
    // another device's readings at the same times (never in this device's series).
    const items: Record<string, unknown>[] = [];
    for (let h = 0; h < 48; h++) {
      items.push({ $id: 'chart-1', $ts: FROM + h * HOUR, temp: h });
      items.push({ $id: 'chart-1', $ts: FROM + (h + 1) * HOUR - 1, temp: h + 0.5 });
      items.push({ $id: 'chart-2', $ts: FROM + h * HOUR, temp: 1000 + h });
    }
    items.push({ $id: 'chart-1', $ts: FROM - 1, temp: -99 }, { $id: 'chart-1', $ts: TO, temp: 99 });
    for (let i = 0; i < items.length; i += 25) {
      const response = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/telemetry`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(items.slice(i, i + 25)),
      });
      expect(response.status).toBe(202);
    }
    await vi.waitFor(
      async () => {
        const { rows } = await rt.query("SELECT count(*)::INTEGER AS n FROM readings WHERE metric = 'temp'");
        expect(rows[0]?.n).toBe(items.length);
      },
      { timeout: 20_000, interval: 100 },
    );
  }, 60_000);

  afterAll(async () => {
    await rt?.close();
  });

  const hourly = Array.from({ length: 48 }, (_, h) => ({
    time: new Date(FROM + h * HOUR).toISOString(),
    min: h,
    max: h + 0.5,
    avg: h + 0.25,
    count: 2,
  }));

  it('answers one bucket per hour with its min, max and avg, the edges in the right bucket', async () => {
    const response = await series(`metric=temp&from=${FROM}&to=${TO}&points=48`);
    expect(response.status).toBe(200);
    const answer = (await response.json()) as SeriesBody;
    expect(answer.bucketMs).toBe(HOUR);
    expect(answer.sources).toEqual(['readings']);
    expect(answer.buckets).toEqual(hourly);
  });

  it('gives at most `points` buckets, all the readings of the range counted once', async () => {
    const { buckets } = await body(`metric=temp&from=${FROM}&to=${TO}&points=7`);
    expect(buckets.length).toBeLessThanOrEqual(7);
    expect(buckets.reduce((n, b) => n + b.count, 0)).toBe(96);
    expect(Math.min(...buckets.map((b) => b.min))).toBe(0);
    expect(Math.max(...buckets.map((b) => b.max))).toBe(47.5);
  });

  it('answers the same from the curated Parquet once the daily job compacted a day', async () => {
    const day = new Date(FROM + 24 * HOUR).toISOString().slice(0, 10);
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      await runDailyJob(day, {
        engine: await duckdbEngine(connection, rt.lakeDir),
        lake: folderStore(rt.lakeDir),
        bucket: 'lake',
      });
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
    const answer = await body(`metric=temp&from=${FROM}&to=${TO}&points=48`);
    expect(answer.sources).toEqual(['readings', 'curated_readings']);
    expect(answer.buckets).toEqual(hourly);
  });

  it('refuses a bad device id, metric, range or points before any query', async () => {
    for (const [query, device, error] of [
      [`metric=temp&from=${FROM}&to=${TO}`, "chart-1'%20OR%201=1", 'invalid_device_id'],
      [`from=${FROM}&to=${TO}`, 'chart-1', 'invalid_parameter'],
      [`metric=temp&from=${TO - 31 * 24 * HOUR}&to=${TO}`, 'chart-1', 'invalid_parameter'],
      [`metric=temp&points=5001`, 'chart-1', 'invalid_parameter'],
      [`metric=temp&points=0`, 'chart-1', 'invalid_parameter'],
    ] as const) {
      const response = await series(query, device);
      const answer = (await response.json()) as SeriesBody;
      expect([query, response.status, answer.error]).toEqual([query, 400, error]);
    }
    expect(
      (await fetch(`http://127.0.0.1:${rt.httpPort}/v1/devices/chart-1/series?metric=temp`)).status,
    ).toBe(401);
  });
});
