import {
  type _Record,
  RejectedRecordsException,
  ThrottlingException,
  type TimestreamWriteClient,
  WriteRecordsCommand,
} from '@aws-sdk/client-timestream-write';
import type { RejectedRecord, TimeSeriesSink } from '../../core/ingest/ports.ts';
import { TIME_SERIES_COMMON_ATTRIBUTES, toTimeSeriesRecord } from '../../core/reading.ts';

export interface TimestreamSinkOptions {
  /** Attempts for a throttled write, the first included. */
  readonly maxAttempts?: number;
  /** First backoff in ms; doubles per attempt, with full jitter. */
  readonly baseDelayMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * Timestream WriteRecords: at most 100 records a call (the service limit), rejected
 * records reported with Timestream's reason, throttling retried with exponential
 * backoff before giving the batch back to SQS.
 */
export function timestreamSink(
  client: TimestreamWriteClient,
  database: string,
  table: string,
  options: TimestreamSinkOptions = {},
): TimeSeriesSink {
  const maxAttempts = options.maxAttempts ?? 5;
  const baseDelayMs = options.baseDelayMs ?? 100;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  return {
    maxRecordsPerWrite: 100,
    async write(readings) {
      const records = readings.map(toTimeSeriesRecord) as _Record[];
      for (let attempt = 1; ; attempt++) {
        try {
          await client.send(
            new WriteRecordsCommand({
              DatabaseName: database,
              TableName: table,
              CommonAttributes: TIME_SERIES_COMMON_ATTRIBUTES,
              Records: records,
            }),
          );
          return [];
        } catch (error) {
          if (error instanceof RejectedRecordsException) return rejectedOf(error);
          if (error instanceof ThrottlingException && attempt < maxAttempts) {
            await sleep(Math.random() * baseDelayMs * 2 ** (attempt - 1));
            continue;
          }
          throw error;
        }
      }
    },
  };
}

/**
 * Timestream writes the records it accepts and names the rest. It accepts an identical
 * record twice without complaint (so redelivery is harmless); what it rejects is a
 * different value for the same device, time and measure, a time outside the memory
 * store window, or a limit broken: none of which a retry would fix.
 */
function rejectedOf(error: RejectedRecordsException): RejectedRecord[] {
  return (error.RejectedRecords ?? []).flatMap((r) =>
    r.RecordIndex === undefined ? [] : [{ index: r.RecordIndex, reason: r.Reason ?? 'no reason given' }],
  );
}
