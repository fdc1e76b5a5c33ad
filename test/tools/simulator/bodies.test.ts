/**
 * Every simulated message is read by its format without refusal, and says what was
 * simulated: HTTP ones through the real edge (`handleIngress`) and then the ingest
 * path (`decodeMessage`), IoT Core for LoRaWAN ones through the LoRaWAN rule and the
 * ingest path, with `codecs/lht65.js` decoding the LHT65 frames.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { compileCodec } from '../../../lambdas/core/decoders/codec.ts';
import type { Envelope } from '../../../lambdas/core/formats/format.ts';
import { applyLorawanRule } from '../../../lambdas/core/formats/iot-lorawan.ts';
import { decodeMessage } from '../../../lambdas/core/ingest/decode.ts';
import { lorawanRuleName } from '../../../lambdas/core/iot-names.ts';
import {
  type CodecFrame,
  devEuiOf,
  lht65Frame,
  lht65Object,
  type NetworkRequest,
  networkRequest,
  SIMULATED_FORMATS,
  type SimulatedFormat,
  type SimulatedReading,
  wirelessDeviceIdOf,
} from '../../../tools/simulator/bodies.ts';
import { createFleet, nextReading, random, type SimulatedDevice } from '../../../tools/simulator/fleet.ts';
import { closeTestDecoders, ingestOf, NOW, postToEdge } from '../../support/fakes.ts';

const LHT65 = { decoder: { codec: 'codecs/lht65.js', source: readFileSync('codecs/lht65.js', 'utf8') } };
const config = validateRuntimeConfig({
  deviceTypes: { lht65: LHT65 },
  iotLorawan: { deviceType: 'lht65' },
});
afterAll(() => closeTestDecoders());

/** What the request becomes: its edge answer (HTTP), then the readings and quarantine of its queue message. */
async function deliver(request: NetworkRequest) {
  let envelope: Envelope | undefined;
  if (request.via === 'http') {
    const query = new URLSearchParams(request.query).toString();
    const { response, queued } = await postToEdge(
      config,
      query ? `${request.path}?${query}` : request.path,
      request.body.toString('utf8'),
      { 'content-type': request.contentType },
    );
    // Accepted: 202, or Sigfox's 204 (no downlink asked for).
    expect([202, 204], response.body).toContain(response.statusCode);
    expect(queued).toHaveLength(1);
    envelope = queued[0];
  } else {
    const rule = lorawanRuleName('lab');
    expect(request.topic).toBe(`$aws/rules/${rule}`);
    envelope = applyLorawanRule(rule, {
      topic: request.topic,
      payload: request.body,
      clientId: rule,
      timestamp: NOW,
    });
  }
  return decodeMessage(
    { messageId: 'm1', body: JSON.stringify(envelope) },
    ingestOf(config, () => NOW),
  );
}

/** Three readings of two devices, a few seconds before NOW (the age check passes). */
function traffic(type: string): { device: SimulatedDevice; reading: SimulatedReading }[] {
  const rand = random(9);
  const fleet = createFleet(
    { devices: 2, type, silentShare: 0, silentWithin: 0, seed: 9, prefix: 'sim' },
    rand,
  );
  return [0, 1, 2].flatMap((round) =>
    fleet.map((device, i) => ({
      device,
      reading: nextReading(device, NOW - 9000 + round * 2000 + i * 10, rand),
    })),
  );
}

/** The device id, metrics and sequence number each way in stores for a simulated reading. */
const EXPECTED: Record<
  SimulatedFormat,
  (device: SimulatedDevice, reading: SimulatedReading) => Record<string, unknown>
> = {
  http: (device, r) => ({
    deviceId: device.id,
    time: r.$ts,
    seq: r.$seq,
    metrics: expect.objectContaining({ temp: r.temp, battery: r.battery, rssi: r.rssi }),
  }),
  sigfox: (_, r) => ({
    deviceId: expect.stringMatching(/^1A000[12]$/),
    deviceType: 'sim',
    time: Math.floor(r.$ts / 1000) * 1000,
    seq: r.$seq,
    metrics: expect.objectContaining({ temp: r.temp, battery: Number(r.battery.toFixed(2)) }),
  }),
  'sigfox-form': (device, r) => EXPECTED.sigfox(device, r),
  ttn: (device, r) => ({
    deviceId: device.id,
    deviceType: 'sim',
    time: r.$ts,
    ...(r.$seq === 0 ? {} : { seq: r.$seq }),
    metrics: expect.objectContaining({ temperature: r.temp, battery: r.battery, 'radio.rssi': r.rssi }),
  }),
  chirpstack: (device, r) => ({
    deviceId: devEuiOf(device),
    deviceType: 'sim',
    time: r.$ts,
    seq: r.$seq,
    metrics: expect.objectContaining({
      ...lht65Object(r),
      'radio.rssi': r.rssi,
    }),
  }),
  'iot-lorawan': (device, r) => ({
    deviceId: wirelessDeviceIdOf(device),
    deviceType: 'lht65',
    source: 'iot-lorawan',
    time: Math.floor(r.$ts / 1000) * 1000,
    seq: r.$seq,
    metrics: expect.objectContaining({
      ...lht65Object(r),
      'radio.rssi': r.rssi,
      'lorawan.devEui': devEuiOf(device),
    }),
  }),
};

describe('simulated messages, read by their formats', () => {
  it.each(SIMULATED_FORMATS)(
    '%s: every message is taken and stores the simulated reading',
    async (format) => {
      for (const { device, reading } of traffic('sim')) {
        const outcome = await deliver(networkRequest(format, device, reading, { stage: 'lab' }));
        expect(outcome.quarantine).toEqual([]);
        expect(outcome.readings).toEqual([expect.objectContaining(EXPECTED[format](device, reading))]);
      }
    },
  );

  it('sends sigfox-form as a form body with the same variables as the JSON callback', () => {
    const [{ device, reading }] = traffic('sim') as [{ device: SimulatedDevice; reading: SimulatedReading }];
    const form = networkRequest('sigfox-form', device, reading);
    const json = networkRequest('sigfox', device, reading);
    expect(form).toMatchObject({ via: 'http', contentType: 'application/x-www-form-urlencoded' });
    const variables = Object.fromEntries(new URLSearchParams(form.body.toString()));
    expect(variables).toEqual(
      Object.fromEntries(Object.entries(JSON.parse(json.body.toString())).map(([k, v]) => [k, String(v)])),
    );
  });

  it('derives stable LoRaWAN ids from the device id: a 16-hex-digit DevEUI and a UUID', () => {
    const device = { id: 'sim-0001' };
    expect(devEuiOf(device)).toMatch(/^[0-9a-f]{16}$/);
    expect(devEuiOf(device)).toBe(devEuiOf({ id: 'sim-0001' }));
    expect(devEuiOf(device)).not.toBe(devEuiOf({ id: 'sim-0002' }));
    expect(wirelessDeviceIdOf(device)).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  it('encodes an LHT65 frame the codec reads back, battery status included, across the range', async () => {
    const codec = compileCodec(LHT65.decoder.source, LHT65.decoder.codec);
    try {
      for (const [temp, battery] of [
        [-12.34, 2.701],
        [0, 2.85],
        [24.5, 2.95],
        [39.99, 3.6],
      ] as const) {
        const reading = { $ts: NOW, $seq: 1, temp, battery, rssi: -80 };
        const result = codec.decodeUplink({ bytes: lht65Frame(reading), fPort: 2, recvTime: new Date(NOW) });
        expect(result.errors).toEqual([]);
        expect(result.data).toEqual(lht65Object(reading));
      }
    } finally {
      await codec.close();
    }
  });

  it.each(['ttn', 'chirpstack', 'iot-lorawan'] as const)(
    '%s carries a codec frame in place of the decoded reading when given one',
    async (format) => {
      const [{ device, reading }] = traffic('lht65') as [
        { device: SimulatedDevice; reading: SimulatedReading },
      ];
      // The codec's first example: 24.5 °C, 61.3 %, probe at -3.21 °C.
      const frame: CodecFrame = {
        fPort: 2,
        bytes: [0xcb, 0xf6, 0x09, 0x92, 0x02, 0x65, 0x01, 0xfe, 0xbf, 0x7f, 0xff],
      };
      const outcome = await deliver(networkRequest(format, device, reading, { stage: 'lab', frame }));
      expect(outcome.quarantine).toEqual([]);
      expect(outcome.readings[0]?.metrics).toMatchObject({
        temperature: 24.5,
        humidity: 61.3,
        externalTemperature: -3.21,
      });
    },
  );

  it('refuses a frame for a network that carries none', () => {
    const [{ device, reading }] = traffic('sim') as [{ device: SimulatedDevice; reading: SimulatedReading }];
    expect(() => networkRequest('sigfox', device, reading, { frame: { bytes: [1] } })).toThrow(
      /sigfox uplinks carry no codec frame/,
    );
  });
});
