/**
 * Fault injection: sinks that throw, stall or throttle at random (seeded) rates, and
 * SQS delivering a batch again after it was stored. Afterwards every message is
 * accounted for exactly once: its readings in the lake, or quarantined with a reason,
 * or in the dead-letter file. Lost = 0, duplicates = 0.
 *
 * A crash part-way (the invocation never answers; SQS hands the whole batch out again)
 * stores nothing twice: the lake objects are named after the messages they hold, so
 * the redelivery writes the same keys.
 *
 * A write that succeeds while its answer is lost is the one fault that can store a
 * reading twice in `readings/` (the retry writes it under another batch's key): it
 * still loses nothing, and the daily compaction keeps each reading once.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { describe, expect, it, vi } from 'vitest';
import { validateRuntimeConfig } from '../../lambdas/core/config.ts';
import { decodeMessages } from '../../lambdas/core/ingest/decode.ts';
import type { ObjectStore, TimeSeriesSink } from '../../lambdas/core/ingest/ports.ts';
import { writeBatch } from '../../lambdas/core/ingest/write.ts';
import { folderStore } from '../../local/adapters/folder-store.ts';
import { startLocalRuntime } from '../../local/runtime.ts';
import { random } from '../../tools/simulator/fleet.ts';
import { ingestOf, MemoryTimeSeries, mqttMessage } from '../support/fakes.ts';

const N = 240;

/**
 * Fails a sink's writes at `rate`: throttled, or stalled then timed out, both before
 * writing; with `ambiguous`, also after writing (the write went through, its answer was lost).
 */
function faulty<T extends object>(
  target: T,
  method: keyof T,
  rate: number,
  rand: () => number,
  ambiguous = false,
): T {
  const original = (target[method] as (...args: unknown[]) => Promise<unknown>).bind(target);
  return {
    ...target,
    maxRecordsPerWrite: (target as { maxRecordsPerWrite?: number }).maxRecordsPerWrite,
    [method]: async (...args: unknown[]) => {
      const roll = rand();
      if (roll < rate / 3) throw new Error('ThrottlingException: Rate exceeded');
      if (roll < (2 * rate) / 3) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        throw new Error('TimeoutError: socket hang up');
      }
      if (ambiguous && roll < rate) {
        // The write went through, and the answer was lost: the caller sees a failure.
        await original(...args);
        throw new Error('NetworkingError: connection reset after the write');
      }
      return original(...args);
    },
  } as T;
}

describe('fault injection: nothing lost, nothing twice', () => {
  it('on the local runtime, with both sinks failing at random', async () => {
    const rand = random(42);
    const rt = await startLocalRuntime({
      dataDir: await mkdtemp(join(tmpdir(), 'faults-')),
      mqttPort: 0,
      httpPort: 0,
      apiKey: 'k',
      queue: { batchWindowMs: 10, retryDelayMs: 5, maxReceiveCount: 4, batchSize: 25 },
      wrapLake: (store: ObjectStore) => faulty(store, 'put', 0.25, rand),
      wrapTimeSeries: (sink: TimeSeriesSink) => faulty(sink, 'write', 0.25, rand),
    });
    try {
      const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'fault-dev' });
      const start = Date.now() - 60 * 60_000;
      for (let i = 0; i < N; i++) {
        // One message in ten cannot be decoded.
        const payload =
          i % 10 === 9 ? '{broken' : JSON.stringify({ $ts: start + i * 1000, $seq: i, temp: i });
        await device.publishAsync(`dt/thermo/dev-${i % 8}`, payload, { qos: 1 });
      }
      await device.endAsync();
      await vi.waitFor(() => expect(rt.queue.stats()).toMatchObject({ sent: N, pending: 0 }), {
        timeout: 60_000,
        interval: 200,
      });
      const stats = rt.queue.stats();
      const rows = (
        await rt.query(
          'SELECT message_id, device_id, epoch_ms(time) AS t, count(*)::INT AS n FROM readings GROUP BY ALL',
        )
      ).rows;
      const duplicates = rows.filter((r) => Number(r.n) > 1);
      const stored = new Set(rows.map((r) => String(r.message_id)));
      const quarantined = new Set(
        (await rt.query('SELECT DISTINCT message_id FROM quarantine')).rows.map((r) => String(r.message_id)),
      );
      const dead = existsSync(rt.deadLetterFile)
        ? readFileSync(rt.deadLetterFile, 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l).messageId as string)
        : [];
      const accounted = new Set([...stored, ...quarantined, ...dead]);
      expect(duplicates).toEqual([]);
      expect(stats.done + stats.deadLettered).toBe(N);
      expect(accounted.size).toBe(N);
      expect(quarantined.size).toBe(N / 10);
      // A message is in exactly one place.
      expect(stored.size + quarantined.size + dead.length).toBe(N);
      expect(stats.retried).toBeGreaterThan(0);
    } finally {
      await rt.close();
    }
  });

  it('on the ingest core, with SQS delivering stored batches again and sinks failing', async () => {
    const rand = random(7);
    const lake = folderStore(await mkdtemp(join(tmpdir(), 'faults-core-')));
    const timeseries = new MemoryTimeSeries();
    const config = validateRuntimeConfig({});
    const now = Date.now();
    const messages = Array.from({ length: 120 }, (_, i) =>
      mqttMessage(`m${i}`, { $ts: now - 60_000 + i, $seq: i, temp: i }, `dt/thermo/d-${i % 5}`, now),
    );
    const deps = {
      config,
      lake: faulty(lake, 'put', 0.3, rand),
      timeseries: faulty(timeseries, 'write', 0.3, rand),
    };
    // An SQS-like loop: failed messages come back (in a new batch); one stored batch in
    // three is delivered again whole (its visibility timeout ran out before the delete).
    const queue: (typeof messages & { redelivered?: boolean })[] = [];
    for (let i = 0; i < messages.length; i += 20) queue.push(messages.slice(i, i + 20));
    const failedReceives = new Map<string, number>();
    const dead: string[] = [];
    while (queue.length > 0) {
      const batch = queue.shift() as typeof messages & { redelivered?: boolean };
      const failures = await writeBatch(
        await decodeMessages(
          batch,
          ingestOf(config, () => now),
        ),
        deps,
      );
      const retry = batch.filter((m) => failures.has(m.messageId));
      const again: typeof messages = [];
      for (const m of retry) {
        const count = (failedReceives.get(m.messageId) ?? 0) + 1;
        failedReceives.set(m.messageId, count);
        if (count >= 5) dead.push(m.messageId);
        else again.push(m);
      }
      if (again.length > 0) queue.push(again);
      if (retry.length === 0 && rand() < 1 / 3 && !batch.redelivered)
        queue.push(Object.assign([...batch], { redelivered: true }));
    }
    const { gunzipSync } = await import('node:zlib');
    const lines: { message_id: string; metric: string }[] = [];
    for (const key of await lake.list('readings/')) {
      for (const line of gunzipSync(await lake.get(key))
        .toString()
        .trim()
        .split('\n'))
        lines.push(JSON.parse(line));
    }
    const perMessage = new Map<string, number>();
    for (const line of lines) perMessage.set(line.message_id, (perMessage.get(line.message_id) ?? 0) + 1);
    expect([...perMessage.values()].filter((n) => n > 1)).toEqual([]);
    expect(perMessage.size + dead.length).toBe(messages.length);
    expect(dead.filter((id) => perMessage.has(id))).toEqual([]);
  });

  it('with writes whose answer is lost: nothing lost, and the daily compaction stores each reading once', async () => {
    const rand = random(99);
    const dir = await mkdtemp(join(tmpdir(), 'faults-ambiguous-'));
    const lake = folderStore(join(dir, 'lake'));
    const config = validateRuntimeConfig({});
    const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const base = Date.parse(`${day}T12:00:00Z`);
    const messages = Array.from({ length: 100 }, (_, i) =>
      mqttMessage(
        `m${i}`,
        { $ts: base + i * 1000, $seq: i, temp: i },
        `dt/thermo/d-${i % 5}`,
        base + 200_000,
      ),
    );
    const deps = { config, lake: faulty(lake, 'put', 0.3, rand, true) };
    const pending = [...messages];
    while (pending.length > 0) {
      const batch = pending.splice(0, 20);
      const failures = await writeBatch(
        await decodeMessages(
          batch,
          ingestOf(config, () => base),
        ),
        deps,
      );
      pending.push(...batch.filter((m) => failures.has(m.messageId)));
    }
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const { duckdbEngine } = await import('../../local/adapters/duckdb.ts');
    const { runDailyJob } = await import('../../lambdas/core/analytics/daily.ts');
    const instance = await DuckDBInstance.create(':memory:');
    try {
      const engine = await duckdbEngine(await instance.connect(), join(dir, 'lake'));
      const raw = (
        await engine.run(
          "SELECT count(DISTINCT message_id)::INT AS messages, count(*)::INT AS rows FROM readings WHERE metric = 'temp'",
        )
      ).rows[0];
      expect(raw?.messages).toBe(100); // nothing lost
      await runDailyJob(day, { engine, lake, bucket: 'b' });
      const curated = (
        await engine.run("SELECT count(*)::INT AS rows FROM curated_readings WHERE metric = 'temp'")
      ).rows[0];
      expect(curated?.rows).toBe(100); // each reading once after compaction
      const daily = (await engine.run("SELECT sum(count)::INT AS n FROM daily_metrics WHERE metric = 'temp'"))
        .rows[0];
      expect(daily?.n).toBe(100);
    } finally {
      instance.closeSync();
    }
  });
  // A crash: the invocation stops at a write and never answers; SQS hands the whole batch
  // out again after the visibility timeout. Writes before the crash stay done.
  it.each([
    ['after the Timestream write, before the S3 writes', 'timeseries', 1],
    ['after the raw S3 write, before the readings write', 'lake', 1],
    ['after the readings write, before the answer to SQS', 'lake', 2],
  ] as const)(
    'with a crash %s: each reading once in the lake and in the time series',
    async (_, sink, nth) => {
      const dir = await mkdtemp(join(tmpdir(), 'faults-crash-'));
      const lake = folderStore(dir);
      const timeseries = new MemoryTimeSeries();
      const config = validateRuntimeConfig({});
      const now = Date.now();
      const batch = Array.from({ length: 30 }, (_, i) =>
        mqttMessage(`m${i}`, { $ts: now - 60_000 + i, $seq: i, temp: i }, `dt/thermo/d-${i % 3}`, now),
      );
      // The nth write of the chosen sink happens, then the process is gone: that call and
      // every later one never settle.
      let calls = 0;
      let crashed!: () => void;
      const crash = new Promise<'crashed'>((resolve) => {
        crashed = () => resolve('crashed');
      });
      const never = new Promise<never>(() => undefined);
      const dying = <T extends object>(target: T, method: keyof T, counts: boolean): T =>
        ({
          ...target,
          maxRecordsPerWrite: (target as { maxRecordsPerWrite?: number }).maxRecordsPerWrite,
          [method]: async (...args: unknown[]) => {
            if (calls >= nth) return never;
            await (target[method] as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            if (counts && ++calls === nth) {
              crashed();
              return never;
            }
            return [];
          },
        }) as T;
      const first = writeBatch(
        await decodeMessages(
          batch,
          ingestOf(config, () => now),
        ),
        {
          lake: dying(lake, 'put', sink === 'lake'),
          timeseries: dying(timeseries, 'write', sink === 'timeseries'),
        },
      );
      expect(await Promise.race([first, crash])).toBe('crashed');
      // Redelivered whole, to a fresh invocation.
      const failures = await writeBatch(
        await decodeMessages(
          batch,
          ingestOf(config, () => now),
        ),
        { lake, timeseries },
      );
      expect(failures.size).toBe(0);

      const { gunzipSync } = await import('node:zlib');
      const keys = await lake.list('readings/');
      const rows = (
        await Promise.all(
          keys.map(async (k) =>
            gunzipSync(await lake.get(k))
              .toString()
              .trim()
              .split('\n'),
          ),
        )
      )
        .flat()
        .map((line) => JSON.parse(line) as { message_id: string; metric: string });
      const temps = rows.filter((r) => r.metric === 'temp').map((r) => r.message_id);
      expect(temps.sort()).toEqual(batch.map((m) => m.messageId).sort()); // every message once
      // The time series got the batch once or twice; each record is the same, which Timestream stores once.
      const records = timeseries.calls.flat().map((r) => JSON.stringify(r));
      expect(new Set(records).size).toBe(30);
      expect((await lake.list('raw/')).length).toBe(1); // the raw object of the redelivery replaced the first
    },
  );
});
