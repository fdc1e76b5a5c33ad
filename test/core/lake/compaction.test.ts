/**
 * Intraday compaction (`lambdas/core/lake/compaction.ts`) over an in-memory lake with a
 * clock: every row kept exactly once through any interleaving of writes, runs and
 * crashes between the merged object's write and the inputs' delete; recent, unreadable
 * and foreign objects left exactly as they were.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SOURCES } from '../../../lambdas/core/formats/index.ts';
import {
  COMPACTION_RUN_BASE_MS,
  type CompactionStore,
  compactionDays,
  compactionUsage,
  compactLake,
  dayPrefixes,
  MIN_AGE_MS,
  partitionOfKey,
} from '../../../lambdas/core/lake/compaction.ts';
import { lakeTimestamp } from '../../../lambdas/core/lake/tables.ts';

const DAY = '2026-12-01';
const MIDDAY = Date.parse(`${DAY}T12:00:00Z`);

/** The lake in memory, with the time each object was written. */
function memoryLake(clock: { now: number }) {
  const objects = new Map<string, { body: Buffer; lastModified: number }>();
  let crashBeforeDelete = false;
  const store: CompactionStore = {
    async put(key, body) {
      objects.set(key, { body, lastModified: clock.now });
    },
    async list(prefix) {
      return [...objects.keys()].filter((k) => k.startsWith(prefix));
    },
    async listObjects(prefix) {
      return [...objects]
        .filter(([k]) => k.startsWith(prefix))
        .map(([key, o]) => ({ key, lastModified: o.lastModified, size: o.body.length }));
    },
    async get(key) {
      const object = objects.get(key);
      if (!object) throw new Error(`NoSuchKey: ${key}`);
      return object.body;
    },
    async delete(key) {
      objects.delete(key);
    },
    async deleteMany(keys) {
      if (crashBeforeDelete) {
        crashBeforeDelete = false;
        throw new Error('crash between put and delete');
      }
      for (const key of keys) objects.delete(key);
    },
  };
  return {
    store,
    objects,
    /** The next delete of the next run fails, as a crash there would leave it. */
    crashNextDelete: (crash = true) => {
      crashBeforeDelete = crash;
    },
    /** Every row of every object under a prefix, parsed. */
    rows(prefix: string): Record<string, unknown>[] {
      return [...objects]
        .filter(([k]) => k.startsWith(prefix))
        .flatMap(([, o]) =>
          gunzipSync(o.body)
            .toString('utf8')
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => JSON.parse(l) as Record<string, unknown>),
        );
    },
  };
}

const gz = (lines: readonly string[]) => gzipSync(`${lines.join('\n')}\n`);

function readingLine(device: string, minute: number, metric: string, message: number, receivedAt: number) {
  return JSON.stringify({
    device_id: device,
    device_type: 't',
    time: lakeTimestamp(MIDDAY + minute * 60_000),
    metric,
    value: message,
    source: 'mqtt',
    received_at: lakeTimestamp(receivedAt),
    message_id: `m${message}`,
  });
}

const readingsPrefix = (hour: string) => `readings/dt=${DAY}/hour=${hour}/`;

describe('compactLake: exactly once', () => {
  /** A message: its readings (device, minute, metric), sent once or more (network resends, SQS retries). */
  const message = fc.record({
    device: fc.constantFrom('a', 'b', 'c'),
    // Minutes after 12:00: readings are keyed by reading time, so 60 and on land in hour=13.
    minutes: fc.uniqueArray(
      fc.integer({ min: 0, max: 7 }).map((m) => (m < 4 ? m : 56 + m)),
      { minLength: 1, maxLength: 3 },
    ),
    metrics: fc.subarray(['temp', 'battery'], { minLength: 1 }),
    delay: fc.integer({ min: 0, max: 50_000 }),
  });
  const step = fc.oneof(
    fc.record({
      kind: fc.constant('write' as const),
      messages: fc.array(message, { minLength: 1, maxLength: 4 }),
    }),
    fc.record({ kind: fc.constant('retry' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('compact' as const), crash: fc.boolean() }),
    fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 4 * 60_000 }) }),
  );

  it('keeps the deduped union of every batch, whatever runs, crashes and retries interleave', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
        const clock = { now: MIDDAY };
        const lake = memoryLake(clock);
        const batches: { key: string; lines: string[] }[] = [];
        // The daily job's choice per (device, time, metric): the first by received_at, message_id.
        const expected = new Map<string, { receivedAt: string; messageId: string; line: string }>();
        let next = 0;
        for (const s of steps) {
          if (s.kind === 'write') {
            const byHour = new Map<string, string[]>();
            // As the ingest path stores a batch: each (device, time, metric) once within it.
            const inBatch = new Set<string>();
            for (const m of s.messages) {
              const id = next++;
              const receivedAt = clock.now + m.delay;
              for (const minute of m.minutes) {
                for (const metric of m.metrics) {
                  const line = readingLine(m.device, minute, metric, id, receivedAt);
                  const row = JSON.parse(line) as Record<string, string>;
                  const rowId = `${row.device_id}|${row.time}|${row.metric}`;
                  if (inBatch.has(rowId)) continue;
                  inBatch.add(rowId);
                  const kept = expected.get(rowId);
                  const rank = `${row.received_at}\u0000${row.message_id}`;
                  if (!kept || rank < `${kept.receivedAt}\u0000${kept.messageId}`)
                    expected.set(rowId, { receivedAt: row.received_at ?? '', messageId: `m${id}`, line });
                  const hour = minute < 60 ? '12' : '13';
                  byHour.set(hour, [...(byHour.get(hour) ?? []), line]);
                }
              }
            }
            for (const [hour, lines] of byHour) {
              const key = `${readingsPrefix(hour)}b${next}-${hour}.ndjson.gz`;
              batches.push({ key, lines });
              await lake.store.put(key, gz(lines), 'application/x-ndjson', 'gzip');
            }
          } else if (s.kind === 'retry' && batches.length > 0) {
            // A batch written again: under its own key (an SQS retry) or a new one (regrouped).
            const batch = batches[s.pick % batches.length] as { key: string; lines: string[] };
            const key =
              s.pick % 2 === 0 ? batch.key : batch.key.replace('.ndjson.gz', `-r${next++}.ndjson.gz`);
            await lake.store.put(key, gz(batch.lines), 'application/x-ndjson', 'gzip');
          } else if (s.kind === 'compact') {
            if (s.crash) lake.crashNextDelete();
            await compactLake(lake.store, { days: [DAY], now: clock.now }).catch((error: Error) => {
              if (!/crash/.test(error.message)) throw error;
            });
            // The crash is this run's, if it came to a delete at all.
            lake.crashNextDelete(false);
          } else if (s.kind === 'wait') {
            clock.now += s.ms;
          }
          // Never a gap: every row written so far is in the lake, at any moment.
          const present = new Set(
            lake.rows('readings/').map((r) => `${r.device_id}|${r.time}|${r.metric}|${r.message_id}`),
          );
          for (const [rowId, kept] of expected) expect(present.has(`${rowId}|${kept.messageId}`)).toBe(true);
        }
        // Once the hours have closed and everything is old enough, a run (or two) leaves
        // each row exactly once: the daily job's copy.
        clock.now = Math.max(clock.now, Date.parse(`${DAY}T14:00:00Z`)) + MIN_AGE_MS + 60_000;
        await compactLake(lake.store, { days: [DAY], now: clock.now });
        await compactLake(lake.store, { days: [DAY], now: clock.now });
        const rows = lake.rows('readings/');
        expect(rows.map((r) => JSON.stringify(r)).sort()).toEqual(
          [...expected.values()].map((e) => JSON.stringify(JSON.parse(e.line))).sort(),
        );
        for (const hour of ['12', '13']) {
          expect(
            [...lake.objects.keys()].filter((k) => k.startsWith(readingsPrefix(hour))).length,
          ).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('after a crash between the merged write and the delete, has copies but no gap, and the next run removes them', async () => {
    const clock = { now: MIDDAY };
    const lake = memoryLake(clock);
    const prefix = readingsPrefix('12');
    await lake.store.put(`${prefix}one.ndjson.gz`, gz([readingLine('a', 1, 'temp', 1, MIDDAY)]), '', 'gzip');
    await lake.store.put(`${prefix}two.ndjson.gz`, gz([readingLine('a', 2, 'temp', 2, MIDDAY)]), '', 'gzip');
    clock.now += MIN_AGE_MS + 1;
    lake.crashNextDelete();
    await expect(compactLake(lake.store, { days: [DAY], now: clock.now })).rejects.toThrow(/crash/);
    expect(lake.rows(prefix)).toHaveLength(4);
    expect(
      [...lake.objects.keys()].filter((k) => /compacted-[0-9a-f]{32}\.ndjson\.gz$/.test(k)),
    ).toHaveLength(1);
    // The hour still open: the inputs again make the same piece (the same rows, the same key), then go.
    clock.now += MIN_AGE_MS + 1;
    const open = await compactLake(lake.store, { days: [DAY], now: clock.now });
    expect(open).toMatchObject({ objectsRead: 2, objectsWritten: 1, objectsDeleted: 2, rowsWritten: 2 });
    expect(lake.objects.size).toBe(1);
    // A copy of m2's reading under another message (a write whose answer was lost, retried
    // in another batch); once the hour has closed, the piece is one more input of its merge.
    await lake.store.put(
      `${prefix}three.ndjson.gz`,
      gz([readingLine('a', 2, 'temp', 9, MIDDAY + 1000)]),
      '',
      'gzip',
    );
    clock.now = Date.parse(`${DAY}T13:00:00Z`) + MIN_AGE_MS + 1;
    const result = await compactLake(lake.store, { days: [DAY], now: clock.now });
    // The same two rows: the same key as the piece, which stays; the copy goes.
    expect(result).toMatchObject({
      objectsRead: 2,
      objectsWritten: 1,
      objectsDeleted: 1,
      rowsRead: 3,
      rowsWritten: 2,
    });
    expect(
      lake
        .rows(prefix)
        .map((r) => r.message_id)
        .sort(),
    ).toEqual(['m1', 'm2']);
    expect(lake.objects.size).toBe(1);
  });

  it('dedupes raw/ by message_id, the first by received_at, per source partition', async () => {
    const clock = { now: MIDDAY };
    const lake = memoryLake(clock);
    const prefix = `raw/source=mqtt/dt=${DAY}/hour=12/`;
    const raw = (id: string, at: number) =>
      JSON.stringify({ message_id: id, received_at: lakeTimestamp(at), topic: 'dt/t/a', payload: 'e30=' });
    await lake.store.put(`${prefix}x.ndjson.gz`, gz([raw('m1', MIDDAY), raw('m2', MIDDAY + 5)]), '', 'gzip');
    await lake.store.put(
      `${prefix}y.ndjson.gz`,
      gz([raw('m2', MIDDAY + 5), raw('m3', MIDDAY + 1)]),
      '',
      'gzip',
    );
    // Another source's partition is another partition: one object there, left alone.
    const other = `raw/source=http/dt=${DAY}/hour=12/z.ndjson.gz`;
    await lake.store.put(other, gz([raw('m1', MIDDAY)]), '', 'gzip');
    clock.now += MIN_AGE_MS + 1;
    await compactLake(lake.store, { days: [DAY], now: clock.now });
    expect(lake.rows(prefix).map((r) => r.message_id)).toEqual(['m1', 'm3', 'm2']);
    expect(lake.objects.has(other)).toBe(true);
  });

  it('splits a partition over the size cap into full objects that are not merged again', async () => {
    const clock = { now: MIDDAY };
    const lake = memoryLake(clock);
    const prefix = readingsPrefix('12');
    for (let b = 0; b < 6; b++) {
      const lines = Array.from({ length: 10 }, (_, i) =>
        readingLine('a', b * 10 + i, 'temp', b * 10 + i, MIDDAY),
      );
      await lake.store.put(`${prefix}b${b}.ndjson.gz`, gz(lines), '', 'gzip');
    }
    clock.now += MIN_AGE_MS + 1;
    const lineBytes = readingLine('a', 0, 'temp', 0, MIDDAY).length + 1;
    const limits = { maxObjectBytes: 25 * lineBytes };
    await compactLake(lake.store, { days: [DAY], now: clock.now, limits });
    const keys = [...lake.objects.keys()].sort();
    expect(keys.filter((k) => k.includes('compacted-full-'))).toHaveLength(2);
    expect(keys).toHaveLength(3);
    expect(lake.rows(prefix)).toHaveLength(60);
    // A second run has one mergeable object (the open one) and leaves everything as it is.
    const again = await compactLake(lake.store, { days: [DAY], now: clock.now, limits });
    expect(again.objectsWritten).toBe(0);
    expect([...lake.objects.keys()].sort()).toEqual(keys);
  });

  it('is idempotent: a second run with nothing new reads nothing and writes nothing', async () => {
    const clock = { now: MIDDAY };
    const lake = memoryLake(clock);
    const prefix = readingsPrefix('12');
    for (let b = 0; b < 3; b++)
      await lake.store.put(
        `${prefix}b${b}.ndjson.gz`,
        gz([readingLine('a', b, 'temp', b, MIDDAY)]),
        '',
        'gzip',
      );
    clock.now += MIN_AGE_MS + 1;
    const first = await compactLake(lake.store, { days: [DAY], now: clock.now });
    expect(first).toMatchObject({ partitions: 1, objectsRead: 3, objectsWritten: 1, objectsDeleted: 3 });
    const second = await compactLake(lake.store, { days: [DAY], now: clock.now });
    expect(second).toMatchObject({ partitions: 0, objectsRead: 0, objectsWritten: 0, objectsDeleted: 0 });
  });
});

describe('compactLake: leaves alone what it must not touch', () => {
  it('does not touch objects written in the last two minutes', async () => {
    const clock = { now: MIDDAY };
    const lake = memoryLake(clock);
    const prefix = readingsPrefix('12');
    await lake.store.put(`${prefix}old1.ndjson.gz`, gz([readingLine('a', 1, 'temp', 1, MIDDAY)]), '', 'gzip');
    await lake.store.put(`${prefix}old2.ndjson.gz`, gz([readingLine('a', 2, 'temp', 2, MIDDAY)]), '', 'gzip');
    clock.now += MIN_AGE_MS + 1;
    const young = gz([readingLine('a', 3, 'temp', 3, MIDDAY)]);
    await lake.store.put(`${prefix}young.ndjson.gz`, young, '', 'gzip');
    clock.now += MIN_AGE_MS - 1_000;
    await compactLake(lake.store, { days: [DAY], now: clock.now });
    expect(lake.objects.get(`${prefix}young.ndjson.gz`)?.body).toBe(young);
    expect(lake.objects.has(`${prefix}old1.ndjson.gz`)).toBe(false);
    expect(lake.objects.size).toBe(2);
  });

  it('leaves corrupt objects in place with their bytes, says why, and compacts the rest', async () => {
    const clock = { now: MIDDAY };
    const lake = memoryLake(clock);
    const prefix = readingsPrefix('12');
    const bad = {
      [`${prefix}not-gzip.ndjson.gz`]: Buffer.from('{"device_id":"a"}\n'),
      [`${prefix}not-json.ndjson.gz`]: gz([
        readingLine('a', 7, 'temp', 7, MIDDAY),
        '{"device_id": "a", trunc',
      ]),
      [`${prefix}no-metric.ndjson.gz`]: gz([
        JSON.stringify({ device_id: 'a', time: '2026-12-01 12:00:00.000' }),
      ]),
      [`${prefix}array.ndjson.gz`]: gz(['[1,2]']),
      [`${prefix}truncated.ndjson.gz`]: gz([readingLine('a', 8, 'temp', 8, MIDDAY)]).subarray(0, 20),
    };
    for (const [key, body] of Object.entries(bad)) await lake.store.put(key, body, '', 'gzip');
    for (let b = 0; b < 3; b++)
      await lake.store.put(
        `${prefix}good${b}.ndjson.gz`,
        gz([readingLine('b', b, 'temp', b, MIDDAY)]),
        '',
        'gzip',
      );
    clock.now += MIN_AGE_MS + 1;
    const skipped: string[] = [];
    const result = await compactLake(
      lake.store,
      { days: [DAY], now: clock.now },
      { skipped: (key, reason) => skipped.push(`${key.slice(prefix.length)}: ${reason}`) },
    );
    expect(result).toMatchObject({ skipped: 5, objectsRead: 3, objectsWritten: 1, objectsDeleted: 3 });
    for (const [key, body] of Object.entries(bad)) expect(lake.objects.get(key)?.body).toBe(body);
    expect(skipped.sort()).toEqual([
      expect.stringMatching(/^array\.ndjson\.gz: a line is not a JSON object/),
      expect.stringMatching(/^no-metric\.ndjson\.gz: a row has no metric/),
      expect.stringMatching(/^not-gzip\.ndjson\.gz: not gzip/),
      expect.stringMatching(/^not-json\.ndjson\.gz: a line is not JSON/),
      expect.stringMatching(/^truncated\.ndjson\.gz: not gzip/),
    ]);
    const compacted = [...lake.objects.keys()].filter((k) => k.includes('compacted-'));
    expect(compacted).toHaveLength(1);
    expect(lake.rows(compacted[0] as string).map((r) => r.device_id)).toEqual(['b', 'b', 'b']);
  });

  it('ignores hostile and foreign keys: outside the prefix, with .., deeper, other names, other hours', async () => {
    const clock = { now: MIDDAY };
    const lake = memoryLake(clock);
    const body = gz([readingLine('a', 1, 'temp', 1, MIDDAY)]);
    const foreign = [
      `readings/dt=${DAY}/hour=12/../../x.ndjson.gz`,
      `readings/dt=${DAY}/hour=12/sub/x.ndjson.gz`,
      `readings/dt=${DAY}/hour=12/..x.ndjson.gz`,
      `readings/dt=${DAY}/hour=12/x.json`,
      `readings/dt=${DAY}/hour=12/.tmp.ndjson.gz`,
      `readings/dt=${DAY}/hour=24/x.ndjson.gz`,
      `readings/dt=${DAY}/hour=24/y.ndjson.gz`,
      `readings/dt=${DAY}x/hour=12/x.ndjson.gz`,
      `curated/readings/dt=${DAY}/hour=12/x.ndjson.gz`,
    ];
    for (const key of foreign) await lake.store.put(key, body, '', 'gzip');
    // A listing that answers more than was asked for is not trusted either.
    const store: CompactionStore = { ...lake.store, listObjects: async () => lake.store.listObjects('') };
    clock.now += MIN_AGE_MS + 1;
    const result = await compactLake(store, { days: [DAY], now: clock.now });
    expect(result.objectsRead).toBe(0);
    expect([...lake.objects.keys()].sort()).toEqual([...foreign].sort());
    expect(partitionOfKey(`readings/dt=${DAY}/`, `readings/dt=${DAY}/hour=07/ab-1.ndjson.gz`)).toBe(
      `readings/dt=${DAY}/hour=07/`,
    );
  });

  it('refuses a day that is not YYYY-MM-DD before listing anything', async () => {
    const lake = memoryLake({ now: MIDDAY });
    await expect(compactLake(lake.store, { days: ['../x'], now: MIDDAY })).rejects.toThrow(/not a day/);
    expect(dayPrefixes(DAY)).toHaveLength(1 + SOURCES.length);
  });
});

describe('compactionDays', () => {
  it('is today, and yesterday too in the first hour (UTC) of the day', () => {
    expect(compactionDays(Date.parse('2026-12-01T00:59:59Z'))).toEqual(['2026-11-30', '2026-12-01']);
    expect(compactionDays(Date.parse('2026-12-01T01:00:00Z'))).toEqual(['2026-12-01']);
    expect(compactionDays(Date.parse('2026-12-01T03:00:00Z'), 4)).toEqual(['2026-11-30', '2026-12-01']);
  });
});

describe('compactionUsage', () => {
  it('counts per month: LISTs per prefix of the day, GETs per new object, a PUT per partition and run', () => {
    // 1,000 devices at one message a minute, batched every 20 s: 180 batches an hour, one source.
    const usage = compactionUsage({ batchesPerHour: 180, bytesPerHour: 3 * 1024 ** 2, sourcesInUse: 1 });
    const runs = 30 * 24 * 6;
    expect(usage.runs).toBe(runs);
    expect(usage.list).toBeCloseTo(runs * (1 + 1 / 24) * (1 + SOURCES.length), 6);
    // 30 new objects in each of 2 tables per run, and once an hour the closed hour's six pieces.
    expect(usage.get).toBeCloseTo(runs * 2 * (30 + 6 / 6), 6);
    expect(usage.put).toBeCloseTo(runs * 2 * (1 + 1 / 6), 6);
    expect(usage.lambdaMs).toBeGreaterThan(runs * COMPACTION_RUN_BASE_MS);
    expect(usage.lambdaGbSeconds).toBeCloseTo(usage.lambdaMs / 1000, 6);
    // Ten times the messages in the same batches' count: the same requests, more Lambda time.
    const bigger = compactionUsage({ batchesPerHour: 180, bytesPerHour: 30 * 1024 ** 2, sourcesInUse: 1 });
    expect(bigger.get).toBe(usage.get);
    expect(bigger.lambdaMs).toBeGreaterThan(usage.lambdaMs);
  });
});
