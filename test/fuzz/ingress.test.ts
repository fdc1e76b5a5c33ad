/**
 * Fuzzing every way in: MQTT payloads on any topic, each HTTP route, each decoder.
 * `npm test` runs a few hundred cases each; `npm run fuzz` runs FUZZ_RUNS (10,000).
 * Properties: nothing throws, no 5xx, and every input is accounted for: stored as
 * readings, or quarantined with a reason, always with its raw record.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { handleIngress } from '../../lambdas/core/api/ingress.ts';
import { validateRuntimeConfig } from '../../lambdas/core/config.ts';
import { compileCodec } from '../../lambdas/core/decoders/codec.ts';
import { NO_DECODERS } from '../../lambdas/core/decoders/decoder.ts';
import { jsonDecoder } from '../../lambdas/core/decoders/json.ts';
import { type Envelope, InboundMessage, isRefusal } from '../../lambdas/core/formats/format.ts';
import { formatOf } from '../../lambdas/core/formats/index.ts';
import { decodeMessages } from '../../lambdas/core/ingest/decode.ts';
import type { MessageOutcome } from '../../lambdas/core/ingest/records.ts';
import { closeTestDecoders, ingestOf, masterGate, NO_SOURCES, NOW } from '../support/fakes.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const config = validateRuntimeConfig({
  deviceTypes: {
    tracker: { decoder: { sigfox: 'temp::int:16*0.01 battery::uint:8*0.02 moving::bool:7' } },
    lht65: { decoder: { codec: 'codecs/lht65.js', source: readFileSync('codecs/lht65.js', 'utf8') } },
  },
  httpMappings: { acme: { id: 'serial', time: 'at' } },
});

function accountedFor(outcome: MessageOutcome, kept = false): void {
  expect(outcome.raw ?? outcome.quarantine[0]).toBeDefined();
  // A message with no reading by nature (a ChirpStack join) is kept in raw/ only.
  if (kept) expect(outcome.raw).toBeDefined();
  else if (outcome.readings.length === 0) expect(outcome.quarantine.length).toBeGreaterThan(0);
  for (const q of outcome.quarantine) {
    expect(q.reason.length).toBeGreaterThan(0);
    expect(q.reason_code.length).toBeGreaterThan(0);
  }
}

/** Whether the envelope's format reads it as a message with no reading by nature (`{ kept }`). */
function keptByFormat(e: Envelope): boolean {
  const format = formatOf(e.source ?? 'mqtt');
  if (!format?.route) return false;
  const message = new InboundMessage(
    Buffer.from(e.payload, 'base64'),
    e.topic,
    e.params ?? {},
    e.receivedAt,
    e.contentType,
  );
  const read = format.read(message, {
    config,
    decoders: NO_DECODERS,
    json: jsonDecoder(config.validation),
  });
  return !isRefusal(read) && 'kept' in read.payload;
}

const envelope = (source: Envelope['source'], topic: string, payload: Uint8Array): string =>
  JSON.stringify({
    ...(source === 'mqtt' ? {} : { source }),
    payload: Buffer.from(payload).toString('base64'),
    topic,
    receivedAt: NOW,
  });

const hex = (minLength: number, maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), minLength, maxLength });

const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v))),
  fc.string().map((s) => new TextEncoder().encode(s)),
);

describe(`fuzz (${RUNS} runs each)`, () => {
  it('MQTT: any payload on any topic is stored or quarantined with a reason, never thrown', async () => {
    const topic = fc.oneof(
      fc.constantFrom(
        'dt/thermo/dev-1',
        'dt/tracker/t-1',
        'dt/lht65/l-1',
        '$aws/rules/iot_pipeline_dev_telemetry/dt/thermo/d',
      ),
      fc.string(),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(topic, bytes), { minLength: 1, maxLength: 10 }), async (items) => {
        const outcomes = await decodeMessages(
          items.map(([t, b], i) => ({ messageId: `m${i}`, body: envelope('mqtt', t, b) })),
          ingestOf(config, () => NOW),
        );
        expect(outcomes).toHaveLength(items.length);
        for (const outcome of outcomes) accountedFor(outcome);
      }),
      { numRuns: RUNS },
    );
  });

  it('queue: any message body (not even an envelope) is quarantined with a reason', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string(), async (body) => {
        const [outcome] = await decodeMessages(
          [{ messageId: 'm', body }],
          ingestOf(config, () => NOW),
        );
        if (!outcome) throw new Error('no outcome');
        accountedFor(outcome);
      }),
      { numRuns: RUNS },
    );
  });

  it('HTTP: any request to any route gets a 4xx or a 2xx, and what is queued decodes to an accounted outcome', async () => {
    const route = fc.constantFrom(
      '/v1/telemetry',
      '/v1/telemetry?mapping=acme',
      '/v1/sigfox',
      '/v1/sigfox?type=tracker',
      '/v1/ttn',
      '/v1/ttn?type=lht65',
      '/v1/chirpstack?event=up',
      '/v1/chirpstack?event=up&type=lht65',
      '/v1/chirpstack?event=status',
      '/v1/chirpstack?event=location',
      '/v1/chirpstack?event=join',
      '/v1/chirpstack?event=../../x',
      '/v1/chirpstack',
      '/v1/x',
    );
    const sigfoxish = fc.record(
      {
        device: fc.oneof(hex(1, 8), fc.string()),
        time: fc.oneof(fc.integer({ min: 1_795_500_000, max: 1_795_590_000 }), fc.string()),
        data: fc.oneof(hex(0, 24), fc.string()),
        seqNumber: fc.oneof(fc.nat(4095), fc.string()),
        ack: fc.oneof(fc.boolean(), fc.string()),
      },
      { requiredKeys: [] },
    );
    const ttnish = fc.record(
      {
        end_device_ids: fc.record(
          { device_id: fc.oneof(fc.constant('eui-1'), fc.string()) },
          { requiredKeys: [] },
        ),
        uplink_message: fc.record(
          {
            f_port: fc.oneof(fc.nat(300), fc.string()),
            f_cnt: fc.nat(),
            frm_payload: fc.oneof(fc.base64String(), fc.string()),
            decoded_payload: fc.oneof(fc.dictionary(fc.string(), fc.jsonValue()), fc.jsonValue()),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: [] },
    );
    const chirpstackish = fc.record(
      {
        time: fc.oneof(fc.constant('2026-11-25T05:59:58.775023242+00:00'), fc.string()),
        deviceInfo: fc.record(
          {
            devEui: fc.oneof(hex(16, 16), fc.string()),
            deviceProfileName: fc.string(),
            tags: fc.oneof(fc.dictionary(fc.string(), fc.string(), { maxKeys: 40 }), fc.jsonValue()),
          },
          { requiredKeys: [] },
        ),
        fCnt: fc.oneof(fc.nat(), fc.nat().map(String), fc.jsonValue()),
        fPort: fc.oneof(fc.nat(300), fc.string()),
        data: fc.oneof(fc.base64String(), fc.string()),
        object: fc.oneof(fc.dictionary(fc.string(), fc.jsonValue()), fc.jsonValue()),
        rxInfo: fc.oneof(
          fc.array(fc.record({ rssi: fc.integer(), snr: fc.double() }), { maxLength: 4 }),
          fc.jsonValue(),
        ),
        margin: fc.oneof(fc.integer(), fc.jsonValue()),
        batteryLevel: fc.oneof(fc.double(), fc.jsonValue()),
        location: fc.oneof(fc.record({ latitude: fc.double(), longitude: fc.double() }), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      fc.string(),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      sigfoxish.map((v) => JSON.stringify(v)),
      ttnish.map((v) => JSON.stringify(v)),
      chirpstackish.map((v) => JSON.stringify(v)),
    );
    const gate = masterGate('key');
    await fc.assert(
      fc.asyncProperty(route, body, fc.boolean(), async (path, text, authorized) => {
        const queued: Envelope[] = [];
        const [pathname, query] = path.split('?');
        const response = await handleIngress(
          {
            method: 'POST',
            path: pathname ?? path,
            query,
            headers: { authorization: authorized ? 'key' : 'nope', 'content-type': 'application/json' },
            body: Buffer.from(text),
            requestId: 'r',
            receivedAt: NOW,
          },
          {
            gate,
            sources: NO_SOURCES,
            maxBodyBytes: 4096,
            config,
            enqueue: async (e) => String(queued.push(e)),
          },
        );
        expect(response.statusCode).toBeLessThan(500);
        expect(queued.length).toBe(response.statusCode < 300 ? 1 : 0);
        for (const e of queued) {
          const [outcome] = await decodeMessages(
            [{ messageId: 'q', body: JSON.stringify(e) }],
            ingestOf(config, () => NOW),
          );
          if (!outcome) throw new Error('no outcome');
          accountedFor(outcome, keptByFormat(e));
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('Sigfox: any form, text or JSON body, batch or GET query gets a 4xx or a 2xx, and each queued part is accounted for', async () => {
    const variable = fc.constantFrom(
      'device',
      'time',
      'data',
      'seqNumber',
      'ack',
      'temp',
      'batt',
      'info',
      'severity',
      'lqi',
      '__proto__',
      'constructor',
    );
    const value = fc.oneof(
      hex(0, 24),
      fc.integer({ min: 1_795_500_000, max: 1_795_590_000 }).map(String),
      fc.string({ maxLength: 12 }),
    );
    const pairs = fc.array(fc.tuple(variable, value), { maxLength: 8 });
    const form = pairs.map((ps) => ps.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&'));
    const text = pairs.map((ps) => ps.map(([k, v]) => `${k}:${v}`).join('; '));
    const line = fc.oneof(form, text, fc.string({ maxLength: 40 }));
    const body = fc.oneof(
      line,
      fc.array(line, { minLength: 2, maxLength: 6 }).map((ls) => ls.join('\n')),
      fc.string(),
    );
    const request = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT'),
      type: fc.constantFrom(
        'application/x-www-form-urlencoded',
        'text/plain',
        'application/json',
        'text/plain; charset=utf-8',
        'image/png',
        '',
      ),
      query: fc.constantFrom('', 'type=tracker', 'type=../x', 'mapping=acme'),
      body,
    });
    const gate = masterGate('key');
    await fc.assert(
      fc.asyncProperty(request, async ({ method, type, query, body: text }) => {
        const queued: Envelope[] = [];
        const get = method === 'GET';
        const response = await handleIngress(
          {
            method,
            path: '/v1/sigfox',
            query: get ? [query, text].filter(Boolean).join('&') : query,
            headers: { authorization: 'key', ...(type === '' ? {} : { 'content-type': type }) },
            body: Buffer.from(get ? '' : text),
            requestId: 'r',
            receivedAt: NOW,
          },
          {
            gate,
            sources: NO_SOURCES,
            maxBodyBytes: 4096,
            config,
            enqueue: async (e) => String(queued.push(e)),
          },
        );
        expect(response.statusCode).toBeLessThan(500);
        expect(JSON.parse(response.body || '{}')).toBeTypeOf('object');
        if (response.statusCode >= 300) expect(queued).toEqual([]);
        else expect(queued.length).toBeGreaterThan(0);
        const outcomes = await decodeMessages(
          queued.map((e, i) => ({ messageId: `q${i}`, body: JSON.stringify(e) })),
          ingestOf(config, () => NOW),
        );
        outcomes.forEach((outcome, i) => {
          accountedFor(outcome, keptByFormat(queued[i] as Envelope));
        });
      }),
      { numRuns: RUNS },
    );
  });

  afterAll(() => closeTestDecoders());

  it('codec: any bytes and port give data or errors, never a throw', async () => {
    const codec = compileCodec(readFileSync('codecs/lht65.js', 'utf8'), 'lht65.js');
    onTestFinished(() => codec.close());
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(255), (b, fPort) => {
        const result = codec.decodeUplink({ bytes: b, fPort, recvTime: new Date(NOW) });
        expect(result.errors.length > 0 || (typeof result.data === 'object' && result.data !== null)).toBe(
          true,
        );
      }),
      { numRuns: RUNS },
    );
  });
});
