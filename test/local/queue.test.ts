import { writeFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { QueueMessage } from '../../lambdas/core/ingest/queue-message.ts';
import { type JournalFs, nodeJournalFs } from '../../local/adapters/journal.ts';
import { LocalQueue, type LocalQueueOptions } from '../../local/adapters/queue.ts';

const diskFull = () =>
  Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });

/**
 * The real file system, where writes to `file` fail while `full.on`, as on a full disk:
 * the first write of an append goes half through, the next one fails with ENOSPC.
 */
function fullFor(file: string) {
  const full = { on: false };
  const paths = new Map<number, string>();
  const fs: JournalFs = {
    ...nodeJournalFs,
    async open(path, flags) {
      const fd = await nodeJournalFs.open(path, flags);
      paths.set(fd, path);
      return fd;
    },
    async write(fd, buffer, offset, length, position) {
      if (!full.on || paths.get(fd) !== file)
        return nodeJournalFs.write(fd, buffer, offset, length, position);
      if (length > 1) return nodeJournalFs.write(fd, buffer, offset, Math.floor(length / 2), position);
      throw diskFull();
    },
  };
  return { fs, full };
}

async function queue(options: Partial<LocalQueueOptions> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'queue-'));
  return LocalQueue.open({
    batchSize: 10,
    batchWindowMs: 20,
    maxReceiveCount: 3,
    retryDelayMs: 5,
    maxConcurrency: 1,
    deadLetterFile: join(dir, 'dead.ndjson'),
    ...options,
  });
}

describe('local queue (the SQS semantics the ingest path relies on)', () => {
  it('delivers in batches of at most batchSize, filling them within the window', async () => {
    const q = await queue({ batchSize: 10, batchWindowMs: 50 });
    const sizes: number[] = [];
    q.consume(async (batch) => {
      sizes.push(batch.length);
      return new Map();
    });
    for (let i = 0; i < 25; i++) await q.send(`m${i}`);
    await q.idle();
    expect(sizes).toEqual([10, 10, 5]);
    expect(q.stats()).toMatchObject({ sent: 25, done: 25, pending: 0 });
  });

  it('redelivers only the failed messages of a batch (partial batch response)', async () => {
    const q = await queue();
    const seen: string[][] = [];
    let first = true;
    q.consume(async (batch) => {
      seen.push(batch.map((m) => m.body));
      const failures = new Map<string, Error>();
      if (first)
        for (const m of batch) if (m.body === 'b') failures.set(m.messageId, new Error('S3 said no'));
      first = false;
      return failures;
    });
    for (const body of ['a', 'b', 'c']) await q.send(body);
    await q.idle();
    expect(seen).toEqual([['a', 'b', 'c'], ['b']]);
    expect(q.stats()).toMatchObject({ done: 3, retried: 1, deadLettered: 0 });
  });

  it('moves a message to the dead-letter file after maxReceiveCount receives, with the error', async () => {
    const q = await queue({ maxReceiveCount: 3 });
    let receives = 0;
    q.consume(async (batch: readonly QueueMessage[]) => {
      receives++;
      return new Map(
        batch.filter((m) => m.body === 'doomed').map((m) => [m.messageId, new Error('disk full')]),
      );
    });
    await q.send('fine');
    const id = await q.send('doomed');
    await q.idle();
    expect(receives).toBe(3);
    const dead = (await readFile(q.deadLetterFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(dead).toEqual([
      expect.objectContaining({ messageId: id, body: 'doomed', receiveCount: 3, error: 'disk full' }),
    ]);
    expect(q.stats()).toMatchObject({ sent: 2, done: 1, deadLettered: 1, pending: 0 });
  });

  it('treats a consumer that throws as a failure of its whole batch', async () => {
    const q = await queue({ maxReceiveCount: 2 });
    let calls = 0;
    q.consume(async () => {
      calls++;
      if (calls === 1) throw new Error('crashed');
      return new Map();
    });
    await q.send('a');
    await q.send('b');
    await q.idle();
    expect(q.stats()).toMatchObject({ done: 2, retried: 2, deadLettered: 0 });
  });

  it('drain delivers at once what waits for the window or a retry', async () => {
    const q = await queue({ batchWindowMs: 60_000, retryDelayMs: 60_000 });
    const bodies: string[] = [];
    let failOnce = true;
    q.consume(async (batch) => {
      bodies.push(...batch.map((m) => m.body));
      const failures = new Map<string, Error>();
      if (failOnce && batch[0]) failures.set(batch[0].messageId, new Error('later'));
      failOnce = false;
      return failures;
    });
    await q.send('x');
    await q.send('y');
    const started = Date.now();
    await q.drain();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(bodies).toEqual(['x', 'y', 'x']);
    expect(q.stats()).toMatchObject({ done: 2, pending: 0 });
  });

  it('does not count receives that failed for a full disk: they come back after diskFullRetryMs, never dead-lettered for it', async () => {
    const q = await queue({ maxReceiveCount: 2, diskFullRetryMs: 5 });
    let receives = 0;
    q.consume(async (batch) => {
      receives++;
      // The lake folder's disk is full for five deliveries, then has room.
      return receives <= 5 ? new Map(batch.map((m) => [m.messageId, diskFull()])) : new Map();
    });
    await q.send('reading');
    await q.idle();
    expect(receives).toBe(6);
    expect(q.stats()).toMatchObject({ done: 1, retried: 5, deadLettered: 0, pending: 0 });
  });

  it('delivers no batch before its record is in the journal: while it cannot be written the batch waits (receive not counted), and on the way out stays journalled', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'queue-'));
    const journalDir = join(dir, 'journal');
    const { fs, full } = fullFor(join(journalDir, '00000001.log'));
    const lines: string[] = [];
    const durable = {
      maxReceiveCount: 1,
      diskFullRetryMs: 20,
      durable: true,
      journalDir,
      deadLetterFile: join(dir, 'dead.ndjson'),
      fs,
      log: (line: string) => lines.push(line),
    };
    const q = await queue(durable);
    const id = await q.send('a');
    full.on = true;
    const seen: string[][] = [];
    q.consume(async (batch) => {
      seen.push(batch.map((m) => m.messageId));
      return new Map();
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    // Tried every 20 ms, never delivered, not counted as a receive (maxReceiveCount 1: not dead-lettered).
    expect(seen).toEqual([]);
    expect(q.stats()).toMatchObject({ pending: 1, failing: true, deadLettered: 0 });
    full.on = false;
    await q.idle();
    expect(seen).toEqual([[id]]);
    expect(q.stats()).toMatchObject({ done: 1, deadLettered: 0, pending: 0 });
    await q.close();

    // On the way out while it cannot be written: the message stays for the next start.
    const otherDir = join(dir, 'journal-2');
    const stuck = fullFor(join(otherDir, '00000001.log'));
    const last = await queue({ ...durable, journalDir: otherDir, fs: stuck.fs });
    const kept = await last.send('b');
    stuck.full.on = true;
    last.consume(async (batch) => {
      seen.push(batch.map((m) => m.messageId));
      return new Map();
    });
    await last.drain();
    expect(seen).toEqual([[id]]);
    expect(lines).toContain(
      'stopping while the queue journal cannot write (ENOSPC): messages that cannot be finished stay in the queue journal for the next start (1 so far)',
    );
    await last.close();
    const after = await queue({ ...durable, journalDir: otherDir, fs: nodeJournalFs });
    after.consume(async (batch) => {
      seen.push(batch.map((m) => m.messageId));
      return new Map();
    });
    await after.idle();
    expect(seen).toEqual([[id], [kept]]);
    await after.close();
  });

  it('records a batch before delivering it, and with a backlog records the next ones while the consumer works', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'queue-'));
    const q = await queue({
      batchSize: 5,
      durable: true,
      journalDir: join(dir, 'journal'),
      deadLetterFile: join(dir, 'dead.ndjson'),
    });
    const journal = (q as unknown as { journal: { stats(): { batches: number } } }).journal;
    for (let i = 0; i < 20; i++) await q.send(`m${i}`);
    const recorded: { entering: number; leaving: number }[] = [];
    q.consume(async () => {
      const entering = journal.stats().batches;
      // Busy until the backlog's records are on disk (or 2 s).
      for (const end = Date.now() + 2000; journal.stats().batches < 4 && Date.now() < end; )
        await new Promise((resolve) => setTimeout(resolve, 5));
      recorded.push({ entering, leaving: journal.stats().batches });
      return new Map();
    });
    await q.idle();
    // Each batch's record is on disk when it is delivered; the next three (in one group
    // write) before the consumer is done with the first.
    expect(recorded).toEqual([
      { entering: 1, leaving: 4 },
      { entering: 4, leaving: 4 },
      { entering: 4, leaving: 4 },
      { entering: 4, leaving: 4 },
    ]);
    expect(journal.stats()).toMatchObject({ batches: 4 });
    await q.close();
  });

  it('writes dead letters whole or not at all: on ENOSPC the file is unchanged, nothing crashes, and they are written once space returns', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'queue-'));
    const deadLetterFile = join(dir, 'dead.ndjson');
    const earlier = `${JSON.stringify({ messageId: 'earlier', body: 'old' })}\n`;
    writeFileSync(deadLetterFile, earlier);
    const { fs, full } = fullFor(deadLetterFile);
    const lines: string[] = [];
    const q = await queue({
      maxReceiveCount: 2,
      diskFullRetryMs: 300,
      deadLetterFile,
      durable: true,
      journalDir: join(dir, 'journal'),
      fs,
      log: (line) => lines.push(line),
    });
    let receives = 0;
    q.consume(async (batch) => {
      receives++;
      return new Map(batch.map((m) => [m.messageId, new Error('bad payload')]));
    });
    full.on = true;
    const id = await q.send('doomed');
    await vi.waitFor(() => expect(lines.some((l) => l.startsWith('cannot write dead letters'))).toBe(true));
    // Read between two attempts (each writes halves until the disk refuses, then cuts the file back).
    expect(await readFile(deadLetterFile, 'utf8')).toBe(earlier);
    // Tried again meanwhile; the message waits, not received again.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(receives).toBe(2);
    expect(q.stats()).toMatchObject({ deadLettered: 0, pending: 1, journalled: 1 });
    expect(lines.filter((l) => l.startsWith('cannot write dead letters'))).toHaveLength(1);

    full.on = false;
    await q.idle();
    const dead = (await readFile(deadLetterFile, 'utf8')).trim().split('\n');
    expect(dead[0]).toBe(earlier.trim());
    expect(dead.slice(1).map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ messageId: id, body: 'doomed', receiveCount: 2, error: 'bad payload' }),
    ]);
    expect(receives).toBe(2);
    expect(q.stats()).toMatchObject({ deadLettered: 1, pending: 0 });
    await vi.waitFor(() => expect(q.stats().journalled).toBe(0));
    expect(lines).toContain(`dead letters written again to ${deadLetterFile}`);
    await q.close();
  });
});
