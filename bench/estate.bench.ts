/**
 * `estate.*`: what a page of the estate costs, against the whole-estate answer
 * `GET /v1/devices` gave before it paged.
 *
 * Locally, with 10,000 devices in the runtime's registry (posted as readings, so the
 * ingest path made every record): bytes and ms of a page of 100 and of 1,000 over real
 * HTTP, and of `GET /v1/estate`; the baseline is the old answer, every record read
 * (`list()`), summarised and serialised in one body, as the route did.
 *
 * On DynamoDB, the registry adapter's read units per call at 10,000 and 100,000 devices,
 * over the cost model's metered DynamoDB (tools/cost/estate.ts); the baseline is the old
 * route's Scan of the whole table (the bytes `GET /v1/estate` reads too).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceSummary, offlineTimeouts } from '../lambdas/core/estate/registry-query.ts';
import { validateConfig } from '../lib/config.ts';
import { startLocalRuntime } from '../local/runtime.ts';
import { measureEstateCalls, simulatedRecords } from '../tools/cost/estate.ts';
import { checkPrices } from '../tools/cost/model.ts';
import { PRICES_FILE } from '../tools/cost/report.ts';
import type { BenchResult } from './types.ts';

const DEVICES = 10_000;
const KEY = 'bench-estate-key';

function result(name: string, value: number, unit: string, baseline: number, target = 'print'): BenchResult {
  const ratio = baseline === 0 ? 0 : value / baseline;
  return {
    name,
    value: Math.round(value * 100) / 100,
    unit,
    baseline: Math.round(baseline * 100) / 100,
    ratio,
    target,
    met: true,
  };
}

/** Median ms and the bytes of `n` calls. */
async function timed(n: number, call: () => Promise<number>): Promise<{ ms: number; bytes: number }> {
  await call();
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    bytes = await call();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(n / 2)] as number, bytes };
}

export async function run(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const config = validateConfig({
    offline: { after: '30m' },
    deviceTypes: { tracker: { offlineAfter: '6h' } },
  });
  const rt = await startLocalRuntime({
    dataDir: await mkdtemp(join(tmpdir(), 'bench-estate-')),
    mqttPort: 0,
    httpPort: 0,
    apiKey: KEY,
    config,
  });
  try {
    const now = Date.now();
    for (let start = 0; start < DEVICES; start += 1000) {
      const readings = Array.from({ length: 1000 }, (_, k) => ({
        $id: `dev-${String(start + k).padStart(5, '0')}`,
        $ts: now - ((start + k) % 5 === 0 ? 7_200_000 : 1000),
        temp: 20 + (k % 7),
        humidity: 40 + (k % 13),
      }));
      await fetch(
        `http://127.0.0.1:${rt.httpPort}/v1/telemetry?type=${start % 2000 === 0 ? 'thermo' : 'tracker'}`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify(readings),
        },
      );
    }
    for (let i = 0; i < 600; i++) {
      if ((await rt.registry.tally({ at: Date.now(), timeouts: { byType: {} } })).devices >= DEVICES) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const get = async (path: string) => {
      const response = await fetch(`http://127.0.0.1:${rt.httpPort}${path}`, {
        headers: { authorization: `Bearer ${KEY}` },
      });
      return Buffer.byteLength(await response.text());
    };
    // The route before it paged: every record, summarised, in one body.
    const timeouts = offlineTimeouts(config);
    const whole = await timed(5, async () => {
      const records = await rt.registry.list();
      const at = Date.now();
      const devices = records.map((r) => deviceSummary(r, at, timeouts));
      return Buffer.byteLength(JSON.stringify({ count: devices.length, devices }));
    });
    const page100 = await timed(20, () => get('/v1/devices'));
    const page1000 = await timed(10, () => get('/v1/devices?limit=1000'));
    const offline = await timed(20, () => get('/v1/devices?status=offline&count=true'));
    const estate = await timed(10, () => get('/v1/estate'));
    results.push(
      result('estate.local.page_100_bytes', page100.bytes, 'B', whole.bytes),
      result('estate.local.page_100_ms', page100.ms, 'ms', whole.ms),
      result('estate.local.page_1000_bytes', page1000.bytes, 'B', whole.bytes),
      result('estate.local.page_1000_ms', page1000.ms, 'ms', whole.ms),
      result('estate.local.offline_count_ms', offline.ms, 'ms', whole.ms),
      result('estate.local.estate_ms', estate.ms, 'ms', whole.ms),
    );
  } finally {
    await rt.close();
  }

  const prices = checkPrices(JSON.parse(readFileSync(PRICES_FILE, 'utf8')));
  const at = Date.now();
  const templates = simulatedRecords(1000, at);
  for (const devices of [10_000, 100_000]) {
    const calls = await measureEstateCalls({ devices, templates, prices, at });
    const scan = calls.find((c) => c.call === 'GET /v1/estate')?.readUnits ?? 0;
    for (const call of calls) {
      results.push(result(`estate.dynamodb_${devices / 1000}k.${call.call}`, call.readUnits, 'RRU', scan));
    }
  }
  return results;
}
