/**
 * Why something was not stored. `code` is stable (analysts group quarantine by it);
 * `reason` says what to fix. Formats, decoders and the normalizer all reject in these
 * terms, so a quarantine record reads the same whichever step refused the message.
 */

export type RejectionCode =
  | 'invalid_envelope'
  | 'invalid_topic'
  | 'payload_too_large'
  | 'invalid_json'
  | 'invalid_shape'
  | 'invalid_device_id'
  | 'device_id_mismatch'
  | 'invalid_timestamp'
  | 'timestamp_in_future'
  | 'timestamp_too_old'
  | 'invalid_sequence'
  | 'invalid_metric'
  | 'too_many_metrics'
  | 'too_deep'
  /** No longer raised (prototype names are plain metric names); kept for older quarantine records. */
  | 'forbidden_key'
  | 'no_metrics'
  | 'decode_failed'
  | 'invalid_callback'
  | 'timestream_rejected';

/** A refusal without the bytes it concerns: what a format or a decoder says. */
export interface Refusal {
  readonly code: RejectionCode;
  readonly reason: string;
}

/** A refusal of some bytes: the element of an array, or the whole payload. */
export interface Rejection extends Refusal {
  readonly deviceId?: string;
  readonly payload: Buffer;
}

/** Thrown while one reading is read; caught per reading, so a bad element never takes its neighbours down. */
export class RejectError extends Error {
  constructor(
    readonly code: RejectionCode,
    message: string,
  ) {
    super(message);
  }
}
