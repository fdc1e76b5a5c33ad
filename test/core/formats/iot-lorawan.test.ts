/**
 * AWS IoT Core for LoRaWAN uplinks, from the message a destination hands its rule to
 * readings: recorded bodies (test/fixtures/networks/iot-lorawan/SOURCES.md), the config
 * that names and types devices, the parser's properties, hostile bodies, and the
 * LoRaWAN port over MQTT (`dt/<type>/<id>/<fPort>` and `deviceTypes.<type>.fPort`) for
 * codecs such as the LHT65's, through the sandboxed codec path.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type RuntimeConfig, validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { InboundMessage } from '../../../lambdas/core/formats/format.ts';
import {
  applyLorawanRule,
  iotLorawan,
  MAX_GATEWAYS,
  parseIotLorawanUplink,
} from '../../../lambdas/core/formats/iot-lorawan.ts';
import { parseTelemetryTopic } from '../../../lambdas/core/formats/mqtt-topic.ts';
import { decodeMessage, decodeMessages } from '../../../lambdas/core/ingest/decode.ts';
import { ingestOf } from '../../support/fakes.ts';

const RULE = 'iot_pipeline_dev_lorawan';
const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/networks/iot-lorawan/${name}`, import.meta.url), 'utf8');
const LHT65 = { decoder: { codec: 'codecs/lht65.js', source: readFileSync('codecs/lht65.js', 'utf8') } };
const DEVICE = '57728ff8-5d1d-4130-9de2-f004d8722bc2';

const config = validateRuntimeConfig({
  deviceTypes: { lht65: LHT65, 'lht65-port': { ...LHT65, fPort: 2 } },
  iotLorawan: { deviceType: 'lht65', devices: { A84041D55182720B: { name: 'cellar-lht65' } } },
});
const plain = validateRuntimeConfig({ deviceTypes: { lht65: LHT65 } });

/** The queue message the LoRaWAN rule writes for `body`, arriving `receivedAt`. */
function queued(body: string, receivedAt: number, messageId = 'm1') {
  const envelope = applyLorawanRule(RULE, {
    topic: `$aws/rules/${RULE}`,
    payload: Buffer.from(body),
    clientId: 'iotwireless',
    timestamp: receivedAt,
  });
  return { messageId, body: JSON.stringify(envelope) };
}

/** A recorded body through the ingest path, arriving a second after its `Timestamp`. */
function ingest(body: string, with_: RuntimeConfig = config, messageId = 'm1') {
  const timestamp = JSON.parse(body).WirelessMetadata?.LoRaWAN?.Timestamp as string;
  return decodeMessage(queued(body, Date.parse(timestamp) + 1000, messageId), ingestOf(with_));
}

const uplink = (patch: Record<string, unknown> = {}, lorawan: Record<string, unknown> = {}) => {
  const base = JSON.parse(fixture('lht65-ingested.json'));
  return JSON.stringify({
    ...base,
    ...patch,
    WirelessMetadata: { LoRaWAN: { ...base.WirelessMetadata.LoRaWAN, FCnt: 7, ...lorawan } },
  });
};

describe('AWS IoT Core for LoRaWAN uplinks (recorded bodies)', () => {
  it('decodes a recorded LHT65 uplink with the codec of the configured type, radio beside, named by the config', () => {
    const outcome = ingest(fixture('lht65-ingested.json'));
    expect(outcome.quarantine).toEqual([]);
    expect(outcome.readings).toEqual([
      expect.objectContaining({
        // The DevEui it is listed under (in upper case) gives it its name.
        deviceId: 'cellar-lht65',
        deviceType: 'lht65',
        source: 'iot-lorawan',
        time: Date.parse('2020-12-07T15:27:28Z'),
        metrics: {
          battery: 2.996,
          temperature: 26.91,
          humidity: 32,
          batteryStatus: 'good',
          externalTemperature: 26.12,
          'radio.rssi': -89,
          'radio.snr': 8.25,
          'radio.gateways': 1,
          'lorawan.devEui': 'a84041d55182720b',
        },
      }),
    ]);
    // This capture has no FCnt: no sequence number, nothing to claim.
    expect(outcome.readings[0]?.seq).toBeUndefined();
    expect(outcome.raw).toMatchObject({
      source: 'iot-lorawan',
      device_id: 'cellar-lht65',
      device_type: 'lht65',
    });
  });

  it('names a device by its WirelessDeviceId when the config does not name it, and takes FCnt as the sequence number', () => {
    // Not typed in the config: the default type, which has no codec (quarantined, named by its id).
    const outcome = ingest(uplink({}, { FCnt: 41 }), plain);
    expect(outcome.readings).toEqual([]);
    expect(outcome.quarantine).toEqual([
      expect.objectContaining({ device_id: DEVICE, device_type: 'iot-lorawan' }),
    ]);
    const typed = validateRuntimeConfig({
      deviceTypes: { lht65: LHT65 },
      iotLorawan: { deviceType: 'lht65' },
    });
    const stored = ingest(uplink({}, { FCnt: 41 }), typed);
    expect(stored.readings).toEqual([
      expect.objectContaining({ deviceId: DEVICE, deviceType: 'lht65', seq: 41, key: 'seq:41' }),
    ]);
  });

  it('names devices by DevEui when iotLorawan.deviceId says so', () => {
    const byEui = validateRuntimeConfig({
      deviceTypes: { lht65: LHT65 },
      iotLorawan: { deviceId: 'devEui', devices: { [DEVICE.toUpperCase()]: { type: 'lht65' } } },
    });
    const outcome = ingest(fixture('lht65-sample.json'), byEui);
    expect(outcome.readings).toEqual([
      expect.objectContaining({
        deviceId: 'a84041d55182720b',
        deviceType: 'lht65',
        metrics: expect.objectContaining({ temperature: 26.28, humidity: 42.5, externalTemperature: 25 }),
      }),
    ]);
  });

  it('quarantines an uplink of a type with no codec, saying what to configure', () => {
    const outcome = ingest(fixture('lht65-sample.json'), plain);
    expect(outcome.readings).toEqual([]);
    expect(outcome.quarantine).toEqual([
      expect.objectContaining({
        device_id: DEVICE,
        device_type: 'iot-lorawan',
        reason_code: 'decode_failed',
        reason: expect.stringMatching(/deviceTypes\.iot-lorawan\.decoder\.codec.*iotLorawan\.devices/),
      }),
    ]);
  });

  it("reads AWS's documented example: Fport as AWS spells it, its 15-digit DevEui dropped with a warning, not the reading", () => {
    const body = fixture('aws-docs-uplink.json');
    const parsed = parseIotLorawanUplink(JSON.parse(body));
    expect(parsed).toMatchObject({ fPort: 136, fCnt: 1, radio: { 'radio.rssi': 9.75, 'radio.snr': -29 } });
    expect(parsed).not.toHaveProperty('devEui');
    expect((parsed as { warnings?: string[] }).warnings).toEqual([
      expect.stringMatching(/DevEui.*"58a0cb000202c99" is not 16 hex digits/),
    ]);
    // The LHT65 codec answers port 136 with an error: quarantined with the codec's words.
    const outcome = ingest(body, config);
    expect(outcome.quarantine).toEqual([
      expect.objectContaining({
        device_id: '5b58245e-146c-4c30-9703-0ca942e3ff35',
        reason_code: 'decode_failed',
        reason: expect.stringContaining('unknown fPort 136'),
      }),
    ]);
  });

  it('keeps a frame with no application payload, and one on FPort 0 (MAC commands), in raw only', () => {
    for (const body of [
      uplink({ PayloadData: '' }, { FPort: undefined }),
      uplink({ PayloadData: 'AwcB' }, { FPort: 0 }),
    ]) {
      const outcome = ingest(body);
      expect(outcome.readings).toEqual([]);
      expect(outcome.quarantine).toEqual([]);
      expect(outcome.raw).toMatchObject({ source: 'iot-lorawan' });
    }
  });

  it('quarantines a reading whose Timestamp is too old for the arrival, like any device time', () => {
    const body = fixture('lht65-ingested.json');
    const outcome = decodeMessage(queued(body, Date.parse('2026-11-25T06:00:00Z')), ingestOf(config));
    expect(outcome.quarantine).toEqual([expect.objectContaining({ reason_code: 'timestamp_too_old' })]);
  });

  it('is a network that resends: its readings with an FCnt are claimed once', () => {
    expect(iotLorawan.resends).toBe(true);
    expect(iotLorawan.route).toBeUndefined();
  });
});

describe('iotLorawan config', () => {
  it.each([
    [{ deviceId: 'thingName' }, /iotLorawan\.deviceId.*"wirelessDeviceId" or "devEui"/],
    [{ deviceType: 'a b' }, /iotLorawan\.deviceType/],
    [{ devices: [] }, /iotLorawan\.devices.*an object/],
    [
      { devices: { 'not-an-id': {} } },
      /iotLorawan\.devices\.not-an-id.*a WirelessDeviceId \(a UUID\) or a DevEui/,
    ],
    [{ devices: { a84041d55182720b: { type: 'x/y' } } }, /iotLorawan\.devices\.a84041d55182720b\.type/],
    [{ devices: { a84041d55182720b: { name: '../etc' } } }, /\.name.*a device id matching/],
    [{ devices: { a84041d55182720b: { colour: 'red' } } }, /\.colour.*one of type, name/],
    [
      { devices: { a84041d55182720b: {}, A84041D55182720B: {} } },
      /A84041D55182720B.*each device listed once \(ids ignore case\)/,
    ],
    [
      { devices: { a84041d55182720b: { name: 'same' }, [DEVICE]: { name: 'same' } } },
      /\.name.*a name no other device has \(a84041d55182720b has it\)/,
    ],
    [{ destinations: {} }, /iotLorawan\.destinations.*one of deviceId, deviceType, devices/],
  ])('refuses %j with a message naming the key', (iotLorawan, message) => {
    expect(() => validateRuntimeConfig({ iotLorawan })).toThrow(message);
  });

  it('refuses a type the config does not define, naming it and the types there are', () => {
    expect(() =>
      validateRuntimeConfig({
        deviceTypes: { lht65: {} },
        iotLorawan: { devices: { [DEVICE]: { type: 'lht56' } } },
      }),
    ).toThrow(
      /iotLorawan\.devices\.57728ff8-5d1d-4130-9de2-f004d8722bc2\.type": got "lht56", expected a device type of deviceTypes \(lht65\)/,
    );
    expect(() => validateRuntimeConfig({ iotLorawan: { deviceType: 'lht65' } })).toThrow(
      /iotLorawan\.deviceType.*\(none\)/,
    );
  });

  it('refuses a type fPort outside 0 to 255', () => {
    expect(() => validateRuntimeConfig({ deviceTypes: { lht65: { fPort: 256 } } })).toThrow(
      /deviceTypes\.lht65\.fPort.*0 to 255/,
    );
  });

  it('refuses prototype names as device keys (no id or EUI is one), and keeps __proto__ a plain name', () => {
    expect(() =>
      validateRuntimeConfig(JSON.parse('{"iotLorawan": {"devices": {"__proto__": {"type": "x"}}}}')),
    ).toThrow(/iotLorawan\.devices\.__proto__.*a WirelessDeviceId/);
    expect(() => validateRuntimeConfig({ iotLorawan: { devices: { constructor: {} } } })).toThrow(
      /iotLorawan\.devices\.constructor/,
    );
  });

  it('reads an uplink of an unlisted device with the default type and its WirelessDeviceId', () => {
    const read = iotLorawan.read(new InboundMessage(Buffer.from(uplink()), `$aws/rules/${RULE}`, {}, 0), {
      config: plain,
      decoders: ingestOf(plain).decoders,
      json: ingestOf(plain).decoders.of('lht65') as never,
    });
    expect(read).toMatchObject({ deviceId: DEVICE, deviceType: 'iot-lorawan', seq: 7 });
  });
});

describe('the uplink parser (properties)', () => {
  const gateway = fc.record({
    GatewayEui: fc.stringMatching(/^[0-9a-f]{16}$/),
    Rssi: fc.integer({ min: -140, max: 0 }),
    Snr: fc.double({ min: -30, max: 20, noNaN: true }),
  });
  const message = fc.record({
    WirelessDeviceId: fc.uuid(),
    PayloadData: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64')),
    WirelessMetadata: fc.record({
      LoRaWAN: fc.record({
        DevEui: fc.stringMatching(/^[0-9A-Fa-f]{16}$/),
        FPort: fc.integer({ min: 0, max: 255 }),
        FCnt: fc.nat(),
        Gateways: fc.array(gateway, { maxLength: 20 }),
        Timestamp: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      }),
    }),
  });

  it('never throws, whatever JSON arrives', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const parsed = parseIotLorawanUplink(value);
        expect(typeof parsed).toBe('object');
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on a real shape with any field replaced by any value', () => {
    const fields = [
      'WirelessDeviceId',
      'PayloadData',
      'WirelessMetadata',
      'LoRaWAN',
      'DevEui',
      'FPort',
      'FCnt',
      'Gateways',
      'Timestamp',
    ];
    fc.assert(
      fc.property(message, fc.constantFrom(...fields), fc.jsonValue(), (m, field, value) => {
        const copy = JSON.parse(JSON.stringify(m));
        if (field in copy) copy[field] = value;
        else if (field === 'LoRaWAN') copy.WirelessMetadata.LoRaWAN = value;
        else copy.WirelessMetadata.LoRaWAN[field] = value;
        const parsed = parseIotLorawanUplink(copy);
        expect('error' in parsed || 'wirelessDeviceId' in parsed).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('reads every well-formed uplink: its ids, port, counter, payload, and the strongest gateway', () => {
    fc.assert(
      fc.property(message, (m) => {
        const parsed = parseIotLorawanUplink(m);
        if ('error' in parsed) throw new Error(parsed.error);
        const l = m.WirelessMetadata.LoRaWAN;
        expect(parsed.wirelessDeviceId).toBe(m.WirelessDeviceId.toLowerCase());
        expect(parsed.devEui).toBe(l.DevEui.toLowerCase());
        expect([parsed.fPort, parsed.fCnt, parsed.timestamp]).toEqual([l.FPort, l.FCnt, l.Timestamp]);
        expect(parsed.payload.toString('base64')).toBe(m.PayloadData);
        if (l.Gateways.length === 0) expect(parsed.radio).toEqual({});
        else {
          const strongest = Math.max(...l.Gateways.map((g) => g.Rssi));
          expect(parsed.radio['radio.rssi']).toBe(strongest);
          expect(parsed.radio['radio.gateways']).toBe(l.Gateways.length);
          expect(l.Gateways.some((g) => g.Rssi === strongest && g.Snr === parsed.radio['radio.snr'])).toBe(
            true,
          );
        }
      }),
    );
  });
});

describe('hostile bodies on the LoRaWAN rule', () => {
  const many = Array.from({ length: 10_000 }, (_, i) => ({ GatewayEui: String(i), Rssi: -1 - i, Snr: 1 }));
  const cases: [string, string, RegExp][] = [
    ['10,000 gateways', uplink({}, { Gateways: many }), /lists 10000 gateways, more than the 256/],
    [
      'Gateways an object',
      uplink({}, { Gateways: { length: 1e9 } }),
      /Gateways" must be an array, got an object/,
    ],
    [
      'a __proto__ WirelessDeviceId',
      uplink({ WirelessDeviceId: '__proto__' }),
      /"__proto__" is not an IoT Core for LoRaWAN id/,
    ],
    [
      'a path in WirelessDeviceId',
      uplink({ WirelessDeviceId: '../../readings/x' }),
      /is not an IoT Core for LoRaWAN id \(a UUID\)/,
    ],
    [
      'SQL in WirelessDeviceId',
      uplink({ WirelessDeviceId: "57728ff8-5d1d-4130-9de2-f004d8722bc2' OR '1'='1" }),
      /is not an IoT Core for LoRaWAN id/,
    ],
    [
      'a numeric WirelessDeviceId',
      uplink({ WirelessDeviceId: 42 }),
      /no "WirelessDeviceId" string \(got a number\)/,
    ],
    [
      'WirelessMetadata an array',
      JSON.stringify({ ...JSON.parse(uplink()), WirelessMetadata: [JSON.parse(uplink()).WirelessMetadata] }),
      /"WirelessMetadata" must be an object, got an array/,
    ],
    [
      'no LoRaWAN part (Sidewalk)',
      JSON.stringify({ WirelessDeviceId: DEVICE, PayloadData: '', WirelessMetadata: { Sidewalk: {} } }),
      /a Sidewalk uplink\?/,
    ],
    ['FPort text', uplink({}, { FPort: '2' }), /FPort" must be 0 to 255, got "2"/],
    ['FPort 256', uplink({}, { FPort: 256 }), /FPort" must be 0 to 255, got 256/],
    ['FCnt negative', uplink({}, { FCnt: -1 }), /FCnt" must be a non-negative integer/],
    ['FCnt past 2^53', uplink({}, { FCnt: 2 ** 60 }), /FCnt" must be a non-negative integer/],
    [
      'base64 garbage',
      uplink({ PayloadData: 'not base64!!' }),
      /"PayloadData" must be base64, got "not base64!!"/,
    ],
    ['base64 cut short', uplink({ PayloadData: 'y7QKgwF' }), /"PayloadData" must be base64/],
    ['PayloadData an object', uplink({ PayloadData: { __proto__: 1 } }), /"PayloadData" must be base64/],
    [
      'a Timestamp number',
      uplink({}, { Timestamp: 1607354848 }),
      /Timestamp" must be ISO-8601 text, got a number/,
    ],
    [
      'a Timestamp with no zone',
      uplink({}, { Timestamp: '2020-12-07T15:27:28' }),
      /is not ISO-8601 with a zone/,
    ],
    ['an array body', '[1,2,3]', /must be a JSON object, got an array/],
    ['not JSON', '{"WirelessDeviceId": ', /not JSON/],
  ];

  it.each(cases)('quarantines %s with the reason, never an exception', (_, body, reason) => {
    const outcome = decodeMessage(queued(body, Date.parse('2020-12-07T15:27:29Z')), ingestOf(config));
    expect(outcome.error).toBeUndefined();
    expect(outcome.readings).toEqual([]);
    expect(outcome.quarantine).toEqual([
      expect.objectContaining({ source: 'iot-lorawan', reason: expect.stringMatching(reason) }),
    ]);
  });

  it('takes prototype names in gateways and metadata as plain data', () => {
    // As JSON arrives: "__proto__" an own key of the body, of LoRaWAN and of a gateway.
    const body = uplink({ constructor: 1 }, { toString: 'x', Gateways: [{ Rssi: -50, Snr: 2 }] })
      .replace('{', '{"__proto__":{"polluted":true},')
      .replace('"LoRaWAN":{', '"LoRaWAN":{"__proto__":{"FPort":5},')
      .replace('{"Rssi":-50', '{"__proto__":{"Rssi":0},"Rssi":-50');
    expect(Object.hasOwn(JSON.parse(body), '__proto__')).toBe(true);
    const outcome = ingest(body);
    expect(outcome.readings[0]?.metrics).toMatchObject({
      'radio.rssi': -50,
      'radio.snr': 2,
      'radio.gateways': 1,
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('keeps the batch: every hostile body quarantined, the good uplink beside them stored', async () => {
    const at = Date.parse('2020-12-07T15:27:29Z');
    const messages = [
      ...cases.map(([, body], i) => queued(body, at, `bad-${i}`)),
      queued(uplink({}, { FCnt: 9 }), at, 'good'),
    ];
    const outcomes = await decodeMessages(messages, ingestOf(config));
    expect(outcomes.map((o) => o.error)).toEqual(messages.map(() => undefined));
    expect(outcomes.filter((o) => o.quarantine.length === 1)).toHaveLength(cases.length);
    expect(outcomes.at(-1)?.readings).toEqual([
      expect.objectContaining({
        deviceId: 'cellar-lht65',
        seq: 9,
        metrics: expect.objectContaining({ humidity: 32 }),
      }),
    ]);
  });

  it('caps the gateways at a number no real uplink reaches', () => {
    const ok = uplink({}, { Gateways: many.slice(0, MAX_GATEWAYS) });
    expect(parseIotLorawanUplink(JSON.parse(ok))).toMatchObject({
      radio: { 'radio.rssi': -1, 'radio.gateways': MAX_GATEWAYS },
    });
  });
});

describe('the LoRaWAN port over MQTT', () => {
  /** A queue message as the telemetry rule writes it, for a binary payload. */
  const mqttMessage = (topic: string, hex: string, messageId = 'q1') => ({
    messageId,
    body: JSON.stringify({
      payload: Buffer.from(hex, 'hex').toString('base64'),
      topic,
      clientId: 'c',
      receivedAt: Date.now(),
    }),
  });
  const FRAME = 'cbf60992026501febf7fff';

  it.each([
    ['dt/lht65/cellar-1', { deviceType: 'lht65', deviceId: 'cellar-1' }],
    ['dt/lht65/cellar-1/2', { deviceType: 'lht65', deviceId: 'cellar-1', fPort: 2 }],
    [
      '$aws/rules/iot_pipeline_dev_telemetry/dt/lht65/cellar-1/0',
      { deviceType: 'lht65', deviceId: 'cellar-1', fPort: 0 },
    ],
    ['dt/lht65/cellar-1/255', { deviceType: 'lht65', deviceId: 'cellar-1', fPort: 255 }],
  ])('reads %s', (topic, expected) => {
    expect(parseTelemetryTopic(topic)).toEqual(expected);
  });

  it.each([
    'dt/lht65/cellar-1/256',
    'dt/lht65/cellar-1/02',
    'dt/lht65/cellar-1/-1',
    'dt/lht65/cellar-1/x',
    'dt/lht65/cellar-1/',
  ])('refuses the port of %s', (topic) => {
    expect(parseTelemetryTopic(topic)).toEqual({
      error: expect.stringMatching(/LoRaWAN port ".*" in the topic must be 0 to 255/),
    });
  });

  it("gives the LHT65 codec (sandboxed) the port of the topic, else the type's fPort, else none", async () => {
    const outcomes = await decodeMessages(
      [
        mqttMessage('dt/lht65/cellar-1/2', FRAME, 'topic-port'),
        mqttMessage('dt/lht65-port/cellar-2', FRAME, 'type-port'),
        mqttMessage('dt/lht65-port/cellar-3/5', FRAME, 'topic-wins'),
        mqttMessage('dt/lht65/cellar-4', FRAME, 'no-port'),
      ],
      ingestOf(config),
    );
    const [topicPort, typePort, topicWins, noPort] = outcomes;
    const inside = {
      battery: 3.062,
      temperature: 24.5,
      humidity: 61.3,
      batteryStatus: 'good',
      externalTemperature: -3.21,
    };
    expect(topicPort?.readings).toEqual([expect.objectContaining({ deviceId: 'cellar-1', metrics: inside })]);
    expect(typePort?.readings).toEqual([expect.objectContaining({ deviceId: 'cellar-2', metrics: inside })]);
    expect(topicWins?.quarantine).toEqual([
      expect.objectContaining({ reason: expect.stringContaining('unknown fPort 5') }),
    ]);
    expect(noPort?.quarantine).toEqual([
      expect.objectContaining({ reason: expect.stringContaining('unknown fPort undefined') }),
    ]);
  });

  it('quarantines a publish under dt/ that is no telemetry topic, with the reason', () => {
    const outcome = decodeMessage(mqttMessage('dt/lht65/cellar-1/2/extra', FRAME), ingestOf(config));
    expect(outcome.quarantine).toEqual([
      expect.objectContaining({
        reason_code: 'invalid_topic',
        reason: expect.stringContaining('dt/<deviceType>/<deviceId>/<fPort>'),
      }),
    ]);
  });
});
