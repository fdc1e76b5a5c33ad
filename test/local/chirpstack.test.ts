/**
 * ChirpStack's HTTP integration against the local runtime over real HTTP: events posted
 * as ChirpStack posts them (one URL, `?event=`, the key in a header of the integration),
 * rows out of the lake folder, the registry's record of the device.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../lib/config.ts';
import type { LocalRuntime } from '../../local/runtime.ts';
import { TEST_API_KEY as API_KEY, startTestRuntime } from '../support/local-runtime.ts';

const WAIT = { timeout: 15_000, interval: 100 };
const DEV_EUI = '0101010101010101';

const recorded = (name: string) =>
  JSON.parse(
    readFileSync(new URL(`../fixtures/networks/chirpstack/${name}.json`, import.meta.url), 'utf8'),
  ) as Record<string, unknown> & { deviceInfo: Record<string, unknown> };

describe('local runtime, ChirpStack HTTP integration', () => {
  let rt: LocalRuntime;

  beforeAll(async () => {
    rt = await startTestRuntime('chirpstack', {
      config: validateConfig({ deviceTypes: { lht65: { decoder: { codec: 'codecs/lht65.js' } } } }),
    });
  });
  afterAll(async () => {
    await rt?.close();
  });

  const send = (event: string, body: unknown, query = '') =>
    fetch(`http://127.0.0.1:${rt.httpPort}/v1/chirpstack?event=${event}${query}`, {
      method: 'POST',
      // The header ChirpStack's integration adds: its value is the key.
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('stores uplinks and status reports with radio metrics, the frame counter and the tags, an uplink once', async () => {
    const base = Date.now() - 10_000;
    const at = (ms: number) => new Date(base + ms).toISOString().replace('Z', '+00:00');
    const uplink = recorded('up');
    uplink.time = at(0);
    uplink.fCnt = 41;
    uplink.object = { temperature: 21.5, door: false };
    uplink.rxInfo = [
      { gatewayId: '0016c001f153a14c', rssi: -97, snr: 7.25 },
      { gatewayId: '0016c001f153a14d', rssi: -110, snr: -2 },
    ];
    uplink.deviceInfo.tags = { site: 'north', floor: '2' };
    const join = recorded('join');
    join.time = at(-1000);
    const status = recorded('status');
    status.time = at(1000);
    status.deviceInfo.tags = { site: 'south' };
    // The next frame, decoded here by the codec of the type in the URL.
    const next = recorded('up');
    next.time = at(2000);
    next.fCnt = 43;
    next.fPort = 2;
    next.data = 'i7j/OAH0AX//f/8=';

    expect((await send('join', join)).status).toBe(202);
    const first = await send('up', uplink);
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ accepted: true, messageId: expect.any(String) });
    await vi.waitFor(() => expect(rt.queue.stats().pending).toBe(0), WAIT);
    // ChirpStack posting the same event again (a second integration URL, a replay).
    expect((await send('up', uplink)).status).toBe(202);
    expect((await send('status', status)).status).toBe(202);
    expect((await send('up', next, '&type=lht65')).status).toBe(202);

    await vi.waitFor(async () => {
      expect(rt.queue.stats()).toMatchObject({ sent: 5, pending: 0 });
      const { rows } = await rt.query(
        `SELECT metric, value, value_bool, device_type FROM readings WHERE device_id = '${DEV_EUI}' ORDER BY time, metric`,
      );
      expect(rows).toEqual([
        { metric: 'door', value: null, value_bool: false, device_type: 'test-device-profile' },
        { metric: 'radio.gateways', value: 2, value_bool: null, device_type: 'test-device-profile' },
        { metric: 'radio.rssi', value: -97, value_bool: null, device_type: 'test-device-profile' },
        { metric: 'radio.snr', value: 7.25, value_bool: null, device_type: 'test-device-profile' },
        { metric: 'temperature', value: 21.5, value_bool: null, device_type: 'test-device-profile' },
        { metric: 'status.battery_level', value: 88.3, value_bool: null, device_type: 'test-device-profile' },
        {
          metric: 'status.external_power',
          value: null,
          value_bool: false,
          device_type: 'test-device-profile',
        },
        { metric: 'status.margin', value: 10, value_bool: null, device_type: 'test-device-profile' },
        expect.objectContaining({ metric: 'battery', value: 3, device_type: 'lht65' }),
        expect.objectContaining({ metric: 'batteryStatus', device_type: 'lht65' }),
        expect.objectContaining({ metric: 'humidity', value: 50, device_type: 'lht65' }),
        expect.objectContaining({ metric: 'radio.gateways', value: 1, device_type: 'lht65' }),
        expect.objectContaining({ metric: 'radio.rssi', value: -36, device_type: 'lht65' }),
        expect.objectContaining({ metric: 'radio.snr', value: 10.5, device_type: 'lht65' }),
        expect.objectContaining({ metric: 'temperature', value: -2, device_type: 'lht65' }),
      ]);
      // Every event stays in raw/, the join and the duplicate too.
      const raw = await rt.query(
        "SELECT topic, count(*)::INT AS n FROM raw WHERE source = 'chirpstack' GROUP BY topic ORDER BY topic",
      );
      expect(raw.rows).toEqual([
        { topic: '/v1/chirpstack?event=join', n: 1 },
        { topic: '/v1/chirpstack?event=status', n: 1 },
        { topic: '/v1/chirpstack?event=up', n: 2 },
        { topic: '/v1/chirpstack?type=lht65&event=up', n: 1 },
      ]);
    }, WAIT);

    await vi.waitFor(async () => {
      const response = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/devices?tag=site=south`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      expect(response.status).toBe(200);
      const { devices } = (await response.json()) as { devices: Record<string, unknown>[] };
      expect(devices).toEqual([
        expect.objectContaining({
          deviceId: DEV_EUI,
          // The newest message named the type in its URL.
          deviceType: 'lht65',
          // The last frame carries the profile's recorded tag; nothing is dropped.
          attributes: { site: 'south', floor: '2', key: 'value' },
          // fCnt 41, then 43: one frame lost between them.
          lostMessages: 1,
          lastValues: expect.objectContaining({ 'radio.rssi': -36, 'status.margin': 10 }),
        }),
      ]);
      const [record] = [...(await rt.registry.get([DEV_EUI])).values()];
      expect(record).toMatchObject({ lastSeq: 43, source: 'chirpstack' });
    }, WAIT);
  });

  it('answers hostile events with a 4xx and a JSON reason, and queues nothing', async () => {
    const before = rt.queue.stats().sent;
    const gateways = recorded('up');
    gateways.rxInfo = Array.from({ length: 10_000 }, () => ({}));
    const eui = recorded('up');
    eui.deviceInfo.devEui = 'not-an-eui';
    const cases: [Response, number, string][] = [
      [await send('../../x', recorded('up')), 400, 'unknown_event'],
      [await send('up', gateways), 400, 'invalid_event'],
      [await send('up', eui), 400, 'invalid_event'],
      [
        await fetch(`http://127.0.0.1:${rt.httpPort}/v1/chirpstack?event=up`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/octet-stream' },
          body: 'protobuf',
        }),
        415,
        'unsupported_media_type',
      ],
    ];
    for (const [response, status, error] of cases) {
      expect(response.status).toBe(status);
      expect(await response.json()).toMatchObject({ error, message: expect.any(String) });
    }
    expect(rt.queue.stats().sent).toBe(before);
  });
});
