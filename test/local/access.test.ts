/**
 * Who may do what on the local runtime, over real HTTP and MQTT: every route by every
 * kind of key, a revoked key, a key for other devices; a device known from MQTT that an
 * HTTP key may not write as; per-key and keyless throttles; the local keys kept across
 * starts; the page token bound to its query; malformed input answered 400.
 */
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createKey, type KeySpec } from '../../lambdas/core/access/keys.ts';
import { validateConfig } from '../../lib/config.ts';
import { fileKeyStore } from '../../local/adapters/key-file.ts';
import { dataPaths, readLocalKeys } from '../../local/data-dir.ts';
import { type LocalRuntime, startLocalRuntime } from '../../local/runtime.ts';
import {
  EXPECTED,
  MATRIX_KEYS,
  matrixStatus,
  ROUTES,
  type Route,
  rowTitle,
  UNKNOWN_KEY,
} from '../support/permission-matrix.ts';

const WAIT = { timeout: 15_000, interval: 100 };
const SPECS = {
  ...MATRIX_KEYS,
  mq1: { name: 'mq-1-owner', scopes: ['ingest:telemetry'], devices: ['mq-1'] },
  slow: { name: 'slow', scopes: ['ingest'], rateLimit: 1, burstLimit: 2 },
} satisfies Record<string, KeySpec>;
type KeyName = keyof typeof SPECS;

describe('local runtime: keys, scopes, devices, throttles', () => {
  let rt: LocalRuntime;
  const keys = {} as Record<KeyName, string>;

  const call = (route: Route, key: string | undefined, headers: Record<string, string> = {}) => {
    const [method, path, body] = ROUTES[route];
    return request(method, path, body, key, headers);
  };
  const request = (
    method: string,
    path: string,
    body: string,
    key: string | undefined,
    headers: Record<string, string> = {},
  ) =>
    fetch(`http://127.0.0.1:${rt.httpPort}${path}`, {
      method,
      headers: {
        ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
        ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(method === 'POST' ? { body } : {}),
    });

  beforeAll(async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-access-'));
    // Keys made as `keys create --data` makes them, before the start.
    const paths = dataPaths(dataDir);
    const store = fileKeyStore(paths.keysFile, paths.keyUsageFile);
    for (const [name, spec] of Object.entries(SPECS)) {
      const made = createKey(spec, Date.now());
      await store.add(made.record);
      keys[name as KeyName] = made.key;
    }
    await store.revoke('revoked', Date.now());
    rt = await startLocalRuntime({
      dataDir,
      mqttPort: 0,
      httpPort: 0,
      queue: { batchWindowMs: 20, retryDelayMs: 20 },
      config: validateConfig({
        alertRules: [{ name: 'hot', metric: 'temp', comparison: '>', threshold: 30, severity: 'critical' }],
        http: { anonymousRateLimit: 1, anonymousBurstLimit: 20 },
      }),
    });
  }, 60_000);
  afterAll(() => rt?.close());

  const MATRIX = { ...EXPECTED, 'local-ingest': EXPECTED.ingest, 'local-read': EXPECTED.read };
  for (const [name, row] of Object.entries(MATRIX)) {
    it(rowTitle(name, row), async () => {
      const key =
        name === 'local-ingest'
          ? rt.keys.ingest
          : name === 'local-read'
            ? rt.keys.read
            : name === 'unknown'
              ? UNKNOWN_KEY
              : keys[name as KeyName];
      for (const [route, status] of Object.entries(row)) {
        const response = await call(route as Route, key);
        const got = matrixStatus(response.status);
        const body = await response.text();
        expect([route, got, got === 2 ? '' : JSON.parse(body).error]).toEqual([
          route,
          status,
          status === 2 ? '' : expect.stringMatching(/^(unauthorized|forbidden|forbidden_device)$/),
        ]);
      }
    });
  }

  it('a key made for other devices lists only those, and may write them', async () => {
    const listed = await call('devices', keys.otherDevices);
    const { devices } = (await listed.json()) as { devices: { deviceId: string }[] };
    expect(devices.every((d) => d.deviceId.startsWith('x-') || d.deviceId === 'other-1')).toBe(true);
    const own = await request(
      'POST',
      '/v1/telemetry',
      JSON.stringify({ $id: 'x-9', t: 1 }),
      keys.otherDevices,
    );
    expect(own.status).toBe(202);
    const mixed = await request(
      'POST',
      '/v1/telemetry',
      JSON.stringify([
        { $id: 'x-9', t: 1 },
        { $id: 'h-1', t: 2 },
      ]),
      keys.otherDevices,
    );
    expect(mixed.status).toBe(403);
    expect(await mixed.json()).toMatchObject({
      error: 'forbidden_device',
      message: expect.stringContaining('"h-1"'),
    });
  });

  it('refuses an HTTP write as an MQTT device (403, its alert and type untouched) unless the key was made for it', async () => {
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'mq-1' });
    await device.publishAsync('dt/thermo/mq-1', JSON.stringify({ temp: 35 }), { qos: 1 });
    await device.endAsync();
    await vi.waitFor(async () => {
      const [record] = [...(await rt.registry.get(['mq-1'])).values()];
      expect(record).toMatchObject({
        source: 'mqtt',
        deviceType: 'thermo',
        alerts: { hot: { state: 'raised' } },
      });
    }, WAIT);
    const forged = await request(
      'POST',
      '/v1/telemetry',
      JSON.stringify({ $id: 'mq-1', temp: 20 }),
      keys.ingest,
    );
    expect(forged.status).toBe(403);
    expect(await forged.json()).toEqual({
      error: 'foreign_device',
      message: expect.stringContaining('Device "mq-1" is known from mqtt, not http'),
    });
    // Through another route, or as the local ingest key: the same.
    const asLocal = await request(
      'POST',
      '/v1/telemetry',
      JSON.stringify({ $id: 'mq-1', temp: 20 }),
      rt.keys.ingest,
    );
    expect(asLocal.status).toBe(403);
    await rt.queue.drain();
    const [after] = [...(await rt.registry.get(['mq-1'])).values()];
    expect(after).toMatchObject({
      deviceType: 'thermo',
      alerts: { hot: { state: 'raised' } },
      lastValues: { temp: 35 },
    });
    // The operator's own choice: a key made for mq-1 may write it.
    const owner = await request('POST', '/v1/telemetry', JSON.stringify({ $id: 'mq-1', temp: 20 }), keys.mq1);
    expect(owner.status).toBe(202);
  });

  it('throttles each key on its own, with Retry-After, and a keyless flood never spends a key budget', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 4; i++) {
      const response = await request(
        'POST',
        '/v1/telemetry',
        JSON.stringify({ $id: 'd-slow', t: i }),
        keys.slow,
      );
      statuses.push(response.status);
      if (response.status === 429) {
        retryAfter = response.headers.get('retry-after');
        expect(await response.json()).toMatchObject({
          error: 'too_many_requests',
          message: expect.stringContaining('Key "slow" is over its 1 requests a second'),
        });
      } else await response.text();
    }
    expect(statuses).toEqual([202, 202, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    // 400 requests without a key (the flood of the issue): 401 until their own bucket is empty, then 429.
    const flood = await Promise.all(
      Array.from({ length: 400 }, (_, i) =>
        request(
          'POST',
          '/v1/telemetry',
          '{}',
          i % 2 ? undefined : 'iotp_0123456789abcdef_'.padEnd(65, 'A'),
        ).then(async (r) => [r.status, r.headers.get('retry-after'), await r.text()] as const),
      ),
    );
    expect(new Set(flood.map(([status]) => status))).toEqual(new Set([401, 429]));
    expect(flood.filter(([status]) => status === 429).every(([, after]) => Number(after) >= 1)).toBe(true);
    // Right after it, a keyed caller is served: its budget was not spent.
    const keyed = await request(
      'POST',
      '/v1/telemetry',
      JSON.stringify({ $id: 'h-2', t: 1 }),
      keys.telemetry,
    );
    expect(keyed.status).toBe(202);
  });

  it('answers 400 for a malformed %-escape in a path, and an empty x-api-key does not hide a good Bearer key', async () => {
    const malformed = await request('GET', '/v1/devices/%E0%A4%A/readings', '', keys.read);
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: 'invalid_device_id' });
    const empty = await call('telemetry', keys.telemetry, { 'x-api-key': '' });
    expect(empty.status).toBe(202);
  });

  it('binds the page token to its query: a token of one device is refused for another', async () => {
    for (const id of ['page-a', 'page-b']) {
      const body = JSON.stringify([1, 2, 3].map((t) => ({ $id: id, t, $ts: Date.now() - t * 1000 })));
      expect((await request('POST', '/v1/telemetry', body, keys.telemetry)).status).toBe(202);
    }
    await rt.queue.drain();
    const page = (path: string, query: string) =>
      request('GET', `${path}?${query}`, '', keys.read).then(
        async (r) => [r.status, (await r.json()) as { next?: string; error?: string }] as const,
      );
    const [status, first] = await page('/v1/devices/page-a/readings', 'limit=1');
    expect(status).toBe(200);
    expect(first.next).toEqual(expect.any(String));
    const [same] = await page(
      '/v1/devices/page-a/readings',
      `limit=1&next=${encodeURIComponent(first.next ?? '')}`,
    );
    expect(same).toBe(200);
    const [other, refused] = await page(
      '/v1/devices/page-b/readings',
      `limit=1&next=${encodeURIComponent(first.next ?? '')}`,
    );
    expect([other, refused.error]).toEqual([400, 'invalid_token']);
  });
});

describe('local runtime: its own keys', () => {
  it('answers 503 with Retry-After and the reason when the keys file is damaged while it runs, and serves again once it is mended', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-keys-damaged-'));
    const rt = await startLocalRuntime({ dataDir, mqttPort: 0, httpPort: 0 });
    const devices = () =>
      fetch(`http://127.0.0.1:${rt.httpPort}/v1/devices`, {
        headers: { authorization: `Bearer ${rt.keys.read}` },
      });
    try {
      const { keysFile } = dataPaths(dataDir);
      const whole = await readFile(keysFile, 'utf8');
      await writeFile(keysFile, '{"keys": [');
      const refused = await devices();
      expect([refused.status, refused.headers.get('retry-after')]).toEqual([503, '5']);
      expect(await refused.json()).toEqual({
        error: 'unavailable',
        message: expect.stringContaining('keys.json is not JSON'),
      });
      await writeFile(keysFile, whole);
      expect((await devices()).status).toBe(200);
    } finally {
      await rt.close();
    }
  }, 60_000);

  it('makes an ingest and a read key on the first start (mode 0600), reuses them after, and replaces a revoked one', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-keys-'));
    const paths = dataPaths(dataDir);
    const first = await startLocalRuntime({ dataDir, mqttPort: 0, httpPort: 0 });
    await first.close();
    expect(first.keys.made).toEqual(['ingest', 'read']);
    expect((await stat(paths.localKeysFile)).mode & 0o777).toBe(0o600);
    expect((await stat(paths.keysFile)).mode & 0o777).toBe(0o600);
    expect(readLocalKeys(paths.localKeysFile)).toEqual({ ingest: first.keys.ingest, read: first.keys.read });
    // Only hashes are stored.
    expect(await readFile(paths.keysFile, 'utf8')).not.toContain(first.keys.ingest);

    const second = await startLocalRuntime({ dataDir, mqttPort: 0, httpPort: 0 });
    await second.close();
    expect([second.keys.made, second.keys.ingest, second.keys.read]).toEqual([
      [],
      first.keys.ingest,
      first.keys.read,
    ]);

    await fileKeyStore(paths.keysFile, paths.keyUsageFile).revoke('local-read', Date.now());
    const third = await startLocalRuntime({ dataDir, mqttPort: 0, httpPort: 0 });
    try {
      expect(third.keys.made).toEqual(['read']);
      expect(third.keys.ingest).toBe(first.keys.ingest);
      expect(third.keys.read).not.toBe(first.keys.read);
      const old = await fetch(`http://127.0.0.1:${third.httpPort}/v1/devices`, {
        headers: { authorization: `Bearer ${first.keys.read}` },
      });
      expect(old.status).toBe(401);
      const fresh = await fetch(`http://127.0.0.1:${third.httpPort}/v1/devices`, {
        headers: { authorization: `Bearer ${third.keys.read}` },
      });
      expect(fresh.status).toBe(200);
    } finally {
      await third.close();
    }
  }, 60_000);
});
