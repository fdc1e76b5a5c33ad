/**
 * `POST /v1/telemetry`: the device type it gives, and a body the edge can tell is
 * unusable (no reading names its device) answered 400 there rather than queued.
 */
import { describe, expect, it } from 'vitest';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { decodeMessage } from '../../../lambdas/core/ingest/decode.ts';
import { ingestOf, NOW, postToEdge } from '../../support/fakes.ts';

const config = validateRuntimeConfig({
  httpMappings: { acme: { id: 'serial', time: 'at', type: 'acme-meter' } },
});
const post = (path: string, body: unknown) =>
  postToEdge(config, path, typeof body === 'string' ? body : JSON.stringify(body));
const decode = (envelope: unknown) =>
  decodeMessage(
    { messageId: 'm1', body: JSON.stringify(envelope) },
    ingestOf(config, () => NOW),
  );

describe('HTTP JSON (POST /v1/telemetry)', () => {
  it.each<[string, string, unknown, string]>([
    ['an object without $id', '/v1/telemetry', { temp: 1 }, 'no reading has "$id"'],
    [
      'an array none of whose readings has $id',
      '/v1/telemetry',
      [{ temp: 1 }, { temp: 2 }],
      'no reading has "$id"',
    ],
    ['an empty array', '/v1/telemetry', [], 'no reading has "$id"'],
    ['a bare number', '/v1/telemetry', 42, 'no reading has "$id"'],
    [
      'a mapped body without its id field',
      '/v1/telemetry?mapping=acme',
      { $id: 'x', kwh: 1 },
      'no reading has "serial"',
    ],
  ])('answers 400 missing_device_id for %s, and queues nothing', async (_, path, body, message) => {
    const { response, queued } = await post(path, body);
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toEqual({
      error: 'missing_device_id',
      message: expect.stringContaining(message),
    });
    expect(queued).toEqual([]);
  });

  it('queues a body where some readings name their device; the others alone are quarantined', async () => {
    const { response, queued } = await post('/v1/telemetry', [{ $id: 'h-1', t: 1 }, { t: 2 }]);
    expect(response.statusCode).toBe(202);
    const outcome = decode(queued[0]);
    expect(outcome.readings.map((r) => r.deviceId)).toEqual(['h-1']);
    expect(outcome.quarantine).toEqual([
      expect.objectContaining({
        reason_code: 'invalid_device_id',
        reason: 'element 1: no "$id": say which device the reading is from',
      }),
    ]);
  });

  describe('the raw record of a body naming its devices', () => {
    const rawOf = async (path: string, body: unknown) => {
      const { response, queued } = await post(path, body);
      expect(response.statusCode).toBe(202);
      return decode(queued[0]);
    };

    it.each<[string, string, unknown, string, string]>([
      ['one reading', '/v1/telemetry?type=meter', { $id: 'h-1', t: 1 }, 'h-1', 'meter'],
      [
        'several readings of one device',
        '/v1/telemetry',
        [
          { $id: 'h-1', $ts: NOW - 1000, t: 1 },
          { $id: 'h-1', $ts: NOW, t: 2 },
        ],
        'h-1',
        'http',
      ],
      ['a mapped body', '/v1/telemetry?mapping=acme', [{ serial: 'm-17', t: 1 }], 'm-17', 'acme-meter'],
    ])('is from the device when %s names one', async (_, path, body, deviceId, deviceType) => {
      const outcome = await rawOf(path, body);
      expect(outcome.readings.length).toBeGreaterThan(0);
      expect(outcome.raw).toMatchObject({ device_id: deviceId, device_type: deviceType });
    });

    it('is from the device when a quarantined reading names the same one', async () => {
      const outcome = await rawOf('/v1/telemetry', [
        { $id: 'h-1', t: 1 },
        { $id: 'h-1', $ts: 'yesterday' },
      ]);
      expect(outcome.quarantine).toEqual([expect.objectContaining({ device_id: 'h-1' })]);
      expect(outcome.raw?.device_id).toBe('h-1');
    });

    it.each<[string, unknown, string[]]>([
      [
        'two devices',
        [
          { $id: 'h-1', t: 1 },
          { $id: 'h-2', t: 2 },
        ],
        ['h-1', 'h-2'],
      ],
      ['a device and a reading naming none', [{ $id: 'h-1', t: 1 }, { t: 2 }], ['h-1']],
      [
        'a device and a quarantined reading of another',
        [
          { $id: 'h-1', t: 1 },
          { $id: 'h-2', $ts: 'soon' },
        ],
        ['h-1'],
      ],
      [
        'a device and an invalid $id',
        [
          { $id: 'h-1', t: 1 },
          { $id: 'h 2; DROP', t: 2 },
        ],
        ['h-1'],
      ],
    ])('is from no device for %s', async (_, body, stored) => {
      const outcome = await rawOf('/v1/telemetry', body);
      expect(outcome.readings.map((r) => r.deviceId)).toEqual(stored);
      expect(outcome.raw).toMatchObject({ device_id: null, device_type: 'http' });
    });

    it.each<[string, unknown, string]>([
      ['an invalid $id', { $id: '../etc/passwd', t: 1 }, 'invalid_device_id'],
      ['an $id too long', { $id: 'x'.repeat(129), t: 1 }, 'invalid_device_id'],
      ['a non-string $id', { $id: { toString: 'h-1' }, t: 1 }, 'invalid_device_id'],
      ['a valid $id whose only reading is refused', { $id: 'h-1', $ts: 'never' }, 'invalid_timestamp'],
    ])('is from no device for %s, the reading quarantined as before', async (_, body, code) => {
      const outcome = await rawOf('/v1/telemetry', body);
      expect(outcome.readings).toEqual([]);
      expect(outcome.quarantine).toEqual([expect.objectContaining({ reason_code: code })]);
      expect(outcome.raw?.device_id).toBeNull();
    });

    it('is from no device when the body is quarantined whole (not JSON once queued)', () => {
      const outcome = decode({
        source: 'http',
        payload: Buffer.from('{"$id": "h-1", ').toString('base64'),
        topic: '/v1/telemetry',
        receivedAt: NOW,
      });
      expect(outcome.quarantine).toEqual([expect.objectContaining({ reason_code: 'invalid_json' })]);
      expect(outcome.raw?.device_id).toBeNull();
    });
  });

  it.each([
    ['/v1/telemetry', { $id: 'h-1', t: 1 }, 'http'],
    ['/v1/telemetry?type=meter', { $id: 'h-1', t: 1 }, 'meter'],
    ['/v1/telemetry?mapping=acme', { serial: 'm-17', t: 1 }, 'acme-meter'],
    ['/v1/telemetry?mapping=acme&type=meter', { serial: 'm-17', t: 1 }, 'meter'],
  ])('gives %s the device type it names', async (path, body, deviceType) => {
    const { response, queued } = await post(path, body);
    expect(response.statusCode).toBe(202);
    expect(decode(queued[0]).readings).toEqual([expect.objectContaining({ deviceType })]);
  });

  it('quarantines in the ingest path a queued body with no $id (queued before the edge refused it)', () => {
    const outcome = decode({
      source: 'http',
      payload: Buffer.from('{"temp": 1}').toString('base64'),
      topic: '/v1/telemetry',
      receivedAt: NOW,
    });
    expect(outcome.readings).toEqual([]);
    expect(outcome.quarantine).toEqual([
      expect.objectContaining({
        reason_code: 'invalid_device_id',
        reason: expect.stringContaining('no reading has "$id"'),
      }),
    ]);
  });

  it('still answers malformed JSON with invalid_json', async () => {
    const { response } = await post('/v1/telemetry', '{"$id": ');
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'invalid_json' });
  });
});
