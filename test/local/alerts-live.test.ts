/**
 * The console's API on the local runtime: alerts open and in history, quarantine
 * reasons and examples (whose payload `decode` takes), and the live stream of readings
 * and alerts, through real MQTT and HTTP on 127.0.0.1.
 */
import { connect, type Socket } from 'node:net';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run as decode } from '../../cli/commands/decode.ts';
import { validateConfig } from '../../lib/config.ts';
import type { LocalRuntime } from '../../local/runtime.ts';
import { startTestRuntime, TEST_API_KEY } from '../support/local-runtime.ts';

const WAIT = { timeout: 15_000, interval: 100 };

/** An EventSource-like reader of `GET /v1/events`: the events it has received so far. */
async function subscribe(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  const events: { event: string; data: Record<string, unknown> }[] = [];
  if (response.status !== 200 || !response.body) {
    return { status: response.status, events, body: await response.text(), close: () => undefined };
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) });
          end = buffer.indexOf('\n\n');
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    events,
    body: '',
    close: () => controller.abort(),
  };
}

describe('alerts, quarantine and live events on the local runtime', () => {
  let rt: LocalRuntime;
  let device: mqtt.MqttClient;
  let base: string;
  const logged: string[] = [];

  beforeAll(async () => {
    rt = await startTestRuntime('alerts-live', {
      config: validateConfig({
        alertRules: [{ name: 'hot', metric: 'temp', comparison: '>', threshold: 30, severity: 'critical' }],
      }),
      log: (line) => logged.push(line),
    });
    base = `http://127.0.0.1:${rt.httpPort}`;
    device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'hot-1' });
  });
  afterAll(async () => {
    await device?.endAsync();
    await rt?.close();
  });

  const get = (path: string, key: string | null = rt.keys.read) =>
    fetch(`${base}${path}`, key === null ? {} : { headers: { authorization: `Bearer ${key}` } });

  it('streams readings and alerts to a client, and shows the alert open and in history', async () => {
    // Arrange: a live client with the read key in ?token= (as EventSource must)
    const live = await subscribe(`${base}/v1/events?token=${encodeURIComponent(rt.keys.read)}`);
    expect(live.status).toBe(200);
    expect(live.contentType).toMatch(/^text\/event-stream/);
    // Act: a hot reading raises the alert
    const ts = Date.now() - 2000;
    await device.publishAsync('dt/thermo/hot-1', JSON.stringify({ $ts: ts, temp: 35.5 }), { qos: 1 });
    // Assert: the stream has the reading and the alert
    await vi.waitFor(() => {
      expect(live.events.map((e) => e.event).sort()).toEqual(['alert', 'reading']);
    }, WAIT);
    expect(live.events.find((e) => e.event === 'reading')?.data).toMatchObject({
      deviceId: 'hot-1',
      deviceType: 'thermo',
      time: new Date(ts).toISOString(),
      metrics: { temp: 35.5 },
    });
    expect(live.events.find((e) => e.event === 'alert')?.data).toMatchObject({
      deviceId: 'hot-1',
      rule: 'hot',
      state: 'raised',
      severity: 'critical',
      value: 35.5,
    });
    live.close();

    const open = (await (await get('/v1/alerts')).json()) as { rows: unknown[] };
    expect(open.rows).toEqual([
      expect.objectContaining({
        deviceId: 'hot-1',
        rule: 'hot',
        severity: 'critical',
        value: 35.5,
        threshold: 30,
      }),
    ]);
    const history = (await (await get('/v1/alerts?state=all&device=hot-1')).json()) as { rows: unknown[] };
    expect(history.rows).toEqual([
      expect.objectContaining({ deviceId: 'hot-1', rule: 'hot', state: 'raised', value: 35.5 }),
    ]);
    // The ?token= is never in the log.
    expect(logged.join('\n')).not.toContain(rt.keys.read);
  });

  it('shows a quarantined message by reason, with a payload decode takes', async () => {
    // Arrange: a reading a day ahead is quarantined (timestamp_in_future), though it decodes
    const payload = JSON.stringify({ $ts: Date.now() + 86_400_000, temp: 20 });
    await device.publishAsync('dt/thermo/hot-1', payload, { qos: 1 });
    // Act
    let body: {
      counts: { reasonCode: string; count: number }[];
      examples: { reasonCode: string; payload: string; decode: string; topic: string; deviceId: string }[];
    } = { counts: [], examples: [] };
    await vi.waitFor(async () => {
      body = (await (await get('/v1/quarantine?reason=timestamp_in_future')).json()) as typeof body;
      expect(body.examples).toHaveLength(1);
    }, WAIT);
    // Assert
    expect(body.counts).toEqual([expect.objectContaining({ reasonCode: 'timestamp_in_future', count: 1 })]);
    const [example] = body.examples;
    expect(example).toMatchObject({ deviceId: 'hot-1', topic: 'dt/thermo/hot-1' });
    expect(Buffer.from(example?.payload ?? '', 'base64').toString('utf8')).toBe(payload);
    // The command as given, pasted: decode takes the payload and prints the reading.
    const words = (example?.decode ?? '').split(' ');
    expect(words.slice(0, 4)).toEqual(['npm', 'run', 'cli', '--']);
    const printed: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      printed.push(String(chunk));
      return true;
    });
    let code: number;
    try {
      code = await decode([...words.slice(5), '--json']);
    } finally {
      spy.mockRestore();
    }
    expect(code).toBe(0);
    expect(JSON.parse(printed.join(''))).toEqual(JSON.parse(payload));
  });

  it('refuses without a key (401), an ingest-only key (403), and a key with more than read in ?token= (403)', async () => {
    for (const path of ['/v1/alerts', '/v1/quarantine', '/v1/events']) {
      expect((await get(path, null)).status).toBe(401);
      expect((await get(path, rt.keys.ingest)).status).toBe(403);
    }
    const master = await subscribe(`${base}/v1/events?token=${TEST_API_KEY}`);
    expect(master.status).toBe(403);
    expect(JSON.parse(master.body).message).toMatch(/a key in \?token= may have only "read"/);
    expect((await subscribe(`${base}/v1/events?token=iotp_nope_nope`)).status).toBe(401);
  });

  it('keeps ingesting while a client that never reads holds a stream open', async () => {
    // Arrange: a raw client that sends the request and never reads a byte
    const slow: Socket = connect(rt.httpPort, '127.0.0.1');
    await new Promise<void>((resolve) => slow.once('connect', () => resolve()));
    slow.pause();
    slow.write(`GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${rt.keys.read}\r\n\r\n`);
    const fast = await subscribe(`${base}/v1/events`, { authorization: `Bearer ${rt.keys.read}` });
    // Act: 400 messages of 50 metrics each, about 1 KB an event
    const metrics = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`m${i}`, i]));
    const start = Date.now() - 60_000;
    for (let i = 0; i < 400; i++) {
      await device.publishAsync('dt/bulk/bulk-1', JSON.stringify({ $ts: start + i * 10, ...metrics }), {
        qos: 1,
      });
    }
    // Assert: all stored, and the client that reads got every one
    await vi.waitFor(async () => {
      const { rows } = await rt.query(
        "SELECT count(DISTINCT time) AS n FROM readings WHERE device_id = 'bulk-1'",
      );
      expect(Number(rows[0]?.n)).toBe(400);
    }, WAIT);
    await vi.waitFor(() => {
      expect(fast.events.filter((e) => e.data.deviceId === 'bulk-1')).toHaveLength(400);
    }, WAIT);
    fast.close();
    slow.destroy();
  });
});
