/**
 * The device estate in motion: after a batch is stored, each device's record is
 * updated once (not once per reading) with its readings applied and its alerts
 * evaluated; a scheduled check finds devices gone silent. Alerts are published before
 * the record is written, so none is ever lost (a conflict or a crash in between can
 * send one twice; never zero times).
 */

import type { RuntimeConfig } from '../config.ts';
import { own } from '../ids.ts';
import type { EstateReading } from '../reading.ts';
import {
  type AlertEvent,
  type AlertRule,
  applyReadings,
  checkOffline,
  type DeviceRecord,
  type Severity,
  signalOffline,
} from './alerts.ts';
import type { EstatePage, EstateQuery, EstateTally, TallyQuery } from './registry-query.ts';

/** The device registry: DynamoDB, or a DuckDB table locally. */
export interface DeviceRegistry {
  /**
   * The records of these devices. `consistent: false` may answer a record a moment old
   * (DynamoDB's eventually consistent read, half the read units): fine wherever a write
   * follows with `expectedVersion`, which then fails and reads again.
   */
  get(
    deviceIds: readonly string[],
    options?: { readonly consistent?: boolean },
  ): Promise<Map<string, DeviceRecord>>;
  /**
   * Writes the record if the stored one still has `expectedVersion` (0: none stored);
   * resolves false when another writer came first.
   */
  put(record: DeviceRecord, expectedVersion: number): Promise<boolean>;
  /** Every record: what the estate's own passes read (the offline check). */
  list(): Promise<DeviceRecord[]>;
  /**
   * A page of the devices a query keeps, in its order, filtered where the records are
   * (SQL, DynamoDB conditions and indexes), never the whole estate in one answer.
   */
  query(query: EstateQuery): Promise<EstatePage>;
  /** The caller's devices by status and their open alerts (`GET /v1/estate`). */
  tally(query: TallyQuery): Promise<EstateTally>;
}

/** Where alerts go: SNS, or the console and a webhook locally. */
export interface AlertPublisher {
  publish(events: readonly AlertEvent[]): Promise<void>;
}

export interface EstateDeps {
  readonly registry: DeviceRegistry;
  readonly publisher: AlertPublisher;
  readonly config: Pick<RuntimeConfig, 'alertRules' | 'offline' | 'deviceTypes'>;
}

const ATTEMPTS = 5;

/** A network's word that a device went silent, at `at` (Sigfox's communication-loss error). */
export interface OfflineNotice {
  readonly deviceId: string;
  readonly at: number;
}

/**
 * Applies stored readings to their devices' records, one write per device, then the
 * offline notices of the batch (after the readings: a reading newer than a notice
 * wins). Resolves with the devices whose update failed (their messages are retried)
 * and the events sent.
 */
export async function updateEstate(
  readings: readonly EstateReading[],
  deps: EstateDeps,
  offline: readonly OfflineNotice[] = [],
): Promise<{ failed: Map<string, Error>; events: AlertEvent[] }> {
  const byDevice = new Map<string, EstateReading[]>();
  for (const reading of readings) {
    const list = byDevice.get(reading.deviceId);
    if (list) list.push(reading);
    else byDevice.set(reading.deviceId, [reading]);
  }
  const notices = new Map<string, number>();
  for (const notice of offline) {
    notices.set(notice.deviceId, Math.max(notices.get(notice.deviceId) ?? 0, notice.at));
    if (!byDevice.has(notice.deviceId)) byDevice.set(notice.deviceId, []);
  }
  const failed = new Map<string, Error>();
  const events: AlertEvent[] = [];
  if (byDevice.size === 0) return { failed, events };
  let records: Map<string, DeviceRecord>;
  try {
    // A stale record only costs a failed conditional write and a consistent read again.
    records = await deps.registry.get([...byDevice.keys()], { consistent: false });
  } catch (error) {
    for (const id of byDevice.keys()) failed.set(id, error as Error);
    return { failed, events };
  }
  await Promise.all(
    [...byDevice].map(async ([deviceId, deviceReadings]) => {
      let current = records.get(deviceId);
      try {
        for (let attempt = 1; ; attempt++) {
          const applied =
            deviceReadings.length > 0
              ? applyReadings(current, deviceReadings, deps.config.alertRules)
              : current && { record: current, events: [] };
          // An offline notice for a device never seen: nothing to go offline.
          if (!applied) return;
          let { record } = applied;
          const raised = [...applied.events];
          const at = notices.get(deviceId);
          if (at !== undefined) {
            const signalled = signalOffline(record, at, deps.config.offline.severity);
            record = signalled.record;
            if (signalled.event) raised.push(signalled.event);
          }
          // Nothing new (a retried batch, late data only): no write.
          if (current && raised.length === 0 && JSON.stringify(record) === JSON.stringify(current)) return;
          if (raised.length > 0) await deps.publisher.publish(raised);
          events.push(...raised);
          const version = current?.version ?? 0;
          if (await deps.registry.put({ ...record, version: version + 1 }, version)) return;
          if (attempt === ATTEMPTS)
            throw new Error(`device ${deviceId}: registry kept changing under ${ATTEMPTS} attempts`);
          // Someone else wrote this device meanwhile: apply ours on top of theirs.
          current = (await deps.registry.get([deviceId])).get(deviceId);
        }
      } catch (error) {
        failed.set(deviceId, error as Error);
      }
    }),
  );
  return { failed, events };
}

/** The offline timeout of a device: its type's, else the default; none means never offline. */
export function offlineTimeout(config: EstateDeps['config'], deviceType: string): number | undefined {
  return own(config.deviceTypes, deviceType)?.offlineAfterMs ?? config.offline.afterMs;
}

/**
 * The scheduled offline check: raises an offline alert for each device silent longer
 * than its timeout (once; the next reading clears it). Returns the events sent. `lagMs`:
 * how far the registry's last seen may be behind arrival (on AWS the ingest and estate
 * windows), added to every timeout so that a record late by that much is not offline.
 */
export async function detectOffline(deps: EstateDeps, now: number, lagMs = 0): Promise<AlertEvent[]> {
  const events: AlertEvent[] = [];
  for (const record of await deps.registry.list()) {
    const timeout = offlineTimeout(deps.config, record.deviceType);
    const { record: next, event } = checkOffline(
      record,
      now,
      timeout === undefined ? undefined : timeout + lagMs,
      deps.config.offline.severity,
    );
    if (!event) continue;
    await deps.publisher.publish([event]);
    events.push(event);
    // A device that reported meanwhile wrote a newer version: the next check looks again.
    await deps.registry.put({ ...next, version: record.version + 1 }, record.version);
  }
  return events;
}

/** The JSON body of an alert message (SNS Message, webhook body). */
export function alertBody(event: AlertEvent): Record<string, unknown> {
  return {
    deviceId: event.deviceId,
    deviceType: event.deviceType,
    rule: event.rule,
    state: event.state,
    severity: event.severity,
    time: new Date(event.time).toISOString(),
    ...(event.metric === undefined
      ? { lastSeen: typeof event.value === 'number' ? new Date(event.value).toISOString() : undefined }
      : {
          metric: event.metric,
          value: event.value,
          comparison: event.comparison,
          threshold: event.threshold,
        }),
  };
}

export type { AlertEvent, AlertRule, DeviceRecord, Severity };
