/**
 * The escape suite through the local runtime's ingest path: every hostile codec of
 * `test/fixtures/hostile-codecs.ts` is a device type of one running pipeline; devices
 * publish over MQTT, interleaved with a well-behaved LoRaWAN device, so hostile and good
 * messages share batches. Each hostile message must end quarantined with its exact
 * reason (or stored as the codec decoded it, when the attack changed nothing), every
 * good message stored, the runtime answering, and no secret anywhere. Codecs that
 * cannot load must stop `start`, with the reason, before it listens.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../lib/config.ts';
import { type LocalRuntime, startLocalRuntime } from '../../local/runtime.ts';
import { HOSTILE_CODECS, harness, UNLOADABLE_CODECS } from '../fixtures/hostile-codecs.ts';

const SECRET = 'marker-91b2e0-not-for-codecs';
/** A well-behaved vendor codec; over MQTT there is no LoRaWAN port, so it reads none. */
const GOOD_CODEC = `function decodeUplink(input) {
  var b = input.bytes;
  return { data: { temperature: ((b[0] << 8) | b[1]) / 100, battery: b[2] / 50 } };
}`;
const GOOD_FRAME = Buffer.from([0x09, 0x92, 0xa0]);
const typeOf = (file: string) => file.replace(/\.js$/, '');

describe('hostile codecs in the local runtime', () => {
  let dir: string;
  let escapeFile: string;
  let rt: LocalRuntime;
  let client: mqtt.MqttClient;
  const files = new Map<string, string>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iot-escape-rt-'));
    escapeFile = join(dir, 'ESCAPED');
    await writeFile(join(dir, 'good.js'), GOOD_CODEC);
    const deviceTypes: Record<string, unknown> = { good: { decoder: { codec: join(dir, 'good.js') } } };
    for (const codec of HOSTILE_CODECS) {
      const file = join(dir, codec.name);
      await writeFile(file, harness(escapeFile) + codec.body);
      files.set(codec.name, file);
      deviceTypes[typeOf(codec.name)] = { decoder: { codec: file, timeoutMs: codec.timeoutMs } };
    }
    process.env.IOT_PIPELINE_API_KEY = SECRET;
    rt = await startLocalRuntime({
      dataDir: join(dir, 'data'),
      mqttPort: 0,
      httpPort: 0,
      apiKey: SECRET,
      config: validateConfig({ deviceTypes }),
      queue: { batchWindowMs: 50, retryDelayMs: 50 },
    });
    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'gateway' });
  }, 120_000);

  afterAll(async () => {
    delete process.env.IOT_PIPELINE_API_KEY;
    await client?.endAsync();
    await rt?.close();
  });

  it('quarantines each hostile message with its reason, stores every other, and keeps answering', async () => {
    // Act: two devices of each hostile type, a good device's message between each pair.
    let good = 0;
    for (const codec of HOSTILE_CODECS) {
      const type = typeOf(codec.name);
      await client.publishAsync(`dt/${type}/${type}-a`, Buffer.from([1]), { qos: 1 });
      await client.publishAsync(`dt/good/good-${good++}`, GOOD_FRAME, { qos: 1 });
      await client.publishAsync(`dt/${type}/${type}-b`, Buffer.from([1]), { qos: 1 });
    }
    // While codecs are stopped and restarted, the runtime goes on answering.
    const during = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/devices`, {
      headers: { authorization: `Bearer ${SECRET}` },
    });
    expect(during.status).toBe(200);
    // Assert: every message accounted for.
    await vi.waitFor(
      async () => {
        const { rows } = await rt.query(
          'SELECT (SELECT count(*) FROM raw) AS raw, (SELECT count(DISTINCT message_id) FROM quarantine) AS quarantined, (SELECT count(DISTINCT message_id) FROM readings) AS stored',
        );
        const { raw, quarantined, stored } = rows[0] as { raw: string; quarantined: string; stored: string };
        expect(Number(raw)).toBe(HOSTILE_CODECS.length * 3);
        expect(Number(quarantined) + Number(stored)).toBe(HOSTILE_CODECS.length * 3);
      },
      { timeout: 90_000, interval: 250 },
    );
    const goodRows = await rt.query(
      "SELECT count(DISTINCT device_id) AS devices, count(*) AS n, min(value) AS t FROM readings WHERE device_type = 'good' AND metric = 'temperature'",
    );
    expect(goodRows.rows).toEqual([{ devices: String(good), n: String(good), t: 24.5 }]);

    for (const codec of HOSTILE_CODECS) {
      const type = typeOf(codec.name);
      const quarantined = await rt.query(
        `SELECT device_id, reason_code, reason FROM quarantine WHERE device_type = '${type}' ORDER BY device_id`,
      );
      const readings = await rt.query(
        `SELECT device_id, metric, coalesce(CAST(value AS VARCHAR), value_str, CAST(value_bool AS VARCHAR)) AS v FROM readings WHERE device_type = '${type}' ORDER BY device_id, metric`,
      );
      if ('reason' in codec.expect) {
        const reason = `codec ${files.get(codec.name)} ${codec.expect.reason}`;
        expect(quarantined.rows, codec.name).toEqual([
          { device_id: `${type}-a`, reason_code: 'decode_failed', reason },
          { device_id: `${type}-b`, reason_code: 'decode_failed', reason },
        ]);
        expect(readings.rows, codec.name).toEqual([]);
      } else {
        const metrics = Object.entries(codec.expect.data)
          .map(([metric, value]) => ({
            metric,
            v: typeof value === 'number' ? value.toFixed(1) : String(value),
          }))
          .sort((a, b) => a.metric.localeCompare(b.metric));
        expect(quarantined.rows, codec.name).toEqual([]);
        expect(readings.rows, codec.name).toEqual([
          ...metrics.map((m) => ({ device_id: `${type}-a`, ...m })),
          ...metrics.map((m) => ({ device_id: `${type}-b`, ...m })),
        ]);
      }
    }

    // The runtime answers, and nothing of the host reached a codec.
    const devices = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/devices`, {
      headers: { authorization: `Bearer ${SECRET}` },
    });
    expect(devices.status).toBe(200);
    const leaked = await rt.query(
      `SELECT (SELECT count(*) FROM readings WHERE contains(coalesce(value_str, ''), 'marker')) + (SELECT count(*) FROM quarantine WHERE contains(reason, 'marker')) AS n`,
    );
    expect(Number((leaked.rows[0] as { n: string }).n)).toBe(0);
    expect(existsSync(escapeFile)).toBe(false);
  }, 180_000);
});

describe('codecs that cannot load', () => {
  const run = promisify(execFile);

  it.each(UNLOADABLE_CODECS.map((c) => [c.name, c] as const))(
    '`start` refuses %s with the device type, the file and the reason',
    async (_, codec) => {
      const dir = await mkdtemp(join(tmpdir(), 'iot-unloadable-'));
      const file = join(dir, codec.name);
      await writeFile(file, harness(join(dir, 'ESCAPED')) + codec.body);
      const config = join(dir, 'config.json');
      await writeFile(config, JSON.stringify({ deviceTypes: { vendor: { decoder: { codec: file } } } }));
      const result = await run(
        process.execPath,
        [
          '--import',
          'tsx',
          'cli/main.ts',
          'start',
          '--config',
          config,
          '--data',
          join(dir, 'data'),
          '--mqtt-port',
          '0',
          '--http-port',
          '0',
        ],
        { env: { ...process.env, IOT_PIPELINE_API_KEY: SECRET }, timeout: 60_000 },
      ).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(
        new RegExp(
          `^iot-pipeline: Invalid config "deviceTypes\\.vendor\\.decoder": got "${file}", expected a working decoder: codec ${file} `,
        ),
      );
      expect(result.stderr).toContain(codec.reason);
      expect(existsSync(join(dir, 'ESCAPED'))).toBe(false);
    },
  );
});
