import { randomUUID } from 'node:crypto';
import type { QueueMessage } from '../../lambdas/core/ingest/queue-message.ts';
import {
  appendWhole,
  isDiskFull,
  type Journal,
  type JournalFs,
  type JournalOpenReport,
  nodeJournalFs,
  openJournal,
} from './journal.ts';

/**
 * The local stand-in for the ingest queue, with the SQS semantics the ingest Lambda
 * relies on: messages are delivered in batches (up to `batchSize`, waiting at most
 * `batchWindowMs` to fill one), a consumer reports which messages of a batch failed
 * (partial batch response), failed messages come back after `retryDelayMs` (the
 * visibility timeout), and after `maxReceiveCount` receives a message goes to the
 * dead-letter file instead: one JSON line with the message, its receive count and the
 * last error. Nothing is dropped silently.
 *
 * Durable (`durable: true`, opened with {@link LocalQueue.open}; what the runtime uses):
 * `send()` resolves only once the message is in the journal (`<data>/journal/`, see
 * `journal.ts`), so whatever the runtime acknowledged survives a crash; a message is
 * settled in the journal once stored, quarantined or dead-lettered, and what was not
 * settled is delivered again by the next `open()`. When the journal cannot write (disk
 * full), `send()` rejects: the broker sends no PUBACK and HTTP answers 503.
 *
 * Batches are journalled too: the members of a batch are recorded (fdatasync'd,
 * group-committed with the puts) before the consumer sees it, and `open()` delivers the
 * unsettled members of each recorded batch together again, before anything else and
 * however `batchSize` changed, so the lake objects named after a batch's messages are
 * overwritten rather than written again under another name. Messages never batched are
 * batched afresh; a message retried after a partial failure gets a new record when it is
 * batched again. A batch whose record cannot be written is not delivered: it waits
 * `diskFullRetryMs` (its receive not counted), and on the way out stays in the journal.
 *
 * A full disk is not the message's fault: a batch the consumer failed with ENOSPC or
 * EDQUOT comes back after `diskFullRetryMs` without counting the receive, and dead letters
 * that cannot be written stay queued and are written later.
 */
export interface LocalQueueOptions {
  readonly batchSize: number;
  readonly batchWindowMs: number;
  readonly maxReceiveCount: number;
  readonly retryDelayMs: number;
  /** Batches processed at once (the event source's maximum concurrency). */
  readonly maxConcurrency: number;
  /** NDJSON file that receives dead letters, each write whole lines or nothing. */
  readonly deadLetterFile: string;
  /**
   * Journal every message before `send()` resolves, and deliver again on the next
   * {@link LocalQueue.open} what was not settled. Needs `journalDir` and `LocalQueue.open()`.
   * The runtime turns it on; `false` keeps messages in memory only (benchmarks compare).
   *
   * @default false
   */
  readonly durable?: boolean;
  /** The journal's folder (`<data>/journal`); required when `durable`. */
  readonly journalDir?: string;
  /**
   * A new journal segment starts at this size.
   *
   * @default 64 MiB
   */
  readonly segmentBytes?: number;
  /**
   * Delay before messages that failed for a full disk (consumer writes, dead letters) are tried again.
   *
   * @default 1000
   */
  readonly diskFullRetryMs?: number;
  /**
   * File-system calls of the journal and the dead-letter file (fault injection).
   *
   * @default node:fs
   */
  readonly fs?: JournalFs;
  /** Where a full disk, its end, dead letters that wait and a replay are said (once each); silent when absent. */
  readonly log?: (line: string) => void;
}

/** Consumes one batch; resolves with the ids of the messages to retry (SQS `batchItemFailures`). */
export type BatchConsumer = (batch: readonly QueueMessage[]) => Promise<ReadonlyMap<string, Error>>;

export interface QueueStats {
  /** Messages accepted by `send()` (journalled first when durable). */
  readonly sent: number;
  /** Messages from the journal delivered again at open: not settled before the last stop. */
  readonly replayed: number;
  /** Of those, the ones delivered again in the batches they were last delivered in. */
  readonly replayedInBatches: number;
  /** Messages a consumer finished with (stored or quarantined). */
  readonly done: number;
  /** Deliveries that failed and wait for another (disk-full ones included, their receive not counted). */
  readonly retried: number;
  readonly deadLettered: number;
  /** Waiting, in flight, waiting for a retry, or dead letters waiting for their write. */
  readonly pending: number;
  /** Messages in the journal not yet settled (0 when not durable). */
  readonly journalled: number;
  /** True when `send()` journals (the runtime's queue). */
  readonly durable: boolean;
  /** True while the journal cannot write: `send()` rejects until it can. */
  readonly failing: boolean;
}

/** Full batches recorded ahead at most while the consumer is busy. */
const RECORD_AHEAD = 4;

interface Entry {
  readonly message: QueueMessage;
  receiveCount: number;
  lastError?: string;
}

export class LocalQueue {
  private readonly ready: Entry[] = [];
  /**
   * Batches whose records are on disk, delivered as they are, before `ready`: from the
   * journal at open, or recorded ahead while the consumer was busy.
   */
  private readonly recorded: Entry[][] = [];
  /** Batches recorded ahead, their records on their way, and their messages. */
  private recording = { batches: 0, messages: 0 };
  /** Set while batches wait because their record could not be written. */
  private batchHold: NodeJS.Timeout | undefined;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly waitingRetry = new Set<Entry>();
  private readonly waitingDead: Entry[] = [];
  /** Dead letters being written again (counted as pending meanwhile). */
  private deadWriting = 0;
  private deadTimer: NodeJS.Timeout | undefined;
  private deadFailing = false;
  private inFlight = 0;
  private windowTimer: NodeJS.Timeout | undefined;
  private consumer: BatchConsumer | undefined;
  private flushing = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private counts = { sent: 0, replayed: 0, replayedInBatches: 0, done: 0, retried: 0, deadLettered: 0 };
  private leftNoted = false;
  private left = 0;
  private readonly fs: JournalFs;
  /** What opening the journal found (absent when not durable). */
  opened: JournalOpenReport | undefined;

  /**
   * A queue in memory; a durable one is made by {@link LocalQueue.open}, which opens the
   * journal and passes it here.
   */
  constructor(
    private readonly options: LocalQueueOptions,
    private readonly journal?: Journal,
  ) {
    if (options.durable && !journal)
      throw new Error(
        'a durable LocalQueue journals its messages: make it with await LocalQueue.open(options)',
      );
    this.fs = options.fs ?? nodeJournalFs;
  }

  /**
   * Makes a queue; when `durable`, opens the journal in `journalDir` first and queues its
   * unsettled messages for delivery (rejects with `JournalDamageError` on a damaged journal).
   */
  static async open(options: LocalQueueOptions): Promise<LocalQueue> {
    if (!options.durable) return new LocalQueue(options);
    if (!options.journalDir) throw new Error('LocalQueueOptions.journalDir is required when durable is true');
    const log = options.log;
    const { journal, unsettled, batches, report } = await openJournal({
      dir: options.journalDir,
      segmentBytes: options.segmentBytes,
      fs: options.fs,
      log,
    });
    const queue = new LocalQueue(options, journal);
    queue.opened = report;
    if (report.truncated)
      log?.(
        `queue journal: cut ${report.truncated.bytes} byte(s) off the end of ${report.truncated.file} (from byte ${report.truncated.offset}): a write interrupted by a crash, never acknowledged`,
      );
    const entries = new Map<string, Entry>();
    for (const put of unsettled) {
      const entry = { message: { messageId: put.id, body: put.body }, receiveCount: 0 };
      entries.set(put.id, entry);
      if (put.batch === undefined) queue.ready.push(entry);
    }
    // Delivered before: the same members as when the crash came, whatever batchSize is now.
    for (const batch of batches) {
      const members = batch.ids.map((id) => entries.get(id)).filter((e): e is Entry => e !== undefined);
      if (members.length > 0) queue.recorded.push(members);
      queue.counts.replayedInBatches += members.length;
    }
    queue.counts.replayed = unsettled.length;
    if (unsettled.length > 0)
      log?.(
        `queue journal: delivering again ${unsettled.length} message(s) not settled before the last stop` +
          (report.batched > 0
            ? ` (${report.batched} in the ${report.batches} batch(es) they were delivered in)`
            : ''),
      );
    return queue;
  }

  get deadLetterFile(): string {
    return this.options.deadLetterFile;
  }

  /** Queues a message body; resolves with its message id once it is queued (journalled, when durable). */
  async send(body: string): Promise<string> {
    const messageId = randomUUID();
    await this.journal?.put(messageId, body);
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
    return {
      ...this.counts,
      pending:
        this.ready.length +
        this.recorded.reduce((n, batch) => n + batch.length, 0) +
        this.recording.messages +
        this.inFlight +
        this.waitingRetry.size +
        this.waitingDead.length +
        this.deadWriting,
      journalled: this.journal?.stats().unsettled ?? 0,
      durable: this.journal !== undefined,
      failing: this.journal?.failing ?? false,
    };
  }

  /**
   * Delivers everything now, retries included (without their delay), and resolves
   * once every message is done or dead-lettered: what Ctrl-C runs before exit. A message
   * that cannot be stored for a full disk stays in the journal for the next start (when
   * not durable, its receives are counted as any failure's).
   */
  async drain(): Promise<void> {
    this.flushing = true;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    for (const entry of this.waitingRetry) this.ready.push(entry);
    this.waitingRetry.clear();
    clearTimeout(this.deadTimer);
    this.deadTimer = undefined;
    clearTimeout(this.batchHold);
    this.batchHold = undefined;
    await this.deadLetterAgain();
    this.schedule();
    await this.idle();
  }

  /** Closes the journal (after {@link drain}): settles are written, settled segments deleted. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.deadTimer);
    clearTimeout(this.batchHold);
    this.batchHold = undefined;
    await this.journal?.close();
  }

  /** Resolves when nothing is waiting, in flight or waiting for a retry. */
  idle(): Promise<void> {
    if (this.stats().pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (!this.consumer) return;
    // Recorded batches go as they are, without waiting for a window (nor for a record).
    while (this.recorded.length > 0 && this.inFlight < this.options.maxConcurrency) this.deliver(true);
    if (this.batchHold) return;
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
    this.recordAhead();
  }

  /**
   * While every slot is busy and full batches wait, up to {@link RECORD_AHEAD} of them are
   * recorded meanwhile (their records share a group write), so that no sync is waited for
   * between two batches when there is a backlog.
   */
  private recordAhead(): void {
    const journal = this.journal;
    if (!journal || this.inFlight < this.options.maxConcurrency) return;
    while (
      !this.batchHold &&
      this.ready.length >= this.options.batchSize &&
      this.recorded.length + this.recording.batches < RECORD_AHEAD
    ) {
      const entries = this.ready.splice(0, this.options.batchSize);
      this.recording.batches++;
      this.recording.messages += entries.length;
      const done = () => {
        this.recording.batches--;
        this.recording.messages -= entries.length;
      };
      journal.batch(entries.map((e) => e.message.messageId)).then(
        () => {
          done();
          this.recorded.push(entries);
          this.schedule();
        },
        (error: unknown) => {
          done();
          this.unrecorded(entries, error);
        },
      );
    }
  }

  /** Hands a batch to the consumer: the next recorded one as it is, or the next of `ready` once recorded. */
  private deliver(recorded = false): void {
    if (!this.consumer || this.inFlight >= this.options.maxConcurrency) return;
    if (recorded ? this.recorded.length === 0 : this.batchHold || this.ready.length === 0) return;
    if (!recorded && this.windowTimer) {
      clearTimeout(this.windowTimer);
      this.windowTimer = undefined;
    }
    const entries = recorded
      ? (this.recorded.shift() as Entry[])
      : this.ready.splice(0, this.options.batchSize);
    for (const entry of entries) entry.receiveCount++;
    this.inFlight += entries.length;
    const consumer = this.consumer;
    const journal = this.journal;
    void (async () => {
      // Its members on disk first: should it be written and not settled, it comes back as it is.
      if (journal && !recorded) {
        try {
          await journal.batch(entries.map((e) => e.message.messageId));
        } catch (error) {
          for (const entry of entries) entry.receiveCount--;
          this.inFlight -= entries.length;
          this.unrecorded(entries, error);
          return;
        }
      }
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

  /**
   * A batch whose record could not be written is not delivered (its receive not counted):
   * it waits `diskFullRetryMs` at the head of the queue, or, on the way out, stays in the
   * journal for the next start.
   */
  private unrecorded(entries: readonly Entry[], error: unknown): void {
    if (this.flushing || this.closed) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      this.leaveInJournal(entries, `the queue journal cannot write (${reason})`);
    } else {
      this.ready.unshift(...entries);
      this.batchHold ??= setTimeout(() => {
        this.batchHold = undefined;
        this.schedule();
      }, this.options.diskFullRetryMs ?? 1000);
      this.batchHold.unref();
    }
    this.notifyIdle();
  }

  private async settle(entries: readonly Entry[], failures: ReadonlyMap<string, Error>): Promise<void> {
    const dead: Entry[] = [];
    const settled: string[] = [];
    const left: Entry[] = [];
    for (const entry of entries) {
      const error = failures.get(entry.message.messageId);
      if (!error) {
        this.counts.done++;
        settled.push(entry.message.messageId);
      } else if (isDiskFull(error) && !(this.flushing && !this.journal)) {
        // Not the message's fault: its receive is not counted.
        entry.receiveCount--;
        if (this.flushing) left.push(entry);
        else {
          this.counts.retried++;
          this.retryLater(entry, this.options.diskFullRetryMs ?? 1000);
        }
      } else if (entry.receiveCount >= this.options.maxReceiveCount) {
        entry.lastError = error.message;
        dead.push(entry);
      } else {
        this.counts.retried++;
        this.retryLater(entry, this.options.retryDelayMs);
      }
    }
    if (settled.length > 0) this.journal?.settle(settled);
    if (left.length > 0) this.leaveInJournal(left, 'the disk is full');
    if (dead.length > 0) await this.deadLetter(dead);
  }

  /** Writes dead letters whole; when that fails they wait (not received again) and are written later. */
  private async deadLetter(entries: Entry[]): Promise<void> {
    const lines = entries.map((entry) =>
      JSON.stringify({
        messageId: entry.message.messageId,
        receiveCount: entry.receiveCount,
        error: entry.lastError,
        deadLetteredAt: new Date().toISOString(),
        body: entry.message.body,
      }),
    );
    try {
      await appendWhole(this.options.deadLetterFile, `${lines.join('\n')}\n`, this.fs);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      if (this.flushing) {
        if (this.journal) this.leaveInJournal(entries, `the dead-letter file cannot be written (${reason})`);
        else
          this.options.log?.(
            `lost ${entries.length} dead letter(s): ${this.options.deadLetterFile} cannot be written (${reason}) and the queue is not durable`,
          );
        return;
      }
      if (!this.deadFailing)
        this.options.log?.(
          `cannot write dead letters to ${this.options.deadLetterFile} (${reason}): keeping them, trying again every ${this.options.diskFullRetryMs ?? 1000} ms`,
        );
      this.deadFailing = true;
      this.waitingDead.push(...entries);
      this.deadTimer ??= setTimeout(() => {
        this.deadTimer = undefined;
        void this.deadLetterAgain();
      }, this.options.diskFullRetryMs ?? 1000);
      return;
    }
    if (this.deadFailing) {
      this.deadFailing = false;
      this.options.log?.(`dead letters written again to ${this.options.deadLetterFile}`);
    }
    this.counts.deadLettered += entries.length;
    this.journal?.settle(entries.map((e) => e.message.messageId));
  }

  private async deadLetterAgain(): Promise<void> {
    const entries = this.waitingDead.splice(0);
    if (entries.length === 0) return;
    this.deadWriting += entries.length;
    await this.deadLetter(entries);
    this.deadWriting -= entries.length;
    this.notifyIdle();
  }

  /** On the way out, messages that cannot be finished stay unsettled in the journal: the next start delivers them. */
  private leaveInJournal(entries: readonly Entry[], why: string): void {
    this.left += entries.length;
    if (!this.leftNoted)
      this.options.log?.(
        `stopping while ${why}: messages that cannot be finished stay in the queue journal for the next start (${this.left} so far)`,
      );
    this.leftNoted = true;
  }

  private retryLater(entry: Entry, delayMs: number): void {
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
    }, delayMs);
    this.retryTimers.add(timer);
  }

  private notifyIdle(): void {
    if (this.stats().pending > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
