import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { decodeMessage } from '../../../lambdas/core/ingest.ts';
import { validateConfig } from '../../../lib/config.ts';
import { mqttMessage, NOW } from '../../support/fakes.ts';

const config = validateRuntimeConfig({
  deviceTypes: {
    tracker: { decoder: { sigfox: 'temp::int:16*0.01 battery::uint:8*0.02 moving::bool:7' } },
    lht65: { decoder: { codec: 'codecs/lht65.js', source: readFileSync('codecs/lht65.js', 'utf8') } },
  },
});

describe('decoders in the ingest path', () => {
  it("explodes a binary MQTT payload with its device type's Sigfox grammar", () => {
    const outcome = decodeMessage(
      mqttMessage('m1', Buffer.from('0992a0', 'hex'), 'dt/tracker/t-1'),
      config,
      () => NOW,
    );
    expect(outcome.quarantine).toEqual([]);
    expect(outcome.readings).toEqual([
      expect.objectContaining({
        deviceId: 't-1',
        deviceType: 'tracker',
        metrics: { temp: 24.5, battery: 3.2, moving: true },
      }),
    ]);
    // The raw record keeps the bytes, so history can be decoded again.
    expect(outcome.raw?.payload).toBe(Buffer.from('0992a0', 'hex').toString('base64'));
  });

  it('quarantines a frame the grammar cannot read, with the reason', () => {
    const outcome = decodeMessage(
      mqttMessage('m2', Buffer.from('0992', 'hex'), 'dt/tracker/t-1'),
      config,
      () => NOW,
    );
    expect(outcome.readings).toEqual([]);
    expect(outcome.quarantine).toEqual([
      expect.objectContaining({
        reason_code: 'decode_failed',
        reason: 'Sigfox grammar of tracker: frame has 2 bytes; the grammar reads 3 (truncated)',
        device_id: 't-1',
      }),
    ]);
  });

  it("quarantines a codec's errors in the codec's words", () => {
    // Over MQTT there is no LoRaWAN port, so this codec refuses the frame.
    const outcome = decodeMessage(
      mqttMessage('m3', Buffer.from([1, 2, 3]), 'dt/lht65/l-1'),
      config,
      () => NOW,
    );
    expect(outcome.quarantine[0]).toMatchObject({
      reason_code: 'decode_failed',
      reason: 'unknown fPort undefined; measurements come on fPort 2',
    });
  });

  it('decodes JSON for a type with no decoder', () => {
    const outcome = decodeMessage(mqttMessage('m4', { temp: 1 }, 'dt/other/o-1'), config, () => NOW);
    expect(outcome.readings[0]?.metrics).toEqual({ temp: 1 });
  });
});

describe('decoder configuration', () => {
  it('fails the synth on a bad grammar, naming the device type, the column and what was expected', () => {
    expect(() =>
      validateConfig({ deviceTypes: { tracker: { decoder: { sigfox: 'temp::int:99' } } } }),
    ).toThrow(
      'Invalid config "deviceTypes.tracker.decoder": got "temp::int:99", expected a working decoder: Sigfox grammar, column 11: found "99", expected a number of bits from 1 to 64',
    );
  });

  it('reads a codec file at synth time and fails when it is missing or broken', () => {
    const ok = validateConfig({ deviceTypes: { lht65: { decoder: { codec: 'codecs/lht65.js' } } } });
    expect(ok.deviceTypes.lht65?.decoder).toEqual({
      codec: 'codecs/lht65.js',
      source: expect.stringContaining('function decodeUplink'),
    });
    expect(() => validateConfig({ deviceTypes: { x: { decoder: { codec: 'codecs/missing.js' } } } })).toThrow(
      'Invalid config "deviceTypes.x.decoder.codec": got "codecs/missing.js", expected a readable file',
    );
    expect(() =>
      validateRuntimeConfig({ deviceTypes: { x: { decoder: { codec: 'x.js', source: 'function (' } } } }),
    ).toThrow(ConfigError);
  });

  it('refuses a decoder it does not know', () => {
    expect(() => validateRuntimeConfig({ deviceTypes: { x: { decoder: { protobuf: 'x.proto' } } } })).toThrow(
      'expected "json", { "sigfox": "<grammar>" } or { "codec": "<file.js>" }',
    );
  });
});
