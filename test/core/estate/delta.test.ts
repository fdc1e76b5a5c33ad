import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { SQSClient } from '@aws-sdk/client-sqs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sqsDeltaQueue } from '../../../lambdas/adapters/aws/estate-queue.ts';
import type { AlertEvent, AlertRule, DeviceRecord } from '../../../lambdas/core/estate/alerts.ts';
import {
  applyDeltas,
  applyNow,
  DeltaError,
  decodeDelta,
  encodeDeltas,
  MAX_DELTA_BYTES,
  queueDeltas,
  shardOf,
} from '../../../lambdas/core/estate/delta.ts';
import { offlineTimeouts } from '../../../lambdas/core/estate/registry-query.ts';
import { detectOffline, type EstateDeps } from '../../../lambdas/core/estate/update.ts';
import { writeBatch } from '../../../lambdas/core/ingest/write.ts';
import type { Reading } from '../../../lambdas/core/reading.ts';
import { MemoryStore, memoryRegistry, NOW } from '../../support/fakes.ts';

const MIN = 60_000;
const hot: AlertRule = {
  name: 'hot',
  metric: 'temp',
  comparison: '>',
  threshold: 30,
  forMs: 0,
  hysteresis: 2,
  severity: 'critical',
};

function reading(deviceId: string, time: number, temp: number, seq?: number): Reading {
  return {
    deviceId,
    deviceType: 'thermo',
    time,
    receivedAt: time + 500,
    source: 'mqtt',
    messageId: `m-${deviceId}-${time}`,
    metrics: { temp, note: 'ok', door: false },
    key: seq === undefined ? `t:${time}` : `seq:${seq}`,
    ...(seq === undefined ? {} : { seq }),
  };
}

function estateOf(): { deps: EstateDeps; registry: ReturnType<typeof memoryRegistry>; events: AlertEvent[] } {
  const registry = memoryRegistry();
  const events: AlertEvent[] = [];
  return {
    registry,
    events,
    deps: {
      registry,
      publisher: { publish: async (e) => void events.push(...e) },
      config: { alertRules: [hot], offline: { severity: 'warning' }, deviceTypes: {} },
    },
  };
}

/** A record without what differs by how often it was written. */
const settled = (record: DeviceRecord | undefined) => record && { ...record, version: 0 };
const eventKey = (e: AlertEvent) => `${e.deviceId} ${e.rule} ${e.state} ${e.time}`;

describe('encodeDeltas and decodeDelta', () => {
  it('round-trips what the estate reads of each reading, and nothing it does not', () => {
    const readings = [reading('a', NOW, 20, 7), reading('b', NOW + 1, 31)];
    const [delta, ...more] = encodeDeltas(readings, [{ deviceId: 'c', at: NOW }]);
    expect(more).toEqual([]);
    expect(delta?.devices.sort()).toEqual(['a', 'b', 'c']);
    const decoded = decodeDelta(delta?.body ?? '');
    expect(decoded.offline).toEqual([{ deviceId: 'c', at: NOW }]);
    expect(decoded.readings).toEqual(
      readings.map(({ messageId: _m, key: _k, receivedAt: _r, ...estate }) => estate),
    );
  });

  it('splits a batch into bodies under the limit, each reading in exactly one, a device kept whole where it fits', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 10_000 })), {
          maxLength: 400,
        }),
        fc.integer({ min: 2_000, max: 20_000 }),
        (pairs, maxBytes) => {
          const readings = pairs.map(([device, t], i) => reading(`d-${device}`, NOW + t * 1000 + i, 20));
          const deltas = encodeDeltas(readings, [], maxBytes);
          for (const d of deltas) expect(d.body.length).toBeLessThanOrEqual(maxBytes);
          const back = deltas.flatMap((d) =>
            decodeDelta(d.body).readings.map((r) => `${r.deviceId}@${r.time}`),
          );
          expect(back.sort()).toEqual(readings.map((r) => `${r.deviceId}@${r.time}`).sort());
          for (const d of deltas)
            for (const r of decodeDelta(d.body).readings) expect(d.devices).toContain(r.deviceId);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses a reading too large for any body, rather than sending a body SQS would refuse', () => {
    // Random text does not compress: the body is larger than the limit.
    const blob = randomBytes(MAX_DELTA_BYTES).toString('base64');
    const big = { ...reading('a', NOW, 1), metrics: { blob } };
    expect(() => encodeDeltas([big], [])).toThrow(RangeError);
  });

  it.each([
    ['text that is not base64 gzip', 'hello'],
    [
      'gzip JSON of another version',
      gzipSync(JSON.stringify({ v: 2, readings: [], offline: [] })).toString('base64'),
    ],
    [
      'readings that are not an array',
      gzipSync(JSON.stringify({ v: 1, readings: {}, offline: [] })).toString('base64'),
    ],
    [
      'a device id that could name a key elsewhere',
      gzipSync(
        JSON.stringify({ v: 1, readings: [{ ...reading('a', NOW, 1), deviceId: '../x' }], offline: [] }),
      ).toString('base64'),
    ],
    [
      'a time that is not epoch milliseconds',
      gzipSync(
        JSON.stringify({ v: 1, readings: [{ ...reading('a', NOW, 1), time: 'now' }], offline: [] }),
      ).toString('base64'),
    ],
    [
      'a metric value that is an object',
      gzipSync(
        JSON.stringify({
          v: 1,
          readings: [{ ...reading('a', NOW, 1), metrics: { x: { y: 1 } } }],
          offline: [],
        }),
      ).toString('base64'),
    ],
    [
      'an unknown source',
      gzipSync(
        JSON.stringify({ v: 1, readings: [{ ...reading('a', NOW, 1), source: 'ftp' }], offline: [] }),
      ).toString('base64'),
    ],
    [
      'a gzip bomb (past 16 MiB once inflated)',
      gzipSync(Buffer.alloc(20 * 1024 * 1024, 32)).toString('base64'),
    ],
  ])('refuses %s with a DeltaError', (_, body) => {
    expect(() => decodeDelta(body)).toThrow(DeltaError);
  });
});

describe('the estate queued, against the estate applied at once', () => {
  it('leaves every record and raises every alert as applying each ingest batch at once does, whatever the windows, retries included', async () => {
    await fc.assert(
      fc.asyncProperty(
        // Each device's temperatures a minute apart; cut into ingest batches, and the deltas into estate windows.
        fc.array(fc.array(fc.integer({ min: 20, max: 40 }), { minLength: 1, maxLength: 12 }), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 8 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 4 }),
        async (devices, perBatch, perWindow, retry, shards) => {
          const all = devices.flatMap((temps, d) =>
            temps.map((t, i) => reading(`d${d}`, NOW + i * MIN, t, i + 1)),
          );
          const minutes = Math.max(...devices.map((t) => t.length));
          const batches = Array.from({ length: Math.ceil(minutes / perBatch) }, (_, b) =>
            all.filter((r) => r.time >= NOW + b * perBatch * MIN && r.time < NOW + (b + 1) * perBatch * MIN),
          );
          const now = estateOf();
          for (const batch of batches) expect(await applyNow(now.deps).apply(batch, [])).toEqual(new Map());

          const later = estateOf();
          const sent: { shard: number; body: string }[] = [];
          const sink = queueDeltas({
            shards,
            send: async (deltas) => {
              sent.push(...deltas);
              return new Map();
            },
          });
          for (const batch of batches) expect(await sink.apply(batch, [])).toEqual(new Map());
          // Each shard's queue has its own windows; a device is always in the same shard.
          for (let shard = 0; shard < shards; shard++) {
            const messages = sent
              .filter((d) => d.shard === shard)
              .map(({ body }, i) => ({ messageId: `q-${shard}-${i}`, body }));
            for (const m of messages)
              for (const r of decodeDelta(m.body).readings) expect(shardOf(r.deviceId, shards)).toBe(shard);
            for (let i = 0; i < messages.length; i += perWindow) {
              const window = messages.slice(i, i + perWindow);
              expect(await applyDeltas(window, later.deps)).toEqual(new Map());
              // SQS delivers at least once: the same window again changes nothing.
              if (retry) expect(await applyDeltas(window, later.deps)).toEqual(new Map());
            }
          }
          for (const [id, record] of now.registry.records)
            expect(settled(later.registry.records.get(id))).toEqual(settled(record));
          expect(later.registry.records.size).toBe(now.registry.records.size);
          expect(later.events.map(eventKey).sort()).toEqual(now.events.map(eventKey).sort());
        },
      ),
      { numRuns: 80 },
    );
  });

  it('writes each device once per window: five messages a device, one read and one write', async () => {
    const estate = estateOf();
    const sent: string[] = [];
    const sink = queueDeltas({
      shards: 1,
      send: async (deltas) => {
        sent.push(...deltas.map((d) => d.body));
        return new Map();
      },
    });
    for (let minute = 0; minute < 5; minute++)
      await sink.apply(
        Array.from({ length: 10 }, (_, d) => reading(`d${d}`, NOW + minute * MIN, 20)),
        [],
      );
    expect(sent).toHaveLength(5);
    await applyDeltas(
      sent.map((body, i) => ({ messageId: `q-${i}`, body })),
      estate.deps,
    );
    expect(estate.registry.puts).toBe(10);
  });
});

describe('failures stay with what they belong to', () => {
  it('fails only the deltas that could not be read, or that carry a device whose record could not be written', async () => {
    const estate = estateOf();
    const put = estate.registry.put.bind(estate.registry);
    estate.registry.put = async (record, expected) => {
      if (record.deviceId === 'broken') throw new Error('throttled');
      return put(record, expected);
    };
    const [good] = encodeDeltas([reading('a', NOW, 20)], []);
    const [mixed] = encodeDeltas([reading('b', NOW, 20), reading('broken', NOW, 20)], []);
    const failures = await applyDeltas(
      [
        { messageId: 'good', body: good?.body ?? '' },
        { messageId: 'mixed', body: mixed?.body ?? '' },
        { messageId: 'junk', body: 'not a delta' },
      ],
      estate.deps,
    );
    expect([...failures.keys()].sort()).toEqual(['junk', 'mixed']);
    expect(failures.get('junk')).toBeInstanceOf(DeltaError);
    expect(failures.get('mixed')?.message).toBe('throttled');
    // b was written: the retried delta applies it again, which changes nothing.
    expect([...estate.registry.records.keys()].sort()).toEqual(['a', 'b']);
  });

  it('fails every device of the batch when the queue did not take one of its bodies, with its reason, or when it throws', async () => {
    const readings = Array.from({ length: 40 }, (_, d) => reading(`d${d}`, NOW, 20));
    // Four shards: four bodies, the second refused.
    let bodies = 0;
    const refused = await queueDeltas({
      shards: 4,
      send: async (deltas) => {
        bodies = deltas.length;
        return new Map([[1, new Error('SQS refused it')]]);
      },
    }).apply(readings, []);
    expect(bodies).toBe(4);
    // Whole or not at all: readings/ objects are named after their messages, so a part retried would be stored twice.
    expect(refused.size).toBe(40);
    expect(refused.get('d0')?.message).toBe('SQS refused it');

    const down = await queueDeltas({
      shards: 1,
      send: async () => {
        throw new Error('SQS is down');
      },
    }).apply(readings, [{ deviceId: 'gone', at: NOW }]);
    expect(down.size).toBe(41);
    expect(down.get('gone')?.message).toBe('SQS is down');
  });

  it('does not store the readings of a message whose update the queue did not take: the message is retried whole', async () => {
    const lake = new MemoryStore();
    const estate = queueDeltas({
      shards: 1,
      send: async () => {
        throw new Error('SQS is down');
      },
    });
    const outcome = {
      messageId: 'm1',
      receivedAt: NOW,
      readings: [reading('a', NOW, 20)].map((r) => ({ ...r, messageId: 'm1' })),
      quarantine: [],
    };
    const failures = await writeBatch([outcome], { lake, estate });
    expect([...failures.keys()]).toEqual(['m1']);
    expect(lake.lines('readings/')).toEqual([]);
  });
});

describe('shards', () => {
  it('puts a device in the same shard every time, spreads devices over all of them, and refuses a count out of range', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `dev-${i}`);
    for (const shards of [1, 3, 5, 16]) {
      const counts = new Array(shards).fill(0);
      for (const id of ids) {
        const shard = shardOf(id, shards);
        expect(shardOf(id, shards)).toBe(shard);
        counts[shard]++;
      }
      // Within a quarter of an even spread.
      for (const n of counts)
        expect(Math.abs(n - ids.length / shards)).toBeLessThan(ids.length / shards / 4 + 5);
    }
    for (const bad of [0, 17, 1.5, Number.NaN]) expect(() => shardOf('a', bad)).toThrow(RangeError);
  });

  it("sends each shard's bodies to its own queue in SendMessageBatch calls of ten, and fails only what SQS refused", async () => {
    const calls: { QueueUrl?: string; Entries?: { Id?: string; MessageBody?: string }[] }[] = [];
    const client = {
      send: async (command: { input: (typeof calls)[number] }) => {
        calls.push(command.input);
        const refused = command.input.Entries?.find((e) => e.MessageBody === 'refuse me');
        return {
          Failed: refused ? [{ Id: refused.Id, Code: 'InvalidMessageContents', SenderFault: true }] : [],
        };
      },
    } as unknown as SQSClient;
    const queue = sqsDeltaQueue(client, ['q0', 'q1', 'q2']);
    expect(queue.shards).toBe(3);
    const deltas = [
      ...Array.from({ length: 12 }, (_, i) => ({ shard: 1, body: `b${i}` })),
      { shard: 0, body: 'refuse me' },
      { shard: 2, body: 'last' },
    ];
    const unsent = await queue.send(deltas);
    expect(calls.map((c) => [c.QueueUrl, c.Entries?.length]).sort()).toEqual([
      ['q0', 1],
      ['q1', 10],
      ['q1', 2],
      ['q2', 1],
    ]);
    expect([...unsent.keys()]).toEqual([12]);
    expect(unsent.get(12)?.message).toMatch(/InvalidMessageContents/);
    expect(() => sqsDeltaQueue(client, [])).toThrow(RangeError);
  });
});

describe('the offline check behind a queued estate', () => {
  it('adds the registry lag to every timeout: a device whose record is late is not offline, one silent past both is', async () => {
    const estate = estateOf();
    const deps = {
      ...estate.deps,
      config: { ...estate.deps.config, offline: { afterMs: 5 * MIN, severity: 'warning' as const } },
    };
    await applyNow(deps).apply([reading('late', NOW, 20), reading('gone', NOW - 20 * MIN, 20)], []);
    // Six minutes on: 'late' is past its 5 minute timeout but within it and the 320 s lag; 'gone' is past both.
    const at = NOW + 6 * MIN;
    const raised = await detectOffline(deps, at, 320_000);
    expect(raised.map((e) => e.deviceId)).toEqual(['gone']);
    expect(await detectOffline(deps, at, 0)).toEqual([
      expect.objectContaining({ deviceId: 'late', rule: 'offline' }),
    ]);
    expect(offlineTimeouts(deps.config, 320_000)).toEqual({ defaultMs: 5 * MIN + 320_000, byType: {} });
  });
});

describe('the registry reads of an update', () => {
  it('reads eventually consistent first (half the units), and consistently again only after another writer came first', async () => {
    const estate = estateOf();
    await applyNow(estate.deps).apply([reading('a', NOW, 20)], []);
    const reads: (boolean | undefined)[] = [];
    const get = estate.registry.get.bind(estate.registry);
    const put = estate.registry.put.bind(estate.registry);
    let conflicts = 1;
    estate.registry.get = async (ids, options) => {
      reads.push(options?.consistent);
      return get(ids);
    };
    estate.registry.put = async (record, expected) => {
      // Another writer first, once: the conditional write fails.
      if (conflicts-- > 0) return false;
      return put(record, expected);
    };
    expect(await applyNow(estate.deps).apply([reading('a', NOW + MIN, 21)], [])).toEqual(new Map());
    expect(reads).toEqual([false, undefined]);
    expect(estate.registry.records.get('a')?.lastValues.temp).toBe(21);
  });
});
