/**
 * How the local queue makes an acknowledged message durable, measured on this machine:
 * `tsx bench/journal-mechanisms.ts [<ms per run>]`. For `concurrency` senders each
 * awaiting its own send in a loop (the broker and HTTP server have that many messages
 * waiting for their acknowledgement), messages a second and flushes per message of:
 *
 * - memory: `LocalQueue` with `durable: false` (what was there before: nothing on disk);
 * - journal: `LocalQueue` durable, the group-committed journal (one write + fdatasync per batch);
 * - fsync each: one write + fdatasync per message, one at a time;
 * - DuckDB batch: the waiting messages inserted into a DuckDB table in one transaction
 *   (a commit flushes DuckDB's WAL), batches formed the same way.
 *
 * Prints figures; asserts nothing.
 */
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { LocalQueue } from '../local/adapters/queue.ts';

const ms = Number(process.argv[2] ?? 2000);
const body = JSON.stringify({
  source: 'mqtt',
  topic: 'dt/thermo/dev-123',
  clientId: 'dev-123',
  payload: Buffer.from(JSON.stringify({ temp: 21.5, battery: 3.4, rssi: -71, seq: 12345 })).toString(
    'base64',
  ),
  receivedAt: Date.now(),
});

/** Runs `concurrency` loops of `send` for `ms`; returns messages a second. */
async function drive(
  send: () => Promise<unknown>,
  concurrency: number,
): Promise<{ rate: number; n: number }> {
  let n = 0;
  const stopAt = performance.now() + ms;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < stopAt) {
        await send();
        n++;
      }
    }),
  );
  return { rate: (n * 1000) / (performance.now() - start), n };
}

/** Batches what waits while a flush runs into the next flush (group commit around any `flush`). */
function grouped(flush: (items: string[]) => Promise<void>) {
  let waiting: { item: string; done: () => void; fail: (e: Error) => void }[] = [];
  let busy = false;
  let flushes = 0;
  const pump = async () => {
    busy = true;
    while (waiting.length > 0) {
      const batch = waiting;
      waiting = [];
      try {
        await flush(batch.map((w) => w.item));
        flushes++;
        for (const w of batch) w.done();
      } catch (error) {
        for (const w of batch) w.fail(error as Error);
      }
    }
    busy = false;
  };
  return {
    send: (item: string) =>
      new Promise<void>((done, fail) => {
        waiting.push({ item, done, fail });
        if (!busy) void pump();
      }),
    flushes: () => flushes,
  };
}

const options = {
  batchSize: 10,
  batchWindowMs: 0,
  maxReceiveCount: 3,
  retryDelayMs: 10,
  maxConcurrency: 1,
};
const rows: Record<string, string | number>[] = [];
for (const concurrency of [1, 16, 256]) {
  const dir = mkdtempSync(join(tmpdir(), 'journal-bench-'));
  try {
    const memory = new LocalQueue({ ...options, deadLetterFile: join(dir, 'dead.ndjson') });
    const m = await drive(() => memory.send(body), concurrency);
    rows.push({
      mechanism: 'memory (durable: false)',
      concurrency,
      'msgs/s': Math.round(m.rate),
      'syncs/msg': 0,
    });

    const durable = await LocalQueue.open({
      ...options,
      deadLetterFile: join(dir, 'dead.ndjson'),
      durable: true,
      journalDir: join(dir, 'journal'),
    });
    const journal = (durable as unknown as { journal: { stats(): { syncs: number } } }).journal;
    const j = await drive(() => durable.send(body), concurrency);
    rows.push({
      mechanism: 'journal, group commit',
      concurrency,
      'msgs/s': Math.round(j.rate),
      'syncs/msg': Number((journal.stats().syncs / j.n).toFixed(4)),
    });
    await durable.close();

    const fd = openSync(join(dir, 'each.log'), 'w');
    const each = await drive(async () => {
      writeSync(fd, body);
      fdatasyncSync(fd);
    }, concurrency);
    closeSync(fd);
    rows.push({
      mechanism: 'write + fdatasync each',
      concurrency,
      'msgs/s': Math.round(each.rate),
      'syncs/msg': 1,
    });

    const db = await DuckDBInstance.create(join(dir, 'queue.duckdb'));
    const connection = await db.connect();
    await connection.run('CREATE TABLE queue (id VARCHAR, queued_at BIGINT, body VARCHAR)');
    let id = 0;
    const duck = grouped(async (items) => {
      const appender = await connection.createAppender('queue');
      for (const item of items) {
        appender.appendVarchar(String(id++));
        appender.appendBigInt(BigInt(Date.now()));
        appender.appendVarchar(item);
        appender.endRow();
      }
      // An appender's flush commits a transaction: DuckDB writes and syncs its WAL.
      appender.closeSync();
    });
    const d = await drive(() => duck.send(body), concurrency);
    rows.push({
      mechanism: 'DuckDB appender per batch',
      concurrency,
      'msgs/s': Math.round(d.rate),
      'syncs/msg': Number((duck.flushes() / d.n).toFixed(4)),
    });
    connection.closeSync();
    db.closeSync();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
console.table(rows);
