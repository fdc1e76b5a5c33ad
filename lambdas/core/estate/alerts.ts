/**
 * Device estate and alerts without AWS: the registry record of each device, threshold
 * rules (comparison, duration, hysteresis, severity, scope), offline detection and
 * sequence-number gaps. An alert is raised once when its condition starts and cleared
 * once when it ends; the state that makes this so lives in the device's record.
 */

import type { Source } from '../formats/index.ts';
import { formatOf } from '../formats/index.ts';
import { own, setOwn } from '../ids.ts';
import type { EstateReading, Reading } from '../reading.ts';
import { mergeAttributes } from './attributes.ts';

export type Comparison = '>' | '>=' | '<' | '<=' | '==' | '!=';
export type Severity = 'info' | 'warning' | 'critical';

export interface AlertRule {
  /** Unique; part of the alert's identity and the `rule` message attribute. */
  readonly name: string;
  /** A metric name, or `lost_messages` (sequence numbers missing before a reading). */
  readonly metric: string;
  readonly comparison: Comparison;
  readonly threshold: number;
  /** The condition must hold this long (ms) before the alert is raised. */
  readonly forMs: number;
  /** How far back past the threshold a value must go to clear (no flapping at the edge). */
  readonly hysteresis: number;
  readonly severity: Severity;
  /** Only devices of this type, and/or with this attribute value. */
  readonly scope?: {
    readonly deviceType?: string;
    readonly attribute?: { readonly key: string; readonly value: string };
  };
}

/** The name offline alerts go by. */
export const OFFLINE_RULE = 'offline';
/** The derived metric of sequence gaps. */
export const LOST_MESSAGES = 'lost_messages';

export interface AlertState {
  readonly state: 'pending' | 'raised';
  /** When the condition started (pending) or the alert was raised. */
  readonly since: number;
  readonly value?: number | string | boolean;
}

/** What the registry keeps per device. */
export interface DeviceRecord {
  readonly deviceId: string;
  readonly deviceType: string;
  /** The way in the device was first seen on (`mqtt`, `sigfox`...): others may not write as it. */
  readonly source?: Source;
  readonly attributes: Readonly<Record<string, string>>;
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly lastValues: Readonly<Record<string, number | string | boolean>>;
  readonly lastSeq?: number;
  readonly lostMessages: number;
  /** Open alerts and conditions waiting for their duration, by rule name. */
  readonly alerts: Readonly<Record<string, AlertState>>;
  /** Optimistic locking: the registry writes only if nobody wrote since this was read. */
  readonly version: number;
}

export interface AlertEvent {
  readonly deviceId: string;
  readonly deviceType: string;
  readonly rule: string;
  readonly severity: Severity;
  readonly state: 'raised' | 'cleared';
  readonly metric?: string;
  readonly value?: number | string | boolean;
  readonly comparison?: Comparison;
  readonly threshold?: number;
  /** When the condition was met (or ended): reading time, or the check time for offline. */
  readonly time: number;
}

/** A human subject line (SNS allows 100 characters). */
export function alertSubject(event: AlertEvent): string {
  const verb = event.state === 'raised' ? 'RAISED' : 'cleared';
  const what =
    event.rule === OFFLINE_RULE
      ? event.state === 'raised'
        ? 'is offline'
        : 'is back online'
      : `${event.metric} ${event.value} (${event.comparison} ${event.threshold})`;
  return `[${event.severity}] ${verb}: ${event.rule}: ${event.deviceId} ${what}`.slice(0, 100);
}

/**
 * Messages lost between two sequence numbers. Where the way in says its counter wraps
 * (Sigfox at 4096) a lower number is a wrap; elsewhere it is a restart (a LoRaWAN rejoin).
 */
export function lostBetween(previous: number | undefined, seq: number, source: Reading['source']): number {
  if (previous === undefined) return 0;
  const wraps = formatOf(source)?.sequenceWrapsAt;
  if (wraps !== undefined) return Math.max(0, ((seq - previous + wraps) % wraps) - 1);
  return seq > previous ? seq - previous - 1 : 0;
}

function compare(value: number, comparison: Comparison, threshold: number): boolean {
  switch (comparison) {
    case '>':
      return value > threshold;
    case '>=':
      return value >= threshold;
    case '<':
      return value < threshold;
    case '<=':
      return value <= threshold;
    case '==':
      return value === threshold;
    case '!=':
      return value !== threshold;
  }
}

/** The condition with the hysteresis band: a raised alert clears only once the value is back past it. */
function stillRaised(value: number, rule: AlertRule): boolean {
  const h = rule.hysteresis;
  switch (rule.comparison) {
    case '>':
    case '>=':
      return compare(value, rule.comparison, rule.threshold - h);
    case '<':
    case '<=':
      return compare(value, rule.comparison, rule.threshold + h);
    default:
      return compare(value, rule.comparison, rule.threshold);
  }
}

function inScope(rule: AlertRule, record: Pick<DeviceRecord, 'deviceType' | 'attributes'>): boolean {
  const scope = rule.scope;
  if (!scope) return true;
  if (scope.deviceType !== undefined && scope.deviceType !== record.deviceType) return false;
  if (scope.attribute && own(record.attributes, scope.attribute.key) !== scope.attribute.value) return false;
  return true;
}

/**
 * One rule, one value: the next state and the event, if any. Pure; the table of cases
 * (raise, hold, clear, hysteresis, duration) is the unit test.
 */
export function evaluateRule(
  rule: AlertRule,
  state: AlertState | undefined,
  value: number,
  time: number,
): { state: AlertState | undefined; event?: 'raised' | 'cleared' } {
  if (state?.state === 'raised') {
    return stillRaised(value, rule) ? { state } : { state: undefined, event: 'cleared' };
  }
  if (!compare(value, rule.comparison, rule.threshold)) return { state: undefined };
  const since = state?.state === 'pending' ? state.since : time;
  if (time - since >= rule.forMs) return { state: { state: 'raised', since: time, value }, event: 'raised' };
  return { state: { state: 'pending', since, value } };
}

/**
 * A device's readings of one batch applied to its record: last seen and values,
 * sequence gaps, rules evaluated in time order, and the offline alert cleared by the
 * first reading. Returns the new record and the events to publish.
 */
export function applyReadings(
  previous: DeviceRecord | undefined,
  readings: readonly EstateReading[],
  rules: readonly AlertRule[],
): { record: DeviceRecord; events: AlertEvent[] } {
  const sorted = [...readings].sort((a, b) => a.time - b.time);
  const first = sorted[0];
  if (!first) throw new Error('applyReadings needs at least one reading');
  let record: DeviceRecord = previous ?? {
    deviceId: first.deviceId,
    deviceType: first.deviceType,
    source: first.source,
    attributes: {},
    firstSeen: first.time,
    lastSeen: first.time,
    lastValues: {},
    lostMessages: 0,
    alerts: {},
    version: 0,
  };
  const events: AlertEvent[] = [];
  const alerts: Record<string, AlertState> = { ...record.alerts };
  const lastValues: Record<string, number | string | boolean> = { ...record.lastValues };
  let { lastSeq, lostMessages, lastSeen, firstSeen, attributes } = record;
  const offline = alerts[OFFLINE_RULE];
  if (offline?.state === 'raised') {
    delete alerts[OFFLINE_RULE];
    events.push({
      deviceId: record.deviceId,
      deviceType: first.deviceType,
      rule: OFFLINE_RULE,
      severity: (offline.value as Severity | undefined) ?? 'warning',
      state: 'cleared',
      time: first.time,
    });
  }
  // Only readings newer than what the record has seen move it on: late data does not
  // rewind values or alert states, and a retried batch changes nothing the second time.
  const fresh = previous ? sorted.filter((r) => r.time > previous.lastSeen) : sorted;
  for (const reading of fresh) {
    // The network's tags as of this reading (bounded, merged): its own rules see them.
    attributes = mergeAttributes(attributes, reading.attributes);
    const seq = reading.seq;
    const lost = seq === undefined ? 0 : lostBetween(lastSeq, seq, reading.source);
    if (seq !== undefined) lastSeq = seq;
    lostMessages += lost;
    const values: Record<string, number | string | boolean> = { ...reading.metrics };
    if (seq !== undefined) values[LOST_MESSAGES] = lost;
    for (const rule of rules) {
      if (!inScope(rule, { deviceType: reading.deviceType, attributes })) continue;
      // Metric and rule names are plain names: `constructor` is found only when the reading has it.
      const value = own(values, rule.metric);
      if (typeof value !== 'number') continue;
      const next = evaluateRule(rule, own(alerts, rule.name), value, reading.time);
      if (next.state) setOwn(alerts, rule.name, next.state);
      else delete alerts[rule.name];
      if (next.event) {
        events.push({
          deviceId: reading.deviceId,
          deviceType: reading.deviceType,
          rule: rule.name,
          severity: rule.severity,
          state: next.event,
          metric: rule.metric,
          value,
          comparison: rule.comparison,
          threshold: rule.threshold,
          time: reading.time,
        });
      }
    }
    // Not Object.assign: it would take a metric named `__proto__` as the record's prototype.
    for (const [name, value] of Object.entries(reading.metrics)) setOwn(lastValues, name, value);
    lastSeen = Math.max(lastSeen, reading.time);
  }
  // A reading at the time last seen, with no sequence number, completes that message
  // (Sigfox's DATA_ADVANCED location and link quality, 30 s after it): its values join
  // the last ones; it is no message of its own, for rules or lost-message counting.
  if (previous) {
    for (const reading of sorted) {
      if (reading.time !== previous.lastSeen || reading.seq !== undefined) continue;
      for (const [name, value] of Object.entries(reading.metrics)) setOwn(lastValues, name, value);
    }
  }
  firstSeen = Math.min(firstSeen, first.time);
  const last = fresh[fresh.length - 1] ?? { deviceType: record.deviceType };
  record = {
    ...record,
    deviceType: last.deviceType,
    // Records older than sources take the way in of the first reading that finds them.
    source: record.source ?? first.source,
    attributes,
    firstSeen,
    lastSeen,
    lastValues,
    ...(lastSeq === undefined ? {} : { lastSeq }),
    lostMessages,
    alerts,
  };
  return { record, events };
}

/**
 * Offline detection at `now`: a device of a type with a timeout that has been silent
 * longer than it, and is not already offline, gets its offline alert raised.
 */
export function checkOffline(
  record: DeviceRecord,
  now: number,
  timeoutMs: number | undefined,
  severity: Severity,
): { record: DeviceRecord; event?: AlertEvent } {
  if (timeoutMs === undefined || record.alerts[OFFLINE_RULE]) return { record };
  if (now - record.lastSeen <= timeoutMs) return { record };
  return raiseOffline(record, now, severity);
}

/**
 * The network's word that a device went silent (Sigfox's communication-loss ERROR
 * callback), at `at`: its offline alert is raised as the scheduled check raises it, and
 * only once: not when it is offline already (whoever raised it), nor when the device
 * has been seen since. The next reading clears it, as it clears the scheduled check's.
 */
export function signalOffline(
  record: DeviceRecord,
  at: number,
  severity: Severity,
): { record: DeviceRecord; event?: AlertEvent } {
  if (record.alerts[OFFLINE_RULE] || record.lastSeen >= at) return { record };
  return raiseOffline(record, at, severity);
}

function raiseOffline(
  record: DeviceRecord,
  now: number,
  severity: Severity,
): { record: DeviceRecord; event: AlertEvent } {
  return {
    record: {
      ...record,
      alerts: { ...record.alerts, [OFFLINE_RULE]: { state: 'raised', since: now, value: severity } },
    },
    event: {
      deviceId: record.deviceId,
      deviceType: record.deviceType,
      rule: OFFLINE_RULE,
      severity,
      state: 'raised',
      time: now,
      value: record.lastSeen,
    },
  };
}
