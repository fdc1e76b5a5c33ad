import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { QueueMessage } from '../../lambdas/core/ingest/queue-message.ts';
import { LocalQueue, type LocalQueueOptions } from '../../local/adapters/queue.ts';

async function queue(options: Partial<LocalQueueOptions> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'queue-'));
  return new LocalQueue({
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
});
