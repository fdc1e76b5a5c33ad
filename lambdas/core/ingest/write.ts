/**
 * Writing a decoded batch, and the rules that make a retry safe. SQS delivers a
 * message at least once and the ingest function fails only the messages that could
 * not be stored (a partial batch response), so every write must tolerate being done
 * again:
 *
 * 1. Timestream first: identical records are idempotent there.
 * 2. `raw/` and `quarantine/` next: object keys are derived from the ids of the
 *    messages they hold, so a redelivered batch overwrites its own objects.
 * 3. The device registry and alerts (or, on AWS, the estate queue that updates them):
 *    applying the same readings again changes nothing.
 * 4. `readings/` last. A message that failed any step above is left out of the later
 *    ones and retried whole, so its readings reach the lake exactly once.
 *
 * Within a batch, the same device and reading key is stored once; across batches,
 * readings of networks that resend are claimed once (`claims.ts`).
 */
import type { EstateSink } from '../estate/delta.ts';
import { quarantineKey, rawKey, readingsKey } from '../lake/layout.ts';
import { lakeTimestamp } from '../lake/tables.ts';
import { type Reading, toNdjsonRows } from '../reading.ts';
import { asError, claimReadings } from './claims.ts';
import type { IngestContext } from './decode.ts';
import { chunk, writeObjects } from './lake-objects.ts';
import {
  type IngestLog,
  type IngestMetrics,
  NO_LOG,
  NO_METRICS,
  type ObjectStore,
  type ReadingClaims,
  type TimeSeriesSink,
} from './ports.ts';
import type { MessageOutcome, QuarantineRecord } from './records.ts';

/** The sinks a decoded batch is written to. */
export interface WriteDeps {
  readonly lake: ObjectStore;
  /** Absent when Timestream is switched off. */
  readonly timeseries?: TimeSeriesSink;
  /**
   * Device registry and alerts: updated once per device per batch (`applyNow`), or the
   * readings queued for the estate function (`queueDeltas`); none when absent.
   */
  readonly estate?: EstateSink;
  /** Duplicate suppression across batches for networks that resend (Sigfox, The Things Stack). */
  readonly claims?: ReadingClaims;
  readonly metrics?: IngestMetrics;
  readonly log?: IngestLog;
  /** Write `raw/` objects (the default); re-decoding, which reads them, turns this off. */
  readonly writeRaw?: boolean;
  /**
   * Runs the batch's writes when the sinks are free: the local runtime's DuckDB
   * connection is shared with offline checks. Decoding happens before, outside it.
   */
  readonly writeTurn?: <T>(write: () => Promise<T>) => Promise<T>;
}

/** Everything one batch needs: its decoding and its sinks. */
export interface IngestDeps extends IngestContext, WriteDeps {}

/** Failures by message id: these messages must be retried; every other one is done. */
export type BatchFailures = Map<string, Error>;

/**
 * Writes a batch of decoded messages to the sinks and says which messages failed.
 * Duplicates (same device and reading key) are stored once.
 */
export async function writeBatch(
  outcomes: readonly MessageOutcome[],
  deps: WriteDeps,
): Promise<BatchFailures> {
  const metrics = deps.metrics ?? NO_METRICS;
  const failures: BatchFailures = new Map();
  const fail = (messageIds: Iterable<string>, error: Error) => {
    for (const id of messageIds) if (!failures.has(id)) failures.set(id, error);
  };
  const alive = (messageId: string) => !failures.has(messageId);
  for (const outcome of outcomes) if (outcome.error) fail([outcome.messageId], outcome.error);

  const seen = new Set<string>();
  const readings: Reading[] = [];
  let duplicates = 0;
  for (const outcome of outcomes) {
    for (const reading of outcome.readings) {
      const id = `${reading.deviceId}\u0000${reading.key}`;
      if (seen.has(id)) {
        duplicates++;
        continue;
      }
      seen.add(id);
      readings.push(reading);
    }
  }
  if (deps.claims) {
    const { kept, dropped } = await claimReadings(readings, deps.claims, fail);
    duplicates += dropped;
    readings.splice(0, readings.length, ...kept);
  }
  const extraQuarantine = await writeTimeseries(readings, deps, fail);

  const started = performance.now();
  const quarantine = [
    ...outcomes.flatMap((o) => o.quarantine.map((q) => ({ q, at: o.receivedAt }))),
    ...extraQuarantine,
  ];
  const rows = readings.filter((r) => alive(r.messageId));
  await Promise.all([
    writeObjects(
      deps.lake,
      outcomes.flatMap(({ raw, messageId, receivedAt }) =>
        raw && alive(messageId) && deps.writeRaw !== false
          ? [
              {
                messageId,
                keyFor: (id: string) => rawKey(raw.source, receivedAt, id),
                lines: [JSON.stringify(raw)],
              },
            ]
          : [],
      ),
      fail,
    ),
    writeObjects(
      deps.lake,
      quarantine
        .filter(({ q }) => alive(q.message_id))
        .map(({ q, at }) => ({
          messageId: q.message_id,
          keyFor: (id: string) => quarantineKey(at, id),
          lines: [JSON.stringify(q)],
        })),
      fail,
    ),
  ]);
  if (deps.estate) {
    // Before readings/: a device whose update could not be made (or queued) fails its
    // messages, which are then retried whole. Applying the same readings again changes nothing.
    const pending = rows.filter((r) => alive(r.messageId));
    // The network's offline signals (Sigfox's communication-loss error), beside the readings.
    const offline = outcomes.flatMap((o) => (o.offline && alive(o.messageId) ? [o.offline] : []));
    const failed = await deps.estate.apply(pending, offline);
    for (const [deviceId, error] of failed) {
      fail(new Set(pending.filter((r) => r.deviceId === deviceId).map((r) => r.messageId)), error);
      fail(new Set(offline.filter((o) => o.deviceId === deviceId).map((o) => o.messageId)), error);
    }
  }
  // readings/ last: a message that failed anything above is retried whole, so its
  // readings reach the lake exactly once.
  await writeObjects(
    deps.lake,
    rows
      .filter((r) => alive(r.messageId))
      .map((r) => ({
        messageId: r.messageId,
        keyFor: (id: string) => readingsKey(r.time, id),
        lines: toNdjsonRows(r),
      })),
    fail,
  );
  metrics.latency('lake', performance.now() - started);

  const stored = rows.filter((r) => alive(r.messageId));
  const quarantined = quarantine.filter(({ q }) => alive(q.message_id));
  const log = deps.log ?? NO_LOG;
  for (const { q } of quarantined) log.quarantined(q);
  for (const [messageId, error] of failures) log.retrying(messageId, error);
  metrics.count('messages', outcomes.length);
  metrics.count('accepted', stored.length);
  metrics.count('quarantined', quarantined.length);
  metrics.count('duplicates', duplicates);
  return failures;
}

/**
 * Timestream first: identical records are idempotent there, so a retried message
 * writes nothing new. A record refused for good (not a throttle) becomes a quarantine
 * record of its reading; a failed call fails the messages of its chunk.
 */
async function writeTimeseries(
  readings: readonly Reading[],
  deps: WriteDeps,
  fail: (ids: Iterable<string>, error: Error) => void,
): Promise<{ q: QuarantineRecord; at: number }[]> {
  const extraQuarantine: { q: QuarantineRecord; at: number }[] = [];
  const sink = deps.timeseries;
  if (!sink || readings.length === 0) return extraQuarantine;

  const started = performance.now();
  const chunks = chunk(readings, sink.maxRecordsPerWrite);
  await Promise.all(
    chunks.map(async (part) => {
      try {
        const rejected = await sink.write(part);
        for (const { index, reason } of rejected) {
          const reading = part[index];
          if (!reading) continue;
          extraQuarantine.push({
            at: reading.receivedAt,
            q: {
              message_id: reading.messageId,
              received_at: lakeTimestamp(reading.receivedAt),
              source: reading.source,
              topic: '',
              device_id: reading.deviceId,
              device_type: reading.deviceType,
              reason_code: 'timestream_rejected',
              reason: `Timestream rejected the record: ${reason}`,
              payload: Buffer.from(JSON.stringify(reading.metrics)).toString('base64'),
            },
          });
        }
      } catch (error) {
        fail(new Set(part.map((r) => r.messageId)), asError(error));
      }
    }),
  );
  (deps.metrics ?? NO_METRICS).latency('timeseries', performance.now() - started);
  return extraQuarantine;
}
