/**
 * The estate API against the local runtime over real HTTP, with 10,000 devices in its
 * registry (posted as readings, so the ingest path made every record): `GET /v1/devices`
 * a page at a time (sizes, filters, count, order, every device once over all pages, the
 * bytes a page takes) and `GET /v1/estate` (counts, traffic from the lake).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DevicesAnswer } from '../../lambdas/core/api/devices.ts';
import type { EstateAnswer } from '../../lambdas/core/api/estate.ts';
import { validateConfig } from '../../lib/config.ts';
import type { LocalRuntime } from '../../local/runtime.ts';
import { TEST_API_KEY as API_KEY, startTestRuntime } from '../support/local-runtime.ts';

const DEVICES = 10_000;
const PER_POST = 1000;
const HOUR = 3_600_000;
const id = (i: number) => `dev-${String(i).padStart(5, '0')}`;

describe('local runtime, the estate of 10,000 devices', () => {
  let rt: LocalRuntime;
  const now = Date.now();

  beforeAll(async () => {
    rt = await startTestRuntime('estate', {
      config: validateConfig({ offline: { after: '30m' }, deviceTypes: { tracker: { offlineAfter: '6h' } } }),
    });
    // Even devices are thermometers, odd ones trackers; every fifth was last heard 2 hours ago
    // (offline for a thermometer, within a tracker's 6 hours).
    for (let start = 0; start < DEVICES; start += PER_POST) {
      for (const type of ['thermo', 'tracker']) {
        const readings = [];
        for (let i = start; i < start + PER_POST; i++) {
          if ((i % 2 === 0) !== (type === 'thermo')) continue;
          readings.push({ $id: id(i), $ts: i % 5 === 0 ? now - 2 * HOUR : now - 1000, temp: 20 + (i % 7) });
        }
        const posted = await post(`/v1/telemetry?type=${type}`, readings);
        expect(posted.status).toBe(202);
      }
    }
    // One message with a reading that names no device: stored in quarantine.
    expect((await post('/v1/telemetry', [{ $id: 'dev-extra', temp: 1 }, { temp: 2 }])).status).toBe(202);
    await vi.waitFor(async () => expect((await devices('limit=1&count=true')).body.total).toBe(DEVICES + 1), {
      timeout: 60_000,
      interval: 250,
    });
  }, 120_000);
  afterAll(async () => {
    await rt?.close();
  });

  function post(path: string, body: unknown) {
    return fetch(`http://127.0.0.1:${rt.httpPort}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }
  async function get<T>(path: string) {
    const response = await fetch(`http://127.0.0.1:${rt.httpPort}${path}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    const text = await response.text();
    return { status: response.status, bytes: Buffer.byteLength(text), body: JSON.parse(text) as T };
  }
  const devices = (query: string) => get<DevicesAnswer & { error?: string }>(`/v1/devices?${query}`);

  it('answers 100 devices a page by default, 1,000 at most, each page a bounded body', async () => {
    const first = await devices('');
    expect(first.status).toBe(200);
    expect(first.body.count).toBe(100);
    expect(first.body.devices[0]?.deviceId).toBe(id(0));
    expect(first.bytes).toBeLessThan(40_000);
    const large = await devices('limit=1000');
    expect(large.body.count).toBe(1000);
    expect(large.bytes).toBeLessThan(400_000);
    expect((await devices('limit=1001')).status).toBe(400);
  });

  it('pages through all 10,001 devices, each once, in id order', async () => {
    const seen: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const page = await devices(`limit=1000${next ? `&next=${next}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.devices.map((d) => d.deviceId));
      next = page.body.next;
      pages++;
    } while (next);
    expect(pages).toBe(11);
    expect(seen).toHaveLength(DEVICES + 1);
    expect(new Set(seen).size).toBe(DEVICES + 1);
    expect(seen).toEqual([...seen].sort());
  });

  it.each([
    ['type', 'type=tracker', 5000],
    ['offline: thermometers silent 2 hours', 'status=offline', 1000],
    ['online', 'status=online', 9001],
    ['never heard', 'status=never', 0],
    ['silent at least an hour, whatever the type', 'silentFor=1h', 2000],
    ['trackers silent an hour, still online', 'type=tracker&status=online&silentFor=1h', 1000],
    ['an id prefix', 'q=dev-099', 100],
  ])('filters and counts at the source: %s', async (_, query, total) => {
    const page = await devices(`${query}&count=true&limit=10`);
    expect(page.status).toBe(200);
    expect(page.body.total).toBe(total);
    expect(page.body.count).toBe(Math.min(10, total));
  });

  it('sorts by last seen, and by id backwards', async () => {
    const oldest = await devices('sort=lastSeen&order=asc&limit=3');
    expect(oldest.body.devices.map((d) => d.deviceId)).toEqual([id(0), id(5), id(10)]);
    expect(oldest.body.devices.map((d) => d.status)).toEqual(['offline', 'online', 'offline']);
    const last = await devices('order=desc&limit=2&type=tracker');
    expect(last.body.devices.map((d) => d.deviceId)).toEqual([id(9999), id(9997)]);
  });

  it('refuses a token from another listing', async () => {
    const page = await devices('status=offline&limit=10');
    const other = await devices(`status=online&limit=10&next=${page.body.next}`);
    expect(other.status).toBe(400);
    expect(other.body.error).toBe('invalid_token');
  });

  it('sums up the estate: devices by status, messages and quarantine over 24 hours', async () => {
    const { status, body } = await get<EstateAnswer>('/v1/estate');
    expect(status).toBe(200);
    expect(body.devices).toEqual({ total: DEVICES + 1, online: 9001, offline: 1000, never: 0 });
    expect(body.alerts.open).toBe(0);
    expect(body.traffic).toMatchObject({ source: 'lake', messages: 21, quarantined: 1 });
    expect(body.traffic?.quarantineRate).toBeCloseTo(1 / 21);
    expect(body.traffic?.messagesPerMinute).toBeCloseTo(21 / 1440);
    // The daily job has not run: no uptime yet.
    expect(body.uptime).toEqual({ last24h: null, last7d: null });
  });
});
