/**
 * Prototype names are plain names (issue 18): device ids, device types, metric names,
 * mapping and rule names that are also names of `Object.prototype` (`__proto__`,
 * `constructor`, `toString`, `hasOwnProperty`, `valueOf`) are found only when set and
 * stored as own properties, never looked up on or written to a prototype.
 */

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type RuntimeConfig, validateRuntimeConfig } from '../../lambdas/core/config.ts';
import { ConfigError } from '../../lambdas/core/config-error.ts';
import { decodeSigfox, parseSigfoxGrammar } from '../../lambdas/core/decoders/sigfox-grammar.ts';
import { type AlertEvent, applyReadings } from '../../lambdas/core/estate/alerts.ts';
import { applyNow } from '../../lambdas/core/estate/delta.ts';
import { filterDevices, type OfflineTimeouts } from '../../lambdas/core/estate/registry-query.ts';
import { detectOffline, offlineTimeout } from '../../lambdas/core/estate/update.ts';
import { DEVICE_ID_PATTERN, own, setOwn } from '../../lambdas/core/ids.ts';
import { decodeMessage } from '../../lambdas/core/ingest/decode.ts';
import { normalize } from '../../lambdas/core/ingest/normalize.ts';
import { writeBatch } from '../../lambdas/core/ingest/write.ts';
import { DEFAULT_VALIDATION, validateLimits } from '../../lambdas/core/readings/limits.ts';
import { validateConfig } from '../../lib/config.ts';
import { loadConfig } from '../../lib/config-sources.ts';
import {
  closeTestDecoders,
  ingestOf,
  MemoryStore,
  MemoryTimeSeries,
  memoryRegistry,
  mqttMessage,
  NOW,
  postToEdge,
} from '../support/fakes.ts';

/** The names the issue lists; the property test below takes every name of `Object.prototype`. */
const NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'] as const;
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);
/** Listings here look at names, not status: no type is ever offline. */
const NO_TIMEOUTS: OfflineTimeouts = { byType: {} };

afterAll(closeTestDecoders);

/** A config as an operator writes it: JSON text, so `"__proto__"` is an own key as in a file. */
const configOf = (json: string): RuntimeConfig => validateRuntimeConfig(JSON.parse(json));

/** POSTs through the HTTP edge's core, as both HTTP servers do. */
const post = (config: RuntimeConfig, path: string, body: string) => postToEdge(config, path, body);

const sigfoxCallback = (device: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ device, time: NOW / 1000, data: '0102', seqNumber: 7, ack: true, ...extra });

/** Decodes and writes messages through the ingest core with the registry and alerts, as the ingest Lambda does. */
async function ingest(config: RuntimeConfig, messages: { messageId: string; body: string }[]) {
  const lake = new MemoryStore();
  const timeseries = new MemoryTimeSeries();
  const registry = memoryRegistry();
  const events: AlertEvent[] = [];
  const context = ingestOf(config, () => NOW);
  const outcomes = messages.map((m) => decodeMessage(m, context));
  const failures = await writeBatch(outcomes, {
    lake,
    timeseries,
    estate: applyNow({ registry, config, publisher: { publish: async (e) => void events.push(...e) } }),
  });
  return { outcomes, failures, lake, timeseries, registry, events };
}

describe('Sigfox callbacks of devices with prototype names', () => {
  const config = configOf(
    '{"deviceTypes": {"tracker": {"sigfoxDownlink": "00000000000000ff"}}, "sigfoxDownlinks": {"1A2B3C": "0102030405060708"}}',
  );

  it.each(NAMES)(
    'answers %s with ack and no downlink configured 204, never a prototype body',
    async (device) => {
      const { response, queued } = await post(config, '/v1/sigfox', sigfoxCallback(device));
      expect(response).toEqual({ statusCode: 204, headers: {}, body: '' });
      expect(queued).toHaveLength(1);
    },
  );

  it("answers with the device type's downlink when only the type has one", async () => {
    const { response } = await post(config, '/v1/sigfox?type=tracker', sigfoxCallback('__proto__'));
    expect(response.statusCode).toBe(200);
    expect(JSON.parse(response.body)).toEqual(
      JSON.parse('{"__proto__": {"downlinkData": "00000000000000ff"}}'),
    );
    expect(response.body).toBe('{"__proto__":{"downlinkData":"00000000000000ff"}}');
  });

  it('answers a downlink configured for a device called __proto__ or constructor', async () => {
    const named = configOf(
      '{"sigfoxDownlinks": {"__proto__": "0A0B0C0D0E0F0102", "constructor": "1111111111111111"}}',
    );
    expect(Object.keys(named.sigfoxDownlinks)).toEqual(['__proto__', 'constructor']);
    const proto = await post(named, '/v1/sigfox', sigfoxCallback('__proto__'));
    expect(proto.response.body).toBe('{"__proto__":{"downlinkData":"0a0b0c0d0e0f0102"}}');
    const ctor = await post(named, '/v1/sigfox', sigfoxCallback('constructor'));
    expect(ctor.response.body).toBe('{"constructor":{"downlinkData":"1111111111111111"}}');
    // And still nothing for the other names.
    expect((await post(named, '/v1/sigfox', sigfoxCallback('toString'))).response.statusCode).toBe(204);
  });

  it('keeps customData# fields and grammar fields with prototype names as plain metrics', async () => {
    const { queued } = await post(
      config,
      '/v1/sigfox',
      sigfoxCallback('1A2B3C', { 'customData#__proto__': '5', 'customData#constructor': 'true' }),
    );
    const outcome = decodeMessage(
      { messageId: 'm1', body: JSON.stringify(queued[0]) },
      ingestOf(config, () => NOW),
    );
    expect(outcome.quarantine).toEqual([]);
    const metrics = outcome.readings[0]?.metrics ?? {};
    expect(Object.getPrototypeOf(metrics)).toBe(Object.prototype);
    expect(Object.entries(metrics)).toEqual([
      ['__proto__', 5],
      ['constructor', true],
    ]);

    const grammar = parseSigfoxGrammar('__proto__::uint:8 constructor::uint:8 toString::bool:7');
    const { values } = decodeSigfox(grammar, Buffer.from([1, 0x82]));
    expect(Object.getPrototypeOf(values)).toBe(Object.prototype);
    expect(Object.entries(values)).toEqual([
      ['__proto__', 1],
      ['constructor', 130],
      ['toString', true],
    ]);
  });
});

describe('HTTP mappings with prototype names', () => {
  const config = configOf('{"httpMappings": {"acme": {"id": "serial"}}}');

  it.each(NAMES)('refuses ?mapping=%s when it is not configured, with 400 and a reason', async (name) => {
    const { response, queued } = await post(
      config,
      `/v1/telemetry?mapping=${name}`,
      '{"serial": "d1", "t": 1}',
    );
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toEqual({
      error: 'unknown_mapping',
      message: `no mapping "${name}" in the config (httpMappings; configured: acme)`,
    });
    expect(queued).toEqual([]);
  });

  it('reads a mapping called __proto__ or constructor when it is configured', async () => {
    const named = configOf(
      '{"httpMappings": {"__proto__": {"id": "serial"}, "constructor": {"id": "sn", "type": "meter"}}}',
    );
    expect(Object.keys(named.httpMappings)).toEqual(['__proto__', 'constructor']);
    for (const [mapping, body, deviceType] of [
      ['__proto__', '{"serial": "d1", "t": 1}', 'http'],
      ['constructor', '{"sn": "d2", "t": 2}', 'meter'],
    ] as const) {
      const { response, queued } = await post(named, `/v1/telemetry?mapping=${mapping}`, body);
      expect(response.statusCode).toBe(202);
      const outcome = decodeMessage(
        { messageId: 'm1', body: JSON.stringify(queued[0]) },
        ingestOf(named, () => NOW),
      );
      expect(outcome.quarantine).toEqual([]);
      expect(outcome.readings).toEqual([
        expect.objectContaining({ deviceId: mapping === '__proto__' ? 'd1' : 'd2', deviceType }),
      ]);
    }
  });

  it('finds a mapped id or time field named constructor only when the reading has it', async () => {
    const named = configOf('{"httpMappings": {"m": {"id": "constructor", "time": "toString"}}}');
    // Not found on the prototype: no reading names its device, which the edge can tell at once.
    const missing = await post(named, '/v1/telemetry?mapping=m', '{"temp": 1}');
    expect(missing.response.statusCode).toBe(400);
    expect(JSON.parse(missing.response.body)).toEqual({
      error: 'missing_device_id',
      message: expect.stringContaining('no reading has "constructor"'),
    });
    expect(missing.queued).toEqual([]);
    const present = await post(
      named,
      '/v1/telemetry?mapping=m',
      `{"constructor": "d3", "toString": ${NOW}, "temp": 1}`,
    );
    const stored = decodeMessage(
      { messageId: 'm2', body: JSON.stringify(present.queued[0]) },
      ingestOf(named, () => NOW),
    );
    expect(stored.readings).toEqual([
      expect.objectContaining({ deviceId: 'd3', time: NOW, metrics: { temp: 1 } }),
    ]);
  });
});

describe('metrics with prototype names', () => {
  const config = configOf(
    `{"alertRules": [
      {"name": "constructor", "metric": "__proto__", "comparison": ">", "threshold": 10},
      {"name": "__proto__", "metric": "constructor", "comparison": ">", "threshold": 10},
      {"name": "toString", "metric": "valueOf", "comparison": ">", "threshold": 10}
    ]}`,
  );
  const body = (values: number) =>
    `{"__proto__": ${values}, "constructor": ${values}, "toString": "s", "hasOwnProperty": true, "temp": 20}`;

  it('stores them as plain metrics through the ingest core, and the record keeps them as its own', async () => {
    const { outcomes, failures, lake, timeseries, registry, events } = await ingest(config, [
      mqttMessage('m1', body(42)),
    ]);
    expect(failures.size).toBe(0);
    expect(outcomes[0]?.quarantine).toEqual([]);
    const metrics = outcomes[0]?.readings[0]?.metrics ?? {};
    expect(Object.getPrototypeOf(metrics)).toBe(Object.prototype);
    expect(Object.keys(metrics)).toEqual(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'temp']);
    expect(JSON.stringify(metrics)).toBe(
      '{"__proto__":42,"constructor":42,"toString":"s","hasOwnProperty":true,"temp":20}',
    );
    expect(
      lake.lines('readings/').map((line) => [line.metric, line.value ?? line.value_str ?? line.value_bool]),
    ).toEqual([
      ['__proto__', 42],
      ['constructor', 42],
      ['toString', 's'],
      ['hasOwnProperty', true],
      ['temp', 20],
    ]);
    expect(timeseries.calls.flat()[0]?.MeasureValues.map((m) => m.Name)).toEqual(Object.keys(metrics));

    const record = registry.records.get('dev-1');
    const lastValues = record?.lastValues ?? {};
    expect(Object.getPrototypeOf(lastValues)).toBe(Object.prototype);
    expect(Object.entries(lastValues)).toEqual(Object.entries(metrics));
    expect(Object.hasOwn(lastValues, '__proto__')).toBe(true);
    // As the registries keep it: the JSON round trip keeps every name.
    expect(JSON.parse(JSON.stringify(record)).lastValues).toEqual(JSON.parse(JSON.stringify(lastValues)));

    // Rules named and watching prototype names raise on the readings' own values only.
    expect(events.map((e) => [e.rule, e.metric, e.state])).toEqual([
      ['constructor', '__proto__', 'raised'],
      ['__proto__', 'constructor', 'raised'],
    ]);
    const alerts = record?.alerts ?? {};
    expect(Object.getPrototypeOf(alerts)).toBe(Object.prototype);
    expect(Object.keys(alerts)).toEqual(['constructor', '__proto__']);
    expect(JSON.parse(JSON.stringify(record)).alerts).toEqual(
      JSON.parse(
        `{"constructor": ${JSON.stringify(alerts.constructor)}, "__proto__": ${JSON.stringify(own(alerts, '__proto__'))}}`,
      ),
    );
  });

  it('clears alerts kept under prototype names, and lists them as open while raised', () => {
    const readingsAt = (time: number, value: number) =>
      normalize(JSON.parse(body(value)), Buffer.alloc(0), {
        deviceId: 'dev-1',
        deviceType: 'thermo',
        source: 'mqtt',
        messageId: `m${time}`,
        receivedAt: time,
        limits: DEFAULT_VALIDATION,
      }).readings;
    const raised = applyReadings(undefined, readingsAt(NOW, 42), config.alertRules);
    expect(filterDevices([raised.record], {}, NOW, NO_TIMEOUTS)[0]?.openAlerts.map((a) => a.rule)).toEqual([
      'constructor',
      '__proto__',
    ]);
    // Through JSON, as the registry hands it back.
    const stored = JSON.parse(JSON.stringify(raised.record));
    const cleared = applyReadings(stored, readingsAt(NOW + 60_000, 1), config.alertRules);
    expect(cleared.events.map((e) => [e.rule, e.state])).toEqual([
      ['constructor', 'cleared'],
      ['__proto__', 'cleared'],
    ]);
    expect(Object.keys(cleared.record.alerts)).toEqual([]);
    expect(Object.getPrototypeOf(cleared.record.alerts)).toBe(Object.prototype);
  });

  it('flattens nested objects under prototype names to dotted plain names', async () => {
    const { outcomes, registry } = await ingest(config, [
      mqttMessage('m1', '{"__proto__": {"x": 1}, "a": {"__proto__": 2, "constructor": {"y": 3}}}'),
      {
        messageId: 'm2',
        body: JSON.stringify({
          source: 'http',
          topic: '/v1/telemetry',
          payload: Buffer.from('{"$id": "d", "__proto__": {"x": 1}}').toString('base64'),
          receivedAt: NOW,
        }),
      },
    ]);
    expect(outcomes.map((o) => o.readings.map((r) => r.metrics))).toEqual([
      [{ '__proto__.x': 1, 'a.__proto__': 2, 'a.constructor.y': 3 }],
      [{ '__proto__.x': 1 }],
    ]);
    expect(registry.records.get('d')?.lastValues).toEqual({ '__proto__.x': 1 });
  });

  it('keeps a radio metric seeded under the reading as its own, not counted twice', () => {
    const { readings } = normalize({ constructor: 1 }, Buffer.alloc(0), {
      deviceId: 'dev-1',
      deviceType: 'thermo',
      source: 'sigfox',
      messageId: 'm1',
      receivedAt: NOW,
      limits: { ...DEFAULT_VALIDATION, maxMetrics: 2 },
      metrics: { 'radio.rssi': -90 },
    });
    expect(readings[0]?.metrics).toEqual({ 'radio.rssi': -90, constructor: 1 });
  });

  it('property: any metric name, prototype names included, is an own metric and an own last value', () => {
    const name = fc.oneof(
      fc.constantFrom(...PROTOTYPE_NAMES),
      fc
        .string({ minLength: 1, maxLength: 20 })
        .filter((s) => /^[A-Za-z_][\w.]*$/.test(s) && !s.endsWith('.')),
    );
    fc.assert(
      fc.property(fc.uniqueArray(name, { minLength: 1, maxLength: 8 }), fc.integer(), (names, value) => {
        const text = `{${names.map((n) => `${JSON.stringify(n)}: ${value}`).join(', ')}}`;
        const { readings, rejections } = normalize(JSON.parse(text), Buffer.from(text), {
          deviceId: 'dev-1',
          deviceType: 'thermo',
          source: 'mqtt',
          messageId: 'm1',
          receivedAt: NOW,
          limits: DEFAULT_VALIDATION,
        });
        // Reserved names and dotted clashes aside, every name is a metric of its own.
        const kept = names.filter(
          (n) => !['time', 'source', 'device_id', 'device_type', 'measure_name'].includes(n),
        );
        if (kept.length !== names.length) return rejections.length === 1;
        const metrics = readings[0]?.metrics ?? {};
        const { record } = applyReadings(undefined, readings, []);
        return (
          Object.getPrototypeOf(metrics) === Object.prototype &&
          names.every((n) => Object.hasOwn(metrics, n) && own(metrics, n) === value) &&
          names.every((n) => own(record.lastValues, n) === value) &&
          Object.getPrototypeOf(record.lastValues) === Object.prototype
        );
      }),
    );
  });
});

/** A reading of `temp` for a device, as the normalizer makes it. */
const reading = (deviceId: string, time: number, temp: number) =>
  normalize({ temp }, Buffer.alloc(0), {
    deviceId,
    deviceType: 'thermo',
    source: 'mqtt',
    messageId: `m${time}`,
    receivedAt: time,
    limits: DEFAULT_VALIDATION,
  }).readings;

describe('device ids with prototype names', () => {
  const ids = NAMES.filter((id) => DEVICE_ID_PATTERN.test(id));
  const config = configOf(
    '{"alertRules": [{"name": "hot", "metric": "temp", "comparison": ">", "threshold": 30}], "offline": {"after": "5m"}}',
  );

  it('takes every listed name as a device id', () => {
    expect(ids).toEqual(NAMES);
  });

  it('ingests and evaluates alerts for them as plain ids', async () => {
    const { failures, lake, registry, events } = await ingest(
      config,
      ids.map((id, i) => mqttMessage(`m${i}`, { temp: 40 }, `dt/thermo/${id}`)),
    );
    expect(failures.size).toBe(0);
    expect(lake.lines('readings/').map((l) => l.device_id)).toEqual(ids);
    expect([...registry.records.keys()]).toEqual(ids);
    for (const id of ids)
      expect(registry.records.get(id)).toMatchObject({ deviceId: id, lastValues: { temp: 40 } });
    expect(events.map((e) => [e.deviceId, e.rule, e.state])).toEqual(ids.map((id) => [id, 'hot', 'raised']));
    expect(
      filterDevices([...registry.records.values()], {}, NOW, NO_TIMEOUTS).map((d) => d.deviceId),
    ).toEqual([...ids].sort((a, b) => a.localeCompare(b)));
    // Offline detection reads their type's timeout, not a prototype's.
    const offline = await detectOffline(
      { registry, config, publisher: { publish: async () => undefined } },
      NOW + 10 * 60_000,
    );
    expect(offline.map((e) => e.deviceId).sort()).toEqual([...ids].sort());
  });

  it('finds an attribute of a device only when its record has it (listings and rule scopes)', () => {
    const base = applyReadings(undefined, reading('__proto__', NOW, 40), []).record;
    const tagged = { ...base, deviceId: 'tagged', attributes: JSON.parse('{"__proto__": "x"}') };
    const plain = { ...base, deviceId: 'plain' };
    const tag = (key: string, value: string) =>
      filterDevices([tagged, plain], { tag: { key, value } }, NOW, NO_TIMEOUTS);
    expect(tag('__proto__', 'x').map((d) => d.deviceId)).toEqual(['tagged']);
    expect(tag('constructor', String(Object))).toEqual([]);
    const scoped = configOf(
      '{"alertRules": [{"name": "hot", "metric": "temp", "comparison": ">", "threshold": 30, "scope": {"attribute": {"key": "__proto__", "value": "x"}}}]}',
    ).alertRules;
    expect(applyReadings(tagged, reading('tagged', NOW + 1, 40), scoped).events).toHaveLength(1);
    expect(applyReadings(plain, reading('plain', NOW + 1, 40), scoped).events).toEqual([]);
  });
});

describe('device types with prototype names', () => {
  const config = configOf('{"offline": {"after": "5m"}, "deviceTypes": {"tracker": {"offlineAfter": "1h"}}}');

  it.each(NAMES)(
    'keeps an unknown type %s unknown: default timeout, no decoder, JSON payloads',
    async (type) => {
      expect(offlineTimeout(config, type)).toBe(5 * 60_000);
      const context = ingestOf(config, () => NOW);
      expect(context.decoders.of(type)).toBeUndefined();
      const outcome = decodeMessage(mqttMessage('m1', { temp: 1 }, `dt/${type}/d1`), context);
      expect(outcome.readings).toEqual([expect.objectContaining({ deviceId: 'd1', deviceType: type })]);
      // Over Sigfox with no decoder for it, the frame is quarantined with the reason.
      const { queued } = await post(config, `/v1/sigfox?type=${type}`, sigfoxCallback('1A2B3C'));
      const sigfox = decodeMessage({ messageId: 'm2', body: JSON.stringify(queued[0]) }, context);
      expect(sigfox.quarantine).toEqual([
        expect.objectContaining({ reason: expect.stringContaining(`device type "${type}" has no decoder`) }),
      ]);
    },
  );

  it('configures a type called __proto__ or constructor like any other', () => {
    const named = configOf(
      '{"deviceTypes": {"__proto__": {"offlineAfter": "2m", "decoder": {"sigfox": "t::uint:8"}}, "constructor": {"offlineAfter": "3m"}}}',
    );
    expect(Object.keys(named.deviceTypes)).toEqual(['__proto__', 'constructor']);
    expect(offlineTimeout(named, '__proto__')).toBe(2 * 60_000);
    expect(offlineTimeout(named, 'constructor')).toBe(3 * 60_000);
    const context = ingestOf(named, () => NOW);
    expect(context.decoders.of('__proto__')?.name).toBe('__proto__');
    expect(context.decoders.types).toEqual(['__proto__']);
    // The config travels to the Lambdas as JSON and is validated again there.
    expect(Object.keys(validateRuntimeConfig(JSON.parse(JSON.stringify(named))).deviceTypes)).toEqual([
      '__proto__',
      'constructor',
    ]);
  });

  it('keeps __proto__ types through the CDK context and config files', () => {
    const context: Record<string, unknown> = {
      iotPipeline: JSON.parse('{"deviceTypes": {"__proto__": {"offlineAfter": "2m"}}}'),
    };
    const config = loadConfig((key) => context[key]);
    expect(Object.keys(config.deviceTypes)).toEqual(['__proto__']);
    expect(own(config.deviceTypes, '__proto__')).toEqual({ offlineAfterMs: 120_000 });
  });
});

describe('config keys that are prototype names', () => {
  it.each(NAMES)('refuses validation.%s as an unknown limit', (name) => {
    expect(() => validateLimits(JSON.parse(`{${JSON.stringify(name)}: 5}`))).toThrow(ConfigError);
    expect(() => validateLimits(JSON.parse(`{${JSON.stringify(name)}: 5}`))).toThrow(`validation.${name}`);
  });

  it.each(NAMES)('refuses a section key %s that is not one of its defaults', (name) => {
    expect(() => validateConfig(JSON.parse(`{"http": {${JSON.stringify(name)}: 1}}`))).toThrow(
      `http.${name}`,
    );
  });
});

describe('own and setOwn', () => {
  it('read and write prototype names as own properties of a plain object', () => {
    const record: Record<string, number> = {};
    for (const [i, name] of PROTOTYPE_NAMES.entries()) {
      expect(own(record, name)).toBeUndefined();
      setOwn(record, name, i);
    }
    expect(Object.getPrototypeOf(record)).toBe(Object.prototype);
    expect(Object.keys(record)).toEqual(PROTOTYPE_NAMES);
    expect(PROTOTYPE_NAMES.every((name, i) => own(record, name) === i)).toBe(true);
    expect(JSON.parse(JSON.stringify(record))).toEqual(record);
  });
});
