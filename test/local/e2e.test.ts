/**
 * The whole flow through the local runtime: a real MQTT connection and real HTTP
 * requests in, rows out of the lake folder (read by DuckDB) and the time-series table.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { partitionOf } from '../../lambdas/core/lake/layout.ts';
import { validateConfig } from '../../lib/config.ts';
import { type LocalRuntime, startLocalRuntime } from '../../local/runtime.ts';

const API_KEY = 'test-key-0123456789';
const WAIT = { timeout: 15_000, interval: 100 };

async function runtime(options: Partial<Parameters<typeof startLocalRuntime>[0]> = {}) {
  return startLocalRuntime({
    dataDir: await mkdtemp(join(tmpdir(), 'iot-local-')),
    mqttPort: 0,
    httpPort: 0,
    apiKey: API_KEY,
    queue: { batchWindowMs: 20, retryDelayMs: 20 },
    ...options,
  });
}

function post(rt: LocalRuntime, body: string, headers: Record<string, string> = {}) {
  return fetch(`http://127.0.0.1:${rt.httpPort}/v1/telemetry`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...headers },
    body,
  });
}

describe('local runtime, end to end', () => {
  let rt: LocalRuntime;
  let device: mqtt.MqttClient;

  beforeAll(async () => {
    rt = await runtime();
    device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'dev-1' });
  });

  afterAll(async () => {
    await device?.endAsync();
    await rt?.close();
  });

  it('stores an MQTT reading in the lake and the time-series table', async () => {
    // DuckDB returns BIGINT as a string in JSON rows.
    const ts = Date.now() - 5_000;
    await device.publishAsync(
      'dt/thermo/dev-1',
      JSON.stringify({ $ts: ts, temp: 21.5, door: true, fw: '1.2' }),
      {
        qos: 1,
      },
    );
    await vi.waitFor(async () => {
      const { rows } = await rt.query(
        "SELECT metric, value, value_bool, value_str, device_type, source, epoch_ms(time) AS t FROM readings WHERE device_id = 'dev-1' ORDER BY metric",
      );
      expect(rows).toEqual([
        {
          metric: 'door',
          value: null,
          value_bool: true,
          value_str: null,
          device_type: 'thermo',
          source: 'mqtt',
          t: String(ts),
        },
        {
          metric: 'fw',
          value: null,
          value_bool: null,
          value_str: '1.2',
          device_type: 'thermo',
          source: 'mqtt',
          t: String(ts),
        },
        {
          metric: 'temp',
          value: 21.5,
          value_bool: null,
          value_str: null,
          device_type: 'thermo',
          source: 'mqtt',
          t: String(ts),
        },
      ]);
    }, WAIT);
    const series = await rt.query(
      "SELECT metric, value FROM timeseries WHERE device_id = 'dev-1' AND metric = 'temp'",
    );
    expect(series.rows).toEqual([{ metric: 'temp', value: 21.5 }]);
    // The query API over real HTTP, as API Gateway serves it.
    const api = await fetch(
      `http://127.0.0.1:${rt.httpPort}/v1/devices/dev-1/readings?from=${ts - 1000}&to=${ts + 1000}&metric=temp`,
      { headers: { authorization: `Bearer ${API_KEY}` } },
    );
    expect(api.status).toBe(200);
    expect(await api.json()).toMatchObject({
      deviceId: 'dev-1',
      source: 'lake',
      rows: [{ metric: 'temp', value: 21.5 }],
    });
    const raw = await rt.query("SELECT topic, client_id, source, dt FROM raw WHERE device_id = 'dev-1'");
    expect(raw.rows).toEqual([
      { topic: 'dt/thermo/dev-1', client_id: 'dev-1', source: 'mqtt', dt: partitionOf(Date.now()).dt },
    ]);
  });

  it('takes Basic Ingest topics like IoT Core does', async () => {
    await device.publishAsync(
      '$aws/rules/iot_pipeline_dev_telemetry/dt/thermo/dev-1',
      JSON.stringify({ $seq: 42, humidity: 40 }),
      { qos: 1 },
    );
    await vi.waitFor(async () => {
      const { rows } = await rt.query("SELECT value FROM readings WHERE metric = 'humidity'");
      expect(rows).toEqual([{ value: 40 }]);
    }, WAIT);
  });

  it('stores an HTTP reading, answering 202 with the message id', async () => {
    const response = await post(rt, JSON.stringify([{ $id: 'pump-7', pressure: 2.5 }]));
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ accepted: true, messageId: expect.any(String) });
    await vi.waitFor(async () => {
      const { rows } = await rt.query(
        "SELECT device_type, source, value FROM readings WHERE device_id = 'pump-7'",
      );
      expect(rows).toEqual([{ device_type: 'http', source: 'http', value: 2.5 }]);
    }, WAIT);
  });

  it('answers bad HTTP requests with a 4xx and a JSON reason, and queues nothing', async () => {
    const before = rt.queue.stats().sent;
    const cases: [Promise<Response>, number, string][] = [
      [post(rt, '{"temp":1}', { authorization: 'Bearer wrong' }), 401, 'unauthorized'],
      [post(rt, '{"temp":', {}), 400, 'invalid_json'],
      [post(rt, 'temp=1', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type'],
      [post(rt, `{"s":"${'x'.repeat(200_000)}"}`), 413, 'payload_too_large'],
      [fetch(`http://127.0.0.1:${rt.httpPort}/v1/nowhere`, { method: 'POST' }), 404, 'not_found'],
    ];
    for (const [request, status, error] of cases) {
      const response = await request;
      expect(response.status).toBe(status);
      expect(await response.json()).toMatchObject({ error, message: expect.any(String) });
    }
    expect(rt.queue.stats().sent).toBe(before);
  });

  it('quarantines what cannot be understood, with the reason, and stores the rest of the batch', async () => {
    const other = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'dev-2' });
    try {
      await Promise.all([
        other.publishAsync('dt/thermo/dev-2', 'not json at all', { qos: 1 }),
        other.publishAsync('dt/thermo/dev-2', JSON.stringify({ $id: 'dev-1', temp: 1 }), { qos: 1 }),
        other.publishAsync('dt/thermo/..%2F', JSON.stringify({ temp: 1 }), { qos: 1 }),
        other.publishAsync('dt/thermo/dev-2', JSON.stringify({ temp: 30 }), { qos: 1 }),
      ]);
    } finally {
      await other.endAsync();
    }
    await vi.waitFor(async () => {
      const { rows } = await rt.query(
        "SELECT reason_code, device_id FROM quarantine WHERE source = 'mqtt' ORDER BY reason_code",
      );
      expect(rows).toEqual([
        { reason_code: 'device_id_mismatch', device_id: 'dev-2' },
        { reason_code: 'invalid_json', device_id: 'dev-2' },
        { reason_code: 'invalid_topic', device_id: null },
      ]);
      const stored = await rt.query("SELECT value FROM readings WHERE device_id = 'dev-2'");
      expect(stored.rows).toEqual([{ value: 30 }]);
    }, WAIT);
  });

  it("answers a device's last raw messages newest first, each payload as it was sent", async () => {
    const raw = (query = '', device = 'raw-1', key: string | null = API_KEY) =>
      fetch(`http://127.0.0.1:${rt.httpPort}/v1/devices/${device}/raw${query}`, {
        headers: key === null ? {} : { authorization: `Bearer ${key}` },
      });
    const sent = [
      Buffer.from(JSON.stringify({ temp: 1 })),
      Buffer.from([0x00, 0xff, 0x10, 0x80]),
      Buffer.from(JSON.stringify({ temp: 3, label: 'é ✓' })),
    ];
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'raw-1' });
    try {
      // One at a time, each in the lake before the next: their arrival order is the order sent.
      for (const [i, payload] of sent.entries()) {
        await client.publishAsync('dt/thermo/raw-1', payload, { qos: 1 });
        await vi.waitFor(async () => {
          const { rows } = await rt.query("SELECT count(*)::INTEGER AS n FROM raw WHERE device_id = 'raw-1'");
          expect(rows[0]?.n).toBe(i + 1);
        }, WAIT);
      }
    } finally {
      await client.endAsync();
    }
    interface RawAnswer {
      readonly rows: { payload: string; source: string; topic: string; warnings: string[]; decode: string }[];
      readonly next?: string;
    }
    const first = await raw('?limit=2');
    expect(first.status).toBe(200);
    const page = (await first.json()) as RawAnswer;
    const rest = (await (
      await raw(`?limit=2&next=${encodeURIComponent(page.next ?? '')}`)
    ).json()) as RawAnswer;
    const rows = [...page.rows, ...rest.rows];
    expect(rest.next).toBeUndefined();
    expect(rows.map((r) => Buffer.from(r.payload, 'base64'))).toEqual([...sent].reverse());
    expect(rows.map((r) => [r.source, r.topic, r.warnings])).toEqual(
      sent.map(() => ['mqtt', 'dt/thermo/raw-1', []]),
    );
    expect(rows[0]?.decode).toBe(
      `npm run cli -- decode --type thermo --base64 ${sent[2]?.toString('base64')}`,
    );
    // Another device's messages are not in it; an hour ago holds none; bad input is a 400 with a reason.
    const other = (await (await raw('', 'dev-2')).json()) as RawAnswer;
    // dev-2's three messages of the quarantine case above.
    expect(other.rows.map((r) => r.topic)).toEqual(Array(3).fill('dt/thermo/dev-2'));
    const hourAgo = (await (await raw(`?to=${Date.now() - 3_600_000}`)).json()) as RawAnswer;
    expect(hourAgo.rows).toEqual([]);
    for (const [query, device] of [
      ['?limit=26', 'raw-1'],
      [`?from=${Date.now() - 8 * 86_400_000}`, 'raw-1'],
      ['', "raw-1'%20OR%20'1'='1"],
    ]) {
      const refused = await raw(query, device);
      expect([refused.status, typeof ((await refused.json()) as { message?: string }).message]).toEqual([
        400,
        'string',
      ]);
    }
    expect((await raw('', 'raw-1', null)).status).toBe(401);

    // A device that names itself in a JSON body over HTTP: its last message is its own.
    const body = JSON.stringify([
      { $id: 'http-raw-1', temp: 4 },
      { $id: 'http-raw-1', $ts: Date.now() - 1000, temp: 5 },
    ]);
    expect((await post(rt, body, {})).status).toBe(202);
    // A body naming two devices is neither's.
    expect(
      (
        await post(
          rt,
          JSON.stringify([
            { $id: 'http-raw-2', t: 1 },
            { $id: 'http-raw-3', t: 2 },
          ]),
        )
      ).status,
    ).toBe(202);
    await vi.waitFor(async () => {
      const { rows } = await rt.query(
        "SELECT count(*)::INTEGER AS n FROM readings WHERE device_id IN ('http-raw-1', 'http-raw-3')",
      );
      expect(rows[0]?.n).toBe(3);
    }, WAIT);
    const own = (await (await raw('', 'http-raw-1')).json()) as RawAnswer;
    expect(own.rows.map((r) => [r.source, r.topic, Buffer.from(r.payload, 'base64').toString()])).toEqual([
      ['http', '/v1/telemetry', body],
    ]);
    expect(own.rows[0]?.decode).toMatch(/^npm run cli -- decode --type http --base64 /);
    for (const device of ['http-raw-2', 'http-raw-3'])
      expect(((await (await raw('', device)).json()) as RawAnswer).rows).toEqual([]);
  });
});

describe('local runtime, failures', () => {
  it('sends a message whose sink keeps failing to the dead-letter file, and loses nothing', async () => {
    const doomedDay = partitionOf(Date.now() - 2 * 86_400_000).dt;
    const rt = await runtime({
      queue: { batchWindowMs: 20, retryDelayMs: 20, maxReceiveCount: 3 },
      wrapLake: (store) => ({
        put: (key, ...rest) =>
          key.startsWith(`readings/dt=${doomedDay}/`)
            ? Promise.reject(new Error('disk full'))
            : store.put(key, ...rest),
      }),
    });
    try {
      const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'dev-9' });
      await device.publishAsync('dt/thermo/dev-9', JSON.stringify({ temp: 1 }), { qos: 1 });
      await device.publishAsync(
        'dt/thermo/dev-9',
        JSON.stringify({ $ts: Date.now() - 2 * 86_400_000, temp: 2 }),
        { qos: 1 },
      );
      await device.publishAsync('dt/thermo/dev-9', '{broken', { qos: 1 });
      await device.endAsync();
      await vi.waitFor(() => expect(rt.queue.stats()).toMatchObject({ sent: 3, pending: 0 }), WAIT);
      expect(rt.queue.stats()).toMatchObject({ done: 2, deadLettered: 1 });
      const dead = (await readFile(rt.deadLetterFile, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(dead).toEqual([expect.objectContaining({ receiveCount: 3, error: 'disk full' })]);
      const envelope = JSON.parse(dead[0].body);
      expect(JSON.parse(Buffer.from(envelope.payload, 'base64').toString())).toMatchObject({ temp: 2 });
      // The other two: one stored, one quarantined.
      expect((await rt.query("SELECT value FROM readings WHERE device_id = 'dev-9'")).rows).toEqual([
        { value: 1 },
      ]);
      expect((await rt.query('SELECT reason_code FROM quarantine')).rows).toEqual([
        { reason_code: 'invalid_json' },
      ]);
    } finally {
      await rt.close();
    }
  });

  it('stores what is still queued when it closes', async () => {
    const rt = await runtime({ queue: { batchWindowMs: 60_000 } });
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'dev-3' });
    await device.publishAsync('dt/thermo/dev-3', JSON.stringify({ temp: 3 }), { qos: 1 });
    await device.endAsync();
    expect(rt.queue.stats().pending).toBe(1);
    await rt.close();
    expect(existsSync(join(rt.lakeDir, 'readings'))).toBe(true);
    const again = await startLocalRuntime({ dataDir: rt.dataDir, mqttPort: 0, httpPort: 0, apiKey: API_KEY });
    try {
      expect((await again.query('SELECT value FROM readings')).rows).toEqual([{ value: 3 }]);
      expect((await again.query('SELECT value FROM timeseries')).rows).toEqual([{ value: 3 }]);
    } finally {
      await again.close();
    }
  });

  it("decodes binary MQTT payloads with the device type's decoder from the config", async () => {
    const config = validateConfig({
      deviceTypes: { tracker: { decoder: { sigfox: 'temp::int:16*0.01 moving::bool:7' } } },
    });
    const rt = await runtime({ config });
    try {
      const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'trk-1' });
      await device.publishAsync('dt/tracker/trk-1', Buffer.from('0992', 'hex'), { qos: 1 });
      await device.publishAsync('dt/tracker/trk-1', Buffer.from('09', 'hex'), { qos: 1 });
      await device.endAsync();
      await vi.waitFor(async () => {
        const { rows } = await rt.query('SELECT metric, value, value_bool FROM readings ORDER BY metric');
        expect(rows).toEqual([
          { metric: 'moving', value: null, value_bool: true },
          { metric: 'temp', value: 24.5, value_bool: null },
        ]);
        expect((await rt.query('SELECT reason_code FROM quarantine')).rows).toEqual([
          { reason_code: 'decode_failed' },
        ]);
      }, WAIT);
    } finally {
      await rt.close();
    }
  });

  it('refuses to start on a taken port, saying which flag to change', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const taken = typeof address === 'object' && address ? address.port : 0;
    try {
      await expect(runtime({ httpPort: taken })).rejects.toThrow(
        `The HTTP port 127.0.0.1:${taken} is taken (another broker or an earlier \`npm start\`?). Stop it or pass --http-port <port>.`,
      );
    } finally {
      blocker.close();
    }
  });
});

describe('local runtime, network callbacks over real HTTP', () => {
  const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');
  let rt: LocalRuntime;

  beforeAll(async () => {
    rt = await runtime({
      config: validateConfig({
        deviceTypes: {
          tracker: { decoder: { sigfox: 'temp::int:16*0.01 battery::uint:8*0.02 moving::bool:7' } },
          lht65: { decoder: { codec: 'codecs/lht65.js' } },
        },
        sigfoxDownlinks: { '1A2B3C': '0102030405060708' },
      }),
    });
  });
  afterAll(async () => {
    await rt?.close();
  });

  const send = (path: string, body: string) =>
    fetch(`http://127.0.0.1:${rt.httpPort}${path}`, {
      method: 'POST',
      headers: { authorization: API_KEY, 'content-type': 'application/json' },
      body,
    });

  it('stores a Sigfox frame once, however often Sigfox sends it, and answers BIDIR with the downlink', async () => {
    // Callbacks carry device time: move the fixture's to now so it passes the age check.
    const time = String(Math.floor(Date.now() / 1000) - 2);
    const uplink = fixture('sigfox-uplink.json').replace('1795586398', time);
    expect((await send('/v1/sigfox?type=tracker', uplink)).status).toBe(204);
    await vi.waitFor(() => expect(rt.queue.stats().pending).toBe(0), WAIT);
    // A retry after a minute and the same frame heard by a second base station.
    expect((await send('/v1/sigfox?type=tracker', uplink)).status).toBe(204);
    expect(
      (await send('/v1/sigfox?type=tracker', uplink.replace('"duplicate": false', '"duplicate": true')))
        .status,
    ).toBe(204);
    const bidir = await send(
      '/v1/sigfox?type=tracker',
      fixture('sigfox-bidir.json').replace('1795586398', time),
    );
    expect(bidir.status).toBe(200);
    expect(await bidir.json()).toEqual({ '1A2B3C': { downlinkData: '0102030405060708' } });
    await vi.waitFor(async () => {
      expect(rt.queue.stats()).toMatchObject({ sent: 4, pending: 0 });
      const { rows } = await rt.query(
        "SELECT metric, value FROM readings WHERE device_id = '1A2B3C' AND metric IN ('temp', 'radio.rssi') ORDER BY message_id, metric",
      );
      // Two frames (seqNumber 1234 once, 1235 once), each with its temperature and radio strength.
      expect(rows).toHaveLength(4);
      expect(rows.filter((r) => r.metric === 'temp').map((r) => r.value)).toEqual([24.5, 24.5]);
      expect((await rt.query("SELECT count(*)::INT AS n FROM raw WHERE source = 'sigfox'")).rows).toEqual([
        { n: 4 },
      ]);
    }, WAIT);
  });

  it('stores a The Things Stack uplink decoded by the codec of the type named in the URL', async () => {
    const now = new Date(Date.now() - 1000).toISOString();
    const uplink = fixture('ttn-uplink-zero-fields.json').replaceAll('2026-11-25T05:59:59.000000001Z', now);
    const response = await send('/v1/ttn?type=lht65', uplink);
    expect(response.status).toBe(202);
    await vi.waitFor(async () => {
      const { rows } = await rt.query(
        "SELECT metric, value FROM readings WHERE device_id = 'lht65-cellar' AND metric = 'humidity'",
      );
      expect(rows).toEqual([{ metric: 'humidity', value: 50 }]);
    }, WAIT);
  });

  it('answers 400 with the reason for a callback it cannot use', async () => {
    const response = await send('/v1/sigfox', '{"device":"1A2B3C","time":1,"data":"abc"}');
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: 'invalid_callback',
      message: '"data": 3 hex digits: a byte is two, so the count must be even',
    });
  });
});

describe('local runtime, alerts and the device estate', () => {
  it('raises and clears a threshold alert and an offline alert exactly once each, printed and posted to the webhook', async () => {
    const received: {
      subject: string;
      attributes: Record<string, string>;
      message: Record<string, unknown>;
    }[] = [];
    const webhook = createHttpServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => {
        body += chunk;
      });
      request.on('end', () => {
        received.push(JSON.parse(body));
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    const address = webhook.address();
    const lines: string[] = [];
    const rt = await runtime({
      config: validateConfig({
        alertRules: [
          {
            name: 'hot',
            metric: 'temp',
            comparison: '>',
            threshold: 30,
            hysteresis: 1,
            severity: 'critical',
          },
        ],
        deviceTypes: { thermo: { offlineAfter: '1500ms' } },
      }),
      offlineCheckMs: 100,
      alertWebhookUrl: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/alerts`,
      log: (line) => lines.push(line),
    });
    try {
      const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'dev-hot' });
      const start = Date.now() - 10_000;
      // Crosses 30, stays above, dips into the hysteresis band (29.5 is not a clear), then clears.
      // One message of five readings: on a busy machine separate ones could land in batches
      // far enough apart for an offline check, at these old device times, to run between them.
      await device.publishAsync(
        'dt/thermo/dev-hot',
        JSON.stringify([25, 31, 32, 29.5, 28].map((temp, i) => ({ $ts: start + i * 1000, temp }))),
        { qos: 1 },
      );
      await vi.waitFor(
        () =>
          expect(received.map((r) => `${r.attributes.rule} ${r.attributes.state}`)).toContain('hot cleared'),
        WAIT,
      );
      // Then silence: the offline check raises once, however often it runs.
      await vi.waitFor(
        () =>
          expect(received.map((r) => `${r.attributes.rule} ${r.attributes.state}`)).toContain(
            'offline raised',
          ),
        WAIT,
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      await device.publishAsync('dt/thermo/dev-hot', JSON.stringify({ temp: 22 }), { qos: 1 });
      await vi.waitFor(() => expect(received).toHaveLength(4), WAIT);
      await device.endAsync();
      expect(received.map((r) => `${r.attributes.rule} ${r.attributes.state}`)).toEqual([
        'hot raised',
        'hot cleared',
        'offline raised',
        'offline cleared',
      ]);
      expect(received[0]).toMatchObject({
        subject: '[critical] RAISED: hot: dev-hot temp 31 (> 30)',
        attributes: { severity: 'critical', deviceType: 'thermo' },
        message: { deviceId: 'dev-hot', metric: 'temp', value: 31, threshold: 30 },
      });
      expect(lines.filter((l) => l.startsWith('ALERT'))).toHaveLength(4);
      // An alert goes out before its record is written (twice rather than never): the record follows.
      await vi.waitFor(async () => {
        const devices = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/devices?type=thermo&status=online`, {
          headers: { authorization: `Bearer ${API_KEY}` },
        });
        expect(await devices.json()).toMatchObject({
          count: 1,
          devices: [{ deviceId: 'dev-hot', status: 'online', lastValues: { temp: 22 }, openAlerts: [] }],
        });
      }, WAIT);
    } finally {
      await rt.close();
      webhook.close();
    }
  });
});
