/**
 * AWS IoT Core for LoRaWAN and the LoRaWAN port over MQTT, end to end through the local
 * runtime: a recorded uplink published to `$aws/rules/iot_pipeline_<stage>_lorawan` (as a
 * destination does) by the client named for the rule (`--mqtt-auth`), and an LHT65 frame
 * on `dt/<type>/<id>/<fPort>` by a device, into readings, radio metrics, the sequence
 * number and the registry; devices may not publish to the LoRaWAN rule.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../lib/config.ts';
import { addDeviceCredential } from '../../local/device-credentials.ts';
import { type LocalRuntime, startLocalRuntime } from '../../local/runtime.ts';

const WAIT = { timeout: 15_000, interval: 100 };
/** The local stage: the rule is `iot_pipeline_<config.stage>_lorawan`, as the stack of that stage names it. */
const RULE = 'iot_pipeline_lab_lorawan';
const DEVICE = '57728ff8-5d1d-4130-9de2-f004d8722bc2';

/** The README's binary-payload config example (Formats), as a user copies it. */
function readmeExample(): { deviceTypes: Record<string, unknown> } {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const block = [...readme.matchAll(/```json\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? '')
    .find((text) => text.includes('"codecs/lht65.js" }, "fPort": 2'));
  if (!block) throw new Error('the README has no LHT65 config example with its fPort');
  return JSON.parse(block);
}

function password(dataDir: string, id: string): string {
  const added = addDeviceCredential(dataDir, id);
  if (!('password' in added)) throw new Error(`${id} exists`);
  return added.password;
}

/** The recorded uplink, its Timestamp moved to now (it must pass the age check) and an FCnt given (the capture has none). */
function recordedUplink(fCnt: number): string {
  const body = JSON.parse(
    readFileSync(new URL('../fixtures/networks/iot-lorawan/lht65-ingested.json', import.meta.url), 'utf8'),
  );
  body.WirelessMetadata.LoRaWAN.Timestamp = new Date(Math.floor(Date.now() / 1000 - 2) * 1000).toISOString();
  body.WirelessMetadata.LoRaWAN.FCnt = fCnt;
  return JSON.stringify(body);
}

describe('local runtime: AWS IoT Core for LoRaWAN and the LoRaWAN port over MQTT', () => {
  let rt: LocalRuntime;
  let network: mqtt.MqttClient;
  let device: mqtt.MqttClient;
  let dataDir: string;
  const url = () => `mqtt://127.0.0.1:${rt.mqttPort}`;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'iot-lorawan-'));
    const networkPassword = password(dataDir, RULE);
    const devicePassword = password(dataDir, 'cellar-1');
    rt = await startLocalRuntime({
      dataDir,
      mqttPort: 0,
      httpPort: 0,
      apiKey: 'test-key-0123456789',
      queue: { batchWindowMs: 20, retryDelayMs: 20 },
      mqttAuth: true,
      // The README's example, with the device of the recorded uplink typed and named.
      config: validateConfig({
        stage: 'lab',
        deviceTypes: readmeExample().deviceTypes,
        iotLorawan: { devices: { [DEVICE]: { type: 'lht65', name: 'greenhouse-1' } } },
      }),
    });
    network = await mqtt.connectAsync(url(), {
      clientId: RULE,
      username: RULE,
      password: networkPassword,
      reconnectPeriod: 0,
    });
    device = await mqtt.connectAsync(url(), {
      clientId: 'cellar-1',
      username: 'cellar-1',
      password: devicePassword,
      reconnectPeriod: 0,
    });
  });

  afterAll(async () => {
    // The device was disconnected by the last test: forced ends, which do not wait for a broker.
    await Promise.all([network?.endAsync(true), device?.endAsync(true)]);
    await rt?.close();
  });

  it('stores a recorded uplink published to the LoRaWAN rule once, decoded by the codec, with radio, seq and registry', async () => {
    const body = recordedUplink(412);
    await network.publishAsync(`$aws/rules/${RULE}`, body, { qos: 1 });
    // IoT Core for LoRaWAN may deliver an uplink again: the same FCnt and Timestamp are stored once.
    await network.publishAsync(`$aws/rules/${RULE}`, body, { qos: 1 });
    await vi.waitFor(async () => {
      expect(rt.queue.stats()).toMatchObject({ pending: 0 });
      const { rows } = await rt.query(
        "SELECT metric, value, value_str, device_type, source FROM readings WHERE device_id = 'greenhouse-1' ORDER BY metric",
      );
      expect(rows).toEqual(
        [
          ['battery', 2.996],
          ['batteryStatus', null, 'good'],
          ['externalTemperature', 26.12],
          ['humidity', 32],
          ['lorawan.devEui', null, 'a84041d55182720b'],
          ['radio.gateways', 1],
          ['radio.rssi', -89],
          ['radio.snr', 8.25],
          ['temperature', 26.91],
        ].map(([metric, value, value_str = null]) => ({
          metric,
          value,
          value_str,
          device_type: 'lht65',
          source: 'iot-lorawan',
        })),
      );
      expect(
        (await rt.query("SELECT count(*)::INT AS n FROM raw WHERE source = 'iot-lorawan'")).rows,
      ).toEqual([{ n: 2 }]);
    }, WAIT);
    const record = (await rt.registry.get(['greenhouse-1'])).get('greenhouse-1');
    expect(record).toMatchObject({
      deviceType: 'lht65',
      source: 'iot-lorawan',
      lastSeq: 412,
      lastValues: expect.objectContaining({ temperature: 26.91, 'radio.rssi': -89 }),
    });
  });

  it("gives the LHT65 codec the topic's port: a frame on dt/lht65/<id>/2 is stored, not quarantined", async () => {
    await device.publishAsync('dt/lht65/cellar-1/2', Buffer.from('cbf60992026501febf7fff', 'hex'), {
      qos: 1,
    });
    await vi.waitFor(async () => {
      const { rows } = await rt.query(
        "SELECT metric, value FROM readings WHERE device_id = 'cellar-1' AND metric IN ('temperature', 'humidity') ORDER BY metric",
      );
      expect(rows).toEqual([
        { metric: 'humidity', value: 61.3 },
        { metric: 'temperature', value: 24.5 },
      ]);
    }, WAIT);
    expect(
      (await rt.query("SELECT count(*)::INT AS n FROM quarantine WHERE device_id = 'cellar-1'")).rows,
    ).toEqual([{ n: 0 }]);
  });

  it("gives it the README example's type fPort when the topic names none: dt/lht65/<id> is stored too", async () => {
    await device.publishAsync('dt/lht65/cellar-1', Buffer.from('8bb8ff3801f4017fff7fff', 'hex'), { qos: 1 });
    await vi.waitFor(async () => {
      const { rows } = await rt.query(
        "SELECT value FROM readings WHERE device_id = 'cellar-1' AND metric = 'temperature' ORDER BY value",
      );
      expect(rows).toEqual([{ value: -2 }, { value: 24.5 }]);
    }, WAIT);
  });

  it('disconnects a device that publishes to the LoRaWAN rule, and stores nothing of it', async () => {
    const before = rt.queue.stats().sent;
    const gone = new Promise<void>((resolve) => device.once('close', () => resolve()));
    device.publish(`$aws/rules/${RULE}`, recordedUplink(413), { qos: 1 });
    await gone;
    expect(rt.queue.stats().sent).toBe(before);
  });
});
