import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import type { Envelope } from '../../../lambdas/core/formats/format.ts';
import { decodeMessage } from '../../../lambdas/core/ingest/decode.ts';
import type { ReadingClaims } from '../../../lambdas/core/ingest/ports.ts';
import { writeBatch } from '../../../lambdas/core/ingest/write.ts';
import { memoryClaims } from '../../../tools/redecode/redecode.ts';
import { ingestOf, MemoryStore, NOW, postToEdge } from '../../support/fakes.ts';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/${name}`, import.meta.url), 'utf8');
const config = validateRuntimeConfig({
  deviceTypes: {
    tracker: {
      decoder: { sigfox: 'temp::int:16*0.01 battery::uint:8*0.02 moving::bool:7' },
      sigfoxDownlink: '00000000000000FF',
    },
    lht65: { decoder: { codec: 'codecs/lht65.js', source: readFileSync('codecs/lht65.js', 'utf8') } },
  },
  httpMappings: { acme: { id: 'serial', time: 'at', type: 'acme-meter' } },
  sigfoxDownlinks: { '1A2B3C': '0102030405060708' },
});

/** POSTs through the HTTP edge's core, as both HTTP servers do. */
const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  postToEdge(config, path, body, headers);

const decoded = (envelope: Envelope | undefined, messageId = 'm1') =>
  decodeMessage(
    { messageId, body: JSON.stringify(envelope) },
    ingestOf(config, () => NOW),
  );

describe('Sigfox callbacks (POST /v1/sigfox)', () => {
  it("answers 204 at once, and the ingest path explodes data with the type's grammar, radio fields beside", async () => {
    const { response, queued } = await post('/v1/sigfox?type=tracker', fixture('sigfox-uplink.json'));
    expect(response).toEqual({ statusCode: 204, headers: {}, body: '' });
    expect(queued[0]).toMatchObject({ source: 'sigfox', topic: '/v1/sigfox', params: { type: 'tracker' } });
    const outcome = decoded(queued[0]);
    expect(outcome.quarantine).toEqual([]);
    expect(outcome.readings).toEqual([
      expect.objectContaining({
        deviceId: '1A2B3C',
        deviceType: 'tracker',
        source: 'sigfox',
        time: Date.parse('2026-11-25T05:59:58Z'),
        key: 'seq:1234',
        metrics: {
          temp: 24.5,
          battery: 3.2,
          moving: true,
          'radio.rssi': -121,
          'radio.snr': 12.34,
          'radio.avgSnr': 20.12,
          'radio.station': '0A1B',
        },
      }),
    ]);
    expect(outcome.raw).toMatchObject({ device_id: '1A2B3C', device_type: 'tracker', source: 'sigfox' });
  });

  it("answers a BIDIR callback with the downlink: the device's own, else its type's, else 204", async () => {
    const own = await post('/v1/sigfox?type=tracker', fixture('sigfox-bidir.json'));
    expect(own.response.statusCode).toBe(200);
    expect(JSON.parse(own.response.body)).toEqual({ '1A2B3C': { downlinkData: '0102030405060708' } });
    const other = fixture('sigfox-bidir.json').replace('"1A2B3C"', '"99AA"');
    const typed = await post('/v1/sigfox?type=tracker', other);
    expect(JSON.parse(typed.response.body)).toEqual({ '99AA': { downlinkData: '00000000000000ff' } });
    expect((await post('/v1/sigfox', other)).response.statusCode).toBe(204);
  });

  it("stores Sigfox's own customData# values when the type has no decoder", async () => {
    const { queued } = await post('/v1/sigfox', fixture('sigfox-custom-data.json'));
    const outcome = decoded(queued[0]);
    expect(outcome.readings[0]).toMatchObject({
      deviceId: '4D5E6F',
      deviceType: 'sigfox',
      key: 'seq:77',
      metrics: { temp: 24.5, door: true },
    });
  });

  it('quarantines data it has no decoder for, saying what to configure', async () => {
    const { queued } = await post('/v1/sigfox?type=unknown', fixture('sigfox-uplink.json'));
    expect(decoded(queued[0]).quarantine[0]).toMatchObject({
      reason_code: 'decode_failed',
      reason: expect.stringContaining('set deviceTypes.unknown.decoder.sigfox'),
      device_id: '1A2B3C',
    });
  });

  it.each([
    ['{"time":1,"data":"00"}', '"device" must be the Sigfox device id'],
    ['{"device":"1A","data":"00"}', '"time" must be epoch seconds'],
    ['{"device":"1A","time":1,"data":"0"}', '"data": 1 hex digits: a byte is two'],
    ['{"device":"1A","time":1,"data":"zz"}', '"data": "z" at position 1 is not a hex digit'],
    [
      '{"device":"1A","time":1,"data":"00112233445566778899aabbcc"}',
      '"data" has 13 bytes; Sigfox frames carry at most 12',
    ],
    ['{"device":"1A","time":1,"data":"00","seqNumber":-1}', '"seqNumber" must be a non-negative integer'],
    ['{"device":"1A","time":1,"data":"00","ack":"maybe"}', '"ack" must be true or false'],
    ['{"device":"../x","time":1,"data":"00"}', '"device" must be the Sigfox device id'],
    ['[1,2]', 'must be a JSON object, got an array'],
  ])('answers 400 with the reason for %s', async (body, reason) => {
    const { response, queued } = await post('/v1/sigfox', body);
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toEqual({
      error: 'invalid_callback',
      message: expect.stringContaining(reason),
    });
    expect(queued).toEqual([]);
  });
});

describe('The Things Stack webhooks (POST /v1/ttn)', () => {
  it('stores decoded_payload with the best gateway, the frame counter and the network time', async () => {
    const { response, queued } = await post('/v1/ttn', fixture('ttn-uplink.json'));
    expect(response.statusCode).toBe(202);
    const outcome = decoded(queued[0]);
    expect(outcome.readings).toEqual([
      expect.objectContaining({
        deviceId: 'eui-70b3d57ed0051234',
        deviceType: 'ttn',
        source: 'ttn',
        key: 'seq:42',
        time: Date.parse('2026-11-25T05:59:58.345Z'),
        metrics: {
          battery: 3.062,
          temperature: 24.5,
          humidity: 61.3,
          'radio.rssi': -97,
          'radio.snr': 7.25,
          'radio.gateways': 2,
        },
      }),
    ]);
  });

  it("decodes frm_payload with the type's codec when there is no decoded_payload, zero fields left out", async () => {
    const { queued } = await post('/v1/ttn?type=lht65', fixture('ttn-uplink-zero-fields.json'));
    const outcome = decoded(queued[0]);
    expect(outcome.quarantine).toEqual([]);
    expect(outcome.readings[0]).toMatchObject({
      deviceId: 'lht65-cellar',
      key: 'seq:0',
      metrics: {
        battery: 3,
        temperature: -2,
        humidity: 50,
        batteryStatus: 'ok',
        'radio.rssi': -101,
        'radio.gateways': 1,
      },
    });
  });

  it('quarantines an uplink it cannot decode, saying what to configure', async () => {
    const { queued } = await post('/v1/ttn', fixture('ttn-uplink-zero-fields.json'));
    expect(decoded(queued[0]).quarantine[0]).toMatchObject({
      reason_code: 'decode_failed',
      reason: expect.stringContaining('has no codec'),
    });
  });

  it.each([
    ['{"uplink_message":{}}', 'no "end_device_ids.device_id"'],
    ['{"end_device_ids":{"device_id":"d"}}', 'no "uplink_message": enable only "Uplink message"'],
    [
      '{"end_device_ids":{"device_id":"d"},"uplink_message":{"f_port":300}}',
      '"uplink_message.f_port" must be 0 to 255',
    ],
    ['{"end_device_ids":{"device_id":"d"},"uplink_message":{"frm_payload":"***"}}', 'must be base64'],
    [
      '{"end_device_ids":{"device_id":"d"},"uplink_message":{"decoded_payload":[1]}}',
      'must be an object, got an array',
    ],
  ])('answers 400 with the reason for %s', async (body, reason) => {
    const { response } = await post('/v1/ttn', body);
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toEqual({
      error: 'invalid_webhook',
      message: expect.stringContaining(reason),
    });
  });
});

describe('POST /v1/telemetry with a field mapping', () => {
  it("reads the device's own field names as id and time, with the mapping's type", async () => {
    const body = JSON.stringify([{ serial: 'm-17', at: '2026-11-25T05:59:00Z', kwh: 12.5 }]);
    const { queued } = await post('/v1/telemetry?mapping=acme', body);
    expect(decoded(queued[0]).readings[0]).toMatchObject({
      deviceId: 'm-17',
      deviceType: 'acme-meter',
      time: Date.parse('2026-11-25T05:59:00Z'),
      metrics: { kwh: 12.5 },
    });
  });

  it('answers 400 for an unknown mapping or device type', async () => {
    const unknown = await post('/v1/telemetry?mapping=nope', '{}');
    expect(JSON.parse(unknown.response.body)).toEqual({
      error: 'unknown_mapping',
      message: 'no mapping "nope" in the config (httpMappings; configured: acme)',
    });
    const type = await post('/v1/telemetry?type=../etc', '{}');
    expect(type.response.statusCode).toBe(400);
    expect(JSON.parse(type.response.body).error).toBe('invalid_type');
  });
});

describe('duplicates across batches (network resends)', () => {
  it('stores the same device + seqNumber once, whether resent later or retried by SQS', async () => {
    const lake = new MemoryStore();
    const claims = memoryClaims();
    const deps = { config, lake, claims };
    const { queued: first } = await post('/v1/sigfox?type=tracker', fixture('sigfox-uplink.json'));
    const duplicate = fixture('sigfox-uplink.json').replace('"duplicate": false', '"duplicate": true');
    const { queued: second } = await post('/v1/sigfox?type=tracker', duplicate);
    await writeBatch([decoded(first[0], 'sqs-1')], deps);
    await writeBatch([decoded(second[0], 'sqs-2')], deps);
    // SQS redelivers the first message (same id): it is no duplicate of itself.
    await writeBatch([decoded(first[0], 'sqs-1')], deps);
    // The redelivery rewrote its own object (same messages, same key): one row.
    const rows = lake.lines('readings/').filter((r) => r.metric === 'temp');
    expect(rows.map((r) => r.message_id)).toEqual(['sqs-1']);
    // Both callbacks stay in raw/, as everything does.
    const raw = lake.lines('raw/').map((r) => String(r.message_id));
    expect(raw.sort()).toEqual(['sqs-1', 'sqs-2']);
  });

  it('keeps a reading whose counter wrapped (same seqNumber, another time)', async () => {
    const lake = new MemoryStore();
    const deps = { config, lake, claims: memoryClaims() };
    const { queued: a } = await post('/v1/sigfox?type=tracker', fixture('sigfox-uplink.json'));
    const { queued: b } = await post(
      '/v1/sigfox?type=tracker',
      fixture('sigfox-uplink.json').replace('1795586398', '1795586000'),
    );
    await writeBatch([decoded(a[0], 'x')], deps);
    await writeBatch([decoded(b[0], 'y')], deps);
    expect(new Set(lake.lines('readings/').map((r) => r.message_id))).toEqual(new Set(['x', 'y']));
  });

  it('retries the messages when the claims cannot be checked, rather than risk a duplicate', async () => {
    const lake = new MemoryStore();
    const failing: ReadingClaims = {
      claim: () => Promise.reject(new Error('ProvisionedThroughputExceeded')),
    };
    const { queued } = await post('/v1/sigfox?type=tracker', fixture('sigfox-uplink.json'));
    const failures = await writeBatch([decoded(queued[0], 'z')], { lake, claims: failing });
    expect([...failures.keys()]).toEqual(['z']);
    expect(lake.objects.size).toBe(0);
  });
});

describe('any request', () => {
  it('never gets a 5xx, whatever the route, headers and body (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          '/v1/telemetry',
          '/v1/sigfox',
          '/v1/ttn',
          '/v1/other',
          '/v1/sigfox?type=tracker',
          '/v1/telemetry?mapping=acme',
        ),
        fc.oneof(
          fc.json(),
          fc.string(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        fc.boolean(),
        async (path, body, authorized) => {
          const { response } = await post(path, body, authorized ? {} : { authorization: 'wrong' });
          expect(response.statusCode).toBeLessThan(500);
        },
      ),
      { numRuns: 300 },
    );
  });
});
