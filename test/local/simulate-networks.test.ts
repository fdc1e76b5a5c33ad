/**
 * The simulator's network formats end to end through the local runtime: Sigfox form
 * callbacks and ChirpStack up events over HTTP, IoT Core for LoRaWAN uplinks published
 * to the stage's LoRaWAN rule, each into readings with nothing quarantined.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../lib/config.ts';
import type { LocalRuntime } from '../../local/runtime.ts';
import { devEuiOf, wirelessDeviceIdOf } from '../../tools/simulator/bodies.ts';
import { runSimulation, type SimulationFormat } from '../../tools/simulator/run.ts';
import { TEST_API_KEY as API_KEY, startTestRuntime } from '../support/local-runtime.ts';

const WAIT = { timeout: 10_000, interval: 100 };

describe('local runtime: simulated Sigfox form callbacks, ChirpStack events and IoT Core for LoRaWAN uplinks', () => {
  let rt: LocalRuntime;

  beforeAll(async () => {
    rt = await startTestRuntime('simulate', {
      // The uplinks of IoT Core for LoRaWAN name no type: the config gives them the LHT65's, and its codec.
      config: validateConfig({
        stage: 'lab',
        deviceTypes: { lht65: { decoder: { codec: 'codecs/lht65.js' } } },
        iotLorawan: { deviceType: 'lht65' },
      }),
    });
  });

  afterAll(async () => {
    await rt?.close();
  });

  it('stores every simulated message of each network as a reading, nothing quarantined', async () => {
    const simulate = (format: SimulationFormat, type: string) =>
      runSimulation({
        devices: 2,
        rate: 100,
        count: 6,
        durationMs: 5000,
        format,
        type,
        silentShare: 0,
        seed: 3,
        stage: 'lab',
        mqttUrl: `mqtt://127.0.0.1:${rt.mqttPort}`,
        httpUrl: `http://127.0.0.1:${rt.httpPort}`,
        apiKey: API_KEY,
      });
    const results = await Promise.all([
      simulate('sigfox-form', 'sim-sigfox'),
      simulate('chirpstack', 'sim-chirpstack'),
      simulate('iot-lorawan', 'lht65'),
    ]);
    for (const result of results) expect(result).toMatchObject({ sent: 6, failed: 0 });
    await vi.waitFor(() => expect(rt.queue.stats()).toMatchObject({ done: 18, pending: 0 }), WAIT);
    const { rows } = await rt.query(
      "SELECT source, device_type, device_id, count(*)::INT AS n FROM readings WHERE metric IN ('temp', 'temperature') GROUP BY ALL ORDER BY 1, 3",
    );
    const ids = (make: (device: { id: string }) => string) =>
      ['sim-0001', 'sim-0002'].map((id) => make({ id })).sort();
    const chirpstack = ids(devEuiOf);
    const lorawan = ids(wirelessDeviceIdOf);
    expect(rows).toEqual([
      { source: 'chirpstack', device_type: 'sim-chirpstack', device_id: chirpstack[0], n: 3 },
      { source: 'chirpstack', device_type: 'sim-chirpstack', device_id: chirpstack[1], n: 3 },
      { source: 'iot-lorawan', device_type: 'lht65', device_id: lorawan[0], n: 3 },
      { source: 'iot-lorawan', device_type: 'lht65', device_id: lorawan[1], n: 3 },
      { source: 'sigfox', device_type: 'sim-sigfox', device_id: '1A0001', n: 3 },
      { source: 'sigfox', device_type: 'sim-sigfox', device_id: '1A0002', n: 3 },
    ]);
    const quarantined = await rt.query('SELECT count(*)::INT AS n FROM quarantine');
    expect(quarantined.rows).toEqual([{ n: 0 }]);
    // The codec decoded the LHT65 frames: humidity arrived only in them.
    const humidity = await rt.query(
      "SELECT count(*)::INT AS n FROM readings WHERE source = 'iot-lorawan' AND metric = 'humidity'",
    );
    expect(humidity.rows).toEqual([{ n: 6 }]);
  });
});
