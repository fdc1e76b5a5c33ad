/**
 * The ports the ingest core writes through. Each has an AWS adapter
 * (`lambdas/adapters/aws/`) and a local one (`lambdas/adapters/local/`).
 */
import type { TimeSeriesRecord } from './reading.ts';

/** The lake: S3, or a folder with the same keys. */
export interface ObjectStore {
  put(key: string, body: Buffer, contentType: string, contentEncoding?: string): Promise<void>;
}

/** A record the time-series store refused for good (not a throttle), with its words. */
export interface RejectedRecord {
  /** Index in the array passed to `write`. */
  readonly index: number;
  readonly reason: string;
}

/** The time-series store: Timestream, or a DuckDB table. */
export interface TimeSeriesSink {
  /** Largest number of records one `write` may carry (Timestream: 100). */
  readonly maxRecordsPerWrite: number;
  /**
   * Writes records; resolves with the ones refused for good. Throws when the write
   * should be retried later (throttled past its own retries, service error).
   */
  write(records: readonly TimeSeriesRecord[]): Promise<RejectedRecord[]>;
}

/** Counters and timings the ingest path reports (EMF metrics in Lambda). */
export interface IngestMetrics {
  count(name: 'accepted' | 'quarantined' | 'duplicates' | 'messages', value: number): void;
  latency(sink: 'lake' | 'timeseries', milliseconds: number): void;
}

export const NO_METRICS: IngestMetrics = { count: () => undefined, latency: () => undefined };
