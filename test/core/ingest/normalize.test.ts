import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonDecoder } from '../../../lambdas/core/decoders/json.ts';
import { type NormalizeContext, normalize } from '../../../lambdas/core/ingest/normalize.ts';
import { DEFAULT_VALIDATION } from '../../../lambdas/core/readings/limits.ts';

const NOW = Date.parse('2026-11-25T06:00:00Z');
const mqtt: NormalizeContext = {
  deviceId: '12345',
  deviceType: 'thermo',
  source: 'mqtt',
  messageId: 'm-1',
  receivedAt: NOW,
  limits: DEFAULT_VALIDATION,
};
const http: NormalizeContext = { ...mqtt, deviceId: undefined, source: 'http' };
/** A JSON payload through the JSON decoder and the normalizer, as the ingest path reads it. */
function decodeJson(bytes: Buffer, context: NormalizeContext) {
  const decoded = jsonDecoder(context.limits).decode({ bytes, receivedAt: context.receivedAt });
  if (decoded.ok) return normalize(decoded.data, bytes, context);
  const rejection = {
    code: decoded.code,
    reason: decoded.reason,
    deviceId: context.deviceId,
    payload: bytes,
  };
  return { readings: [], rejections: [rejection] };
}
const decode = (value: unknown, context = mqtt) =>
  decodeJson(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), context);

describe('the JSON decoder and the normalizer', () => {
  it('reads the property-value format with its types kept', () => {
    const { readings, rejections } = decode({ $id: '12345', temp: 32, battery: 3.4, ok: true, mode: 'eco' });
    expect(rejections).toEqual([]);
    expect(readings).toEqual([
      {
        deviceId: '12345',
        deviceType: 'thermo',
        time: NOW,
        receivedAt: NOW,
        source: 'mqtt',
        messageId: 'm-1',
        metrics: { temp: 32, battery: 3.4, ok: true, mode: 'eco' },
        key: 'msg:m-1#0',
      },
    ]);
  });

  it('flattens nested objects to dotted names and leaves nulls out', () => {
    const [reading] = decode({ env: { temp: 20, hum: { rel: 40 } }, gps: null }).readings;
    expect(reading?.metrics).toEqual({ 'env.temp': 20, 'env.hum.rel': 40 });
  });

  it.each([
    ['ISO-8601 with Z', '2026-11-25T05:59:00Z', NOW - 60_000],
    ['ISO-8601 with offset', '2026-11-25T06:59:00+01:00', NOW - 60_000],
    ['epoch seconds', (NOW - 60_000) / 1000, NOW - 60_000],
    ['epoch milliseconds', NOW - 60_000, NOW - 60_000],
  ])('reads $ts as %s', (_, ts, expected) => {
    const [reading] = decode({ $ts: ts, temp: 1 }).readings;
    expect(reading?.time).toBe(expected);
    expect(reading?.key).toBe(`ts:${expected}`);
  });

  it('keys a reading by $seq when the device sends one', () => {
    expect(decode({ $seq: 42, $ts: NOW, temp: 1 }).readings[0]?.key).toBe('seq:42');
  });

  it('decodes an array, quarantining only the bad element', () => {
    const { readings, rejections } = decode([{ temp: 1 }, { temp: 'x'.repeat(3000) }, { temp: 3 }]);
    expect(readings.map((r) => r.metrics.temp)).toEqual([1, 3]);
    expect(rejections).toHaveLength(1);
    expect(rejections[0]?.code).toBe('invalid_metric');
    expect(rejections[0]?.reason).toMatch(/^element 1: metric "temp" is a string longer than 2048 bytes/);
    expect(JSON.parse(rejections[0]?.payload.toString() ?? '')).toEqual({ temp: 'x'.repeat(3000) });
  });

  it.each<[string, unknown, string, RegExp, NormalizeContext?]>([
    ['malformed JSON', '{"temp": ', 'invalid_json', /^payload is not JSON/],
    ['an empty body', '', 'invalid_json', /^payload is not JSON/],
    ['an empty array', [], 'invalid_shape', /empty array/],
    ['a bare number', 42, 'invalid_shape', /expected a JSON object of metrics, got number 42/],
    [
      'a $id that disagrees with the topic',
      { $id: '999', temp: 1 },
      'device_id_mismatch',
      /"999" disagrees with the authenticated device "12345"/,
    ],
    ['a path trick in $id', { $id: '../etc', temp: 1 }, 'invalid_device_id', /must match/, http],
    ['a slash in $id', { $id: 'a/b', temp: 1 }, 'invalid_device_id', /must match/, http],
    ['SQL in $id', { $id: "x'; DROP TABLE readings;--", temp: 1 }, 'invalid_device_id', /must match/, http],
    ['unicode in $id', { $id: 'capteur-é', temp: 1 }, 'invalid_device_id', /must match/, http],
    ['no $id over HTTP', { temp: 1 }, 'invalid_device_id', /no "\$id"/, http],
    ['Infinity', '{"temp": 1e999}', 'invalid_metric', /not a finite number/],
    ['a control character in a name', { 'a\u0001b': 1 }, 'invalid_metric', /control characters/],
    // `__proto__`, `constructor` and the like are plain metric names: test/core/prototype-names.test.ts.
    [
      'deep nesting',
      { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } },
      'too_deep',
      /deeper than 8/,
    ],
    ['only $-keys', { $ts: NOW }, 'no_metrics', /no metric/],
    ['only a bad field', { temp: 'x'.repeat(3000) }, 'invalid_metric', /^metric "temp" is a string longer/],
    [
      'only fields too deep',
      { a: { b: { c: { d: { e: { f: { g: { h: [1] } } } } } } } },
      'too_deep',
      /deeper than 8/,
    ],
    ['a future $ts', { $ts: NOW + 3_600_000, temp: 1 }, 'timestamp_in_future', /ahead of arrival/],
    ['an old $ts', { $ts: '2020-01-01T00:00:00Z', temp: 1 }, 'timestamp_too_old', /365 days old/],
    [
      'a $ts without zone',
      { $ts: '2026-11-25T06:00:00', temp: 1 },
      'invalid_timestamp',
      /ISO-8601 with a zone/,
    ],
    ['an impossible date', { $ts: '2026-02-31T06:00:00Z', temp: 1 }, 'invalid_timestamp', /not a real date/],
    ['a negative $ts', { $ts: -1, temp: 1 }, 'invalid_timestamp', /not a valid epoch/],
    ['a fractional $seq', { $seq: 1.5, temp: 1 }, 'invalid_sequence', /non-negative integer/],
  ])('quarantines %s with a reason', (_, input, code, reason, context = mqtt) => {
    const { readings, rejections } = decode(input, context);
    expect(readings).toEqual([]);
    expect(rejections).toHaveLength(1);
    expect(rejections[0]?.code).toBe(code);
    expect(rejections[0]?.reason).toMatch(reason);
  });

  it('quarantines a payload over the size limit without parsing it', () => {
    const big = Buffer.from(JSON.stringify({ s: 'x'.repeat(1024 * 1024) }));
    const { rejections } = decodeJson(big, mqtt);
    expect(rejections[0]?.code).toBe('payload_too_large');
  });

  it('never throws, and accounts for every element as a reading or a rejection (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const { readings, rejections } = decode(value, http);
        const elements = Array.isArray(value) ? Math.max(value.length, 1) : 1;
        expect(readings.length + rejections.length).toBe(elements);
        for (const r of rejections) expect(r.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const result = decodeJson(Buffer.from(bytes), mqtt);
        expect(result.readings.length + result.rejections.length).toBeGreaterThan(0);
      }),
    );
  });
});
