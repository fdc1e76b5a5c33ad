/**
 * What one message becomes before anything is written: its raw record (the bytes as
 * they arrived, for re-decoding), its readings, and quarantine records with reasons.
 */
import type { Envelope, OfflineSignal } from '../formats/format.ts';
import { topicOf } from '../formats/format.ts';
import type { Source } from '../formats/index.ts';
import { DEVICE_ID_PATTERN } from '../ids.ts';
import { lakeTimestamp } from '../lake/tables.ts';
import type { Reading } from '../reading.ts';
import type { Rejection, RejectionCode } from '../readings/rejection.ts';

/** A row of the `raw` table. */
export interface RawRecord {
  readonly message_id: string;
  readonly received_at: string;
  readonly source: Source;
  /** The MQTT topic, or the HTTP route with its parameters (`/v1/sigfox?type=tracker`). */
  readonly topic: string;
  readonly client_id: string | null;
  /**
   * The authenticated device; else, for a body that names its devices (`$id` over HTTP),
   * the one device all its readings name (see {@link soleDevice}); else null.
   */
  readonly device_id: string | null;
  readonly device_type: string | null;
  readonly payload: string;
  /**
   * What could not be stored though the message was (fields the normalizer refused, a
   * format's or a decoder's warnings): a JSON array of strings, see {@link warningsColumn}.
   * Left out of the line when there are none, so it reads as null (as in raw
   * objects written before the column existed).
   */
  readonly warnings?: string;
}

/** Warnings kept word for word in a raw record; past them, counted in one more. */
export const MAX_RAW_WARNINGS = 20;
/** Characters of one warning kept in a raw record. */
export const MAX_RAW_WARNING_CHARS = 500;

/**
 * The `warnings` column: the warnings as a JSON array of strings, the first
 * {@link MAX_RAW_WARNINGS} (each cut at {@link MAX_RAW_WARNING_CHARS} characters), then
 * `"and 7 more warnings"`. Bounded, whatever a codec or a payload says.
 */
export function warningsColumn(warnings: readonly string[]): string {
  const kept = warnings
    .slice(0, MAX_RAW_WARNINGS)
    .map((w) =>
      typeof w !== 'string'
        ? String(w)
        : w.length > MAX_RAW_WARNING_CHARS
          ? `${w.slice(0, MAX_RAW_WARNING_CHARS)}…`
          : w,
    );
  if (warnings.length > MAX_RAW_WARNINGS)
    kept.push(`and ${warnings.length - MAX_RAW_WARNINGS} more warnings`);
  return JSON.stringify(kept);
}

/** A row of the `quarantine` table. */
export interface QuarantineRecord {
  readonly message_id: string;
  readonly received_at: string;
  readonly source: Source;
  readonly topic: string;
  readonly device_id: string | null;
  readonly device_type: string | null;
  readonly reason_code: RejectionCode;
  readonly reason: string;
  readonly payload: string;
}

/** What one message became, before anything is written. */
export interface MessageOutcome {
  readonly messageId: string;
  readonly receivedAt: number;
  readonly raw?: RawRecord;
  readonly readings: readonly Reading[];
  readonly quarantine: readonly QuarantineRecord[];
  /** Set when decoding itself broke (a bug): the message is retried, not stored. */
  readonly error?: Error;
  /** The network said the device went silent (Sigfox's communication-loss error): the estate raises its offline alert. */
  readonly offline?: DeviceOffline;
}

/** An offline signal, with the device and message it came in. */
export interface DeviceOffline extends OfflineSignal {
  readonly deviceId: string;
  readonly deviceType: string;
  readonly messageId: string;
}

/**
 * The one device a message whose body names its devices (HTTP JSON's `$id`) is from: the
 * device every reading names, when at least one reading was stored and every
 * quarantined one names the same device. Undefined for a body naming several devices,
 * or with a reading whose device could not be read (a missing or invalid `$id`), or
 * quarantined whole. The ids are the normalizer's, already checked against
 * {@link DEVICE_ID_PATTERN}; checked again here, so an unchecked id never reaches `raw`.
 */
export function soleDevice(
  readings: readonly Pick<Reading, 'deviceId' | 'deviceType'>[],
  rejections: readonly Pick<Rejection, 'deviceId'>[],
): { readonly deviceId: string; readonly deviceType: string } | undefined {
  const first = readings[0];
  if (first === undefined) return undefined;
  const { deviceId, deviceType } = first;
  for (const r of readings) if (r.deviceId !== deviceId || r.deviceType !== deviceType) return undefined;
  for (const r of rejections) if (r.deviceId !== deviceId) return undefined;
  return DEVICE_ID_PATTERN.test(deviceId) ? { deviceId, deviceType } : undefined;
}

/** The outcome of a message that reached a format: its raw record, its rejections, and its readings. */
export function outcomeOf(
  envelope: Envelope,
  source: Source,
  messageId: string,
  deviceId: string | undefined,
  deviceType: string | undefined,
  rejections: readonly Rejection[],
  readings: readonly Reading[] = [],
  warnings?: readonly string[],
): MessageOutcome {
  const topic = topicOf(envelope);
  const raw: RawRecord = {
    message_id: messageId,
    received_at: lakeTimestamp(envelope.receivedAt),
    source,
    topic,
    client_id: envelope.clientId ?? null,
    device_id: deviceId ?? null,
    device_type: deviceType ?? null,
    payload: envelope.payload,
  };
  return {
    messageId,
    receivedAt: envelope.receivedAt,
    raw: warnings !== undefined && warnings.length > 0 ? { ...raw, warnings: warningsColumn(warnings) } : raw,
    readings,
    quarantine: rejections.map((r) =>
      quarantineRecord(messageId, envelope.receivedAt, source, topic, deviceType, r),
    ),
  };
}

export function quarantineRecord(
  messageId: string,
  receivedAt: number,
  source: Source,
  topic: string,
  deviceType: string | undefined,
  rejection: Rejection,
): QuarantineRecord {
  return {
    message_id: messageId,
    received_at: lakeTimestamp(receivedAt),
    source,
    topic,
    device_id: rejection.deviceId ?? null,
    device_type: deviceType ?? null,
    reason_code: rejection.code,
    reason: rejection.reason,
    payload: rejection.payload.toString('base64'),
  };
}
