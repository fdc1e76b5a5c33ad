/**
 * Sigfox callbacks as Sigfox sends them: every content type, GET, BATCH_URL, DATA_ADVANCED,
 * STATUS and ERROR, from the recorded bodies in test/fixtures/networks/sigfox/ (SOURCES.md),
 * through the HTTP edge's core and the ingest path; the body readers' properties; and
 * hostile bodies, each answered 4xx with a reason or quarantined alone, never a 5xx.
 */

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { handleIngress } from '../../../lambdas/core/api/ingress.ts';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { jsonDecoder } from '../../../lambdas/core/decoders/json.ts';
import { applyReadings, type DeviceRecord, signalOffline } from '../../../lambdas/core/estate/alerts.ts';
import { applyNow } from '../../../lambdas/core/estate/delta.ts';
import { updateEstate } from '../../../lambdas/core/estate/update.ts';
import type { Envelope } from '../../../lambdas/core/formats/format.ts';
import { InboundMessage } from '../../../lambdas/core/formats/format.ts';
import { sigfox } from '../../../lambdas/core/formats/sigfox.ts';
import {
  MAX_BATCH_LINES,
  MAX_FIELDS,
  parseForm,
  parseText,
  splitBatch,
} from '../../../lambdas/core/formats/sigfox-body.ts';
import { claimKey } from '../../../lambdas/core/ingest/claims.ts';
import { decodeMessage } from '../../../lambdas/core/ingest/decode.ts';
import { writeBatch } from '../../../lambdas/core/ingest/write.ts';
import { memoryClaims } from '../../../tools/redecode/redecode.ts';
import { ingestOf, MemoryStore, masterGate, memoryRegistry, NO_SOURCES, NOW } from '../../support/fakes.ts';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/networks/sigfox/${name}`, import.meta.url), 'utf8');
const config = validateRuntimeConfig({
  deviceTypes: {
    tracker: { decoder: { sigfox: 'temp::int:16*0.01 battery::uint:8*0.02 moving::bool:7' } },
    pair: { decoder: { sigfox: 'temp::int:16*0.01' } },
  },
});
const KEY = 'secret-key';
const FORM = 'application/x-www-form-urlencoded';

/** One request through the edge's core, as both HTTP servers make it. */
async function call(
  method: string,
  target: string,
  body = '',
  contentType: string | undefined = 'application/json',
): Promise<{
  status: number;
  json: Record<string, unknown> | undefined;
  queued: Envelope[];
  headers: Record<string, string>;
}> {
  const queued: Envelope[] = [];
  const [path = target, query = ''] = target.split(/\?(.*)/s);
  const response = await handleIngress(
    {
      method,
      path,
      query,
      headers: { authorization: KEY, ...(contentType === undefined ? {} : { 'content-type': contentType }) },
      body: Buffer.from(body),
      requestId: 'r1',
      receivedAt: NOW,
    },
    {
      gate: masterGate(KEY),
      sources: NO_SOURCES,
      maxBodyBytes: 64 * 1024,
      config,
      enqueue: async (envelope) => {
        queued.push(envelope);
        return `m${queued.length}`;
      },
    },
  );
  return {
    status: response.statusCode,
    json: response.body === '' ? undefined : JSON.parse(response.body),
    queued,
    headers: response.headers,
  };
}

const decoded = (envelope: Envelope | undefined, messageId = 'm1') =>
  decodeMessage(
    { messageId, body: JSON.stringify(envelope) },
    ingestOf(config, () => NOW),
  );

describe('Sigfox callbacks in every content type Sigfox sends', () => {
  it.each([
    ['form (Sigfox default for POST)', 'data-form.txt', FORM, 24.5],
    ['text/plain', 'data-text.txt', 'text/plain', 26],
    ['text/plain with a charset', 'data-text.txt', 'text/plain; charset=UTF-8', 26],
    ['JSON with unquoted numbers', 'data-json.json', 'application/json', 27],
  ])(
    'reads a DATA callback sent as %s, and the ingest path reads the queued bytes the same way',
    async (_, file, type, temp) => {
      const { status, queued } = await call('POST', '/v1/sigfox?type=tracker', fixture(file), type);
      expect(status).toBe(204);
      expect(queued).toHaveLength(1);
      expect(Buffer.from(queued[0]?.payload ?? '', 'base64').toString()).toBe(fixture(file));
      expect(queued[0]?.contentType).toBe(
        type.startsWith('application/json') ? undefined : type.split(';')[0],
      );
      const outcome = decoded(queued[0]);
      expect(outcome.quarantine).toEqual([]);
      expect(outcome.readings).toEqual([
        expect.objectContaining({
          deviceId: '1A2B3C',
          deviceType: 'tracker',
          metrics: expect.objectContaining({ temp }),
        }),
      ]);
    },
  );

  it('reads a GET callback from its query string, keeps the query string as a form body, and keeps ?type= working', async () => {
    const query = `type=tracker&${fixture('data-get.query')}`;
    const { status, queued } = await call('GET', `/v1/sigfox?${query}`, '', undefined);
    expect(status).toBe(204);
    expect(queued[0]).toMatchObject({ contentType: FORM, params: { type: 'tracker' }, topic: '/v1/sigfox' });
    expect(Buffer.from(queued[0]?.payload ?? '', 'base64').toString()).toBe(query);
    const outcome = decoded(queued[0]);
    expect(outcome.raw?.topic).toBe('/v1/sigfox?type=tracker');
    expect(outcome.readings).toEqual([
      expect.objectContaining({
        deviceId: '1A2B3C',
        key: 'seq:1235',
        time: 1795585860 * 1000,
        metrics: expect.objectContaining({ temp: 25, 'radio.rssi': -118, 'radio.station': '0A1B' }),
      }),
    ]);
  });

  it('answers other content types 415 and other methods 405 with Allow, with a JSON reason', async () => {
    const put = await call('PUT', '/v1/sigfox', fixture('data-json.json'));
    expect(put).toMatchObject({ status: 405, headers: { allow: 'POST, GET' } });
    expect(put.json?.error).toBe('method_not_allowed');
    const xml = await call('POST', '/v1/sigfox', '<device/>', 'application/xml');
    expect(xml.status).toBe(415);
    expect(xml.json?.message).toContain('application/x-www-form-urlencoded');
    // Other ways in keep JSON and POST only.
    expect((await call('POST', '/v1/telemetry', 'a=1', FORM)).status).toBe(415);
    expect((await call('GET', '/v1/ttn?a=1', '', undefined)).status).toBe(405);
  });
});

describe('Sigfox BATCH_URL callbacks', () => {
  it('queues each line as its own message, read and stored on its own', async () => {
    const { status, json, queued } = await call(
      'POST',
      '/v1/sigfox?type=tracker',
      fixture('batch.txt'),
      'text/plain',
    );
    expect(status).toBe(202);
    expect(json).toMatchObject({ accepted: true, messages: 3, messageIds: ['m1', 'm2', 'm3'], refused: [] });
    const outcomes = queued.map((envelope, i) => decoded(envelope, `m${i + 1}`));
    expect(outcomes.map((o) => o.readings.map((r) => `${r.deviceId} ${r.key} ${r.metrics.temp}`))).toEqual([
      ['1A2B3C seq:1238 28'],
      ['1A2B3C seq:1239 29'],
      ['4D5E6F seq:12 30'],
    ]);
  });

  it('quarantines a bad line alone, with its reason, and stores its neighbours', async () => {
    const lines = fixture('batch.txt').split('\n');
    const body = [lines[0], 'device=1A2B3C&time=1795586070&data=zz&seqNumber=1300', lines[1]].join('\r\n');
    const { status, json, queued } = await call('POST', '/v1/sigfox?type=tracker', body, FORM);
    expect(status).toBe(202);
    expect(json?.refused).toEqual([
      { line: 2, error: 'invalid_callback', message: expect.stringContaining('"data"') },
    ]);
    const outcomes = queued.map((envelope, i) => decoded(envelope, `m${i + 1}`));
    expect(outcomes.map((o) => o.readings.length)).toEqual([1, 0, 1]);
    expect(outcomes[1]?.quarantine).toEqual([
      expect.objectContaining({ reason_code: 'invalid_callback', reason: expect.stringContaining('"data"') }),
    ]);
    expect(outcomes.every((o) => o.raw !== undefined)).toBe(true);
  });

  it(`answers a batch of more than ${MAX_BATCH_LINES} lines 413 with the reason, and queues none`, async () => {
    const line = 'device=1A2B3C&time=1795586040&data=0af0a0\n';
    const { status, json, queued } = await call(
      'POST',
      '/v1/sigfox',
      line.repeat(MAX_BATCH_LINES + 1),
      'text/plain',
    );
    expect(status).toBe(413);
    expect(json?.error).toBe('batch_too_large');
    expect(queued).toEqual([]);
  });

  it('reads JSON lines as a batch too, while a JSON object laid out on many lines stays one callback', async () => {
    const lines =
      '{"device":"1A2B3C","time":1795586040,"data":"0af0a0"}\n{"device":"1A2B3C","time":1795586100,"data":"0b54a0"}';
    expect((await call('POST', '/v1/sigfox?type=tracker', lines)).queued).toHaveLength(2);
    expect((await call('POST', '/v1/sigfox?type=tracker', fixture('data-json.json'))).queued).toHaveLength(1);
  });
});

describe('Sigfox DATA_ADVANCED callbacks', () => {
  it('stores location and link quality at the device and time of the DATA message, with no sequence number', async () => {
    const { status, queued } = await call('POST', '/v1/sigfox?type=tracker', fixture('advanced.json'));
    expect(status).toBe(204);
    const [reading] = decoded(queued[0]).readings;
    expect(reading).toMatchObject({
      deviceId: '1A2B3C',
      time: 1795585980 * 1000,
      key: 'ts:1795585980000',
      metrics: {
        'location.lat': 43.6044,
        'location.lng': 1.4442,
        'location.radius': 1894,
        'location.source': 2,
        'location.status': 1,
        'radio.lqi': 'Good',
        'radio.linkQuality': 2,
        'radio.operator': 'SIGFOX_France',
        'radio.countryCode': 250,
        'radio.stations': 2,
        'radio.repetitions': 4,
        'radio.bestRssi': -121,
      },
    });
    expect(reading?.seq).toBeUndefined();
    // The frame is the DATA message's: not decoded a second time.
    expect(reading?.metrics).not.toHaveProperty('temp');
  });

  it('is neither dropped as a resend of the DATA message nor counted as a message, and its values join the last ones', async () => {
    const data = decoded(
      (await call('POST', '/v1/sigfox?type=tracker', fixture('data-json.json'))).queued[0],
      'm1',
    );
    const advanced = decoded(
      (await call('POST', '/v1/sigfox?type=tracker', fixture('advanced.json'))).queued[0],
      'm2',
    );
    const [first] = data.readings;
    const [second] = advanced.readings;
    if (!first || !second) throw new Error('no readings');
    expect(claimKey(second)).not.toBe(claimKey(first));
    const claims = memoryClaims();
    const lake = new MemoryStore();
    // Separate batches, 30 s apart, as Sigfox sends them; claims across batches.
    expect(await writeBatch([data], { lake, claims })).toEqual(new Map());
    expect(await writeBatch([advanced], { lake, claims })).toEqual(new Map());
    const rows = lake.lines('readings/');
    expect(rows.filter((r) => r.metric === 'location.lat')).toHaveLength(1);
    // The estate: one message (seq 1237) after seq 1236, nothing lost; the advanced values join lastValues.
    const previous: DeviceRecord = {
      ...applyReadings(undefined, [{ ...first, time: first.time - 60_000, seq: 1236 }], []).record,
    };
    const afterData = applyReadings(previous, [first], []).record;
    const afterAdvanced = applyReadings(afterData, [second], []).record;
    expect(afterAdvanced).toMatchObject({ lastSeq: 1237, lostMessages: 0, lastSeen: first.time });
    expect(afterAdvanced.lastValues).toMatchObject({
      temp: 27,
      'location.lat': 43.6044,
      'radio.lqi': 'Good',
    });
  });
});

describe('Sigfox STATUS and ERROR callbacks', () => {
  it('stores a STATUS callback (GET) as the device temperature and battery, with no sequence number', async () => {
    const { status, queued } = await call('GET', `/v1/sigfox?${fixture('status-get.query')}`, '', undefined);
    expect(status).toBe(204);
    const [reading] = decoded(queued[0]).readings;
    expect(reading).toMatchObject({
      deviceId: '1A2B3C',
      time: 1795586220 * 1000,
      metrics: { 'status.temperature': 21.5, 'status.battery': 3.6, 'radio.rssi': -122 },
    });
    expect(reading?.seq).toBeUndefined();
  });

  it("accepts Sigfox's ERROR callback (its own `devices` key), keeps it raw, and says the device is offline", async () => {
    const { status, queued } = await call('POST', '/v1/sigfox', fixture('error.json'));
    expect(status).toBe(204);
    const outcome = decoded(queued[0]);
    expect(outcome).toMatchObject({ readings: [], quarantine: [], raw: { device_id: '1A2B3C' } });
    expect(outcome.offline).toEqual({
      deviceId: '1A2B3C',
      deviceType: 'sigfox',
      messageId: 'm1',
      at: NOW,
      reason: 'No message received since 2026-11-25 06:03:00',
    });
    const warn = JSON.parse(fixture('error.json'));
    warn.severity = 'WARN';
    warn.info = 'Sigfox network experiencing issues that could cause message loss or delay for some devices.';
    expect(
      decoded((await call('POST', '/v1/sigfox', JSON.stringify(warn))).queued[0]).offline,
    ).toBeUndefined();
  });

  it('raises the offline alert once from the ERROR callback, as the scheduled check would, never twice', async () => {
    const registry = memoryRegistry();
    const published: string[] = [];
    const estate = {
      registry,
      publisher: {
        publish: async (events: readonly { rule: string; state: string }[]) =>
          void published.push(...events.map((e) => `${e.rule} ${e.state}`)),
      },
      config: { ...config, alertRules: [] },
    };
    const data = decoded(
      (await call('POST', '/v1/sigfox?type=tracker', fixture('data-json.json'))).queued[0],
      'm1',
    );
    const error = decoded((await call('POST', '/v1/sigfox', fixture('error.json'))).queued[0], 'm2');
    const lake = new MemoryStore();
    expect(await writeBatch([data], { lake, estate: applyNow(estate) })).toEqual(new Map());
    expect(await writeBatch([error], { lake, estate: applyNow(estate) })).toEqual(new Map());
    // Sigfox retries the callback: still one alert.
    expect(await writeBatch([error], { lake, estate: applyNow(estate) })).toEqual(new Map());
    expect(published).toEqual(['offline raised']);
    expect(registry.records.get('1A2B3C')?.alerts.offline?.state).toBe('raised');
    // A device that spoke after the error was raised is not offline; one never seen has no record to mark.
    const record = registry.records.get('1A2B3C') as DeviceRecord;
    expect(signalOffline({ ...record, alerts: {} }, record.lastSeen, 'warning').event).toBeUndefined();
    const unknown = await updateEstate([], estate, [{ deviceId: 'never-seen', at: NOW }]);
    expect(unknown.events).toEqual([]);
    expect(registry.records.has('never-seen')).toBe(false);
  });
});

describe('Sigfox frames longer or shorter than the grammar', () => {
  it('decodes the leading bytes of a longer frame and warns of the rest; a shorter one stays quarantined', async () => {
    // A 7-byte frame with a 2-byte grammar, as Sigfox's own custom payload decoding reads it.
    const long = await call(
      'POST',
      '/v1/sigfox?type=pair',
      'device=1A2B3C&time=1795585800&data=0992a0b1c2d3e4',
      FORM,
    );
    const decoder = ingestOf(config).decoders.of('pair');
    expect(decoder?.decode({ bytes: Buffer.from('0992a0b1c2d3e4', 'hex'), receivedAt: NOW })).toEqual({
      ok: true,
      data: { temp: 24.5 },
      warnings: ['frame has 7 bytes; the grammar reads 2: 5 extra byte(s) not decoded (a0b1c2d3e4)'],
    });
    const outcome = decoded(long.queued[0]);
    expect(outcome.readings[0]?.metrics).toMatchObject({ temp: 24.5 });
    expect(outcome.quarantine).toEqual([]);
    // Kept with the raw record (its `warnings` column).
    expect(JSON.parse(outcome.raw?.warnings ?? '[]')).toEqual([
      'frame has 7 bytes; the grammar reads 2: 5 extra byte(s) not decoded (a0b1c2d3e4)',
    ]);
    const short = await call(
      'POST',
      '/v1/sigfox?type=tracker',
      'device=1A2B3C&time=1795585800&data=0992',
      FORM,
    );
    expect(decoded(short.queued[0]).quarantine).toEqual([
      expect.objectContaining({
        reason_code: 'decode_failed',
        reason: expect.stringContaining('(truncated)'),
      }),
    ]);
  });
});

describe('hostile Sigfox bodies', () => {
  it.each([
    ['a prototype name as a form key', '__proto__=1&device=1A2B3C&time=1795585800&data=0992a0', FORM, 204],
    [
      'constructor and toString as keys',
      'constructor=x&toString=y&device=1A2B3C&time=1795585800&data=0992a0',
      FORM,
      204,
    ],
    ['a duplicate key', 'device=1A2B3C&device=99&time=1795585800&data=0992a0', FORM, 400],
    ['bad percent-encoding', 'device=1A2B3C&time=1795585800&data=%zz', FORM, 400],
    ['a lone surrogate percent-encoded', 'device=1A2B3C&time=%ED%A0%80&data=0992a0', FORM, 400],
    ['too many fields', Array.from({ length: MAX_FIELDS + 1 }, (_, i) => `k${i}=1`).join('&'), FORM, 400],
    ['text that is no pairs', 'just some words', 'text/plain', 400],
    ['text that starts like JSON', '{device', 'text/plain', 400],
    ['a JSON array', '[1,2]', 'application/json', 400],
    [
      'an advanced callback with a latitude of 91',
      '{"device":"1A2B3C","time":1795585800,"computedLocation":{"lat":91,"lng":0}}',
      'application/json',
      400,
    ],
    [
      'an advanced callback with thousands of duplicates',
      JSON.stringify({
        device: '1A2B3C',
        time: 1795585800,
        duplicates: Array.from({ length: 500 }, () => ({ bsId: '1', rssi: -1, nbRep: 1 })),
      }),
      'application/json',
      400,
    ],
  ])('answers %s with a JSON reason, never a 5xx', async (_, body, type, expected) => {
    const { status, json, queued } = await call('POST', '/v1/sigfox?type=tracker', body, type);
    expect(status).toBe(expected);
    if (expected === 400) {
      expect(json).toMatchObject({ error: expect.any(String), message: expect.any(String) });
      expect(queued).toEqual([]);
    } else {
      const outcome = decoded(queued[0]);
      expect(outcome.readings[0]?.metrics).not.toHaveProperty('__proto__');
      expect(Object.getPrototypeOf(outcome.readings[0]?.metrics)).toBe(Object.prototype);
    }
  });

  it('answers a GET with a 100 KB query string 414 with a JSON reason', async () => {
    const { status, json } = await call(
      'GET',
      `/v1/sigfox?device=1A2B3C&pad=${'a'.repeat(100_000)}`,
      '',
      undefined,
    );
    expect(status).toBe(414);
    expect(json?.error).toBe('uri_too_long');
  });

  it('answers a GET with no variables 400, saying what to put in the query string', async () => {
    expect((await call('GET', '/v1/sigfox', '', undefined)).json?.error).toBe('empty_body');
  });
});

describe('Sigfox body readers (properties)', () => {
  const name = fc.string({ minLength: 1, maxLength: 12 });
  const value = fc.string({ maxLength: 24 });
  const fields = fc.uniqueArray(fc.tuple(name, value), { selector: ([k]) => k, minLength: 1, maxLength: 20 });

  it('reads back any form it is given, names and values exactly, whatever the characters', () => {
    fc.assert(
      fc.property(fields, (pairs) => {
        const body = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
        const read = parseForm(body);
        expect(read).toEqual({ fields: Object.fromEntries(pairs) });
      }),
    );
  });

  it('never throws on any form or text, and a result is fields or a reason', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        for (const read of [parseForm(text), parseText(text)]) {
          expect('fields' in read || ('error' in read && read.error.length > 0)).toBe(true);
        }
      }),
    );
  });

  it('reads back name:value text in either separator', () => {
    const plain = fc.stringMatching(/^[A-Za-z][A-Za-z0-9#_]{0,11}$/);
    const text = fc.stringMatching(/^[A-Za-z0-9 .,-]{0,20}$/).map((s) => s.trim());
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(plain, text), { selector: ([k]) => k, minLength: 1, maxLength: 12 }),
        fc.constantFrom('; ', '&', ';'),
        fc.constantFrom(':', '='),
        (pairs, separator, assign) => {
          const read = parseText(pairs.map(([k, v]) => `${k}${assign}${v}`).join(separator));
          expect(read).toEqual({ fields: Object.fromEntries(pairs) });
        },
      ),
    );
  });

  it('splits a batch into its non-blank lines, whatever the line ends, and says one line is no batch', () => {
    const line = fc.stringMatching(/^[a-z0-9=&]{1,30}$/);
    fc.assert(
      fc.property(
        fc.array(line, { minLength: 1, maxLength: 40 }),
        fc.constantFrom('\n', '\r\n'),
        (lines, end) => {
          const split = splitBatch(Buffer.from(`${lines.join(`${end}${end}`)}${end}`));
          if (lines.length === 1) expect(split).toBeUndefined();
          else expect((split as Buffer[]).map(String)).toEqual(lines);
        },
      ),
    );
  });

  it('reads any DATA_ADVANCED object without throwing: readings with location and radio, or a reason', () => {
    const maybeNumber = fc.oneof(fc.double(), fc.integer(), fc.string(), fc.constant(null));
    const advanced = fc.record(
      {
        device: fc.oneof(fc.constant('1A2B3C'), fc.string()),
        time: fc.oneof(fc.constant(1795585800), maybeNumber),
        lqi: fc.oneof(fc.constantFrom('Good', 'Limit', 'Excellent'), fc.string()),
        linkQuality: maybeNumber,
        computedLocation: fc.oneof(
          fc.record(
            {
              lat: maybeNumber,
              lng: maybeNumber,
              radius: maybeNumber,
              source: maybeNumber,
              status: maybeNumber,
            },
            { requiredKeys: [] },
          ),
          fc.anything(),
        ),
        duplicates: fc.oneof(
          fc.array(fc.record({ bsId: fc.string(), rssi: maybeNumber, nbRep: maybeNumber })),
          fc.anything(),
        ),
      },
      { requiredKeys: ['device'] },
    );
    fc.assert(
      fc.property(advanced, (body) => {
        const read = sigfox.read(
          new InboundMessage(Buffer.from(JSON.stringify(body)), '/v1/sigfox', {}, NOW),
          {
            config,
            decoders: ingestOf(config).decoders,
            json: jsonDecoder(config.validation),
          },
        );
        if ('refused' in read) expect(read.reason.length).toBeGreaterThan(0);
        else expect(read.seq).toBeUndefined();
      }),
    );
  });
});
