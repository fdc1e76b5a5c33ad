/**
 * The ports the ingest core writes through. Each has an AWS adapter
 * (`lambdas/adapters/aws/`) and a local one (`lambdas/adapters/local/`).
 */
import type { Reading } from '../reading.ts';

/** The lake: S3, or a folder with the same keys. */
export interface ObjectStore {
  put(key: string, body: Buffer, contentType: string, contentEncoding?: string): Promise<void>;
}

/** The lake read back (re-decoding, compaction): S3 or the local folder. */
export interface LakeStore extends ObjectStore {
  /** Every key under a prefix, in no particular order. */
  list(prefix: string): Promise<string[]>;
  get(key: string): Promise<Buffer>;
  delete(key: string): Promise<void>;
}

/** A record the time-series store refused for good (not a throttle), with its words. */
export interface RejectedRecord {
  /** Index in the readings passed to `write`. */
  readonly index: number;
  readonly reason: string;
}

/** The time-series store: Timestream, or a DuckDB table. */
export interface TimeSeriesSink {
  /** Largest number of readings one `write` may carry (Timestream: 100 records). */
  readonly maxRecordsPerWrite: number;
  /**
   * Writes readings (one record each); resolves with the ones refused for good. Throws
   * when the write should be retried later (throttled past its own retries, service error).
   */
  write(readings: readonly Reading[]): Promise<RejectedRecord[]>;
}

/**
 * Which message stored a reading first, remembered across batches for a few days:
 * networks send the same uplink again (Sigfox retries a callback after 1, 2 and 4
 * minutes and reports one frame per base station; The Things Stack retries webhooks).
 */
export interface ReadingClaims {
  /**
   * Claims each key for its message. Resolves with the keys another message claimed
   * first (duplicates); a message's own earlier claim (an SQS retry) is not one.
   * Throws when the claims could not be checked (the messages are then retried).
   */
  claim(claims: readonly { readonly key: string; readonly messageId: string }[]): Promise<Set<string>>;
}

/** Counters and timings the ingest path reports (EMF metrics in Lambda). */
export interface IngestMetrics {
  count(name: 'accepted' | 'quarantined' | 'duplicates' | 'messages', value: number): void;
  latency(sink: 'lake' | 'timeseries', milliseconds: number): void;
}

/** What the ingest path tells its operator about single messages (structured logs in Lambda). */
export interface IngestLog {
  /** A message (or one reading of it) was quarantined: stored with the reason, not retried. */
  quarantined(record: {
    readonly message_id: string;
    readonly source: string;
    readonly device_id: string | null;
    readonly device_type: string | null;
    readonly reason_code: string;
    readonly reason: string;
  }): void;
  /** A message could not be stored and goes back to the queue for a retry. */
  retrying(messageId: string, error: Error): void;
}

export const NO_LOG: IngestLog = { quarantined: () => undefined, retrying: () => undefined };

export const NO_METRICS: IngestMetrics = { count: () => undefined, latency: () => undefined };
