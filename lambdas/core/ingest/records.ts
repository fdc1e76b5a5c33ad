/**
 * What one message becomes before anything is written: its raw record (the bytes as
 * they arrived, for re-decoding), its readings, and quarantine records with reasons.
 */
import type { Envelope } from '../formats/format.ts';
import { topicOf } from '../formats/format.ts';
import type { Source } from '../formats/index.ts';
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
  readonly device_id: string | null;
  readonly device_type: string | null;
  readonly payload: string;
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
): MessageOutcome {
  const topic = topicOf(envelope);
  return {
    messageId,
    receivedAt: envelope.receivedAt,
    raw: {
      message_id: messageId,
      received_at: lakeTimestamp(envelope.receivedAt),
      source,
      topic,
      client_id: envelope.clientId ?? null,
      device_id: deviceId ?? null,
      device_type: deviceType ?? null,
      payload: envelope.payload,
    },
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
