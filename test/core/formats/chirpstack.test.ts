import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { applyReadings } from '../../../lambdas/core/estate/alerts.ts';
import { MAX_ATTRIBUTES, mergeAttributes } from '../../../lambdas/core/estate/attributes.ts';
import { applyNow } from '../../../lambdas/core/estate/delta.ts';
import {
  CHIRPSTACK_EVENTS,
  deviceTypeOfProfile,
  MAX_GATEWAYS,
  parseChirpstackEvent,
} from '../../../lambdas/core/formats/chirpstack.ts';
import { type Envelope, readParams, topicOf } from '../../../lambdas/core/formats/format.ts';
import { DEVICE_TYPE_PATTERN } from '../../../lambdas/core/ids.ts';
import { decodeMessage, decodeMessages } from '../../../lambdas/core/ingest/decode.ts';
import { writeBatch } from '../../../lambdas/core/ingest/write.ts';
import { memoryClaims } from '../../../tools/redecode/redecode.ts';
import {
  closeTestDecoders,
  ingestOf,
  MemoryStore,
  memoryRegistry,
  NOW,
  postToEdge,
} from '../../support/fakes.ts';

type Body = Record<string, unknown> & { deviceInfo: Record<string, unknown> };

const recorded = (name: string): Body =>
  JSON.parse(
    readFileSync(new URL(`../../fixtures/networks/chirpstack/${name}.json`, import.meta.url), 'utf8'),
  );
/** ChirpStack's recorded times are from 2022: moved to just before NOW, so they pass the age check. */
const RECENT = '2026-11-25T05:59:58.775023242+00:00';
const fresh = (name: string, change: (body: Body) => void = () => {}): string => {
  const body = recorded(name);
  body.time = RECENT;
  change(body);
  return JSON.stringify(body);
};

const config = validateRuntimeConfig({
  deviceTypes: {
    lht65: { decoder: { codec: 'codecs/lht65.js', source: readFileSync('codecs/lht65.js', 'utf8') } },
  },
});
afterAll(() => closeTestDecoders());

const post = (path: string, body: string) => postToEdge(config, path, body);
const decoded = (envelope: Envelope | undefined, messageId = 'm1') =>
  decodeMessage(
    { messageId, body: JSON.stringify(envelope) },
    ingestOf(config, () => NOW),
  );
/** An uplink as a real deployment sends it: decoded by ChirpStack, counter written, heard by three gateways. */
const decodedUplink = (body: Body) => {
  body.fCnt = 967;
  body.object = { temperature: 18.6, humidity: 49, door: true, label: 'cellar' };
  body.rxInfo = [
    { gatewayId: '8d5ecb12457ba867', rssi: -113, snr: 1 },
    { gatewayId: '2f908f24073a558e', rssi: -106, snr: 4.5 },
    { gatewayId: 'dcd1b5dcb5c53623', rssi: '-120', snr: -7.2 },
  ];
};

describe('ChirpStack events (POST /v1/chirpstack?event=...)', () => {
  it('stores an uplink decoded by ChirpStack: object as it is, strongest gateway, gateways counted, fCnt, time, tags', async () => {
    const { response, queued } = await post('/v1/chirpstack?event=up', fresh('up', decodedUplink));
    expect(response.statusCode).toBe(202);
    expect(queued[0]).toMatchObject({
      source: 'chirpstack',
      topic: '/v1/chirpstack',
      params: { event: 'up' },
    });
    const outcome = decoded(queued[0]);
    expect(outcome.quarantine).toEqual([]);
    expect(outcome.readings).toEqual([
      expect.objectContaining({
        deviceId: '0101010101010101',
        // "Test device-profile", made a device type.
        deviceType: 'test-device-profile',
        source: 'chirpstack',
        time: Date.parse(RECENT),
        key: 'seq:967',
        seq: 967,
        attributes: { key: 'value' },
        metrics: {
          temperature: 18.6,
          humidity: 49,
          door: true,
          label: 'cellar',
          'radio.rssi': -106,
          'radio.snr': 4.5,
          'radio.gateways': 3,
        },
      }),
    ]);
    expect(outcome.raw).toMatchObject({
      device_id: '0101010101010101',
      device_type: 'test-device-profile',
      topic: '/v1/chirpstack?event=up',
    });
  });

  it('reads the recorded uplink as ChirpStack writes it: fCnt left out is 0, one gateway', async () => {
    const { queued } = await post('/v1/chirpstack?event=up&type=lht65', fresh('up'));
    // "qg==" is one byte: too short for the LHT65 codec, which says so; the frame is not lost silently.
    const outcome = decoded(queued[0]);
    expect(outcome.readings).toEqual([]);
    expect(outcome.quarantine[0]).toMatchObject({
      reason_code: 'decode_failed',
      device_id: '0101010101010101',
    });
    const read = parseChirpstackEvent('up', recorded('up'));
    expect(read).toMatchObject({
      fCnt: 0,
      fPort: 1,
      data: Buffer.from([0xaa]),
      radio: { 'radio.rssi': -36, 'radio.snr': 10.5, 'radio.gateways': 1 },
    });
  });

  it('decodes data with the codec of the type named in the URL when ChirpStack sent no object', async () => {
    const body = fresh('up', (b) => {
      b.fPort = 2;
      b.fCnt = '12';
      b.data = 'i7j/OAH0AX//f/8=';
    });
    const { queued } = await post('/v1/chirpstack?event=up&type=lht65', body);
    const [outcome] = await decodeMessages(
      [{ messageId: 'c1', body: JSON.stringify(queued[0]) }],
      ingestOf(config, () => NOW),
    );
    expect(outcome?.quarantine).toEqual([]);
    expect(outcome?.readings[0]).toMatchObject({
      deviceType: 'lht65',
      key: 'seq:12',
      metrics: { battery: 3, temperature: -2, humidity: 50, 'radio.rssi': -36, 'radio.gateways': 1 },
    });
  });

  it('stores a frame without payload (MAC commands on port 0) as its radio, and keeps one heard by no gateway', async () => {
    const mac = await post(
      '/v1/chirpstack?event=up',
      fresh('up', (b) => {
        b.data = undefined;
        b.fPort = undefined;
        b.fCnt = 5;
      }),
    );
    expect(decoded(mac.queued[0]).readings).toEqual([
      expect.objectContaining({
        key: 'seq:5',
        metrics: { 'radio.rssi': -36, 'radio.snr': 10.5, 'radio.gateways': 1 },
      }),
    ]);
    const unheard = await post(
      '/v1/chirpstack?event=up',
      fresh('up', (b) => {
        b.data = '';
        b.rxInfo = [];
      }),
    );
    const outcome = decoded(unheard.queued[0]);
    expect([outcome.readings, outcome.quarantine]).toEqual([[], []]);
    expect(outcome.raw).toBeDefined();
  });

  it('quarantines data it has no codec for, saying what to configure', async () => {
    const { queued } = await post('/v1/chirpstack?event=up', fresh('up'));
    expect(decoded(queued[0]).quarantine[0]).toMatchObject({
      reason_code: 'decode_failed',
      device_type: 'test-device-profile',
      reason: expect.stringContaining('set deviceTypes.test-device-profile.decoder.codec'),
    });
  });

  it('stores a status event as readings of the device: margin and battery level', async () => {
    const { response, queued } = await post('/v1/chirpstack?event=status', fresh('status'));
    expect(response.statusCode).toBe(202);
    const outcome = decoded(queued[0]);
    expect(outcome.readings).toEqual([
      expect.objectContaining({
        deviceId: '0101010101010101',
        time: Date.parse(RECENT),
        metrics: { 'status.margin': 10, 'status.external_power': false, 'status.battery_level': 88.3 },
      }),
    ]);
    // A status report has no frame counter: it must not count as messages lost or found.
    expect(outcome.readings[0]?.seq).toBeUndefined();
  });

  it('leaves the battery level out when the device is on external power or cannot tell', async () => {
    for (const flag of ['externalPowerSource', 'batteryLevelUnavailable']) {
      const { queued } = await post(
        '/v1/chirpstack?event=status',
        fresh('status', (b) => {
          b[flag] = true;
          b.margin = undefined;
        }),
      );
      const metrics = decoded(queued[0]).readings[0]?.metrics;
      expect(metrics).not.toHaveProperty(['status.battery_level']);
      expect(metrics).toMatchObject({ 'status.margin': 0 });
    }
  });

  it('stores a location event as location.* readings', async () => {
    const { queued } = await post('/v1/chirpstack?event=location', fresh('location'));
    expect(decoded(queued[0]).readings[0]?.metrics).toEqual({
      'location.latitude': 37.344214,
      'location.longitude': -8.839375,
      'location.altitude': 2,
    });
  });

  it.each(['join', 'ack', 'txack', 'log', 'integration'])(
    'answers a %s event 202 and keeps it in the raw archive only',
    async (event) => {
      const { response, queued } = await post(`/v1/chirpstack?event=${event}`, fresh(event));
      expect(response.statusCode).toBe(202);
      const outcome = decoded(queued[0]);
      expect(outcome.readings).toEqual([]);
      expect(outcome.quarantine).toEqual([]);
      expect(outcome.raw).toMatchObject({ topic: `/v1/chirpstack?event=${event}`, source: 'chirpstack' });
      expect(outcome.raw?.device_id).toMatch(/^[0-9a-f]{16}$/);
    },
  );

  it('says what each kept event is', () => {
    expect(parseChirpstackEvent('log', recorded('log'))).toMatchObject({
      kept: 'ChirpStack log event: ERROR UPLINK_MIC',
    });
    expect(parseChirpstackEvent('join', recorded('join'))).toMatchObject({
      kept: expect.stringContaining('join'),
    });
  });

  it('quarantines an event whose time is older than the validation window, with the reason', async () => {
    const body = JSON.stringify(recorded('status'));
    const { response, queued } = await post('/v1/chirpstack?event=status', body);
    expect(response.statusCode).toBe(202);
    expect(decoded(queued[0]).quarantine[0]).toMatchObject({ reason_code: 'timestamp_too_old' });
  });

  it('lets ?type= name the device type over the profile name', async () => {
    const { queued } = await post('/v1/chirpstack?event=status&type=gauge', fresh('status'));
    expect(decoded(queued[0]).readings[0]?.deviceType).toBe('gauge');
  });
});

describe('the device type of a profile name', () => {
  it.each([
    ['Dragino LHT65N', 'dragino-lht65n'],
    ['Milesight EM300-SLD waterleackage sensor', 'milesight-em300-sld-waterleackage-sensor'],
    ['EM300 - SLD', 'em300-sld'],
    ['Capteur température', 'capteur-temperature'],
    ['lht65', 'lht65'],
    ['  __x__  ', '__x__'],
    ['温度计', undefined],
    ['!!!', undefined],
    [`${'a'.repeat(63)} b`, 'a'.repeat(63)],
  ])('%j is %j', (name, type) => {
    expect(deviceTypeOfProfile(name)).toBe(type);
  });

  it('is always a valid device type, or undefined (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (name) => {
        const type = deviceTypeOfProfile(name);
        if (type !== undefined) expect(type).toMatch(DEVICE_TYPE_PATTERN);
      }),
      { numRuns: 2000 },
    );
  });

  it('falls back to "chirpstack" when the name gives nothing', async () => {
    const { queued } = await post(
      '/v1/chirpstack?event=status',
      fresh('status', (b) => {
        b.deviceInfo.deviceProfileName = '温度计';
      }),
    );
    expect(decoded(queued[0]).readings[0]?.deviceType).toBe('chirpstack');
  });
});

describe('?event=', () => {
  const route = { path: '/v1/chirpstack', events: CHIRPSTACK_EVENTS, refusal: 'invalid_event' };

  it.each([
    ['', 'no ?event=: /v1/chirpstack takes ?event=up|status|location|join|ack|txack|log|integration'],
    ['event=../../x', '?event="../../x": /v1/chirpstack takes ?event=up|'],
    ['event=UP', '?event="UP"'],
    ['event=up%00', '?event="up\\u0000"'],
  ])('refuses %j with unknown_event', (query, reason) => {
    expect(readParams(query, route)).toEqual({
      refused: true,
      code: 'invalid_topic',
      reason: expect.stringContaining(reason),
      error: 'unknown_event',
    });
  });

  it('is refused on a route that does not take it', () => {
    expect(readParams('event=up', { path: '/v1/ttn', refusal: 'invalid_webhook' })).toMatchObject({
      error: 'unknown_event',
      reason: '?event= does not apply to /v1/ttn',
    });
  });

  it('is kept in the raw topic, and read back from it', () => {
    const topic = topicOf({ topic: '/v1/chirpstack', params: { event: 'status', type: 'gauge' } });
    expect(topic).toBe('/v1/chirpstack?type=gauge&event=status');
    expect(readParams(topic.split('?')[1] ?? '', route)).toEqual({ type: 'gauge', event: 'status' });
  });

  it('answers 400 with a JSON reason at the edge, and queues nothing', async () => {
    for (const path of ['/v1/chirpstack', '/v1/chirpstack?event=../../x', '/v1/ttn?event=up']) {
      const { response, queued } = await post(path, fresh('up'));
      expect(response.statusCode).toBe(400);
      expect(JSON.parse(response.body)).toMatchObject({
        error: 'unknown_event',
        message: expect.any(String),
      });
      expect(queued).toEqual([]);
    }
  });
});

describe('hostile bodies', () => {
  const many = (n: number, make: (i: number) => [string, unknown]) =>
    Object.fromEntries(Array.from({ length: n }, (_, i) => make(i)));

  it.each([
    [
      'rxInfo with 10,000 gateways',
      'up',
      (b: Body) => {
        b.rxInfo = Array.from({ length: 10_000 }, () => ({}));
      },
      `"rxInfo" has 10000 gateways; at most ${MAX_GATEWAYS} are read`,
    ],
    [
      'a devEui that is not 16 hex digits',
      'up',
      (b: Body) => {
        b.deviceInfo.devEui = '../../etc/passwd';
      },
      '"deviceInfo.devEui" must be 16 hex digits',
    ],
    [
      'a devEui of 15 digits',
      'join',
      (b: Body) => {
        b.deviceInfo.devEui = '010101010101010';
      },
      '"deviceInfo.devEui" must be 16 hex digits',
    ],
    [
      'no deviceInfo',
      'log',
      (b: Body) => {
        b.deviceInfo = [] as unknown as Body['deviceInfo'];
      },
      'no "deviceInfo.devEui"',
    ],
    [
      'an fCnt past 32 bits',
      'up',
      (b: Body) => {
        b.fCnt = '99999999999';
      },
      '"fCnt" must be a 32-bit frame counter',
    ],
    [
      'an fPort of 300',
      'up',
      (b: Body) => {
        b.fPort = 300;
      },
      '"fPort" must be 0 to 255',
    ],
    [
      'data that is not base64',
      'up',
      (b: Body) => {
        b.data = '<script>';
      },
      '"data" must be base64',
    ],
    [
      'an object that is an array',
      'up',
      (b: Body) => {
        b.object = [1, 2];
      },
      '"object" must be an object, got an array',
    ],
    [
      'a time that is a number',
      'status',
      (b: Body) => {
        b.time = 1658136855;
      },
      '"time" must be an RFC 3339 string',
    ],
    [
      'a battery level that is text',
      'status',
      (b: Body) => {
        b.batteryLevel = 'full';
      },
      '"batteryLevel" must be a number',
    ],
  ])('answers 400 with the reason for %s', async (_name, event, change, reason) => {
    const { response, queued } = await post(`/v1/chirpstack?event=${event}`, fresh(event, change));
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toEqual({
      error: 'invalid_event',
      message: expect.stringContaining(reason),
    });
    expect(queued).toEqual([]);
  });

  it.each([
    [
      '1,000 tags',
      (b: Body) => {
        b.deviceInfo.tags = many(1000, (i) => [`t${i}`, 'v']);
      },
      MAX_ATTRIBUTES,
      `"deviceInfo.tags": 968 entries past the first ${MAX_ATTRIBUTES} left out`,
    ],
    [
      'a __proto__ tag',
      (b: Body) => {
        b.deviceInfo = JSON.parse(
          `{"devEui":"0101010101010101","tags":{"__proto__":{"admin":"1"},"site":"south"}}`,
        );
      },
      1,
      '"deviceInfo.tags" key "__proto__" must match',
    ],
    [
      'a tag that is not a string',
      (b: Body) => {
        b.deviceInfo.tags = { site: { nested: true }, room: 'b2' };
      },
      1,
      '"deviceInfo.tags.site" must be a string of at most 256 characters without control characters, got an object: left out',
    ],
    [
      'a tag value with a newline',
      (b: Body) => {
        b.deviceInfo.tags = { site: 'north\nsouth', room: 'b2' };
      },
      1,
      'without control characters',
    ],
    [
      'tags that are not an object',
      (b: Body) => {
        b.deviceInfo.tags = 'site=south' as unknown as Record<string, string>;
      },
      0,
      '"deviceInfo.tags" must be an object of strings, got a string: left out',
    ],
  ])(
    'stores the message with %s, the bad tags left out with a warning (ChirpStack never sends it again)',
    async (_name, change, kept, warning) => {
      const body = fresh('up', (b) => {
        decodedUplink(b);
        change(b);
      });
      const { response, queued } = await post('/v1/chirpstack?event=up', body);
      expect(response.statusCode).toBe(202);
      const outcome = decoded(queued[0]);
      expect(outcome?.readings.length).toBeGreaterThan(0);
      expect(outcome?.quarantine).toEqual([]);
      expect(Object.keys(outcome?.readings[0]?.attributes ?? {})).toHaveLength(kept);
      expect(Object.getPrototypeOf(outcome?.readings[0]?.attributes ?? {})).toBe(Object.prototype);
      expect(outcome?.raw?.warnings ?? '').toContain(JSON.stringify(warning).slice(1, -1));
    },
  );

  it('never lets an object with reserved names pose as the device or its time, and stores the next message of the batch', async () => {
    const hostile = await post(
      '/v1/chirpstack?event=up',
      fresh('up', (b) => {
        b.object = { time: 1, device_id: 'other', source: 'mqtt', temp: 3 };
      }),
    );
    const fine = await post('/v1/chirpstack?event=status', fresh('status'));
    const [first, second] = await decodeMessages(
      [
        { messageId: 'h', body: JSON.stringify(hostile.queued[0]) },
        { messageId: 'f', body: JSON.stringify(fine.queued[0]) },
      ],
      ingestOf(config, () => NOW),
    );
    // The normalizer either quarantines the names, with its reason, or keeps them under names of their own.
    const reading = first?.readings[0];
    if (reading === undefined) expect(first?.quarantine[0]?.reason).toMatch(/reserved/);
    else {
      expect(reading).toMatchObject({
        deviceId: '0101010101010101',
        source: 'chirpstack',
        time: Date.parse(RECENT),
      });
      for (const name of ['time', 'device_id', 'source']) expect(reading.metrics).not.toHaveProperty([name]);
      expect(reading.metrics).toMatchObject({ temp: 3 });
    }
    expect(second?.readings).toHaveLength(1);
  });

  it('keeps prototype names in an object as plain metric names', async () => {
    const { queued } = await post(
      '/v1/chirpstack?event=up',
      fresh('up', (b) => {
        b.object = JSON.parse('{"__proto__": 1, "constructor": 2}');
      }),
    );
    const metrics = decoded(queued[0]).readings[0]?.metrics ?? {};
    expect(Object.hasOwn(metrics, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(metrics)).toBe(Object.prototype);
  });
});

describe('the parser (properties)', () => {
  const devEui = fc.stringMatching(/^[0-9a-fA-F]{16}$/);
  const int = fc.oneof(fc.nat(0xffff_ffff), fc.nat(0xffff_ffff).map(String));
  const upish = fc.record(
    {
      time: fc.oneof(fc.constant(RECENT), fc.string(), fc.integer()),
      deviceInfo: fc.record(
        {
          devEui: fc.oneof(devEui, fc.string()),
          deviceProfileName: fc.oneof(fc.string(), fc.jsonValue()),
          tags: fc.oneof(fc.dictionary(fc.string(), fc.string(), { maxKeys: 40 }), fc.jsonValue()),
        },
        { requiredKeys: [] },
      ),
      fCnt: fc.oneof(int, fc.jsonValue()),
      fPort: fc.oneof(fc.nat(300), fc.string()),
      data: fc.oneof(fc.base64String(), fc.string()),
      object: fc.oneof(fc.dictionary(fc.string(), fc.jsonValue()), fc.jsonValue()),
      rxInfo: fc.oneof(
        fc.array(fc.record({ rssi: fc.oneof(fc.integer(), fc.string()), snr: fc.double() }), {
          maxLength: 5,
        }),
        fc.jsonValue(),
      ),
      margin: fc.oneof(fc.integer(), fc.jsonValue()),
      batteryLevel: fc.oneof(fc.double(), fc.jsonValue()),
      location: fc.oneof(fc.record({ latitude: fc.double(), longitude: fc.double() }), fc.jsonValue()),
    },
    { requiredKeys: [] },
  );

  it('reads any body of any event into an event or an error, never a throw, and only valid ids and tags', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...CHIRPSTACK_EVENTS, 'x'),
        fc.oneof(upish, fc.jsonValue()),
        (event, body) => {
          const read = parseChirpstackEvent(event, body);
          if ('error' in read) {
            expect(read.error.length).toBeGreaterThan(0);
            return;
          }
          expect(read.devEui).toMatch(/^[0-9a-f]{16}$/);
          for (const [key, value] of Object.entries(read.tags ?? {})) {
            expect(key).toMatch(/^[A-Za-z]/);
            expect(typeof value).toBe('string');
          }
          expect(Object.keys(read.tags ?? {}).length).toBeLessThanOrEqual(MAX_ATTRIBUTES);
          if (read.event === 'up') {
            expect(Number.isSafeInteger(read.fCnt)).toBe(true);
            expect(read.fPort).toBeGreaterThanOrEqual(0);
            expect(read.fPort).toBeLessThanOrEqual(255);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('reads a number and its decimal text alike, and absent as 0 (protobuf JSON)', () => {
    fc.assert(
      fc.property(fc.nat(0xffff_ffff), fc.nat(255), (fCnt, fPort) => {
        const base = recorded('up');
        const asNumbers = parseChirpstackEvent('up', { ...base, fCnt, fPort });
        const asText = parseChirpstackEvent('up', { ...base, fCnt: String(fCnt), fPort: String(fPort) });
        expect(asText).toEqual(asNumbers);
        expect(asNumbers).toMatchObject({ fCnt, fPort });
      }),
    );
    const { fCnt: _, ...omitted } = recorded('up');
    expect(parseChirpstackEvent('up', { ...omitted, fPort: null, data: null, object: null })).toMatchObject({
      fCnt: 0,
      fPort: 0,
      data: Buffer.alloc(0),
    });
  });

  it('never gets a 5xx at the edge, whatever the event and body (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...CHIRPSTACK_EVENTS, '', 'x', '../../x'),
        fc.oneof(
          upish.map((v) => JSON.stringify(v)),
          fc.string(),
        ),
        async (event, body) => {
          const { response } = await post(`/v1/chirpstack?event=${encodeURIComponent(event)}`, body);
          expect(response.statusCode).toBeLessThan(500);
          expect(JSON.parse(response.body)).toBeDefined();
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('duplicates (the same devEui, fCnt and time)', () => {
  it('stores an uplink once, however often it is posted, and another frame beside it', async () => {
    const lake = new MemoryStore();
    const deps = { config, lake, claims: memoryClaims() };
    const uplink = fresh('up', decodedUplink);
    const { queued: a } = await post('/v1/chirpstack?event=up', uplink);
    const { queued: b } = await post('/v1/chirpstack?event=up', uplink);
    const { queued: c } = await post(
      '/v1/chirpstack?event=up',
      fresh('up', (body) => {
        decodedUplink(body);
        body.fCnt = 968;
      }),
    );
    await writeBatch([decoded(a[0], 'sqs-1')], deps);
    await writeBatch([decoded(b[0], 'sqs-2')], deps);
    await writeBatch([decoded(c[0], 'sqs-3')], deps);
    const rows = lake.lines('readings/').filter((r) => r.metric === 'temperature');
    expect(rows.map((r) => r.message_id).sort()).toEqual(['sqs-1', 'sqs-3']);
    expect(
      lake
        .lines('raw/')
        .map((r) => String(r.message_id))
        .sort(),
    ).toEqual(['sqs-1', 'sqs-2', 'sqs-3']);
  });

  it('keeps a frame whose counter restarted (same fCnt, another time)', async () => {
    const lake = new MemoryStore();
    const deps = { config, lake, claims: memoryClaims() };
    const { queued: a } = await post('/v1/chirpstack?event=up', fresh('up', decodedUplink));
    const { queued: b } = await post(
      '/v1/chirpstack?event=up',
      fresh('up', (body) => {
        decodedUplink(body);
        body.time = '2026-11-25T05:50:00+00:00';
      }),
    );
    await writeBatch([decoded(a[0], 'x')], deps);
    await writeBatch([decoded(b[0], 'y')], deps);
    expect(new Set(lake.lines('readings/').map((r) => r.message_id))).toEqual(new Set(['x', 'y']));
  });
});

describe('tags into the registry', () => {
  it("merges an uplink's tags into the device's attributes, newest value winning, old keys kept", async () => {
    const registry = memoryRegistry();
    const estate = {
      registry,
      publisher: { publish: async () => undefined },
      config: { alertRules: [], offline: { severity: 'warning' as const }, deviceTypes: {} },
    };
    const deps = { config, lake: new MemoryStore(), claims: memoryClaims(), estate: applyNow(estate) };
    const first = await post(
      '/v1/chirpstack?event=up',
      fresh('up', (b) => {
        decodedUplink(b);
        b.deviceInfo.tags = { site: 'north', floor: '2' };
      }),
    );
    await writeBatch([decoded(first.queued[0], 'a')], deps);
    const second = await post(
      '/v1/chirpstack?event=status',
      fresh('status', (b) => {
        b.time = '2026-11-25T05:59:59+00:00';
        b.deviceInfo.tags = { site: 'south' };
      }),
    );
    await writeBatch([decoded(second.queued[0], 'b')], deps);
    expect(registry.records.get('0101010101010101')?.attributes).toEqual({ site: 'south', floor: '2' });
  });

  it('keeps at most MAX_ATTRIBUTES per device, updating the keys it has', () => {
    const full = Object.fromEntries(Array.from({ length: MAX_ATTRIBUTES }, (_, i) => [`k${i}`, 'v']));
    const merged = mergeAttributes(full, { k0: 'new', extra: 'x' });
    expect(Object.keys(merged)).toHaveLength(MAX_ATTRIBUTES);
    expect(merged).toMatchObject({ k0: 'new' });
    expect(merged).not.toHaveProperty('extra');
    // Nothing new: the same object, so the estate writes nothing.
    expect(mergeAttributes(full, { k1: 'v' })).toBe(full);
  });

  it('lets late data not rewind attributes, and scopes rules with the tags of the reading', () => {
    const reading = (time: number, site: string, temp: number) => ({
      deviceId: 'd',
      deviceType: 't',
      time,
      receivedAt: time,
      source: 'chirpstack' as const,
      messageId: `m${time}`,
      metrics: { temp },
      key: `ts:${time}`,
      attributes: { site },
    });
    const rule = {
      name: 'hot-north',
      metric: 'temp',
      comparison: '>' as const,
      threshold: 30,
      forMs: 0,
      hysteresis: 0,
      severity: 'critical' as const,
      scope: { attribute: { key: 'site', value: 'north' } },
    };
    const { record, events } = applyReadings(undefined, [reading(2, 'north', 31)], [rule]);
    expect(events.map((e) => e.rule)).toEqual(['hot-north']);
    const late = applyReadings(record, [reading(1, 'south', 20)], [rule]);
    expect(late.record.attributes).toEqual({ site: 'north' });
  });
});
