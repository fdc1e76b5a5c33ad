/**
 * Alert history: every alert event the estate publishes (raised and cleared, threshold
 * and offline) is also kept in the lake, table `alerts`. A wrapper around the
 * publisher, so the ingest path, the offline check and the local runtime all keep
 * history the same way, whatever sends the alert (SNS, the console, a webhook).
 *
 * Delivery is at-least-once for both, as the estate already is for SNS: the send and
 * the lake write are both tried; if either fails, `publish` rejects after both have
 * been tried, the estate leaves the device's record unwritten, and the retry publishes
 * the same events again. The send may then repeat (as it may on a registry conflict);
 * the lake does not: each event is its own object named after the event (device, rule,
 * state, time), so writing it again overwrites it.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { ObjectStore } from '../ingest/ports.ts';
import { alertKey } from '../lake/layout.ts';
import { lakeTimestamp } from '../lake/tables.ts';
import { type AlertEvent, alertSubject, OFFLINE_RULE } from './alerts.ts';
import type { AlertPublisher } from './update.ts';

/** A line of the `alerts` table. */
export interface AlertRow {
  readonly alert_id: string;
  readonly time: string;
  readonly device_id: string;
  readonly device_type: string;
  readonly rule: string;
  readonly state: 'raised' | 'cleared';
  readonly severity: string;
  readonly metric?: string;
  readonly value?: number;
  readonly comparison?: string;
  readonly threshold?: number;
  readonly last_seen?: string;
  readonly message: string;
}

/** The identity of an event: the same device, rule, state and time give the same id (32 hex digits). */
export function alertId(event: AlertEvent): string {
  return createHash('sha256')
    .update(JSON.stringify([event.deviceId, event.rule, event.state, event.time]))
    .digest('hex')
    .slice(0, 32);
}

/** An event as its `alerts` line: the lake's time form, absent columns left out (read as null). */
export function alertRow(event: AlertEvent): AlertRow {
  const offline = event.rule === OFFLINE_RULE && event.metric === undefined;
  return {
    alert_id: alertId(event),
    time: lakeTimestamp(event.time),
    device_id: event.deviceId,
    device_type: event.deviceType,
    rule: event.rule,
    state: event.state,
    severity: event.severity,
    ...(event.metric === undefined ? {} : { metric: event.metric }),
    ...(!offline && typeof event.value === 'number' ? { value: event.value } : {}),
    ...(event.comparison === undefined ? {} : { comparison: event.comparison }),
    ...(event.threshold === undefined ? {} : { threshold: event.threshold }),
    ...(offline && event.state === 'raised' && typeof event.value === 'number'
      ? { last_seen: lakeTimestamp(event.value) }
      : {}),
    message: alertSubject(event),
  };
}

/** Why a publish failed: which of the two parts, with their errors. */
export class AlertDeliveryError extends Error {}

/**
 * The publisher that also keeps history: `inner` sends (SNS, the console, a webhook),
 * and each event is written to `lake` under `alerts/dt=<day>/<alert id>.ndjson.gz`.
 * Both are tried every time (a failed lake write never holds back the send); if
 * either fails, the publish rejects so the estate retries it.
 */
export function withAlertHistory(inner: AlertPublisher, lake: ObjectStore): AlertPublisher {
  return {
    async publish(events) {
      if (events.length === 0) return;
      const rows = events.map(alertRow);
      const [sent, stored] = await Promise.allSettled([
        inner.publish(events),
        Promise.all(
          events.map((event, i) =>
            lake.put(
              alertKey(event.time, rows[i]?.alert_id ?? alertId(event)),
              gzipSync(`${JSON.stringify(rows[i])}\n`),
              'application/x-ndjson',
              'gzip',
            ),
          ),
        ),
      ]);
      const failures = [
        ...(sent.status === 'rejected' ? [`send: ${(sent.reason as Error).message}`] : []),
        ...(stored.status === 'rejected' ? [`alert history: ${(stored.reason as Error).message}`] : []),
      ];
      if (failures.length > 0) throw new AlertDeliveryError(`alerts not delivered (${failures.join('; ')})`);
    },
  };
}
