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
import type { Envelope } from '../../lambdas/core/formats/format.ts';
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

function accountedFor(outcome: MessageOutcome): void {
  expect(outcome.raw ?? outcome.quarantine[0]).toBeDefined();
  if (outcome.readings.length === 0) expect(outcome.quarantine.length).toBeGreaterThan(0);
  for (const q of outcome.quarantine) {
    expect(q.reason.length).toBeGreaterThan(0);
    expect(q.reason_code.length).toBeGreaterThan(0);
  }
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
        outcomes.forEach(accountedFor);
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
    const body = fc.oneof(
      fc.string(),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      sigfoxish.map((v) => JSON.stringify(v)),
      ttnish.map((v) => JSON.stringify(v)),
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
          accountedFor(outcome);
        }
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
