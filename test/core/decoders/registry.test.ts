import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { ConfigError } from '../../../lambdas/core/config-error.ts';
import { buildDecoders } from '../../../lambdas/core/decoders/registry.ts';
import { decodeMessage, decodeMessages } from '../../../lambdas/core/ingest/decode.ts';
import { validateConfig } from '../../../lib/config.ts';
import { loadConfig } from '../../../lib/config-sources.ts';
import { closeTestDecoders, ingestOf, mqttMessage, NOW } from '../../support/fakes.ts';

const config = validateRuntimeConfig({
  deviceTypes: {
    tracker: { decoder: { sigfox: 'temp::int:16*0.01 battery::uint:8*0.02 moving::bool:7' } },
    lht65: { decoder: { codec: 'codecs/lht65.js', source: readFileSync('codecs/lht65.js', 'utf8') } },
  },
});

afterAll(() => closeTestDecoders());

describe('decoders in the ingest path', () => {
  it("explodes a binary MQTT payload with its device type's Sigfox grammar", () => {
    const outcome = decodeMessage(
      mqttMessage('m1', Buffer.from('0992a0', 'hex'), 'dt/tracker/t-1'),
      ingestOf(config, () => NOW),
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
      ingestOf(config, () => NOW),
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
      ingestOf(config, () => NOW),
    );
    expect(outcome.quarantine[0]).toMatchObject({
      reason_code: 'decode_failed',
      reason: 'unknown fPort undefined; measurements come on fPort 2',
    });
  });

  it('keeps the raw message and quarantines nothing when a codec found nothing to report', async () => {
    const quiet = validateRuntimeConfig({
      deviceTypes: {
        quiet: {
          decoder: {
            codec: 'quiet.js',
            source:
              'function decodeUplink(i) { return i.bytes[0] === 0 ? { data: {} } : { data: { n: i.bytes[0] } }; }',
          },
        },
      },
    });
    const [nothing, something] = await decodeMessages(
      [
        mqttMessage('m5', Buffer.from([0]), 'dt/quiet/q-1'),
        mqttMessage('m6', Buffer.from([7]), 'dt/quiet/q-1'),
      ],
      ingestOf(quiet, () => NOW),
    );
    expect(nothing?.raw?.payload).toBe('AA==');
    expect(nothing?.readings).toEqual([]);
    expect(nothing?.quarantine).toEqual([]);
    expect(something?.readings[0]?.metrics).toEqual({ n: 7 });
  });

  it('decodes JSON for a type with no decoder', () => {
    const outcome = decodeMessage(
      mqttMessage('m4', { temp: 1 }, 'dt/other/o-1'),
      ingestOf(config, () => NOW),
    );
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
      buildDecoders(
        validateRuntimeConfig({ deviceTypes: { x: { decoder: { codec: 'x.js', source: 'function (' } } } })
          .deviceTypes,
      ),
    ).toThrow(ConfigError);
  });

  it('fails the synth on a codec that escapes, loops or runs out of memory at top level, naming the type, the file and the reason', () => {
    const config = (source: string, options: Record<string, unknown> = {}) => ({
      deviceTypes: { vendor: { decoder: { codec: 'vendor.js', source, ...options } } },
    });
    expect(() => loadConfig((key) => (key === 'iotPipeline' ? config('for (;;) {}') : undefined))).toThrow(
      'Invalid config "deviceTypes.vendor.decoder": got "vendor.js", expected a working decoder: codec vendor.js ran longer than 1000 ms while loading',
    );
    // A cold start builds the decoders of the config it was given.
    const coldStart = (input: ReturnType<typeof config>) =>
      buildDecoders(validateRuntimeConfig(input).deviceTypes);
    expect(() => coldStart(config("this.constructor.constructor('return process')().exit(7);"))).toThrow(
      "codec vendor.js failed while loading: threw: 'process' is not defined",
    );
    expect(() => coldStart(config('var big = new Uint8Array(8e6);', { memoryMb: 4 }))).toThrow(
      'codec vendor.js ran out of memory (4 MB) while loading',
    );
  });

  it.each([
    [{ timeoutMs: 0 }, '"deviceTypes.x.decoder.timeoutMs": got 0, expected an integer from 1 to 10000'],
    [{ memoryMb: 1024 }, '"deviceTypes.x.decoder.memoryMb": got 1024, expected an integer from 1 to 256'],
    [{ normalize: 'yes' }, '"deviceTypes.x.decoder.normalize": got "yes", expected true or false'],
    [
      { sandbox: false },
      '"deviceTypes.x.decoder.sandbox": got false, expected one of timeoutMs, memoryMb, normalize',
    ],
  ])('checks codec limits: %j', (options, message) => {
    expect(() =>
      validateRuntimeConfig({
        deviceTypes: { x: { decoder: { codec: 'x.js', source: 'function decodeUplink() {}', ...options } } },
      }),
    ).toThrow(message);
  });

  it('refuses a decoder it does not know', () => {
    expect(() => validateRuntimeConfig({ deviceTypes: { x: { decoder: { protobuf: 'x.proto' } } } })).toThrow(
      'expected "json", { "sigfox": "<grammar>" } or { "codec": "<file.js>" }',
    );
  });
});
