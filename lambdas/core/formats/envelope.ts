/**
 * What travels on the ingest queue: the bytes that arrived, untouched, and how they
 * arrived. The IoT rule writes MQTT envelopes (its SQL selects exactly these fields);
 * the HTTP handler writes HTTP ones. The ingest path reads both.
 */
import type { Source } from '../lake/layout.ts';

export interface Envelope {
  /** Where it came from; absent in MQTT envelopes written by the IoT rule. */
  readonly source?: Source;
  /** The payload bytes, base64. */
  readonly payload: string;
  /** MQTT topic, or the HTTP route path. */
  readonly topic: string;
  /** Arrival time, epoch milliseconds. */
  readonly receivedAt: number;
  /** MQTT client id. */
  readonly clientId?: string;
  /** MQTT: the certificate id the device authenticated with. */
  readonly principal?: string;
  /** HTTP: the API Gateway request id. */
  readonly requestId?: string;
}

export function sourceOf(envelope: Envelope): Source {
  return envelope.source ?? 'mqtt';
}
