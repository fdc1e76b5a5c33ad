import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type RuntimeConfig, validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { ingestBatch } from '../../../lambdas/core/ingest/batch.ts';
import { decodeMessage } from '../../../lambdas/core/ingest/decode.ts';
import { soleDevice } from '../../../lambdas/core/ingest/records.ts';
import { type IngestDeps, writeBatch } from '../../../lambdas/core/ingest/write.ts';
import { ingestOf, MemoryStore, MemoryTimeSeries, mqttMessage, NOW } from '../../support/fakes.ts';

const config: RuntimeConfig = validateRuntimeConfig({});

function setup() {
  const lake = new MemoryStore();
  const timeseries = new MemoryTimeSeries();
  const deps: IngestDeps = { ...ingestOf(config, () => NOW), lake, timeseries };
  return { lake, timeseries, deps };
}

async function ingest(deps: IngestDeps, messages: { messageId: string; body: string }[]) {
  return writeBatch(
    messages.map((m) =>
      decodeMessage(
        m,
        ingestOf(config, () => NOW),
      ),
    ),
    deps,
  );
}

describe('ingest core', () => {
  it('stores a reading in Timestream and the lake (raw + long-format readings) under DESIGN.md keys', async () => {
    const { lake, timeseries, deps } = setup();
    const failures = await ingest(deps, [mqttMessage('m1', { temp: 32, battery: 3.4 })]);
    expect(failures.size).toBe(0);
    expect(timeseries.calls.flat()).toEqual([
      expect.objectContaining({
        Dimensions: [
          { Name: 'device_id', Value: 'dev-1' },
          { Name: 'device_type', Value: 'thermo' },
          { Name: 'source', Value: 'mqtt' },
        ],
        MeasureValues: [
          { Name: 'temp', Value: '32', Type: 'DOUBLE' },
          { Name: 'battery', Value: '3.4', Type: 'DOUBLE' },
        ],
        Time: String(NOW),
      }),
    ]);
    const keys = [...lake.objects.keys()].sort();
    expect(keys).toEqual([
      expect.stringMatching(/^raw\/source=mqtt\/dt=2026-11-25\/hour=06\/[0-9a-f]{32}\.ndjson\.gz$/),
      expect.stringMatching(/^readings\/dt=2026-11-25\/hour=06\/[0-9a-f]{32}\.ndjson\.gz$/),
    ]);
    expect(lake.lines('readings/')).toEqual([
      {
        device_id: 'dev-1',
        device_type: 'thermo',
        time: '2026-11-25 06:00:00.000',
        metric: 'temp',
        value: 32,
        source: 'mqtt',
        received_at: '2026-11-25 06:00:00.000',
        message_id: 'm1',
      },
      expect.objectContaining({ device_id: 'dev-1', metric: 'battery', value: 3.4 }),
    ]);
    expect(lake.lines('raw/')).toEqual([
      expect.objectContaining({
        message_id: 'm1',
        topic: 'dt/thermo/dev-1',
        client_id: 'dev-1',
        device_id: 'dev-1',
      }),
    ]);
  });

  it('writes one object per partition per batch, not one per message', async () => {
    const { lake, timeseries, deps } = setup();
    const messages = Array.from({ length: 250 }, (_, i) =>
      mqttMessage(`m${i}`, { temp: i }, `dt/thermo/dev-${i}`),
    );
    await ingest(deps, messages);
    expect(lake.objects.size).toBe(2);
    // 250 records in calls of at most 100.
    expect(timeseries.calls.map((c) => c.length)).toEqual([100, 100, 50]);
  });

  it('stores a reading sent twice in one batch once (same device and $ts)', async () => {
    const { lake, deps } = setup();
    const reading = { $ts: NOW - 1000, temp: 20 };
    await ingest(deps, [
      mqttMessage('m1', reading),
      mqttMessage('m2', reading),
      mqttMessage('m3', { ...reading, $ts: NOW - 2000 }),
    ]);
    expect(lake.lines('readings/')).toHaveLength(2);
    expect(lake.lines('raw/')).toHaveLength(3);
  });

  it('overwrites its own objects when a batch is redelivered unchanged', async () => {
    const { lake, deps } = setup();
    const batch = [mqttMessage('m1', { temp: 1 }), mqttMessage('m2', { temp: 2 })];
    await ingest(deps, batch);
    await ingest(deps, batch);
    expect(lake.lines('readings/')).toHaveLength(2);
  });

  it('quarantines a bad message with its reason and stores the rest of the batch', async () => {
    const { lake, deps } = setup();
    const failures = await ingest(deps, [
      mqttMessage('good', { temp: 1 }),
      mqttMessage('bad-json', '{"temp": '),
      mqttMessage('bad-id', { $id: 'other', temp: 1 }),
      mqttMessage('bad-topic', { temp: 1 }, 'dt/thermo/../etc'),
      { messageId: 'not-envelope', body: 'hello' },
    ]);
    expect(failures.size).toBe(0);
    expect(lake.lines('readings/').map((r) => r.message_id)).toEqual(['good']);
    const quarantine = lake.lines('quarantine/');
    expect(quarantine.map((q) => [q.message_id, q.reason_code]).sort()).toEqual([
      ['bad-id', 'device_id_mismatch'],
      ['bad-json', 'invalid_json'],
      ['bad-topic', 'invalid_topic'],
      ['not-envelope', 'invalid_envelope'],
    ]);
    const badJson = quarantine.find((q) => q.message_id === 'bad-json');
    expect(Buffer.from(String(badJson?.payload), 'base64').toString()).toBe('{"temp": ');
  });

  it.each([
    [
      'a device type that could reach a key',
      { source: 'http', topic: '/v1/telemetry', params: { type: '../x' } },
      '?type=../x must match',
    ],
    [
      'a legacy query string in the topic',
      { source: 'sigfox', topic: '/v1/sigfox?type=a%2Fb' },
      '?type=a/b must match',
    ],
    [
      'a mapping on a route that takes none',
      { source: 'ttn', topic: '/v1/ttn', params: { mapping: 'm' } },
      '?mapping= applies',
    ],
  ])('quarantines an HTTP envelope with %s, raw kept, before any format reads it', (_, route, reason) => {
    // Arrange: what a forged or damaged queue message could carry; the edge never writes these
    const payload = Buffer.from('{"$id":"d-1","temp":1}').toString('base64');
    const body = JSON.stringify({ ...route, payload, receivedAt: NOW });
    // Act
    const outcome = decodeMessage({ messageId: 'h1', body }, ingestOf(config));
    // Assert
    expect(outcome.readings).toEqual([]);
    expect(outcome.quarantine).toEqual([
      expect.objectContaining({ reason_code: 'invalid_topic', reason: expect.stringContaining(reason) }),
    ]);
    expect(outcome.raw?.payload).toBe(payload);
  });

  it('accepts the Basic Ingest topic form', () => {
    const outcome = decodeMessage(
      mqttMessage('m1', { temp: 1 }, '$aws/rules/iot_pipeline_dev_telemetry/dt/thermo/dev-9'),
      ingestOf(config),
    );
    expect(outcome.readings[0]).toMatchObject({ deviceId: 'dev-9', deviceType: 'thermo' });
  });

  it('quarantines records Timestream rejects, with its reason, and keeps them in the lake', async () => {
    const { lake, timeseries, deps } = setup();
    timeseries.reject = (r) =>
      r.Dimensions[0]?.Value === 'dev-2' ? 'Measure value type mismatch' : undefined;
    const failures = await ingest(deps, [
      mqttMessage('m1', { temp: 1 }),
      mqttMessage('m2', { temp: 'hot' }, 'dt/thermo/dev-2'),
    ]);
    expect(failures.size).toBe(0);
    expect(lake.lines('quarantine/')).toEqual([
      expect.objectContaining({
        message_id: 'm2',
        reason_code: 'timestream_rejected',
        reason: 'Timestream rejected the record: Measure value type mismatch',
      }),
    ]);
    expect(lake.lines('readings/')).toHaveLength(2);
  });

  it('fails the messages of a failed Timestream write and writes none of their lake rows', async () => {
    const { lake, timeseries, deps } = setup();
    timeseries.fail = true;
    const failures = await ingest(deps, [mqttMessage('m1', { temp: 1 }), mqttMessage('bad', 'nope')]);
    expect([...failures.keys()]).toEqual(['m1']);
    expect(lake.lines('readings/')).toEqual([]);
    expect(lake.lines('raw/')).toHaveLength(1);
    expect(lake.lines('quarantine/')).toHaveLength(1);
  });

  it('tells the log which messages were quarantined (with device and reason) and which are retried', async () => {
    const { timeseries, deps } = setup();
    timeseries.fail = true;
    const quarantined: unknown[] = [];
    const retrying: string[] = [];
    await ingest(
      { ...deps, log: { quarantined: (q) => quarantined.push(q), retrying: (id) => retrying.push(id) } },
      [
        mqttMessage('m1', { temp: 1 }),
        mqttMessage('bad', { temp: 1, $id: 'someone-else' }, 'dt/thermo/dev-7'),
      ],
    );
    expect(quarantined).toEqual([
      expect.objectContaining({
        message_id: 'bad',
        device_id: 'dev-7',
        source: 'mqtt',
        reason_code: 'device_id_mismatch',
      }),
    ]);
    expect(retrying).toEqual(['m1']);
  });

  it('fails only the messages whose lake object could not be written', async () => {
    const { lake, deps } = setup();
    lake.failOn = /^readings\/dt=2026-11-24/;
    const yesterday = NOW - 86_400_000;
    const failures = await ingest(deps, [
      mqttMessage('today', { temp: 1 }),
      mqttMessage('late', { $ts: yesterday, temp: 2 }),
    ]);
    expect([...failures.keys()]).toEqual(['late']);
    expect(lake.lines('readings/').map((r) => r.message_id)).toEqual(['today']);
  });

  it('fails, through ingestBatch, only the message of a batch that could not be stored', async () => {
    const { lake, deps } = setup();
    lake.failOn = /^readings\/dt=2026-11-24/;
    const failures = await ingestBatch(
      [mqttMessage('today', { temp: 1 }), mqttMessage('late', { $ts: NOW - 86_400_000, temp: 2 })],
      deps,
    );
    expect([...failures.keys()]).toEqual(['late']);
    expect(lake.lines('readings/').map((r) => r.message_id)).toEqual(['today']);
  });

  it('works with Timestream switched off', async () => {
    const { lake } = setup();
    const failures = await writeBatch([decodeMessage(mqttMessage('m1', { temp: 1 }), ingestOf(config))], {
      lake,
    });
    expect(failures.size).toBe(0);
    expect(lake.lines('readings/')).toHaveLength(1);
  });

  it('turns any payload into readings or quarantine records, never an exception (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.jsonValue(), fc.string()), { minLength: 1, maxLength: 5 }),
        async (payloads) => {
          const { lake, deps } = setup();
          const messages = payloads.map((p, i) => mqttMessage(`m${i}`, p));
          const failures = await ingest(deps, messages);
          expect(failures.size).toBe(0);
          const stored = new Set(
            [...lake.lines('readings/'), ...lake.lines('quarantine/')].map((l) => l.message_id),
          );
          for (const m of messages) {
            // A reading with only null metrics yields nothing to store, which is quarantined as no_metrics.
            expect(stored.has(m.messageId)).toBe(true);
          }
          for (const q of lake.lines('quarantine/')) expect(String(q.reason).length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('round-trips valid readings through the NDJSON lake form (property)', async () => {
    const metric = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.boolean(),
      fc.string({ maxLength: 50 }),
    );
    const name = fc
      .stringMatching(/^[a-z][a-z0-9_]{0,15}$/)
      .filter(
        (n) =>
          ![
            'time',
            'source',
            'device_id',
            'device_type',
            'measure_name',
            'constructor',
            'prototype',
          ].includes(n),
      );
    await fc.assert(
      fc.asyncProperty(fc.dictionary(name, metric, { minKeys: 1, maxKeys: 20 }), async (metrics) => {
        const { lake, deps } = setup();
        await ingest(deps, [mqttMessage('m1', metrics)]);
        const back = Object.fromEntries(
          lake.lines('readings/').map((row) => [row.metric, row.value ?? row.value_str ?? row.value_bool]),
        );
        expect(back).toEqual(
          Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k, Object.is(v, -0) ? 0 : v])),
        );
      }),
      { numRuns: 200 },
    );
  });
});

describe('soleDevice (the raw record of a body naming its devices)', () => {
  const reading = (deviceId: string, deviceType = 'http') => ({ deviceId, deviceType });
  it('is the one device every reading and rejection names', () => {
    expect(soleDevice([reading('a'), reading('a')], [{ deviceId: 'a' }])).toEqual({
      deviceId: 'a',
      deviceType: 'http',
    });
  });
  it.each<[string, { deviceId: string; deviceType: string }[], { deviceId?: string }[]]>([
    ['no reading stored', [], [{ deviceId: 'a' }]],
    ['two devices', [reading('a'), reading('b')], []],
    ['two types', [reading('a'), reading('a', 'meter')], []],
    ['a rejection naming no device', [reading('a')], [{}]],
    ['a rejection naming another', [reading('a')], [{ deviceId: 'b' }]],
    ['an id that is not a device id', [reading("a' OR '1'='1")], []],
    ['an empty id', [reading('')], []],
  ])('is none for %s', (_, readings, rejections) => {
    expect(soleDevice(readings, rejections)).toBeUndefined();
  });
});
