import { randomUUID } from 'node:crypto';
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { QueueMessage } from '../../lambdas/core/ingest/queue-message.ts';

/**
 * The local stand-in for the ingest queue, with the SQS semantics the ingest Lambda
 * relies on: messages are delivered in batches (up to `batchSize`, waiting at most
 * `batchWindowMs` to fill one), a consumer reports which messages of a batch failed
 * (partial batch response), failed messages come back after `retryDelayMs` (the
 * visibility timeout), and after `maxReceiveCount` receives a message goes to the
 * dead-letter file instead: one JSON line with the message, its receive count and the
 * last error. Nothing is dropped silently.
 */
export interface LocalQueueOptions {
  readonly batchSize: number;
  readonly batchWindowMs: number;
  readonly maxReceiveCount: number;
  readonly retryDelayMs: number;
  /** Batches processed at once (the event source's maximum concurrency). */
  readonly maxConcurrency: number;
  /** NDJSON file that receives dead letters. */
  readonly deadLetterFile: string;
}

/** Consumes one batch; resolves with the ids of the messages to retry (SQS `batchItemFailures`). */
export type BatchConsumer = (batch: readonly QueueMessage[]) => Promise<ReadonlyMap<string, Error>>;

export interface QueueStats {
  readonly sent: number;
  /** Messages a consumer finished with (stored or quarantined). */
  readonly done: number;
  readonly retried: number;
  readonly deadLettered: number;
  /** Waiting, in flight or waiting for a retry. */
  readonly pending: number;
}

interface Entry {
  readonly message: QueueMessage;
  receiveCount: number;
}

export class LocalQueue {
  private readonly ready: Entry[] = [];
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly waitingRetry = new Set<Entry>();
  private inFlight = 0;
  private windowTimer: NodeJS.Timeout | undefined;
  private consumer: BatchConsumer | undefined;
  private flushing = false;
  private idleWaiters: (() => void)[] = [];
  private counts = { sent: 0, done: 0, retried: 0, deadLettered: 0 };

  constructor(private readonly options: LocalQueueOptions) {}

  get deadLetterFile(): string {
    return this.options.deadLetterFile;
  }

  /** Queues a message body; resolves with its message id. */
  async send(body: string): Promise<string> {
    const messageId = randomUUID();
    this.counts.sent++;
    this.ready.push({ message: { messageId, body }, receiveCount: 0 });
    this.schedule();
    return messageId;
  }

  /** Starts delivering batches to `consumer`. */
  consume(consumer: BatchConsumer): void {
    this.consumer = consumer;
    this.schedule();
  }

  stats(): QueueStats {
    return { ...this.counts, pending: this.ready.length + this.inFlight + this.waitingRetry.size };
  }

  /**
   * Delivers everything now, retries included (without their delay), and resolves
   * once every message is done or dead-lettered: what Ctrl-C runs before exit.
   */
  async drain(): Promise<void> {
    this.flushing = true;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    for (const entry of this.waitingRetry) this.ready.push(entry);
    this.waitingRetry.clear();
    this.schedule();
    await this.idle();
  }

  /** Resolves when nothing is waiting, in flight or waiting for a retry. */
  idle(): Promise<void> {
    if (this.stats().pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (!this.consumer) return;
    while (this.ready.length > 0 && this.inFlight < this.options.maxConcurrency) {
      const full = this.ready.length >= this.options.batchSize;
      if (!full && !this.flushing && this.options.batchWindowMs > 0) {
        // Wait for the batch to fill, as the event source's batching window does.
        this.windowTimer ??= setTimeout(() => {
          this.windowTimer = undefined;
          this.deliver();
          this.schedule();
        }, this.options.batchWindowMs);
        return;
      }
      this.deliver();
    }
  }

  private deliver(): void {
    if (!this.consumer || this.ready.length === 0 || this.inFlight >= this.options.maxConcurrency) return;
    if (this.windowTimer) {
      clearTimeout(this.windowTimer);
      this.windowTimer = undefined;
    }
    const entries = this.ready.splice(0, this.options.batchSize);
    for (const entry of entries) entry.receiveCount++;
    this.inFlight += entries.length;
    const consumer = this.consumer;
    void (async () => {
      let failures: ReadonlyMap<string, Error>;
      try {
        failures = await consumer(entries.map((e) => e.message));
      } catch (error) {
        // A consumer that throws fails its whole batch, as a Lambda error does.
        const reason = error instanceof Error ? error : new Error(String(error));
        failures = new Map(entries.map((e) => [e.message.messageId, reason]));
      }
      await this.settle(entries, failures);
      this.inFlight -= entries.length;
      this.schedule();
      this.notifyIdle();
    })();
  }

  private async settle(entries: readonly Entry[], failures: ReadonlyMap<string, Error>): Promise<void> {
    const dead: string[] = [];
    for (const entry of entries) {
      const error = failures.get(entry.message.messageId);
      if (!error) {
        this.counts.done++;
      } else if (entry.receiveCount >= this.options.maxReceiveCount) {
        this.counts.deadLettered++;
        dead.push(
          JSON.stringify({
            messageId: entry.message.messageId,
            receiveCount: entry.receiveCount,
            error: error.message,
            deadLetteredAt: new Date().toISOString(),
            body: entry.message.body,
          }),
        );
      } else {
        this.counts.retried++;
        this.retryLater(entry);
      }
    }
    if (dead.length > 0) {
      await mkdir(dirname(this.options.deadLetterFile), { recursive: true });
      await appendFile(this.options.deadLetterFile, `${dead.join('\n')}\n`);
    }
  }

  private retryLater(entry: Entry): void {
    if (this.flushing) {
      this.ready.push(entry);
      return;
    }
    this.waitingRetry.add(entry);
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      this.waitingRetry.delete(entry);
      this.ready.push(entry);
      this.schedule();
    }, this.options.retryDelayMs);
    this.retryTimers.add(timer);
  }

  private notifyIdle(): void {
    if (this.stats().pending > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
