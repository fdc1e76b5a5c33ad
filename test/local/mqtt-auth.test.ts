/**
 * The local broker with `--mqtt-auth`: devices connect as themselves with their own
 * password (`devices add`), publish and subscribe only on their own topics, cannot be
 * taken over by a client reusing their id, and a removed device is refused (and
 * disconnected) without a restart. Without it the broker is open, as before.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Envelope } from '../../lambdas/core/formats/format.ts';
import { type LocalBroker, startBroker } from '../../local/broker.ts';
import {
  addDeviceCredential,
  deviceCredentialsFile,
  removeDeviceCredential,
} from '../../local/device-credentials.ts';
import { startLocalRuntime } from '../../local/runtime.ts';

const WAIT = { timeout: 10_000, interval: 50 };

function password(dataDir: string, deviceId: string): string {
  const added = addDeviceCredential(dataDir, deviceId);
  if (!('password' in added)) throw new Error(`${deviceId} exists`);
  return added.password;
}

async function openBroker(auth: boolean) {
  const dataDir = await mkdtemp(join(tmpdir(), 'iot-mqtt-auth-'));
  const enqueued: Envelope[] = [];
  const lines: string[] = [];
  const broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    enqueue: async (envelope) => enqueued.push(envelope),
    auth: auth ? { credentialsFile: deviceCredentialsFile(dataDir), recheckMs: 100 } : undefined,
    log: (line) => lines.push(line),
  });
  return { dataDir, enqueued, lines, broker };
}

type Options = mqtt.IClientOptions;
const connect = (broker: LocalBroker, options: Options) =>
  mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, {
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...options,
  });

/** The CONNACK return code a refused connection carries (4 bad user name or password, 2 identifier rejected). */
async function refusedWith(broker: LocalBroker, options: Options): Promise<number | undefined> {
  const error = await connect(broker, options).then(
    async (client) => {
      await client.endAsync();
      throw new Error(`connected as ${options.clientId}`);
    },
    (e: { code?: number }) => e,
  );
  return error.code;
}

const closed = (client: mqtt.MqttClient) =>
  new Promise<void>((resolve) => client.once('close', () => resolve()));

describe('local broker with --mqtt-auth', () => {
  let env: Awaited<ReturnType<typeof openBroker>>;
  let a: string;
  let b: string;
  const clients: mqtt.MqttClient[] = [];
  const as = async (deviceId: string, pass: string, extra: Options = {}) => {
    const client = await connect(env.broker, {
      clientId: deviceId,
      username: deviceId,
      password: pass,
      ...extra,
    });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    env = await openBroker(true);
    a = password(env.dataDir, 'dev-a');
    b = password(env.dataDir, 'dev-b');
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await env?.broker.close();
  });

  it('takes a reading from a device with its password, on its topic and through Basic Ingest', async () => {
    const device = await as('dev-a', a);
    await device.publishAsync('dt/thermo/dev-a', '{"temp": 21.5}', { qos: 1 });
    await device.publishAsync('$aws/rules/iot_pipeline_dev_telemetry/dt/thermo/dev-a', '{"temp": 22}', {
      qos: 1,
    });
    expect(env.enqueued.map((e) => [e.clientId, e.topic])).toEqual([
      ['dev-a', 'dt/thermo/dev-a'],
      ['dev-a', '$aws/rules/iot_pipeline_dev_telemetry/dt/thermo/dev-a'],
    ]);
  });

  it('refuses a wrong password, an unknown device, a missing or other username, with "bad user name or password"', async () => {
    expect(await refusedWith(env.broker, { clientId: 'dev-a', username: 'dev-a', password: b })).toBe(4);
    expect(await refusedWith(env.broker, { clientId: 'dev-z', username: 'dev-z', password: a })).toBe(4);
    expect(await refusedWith(env.broker, { clientId: 'dev-a' })).toBe(4);
    expect(await refusedWith(env.broker, { clientId: 'dev-a', username: 'dev-b', password: a })).toBe(4);
    // No client id: the broker would name it; it is no device.
    expect(await refusedWith(env.broker, { clientId: '', username: 'dev-a', password: a, clean: true })).toBe(
      4,
    );
  });

  it('refuses a client id that is not a device id with "identifier rejected"', async () => {
    expect(await refusedWith(env.broker, { clientId: 'dev a', username: 'dev a', password: a })).toBe(2);
  });

  it("disconnects a device that publishes to another device's topic, and enqueues nothing", async () => {
    const device = await as('dev-a', a);
    const before = env.enqueued.length;
    const gone = closed(device);
    device.publish('dt/thermo/dev-b', '{"temp": 99}', { qos: 1 });
    await gone;
    device.end(true);
    expect(env.enqueued.length).toBe(before);
    expect(env.lines.join('\n')).toContain('disconnected dev-a: it may publish only to dt/<type>/dev-a');
  });

  it('disconnects a device that publishes to the LoRaWAN rule, and takes the uplink from the client named for the rule', async () => {
    const device = await as('dev-a', a);
    const before = env.enqueued.length;
    const gone = closed(device);
    device.publish('$aws/rules/iot_pipeline_dev_lorawan', '{"WirelessDeviceId": "forged"}', { qos: 1 });
    await gone;
    device.end(true);
    expect(env.enqueued.length).toBe(before);
    // The local stand-in for IoT Core for LoRaWAN: its id is the rule's name, and it may publish there only.
    const network = await as('iot_pipeline_dev_lorawan', password(env.dataDir, 'iot_pipeline_dev_lorawan'));
    await network.publishAsync('$aws/rules/iot_pipeline_dev_lorawan', '{"WirelessDeviceId": "x"}', {
      qos: 1,
    });
    expect(env.enqueued.slice(before)).toEqual([
      expect.objectContaining({ source: 'iot-lorawan', topic: '$aws/rules/iot_pipeline_dev_lorawan' }),
    ]);
    const away = closed(network);
    network.publish('dt/thermo/iot_pipeline_dev_lorawan', '{"temp": 1}', { qos: 1 });
    await away;
    expect(env.enqueued.length).toBe(before + 1);
    expect(env.lines.join('\n')).toContain(
      'disconnected iot_pipeline_dev_lorawan: it may publish only to $aws/rules/iot_pipeline_dev_lorawan',
    );
  });

  it('refuses subscriptions beyond its own command topic (SUBACK 0x80), and delivers it nothing else', async () => {
    const spy = await as('dev-a', a);
    const received: string[] = [];
    spy.on('message', (topic) => received.push(topic));
    // mqtt.js rejects a SUBACK with any 0x80 in it; the packet carries each filter's answer.
    const refused = await spy
      .subscribeAsync(['#', 'dt/+/dev-b', '$SYS/#', 'cmd/+/dev-b', 'cmd/+/dev-a'], { qos: 0 })
      .then(
        () => undefined,
        (error: { packet?: { granted?: unknown } }) => error.packet?.granted,
      );
    expect(refused).toEqual([128, 128, 128, 128, 0]);
    expect((await spy.subscribeAsync('cmd/thermo/dev-a', { qos: 1 }))[0]?.qos).toBe(1);
    const other = await as('dev-b', b);
    await other.publishAsync('dt/thermo/dev-b', '{"temp": 20}', { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toEqual([]);
    expect(spy.connected).toBe(true);
    await spy.endAsync();
    await other.endAsync();
  });

  it('keeps a device connected when another client tries its client id with a wrong password', async () => {
    const device = await as('dev-b', b);
    let dropped = false;
    device.on('close', () => {
      dropped = true;
    });
    expect(await refusedWith(env.broker, { clientId: 'dev-b', username: 'dev-b', password: a })).toBe(4);
    expect(await refusedWith(env.broker, { clientId: 'dev-b', username: 'dev-b', password: 'guess' })).toBe(
      4,
    );
    const before = env.enqueued.length;
    await device.publishAsync('dt/thermo/dev-b', '{"temp": 19}', { qos: 1 });
    expect(env.enqueued.length).toBe(before + 1);
    expect(dropped).toBe(false);
    await device.endAsync();
  });

  it('takes a device added while it runs, and refuses and disconnects one removed while it runs', async () => {
    const c = password(env.dataDir, 'dev-c');
    const device = await as('dev-c', c);
    await device.publishAsync('dt/thermo/dev-c', '{"temp": 18}', { qos: 1 });
    expect(env.enqueued.at(-1)?.clientId).toBe('dev-c');
    const gone = closed(device);
    expect(removeDeviceCredential(env.dataDir, 'dev-c').removed).toBe(true);
    await gone;
    device.end(true);
    expect(await refusedWith(env.broker, { clientId: 'dev-c', username: 'dev-c', password: c })).toBe(4);
    expect(env.lines.join('\n')).toContain('disconnected dev-c: its credentials were removed or replaced');
  });
});

describe('local broker with --mqtt-auth and a damaged credentials file', () => {
  it('refuses to start, naming the file and what to do', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-mqtt-auth-'));
    await writeFile(
      deviceCredentialsFile(dataDir),
      '{"version": 1, "devices": {"dev-1": {"hash": "md5:x"}}}',
    );
    const started = startBroker({
      host: '127.0.0.1',
      port: 0,
      enqueue: async () => undefined,
      auth: { credentialsFile: deviceCredentialsFile(dataDir) },
    });
    await expect(started).rejects.toMatchObject({
      name: 'StartupError',
      message: expect.stringMatching(
        /device-credentials\.json: devices\["dev-1"\]\.hash must be .*devices add/,
      ),
    });
  });
});

describe('local broker without --mqtt-auth (the default)', () => {
  it('lets any client connect as any device, publish as another and subscribe to everything, as before', async () => {
    const env = await openBroker(false);
    try {
      const spy = await connect(env.broker, { clientId: 'anyone' });
      const received: string[] = [];
      spy.on('message', (topic) => received.push(topic));
      const granted = await spy.subscribeAsync('#', { qos: 0 });
      expect(granted[0]?.qos).toBe(0);
      const device = await connect(env.broker, { clientId: 'dev-a' });
      await device.publishAsync('dt/thermo/dev-b', '{"temp": 1}', { qos: 1 });
      await vi.waitFor(() => expect(received).toContain('dt/thermo/dev-b'), WAIT);
      expect(env.enqueued.map((e) => [e.clientId, e.topic])).toEqual([['dev-a', 'dt/thermo/dev-b']]);
      // Open: any client may publish to the LoRaWAN rule too.
      await device.publishAsync('$aws/rules/iot_pipeline_dev_lorawan', '{}', { qos: 1 });
      expect(env.enqueued[1]).toMatchObject({
        source: 'iot-lorawan',
        topic: '$aws/rules/iot_pipeline_dev_lorawan',
      });
      await Promise.all([spy.endAsync(), device.endAsync()]);
    } finally {
      await env.broker.close();
    }
  });
});

describe('local runtime with mqttAuth', () => {
  it('stores a reading from a device with its password, and refuses one without', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-local-auth-'));
    const pass = password(dataDir, 'dev-1');
    const rt = await startLocalRuntime({
      dataDir,
      mqttPort: 0,
      httpPort: 0,
      apiKey: 'test-key-0123456789',
      queue: { batchWindowMs: 20, retryDelayMs: 20 },
      mqttAuth: true,
    });
    try {
      const url = `mqtt://127.0.0.1:${rt.mqttPort}`;
      await expect(mqtt.connectAsync(url, { clientId: 'dev-1', reconnectPeriod: 0 })).rejects.toMatchObject({
        code: 4,
      });
      const device = await mqtt.connectAsync(url, {
        clientId: 'dev-1',
        username: 'dev-1',
        password: pass,
        reconnectPeriod: 0,
      });
      await device.publishAsync('dt/thermo/dev-1', JSON.stringify({ temp: 21.5 }), { qos: 1 });
      await device.endAsync();
      await vi.waitFor(async () => {
        const { rows } = await rt.query("SELECT metric, value FROM readings WHERE device_id = 'dev-1'");
        expect(rows).toEqual([{ metric: 'temp', value: 21.5 }]);
      }, WAIT);
    } finally {
      await rt.close();
    }
  });
});
