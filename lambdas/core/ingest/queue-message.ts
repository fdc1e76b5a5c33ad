/**
 * The ingest queue's messages: an {@link Envelope} as JSON, written by the IoT rule
 * (its SQL selects exactly these fields), the HTTP edge, or re-decoding from the raw
 * archive. Read here, once, with what each field must be.
 */
import type { Envelope, Format, FormatRefusal, Params } from '../formats/format.ts';
import { readParams } from '../formats/format.ts';
import { formatOf } from '../formats/index.ts';

const NO_PARAMS: Params = {};

export interface QueueMessage {
  readonly messageId: string;
  readonly body: string;
}

/** The envelope of a queue message and the format of its source (absent means MQTT: the IoT rule writes none). */
export function readEnvelope(body: string): { envelope: Envelope; format: Format } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return { error: 'queue message is not a JSON envelope' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { error: 'envelope is not an object' };
  const e = value as Record<string, unknown>;
  if (typeof e.payload !== 'string') return { error: 'envelope has no base64 "payload"' };
  if (typeof e.topic !== 'string') return { error: 'envelope has no "topic"' };
  if (typeof e.receivedAt !== 'number' || !Number.isFinite(e.receivedAt))
    return { error: 'envelope has no numeric "receivedAt"' };
  const format = formatOf(typeof e.source === 'string' ? e.source : e.source === undefined ? 'mqtt' : '');
  if (!format) return { error: `envelope source ${JSON.stringify(e.source)} is unknown` };
  if (e.clientId !== undefined && typeof e.clientId !== 'string')
    return { error: 'envelope "clientId" is not a string' };
  if (e.contentType !== undefined && typeof e.contentType !== 'string')
    return { error: 'envelope "contentType" is not a string' };
  return { envelope: e as unknown as Envelope, format };
}

/**
 * The route and parameters of an HTTP envelope, checked with the edge's rules. Raw
 * records written before envelopes carried `params` keep them in the topic
 * (`/v1/sigfox?type=tracker`): they are read from there.
 */
export function routeOf(
  envelope: Envelope,
  format: Format,
): { path: string; params: Params } | FormatRefusal {
  if (!format.route) return { path: envelope.topic, params: NO_PARAMS };
  const mark = envelope.topic.indexOf('?');
  const path = mark < 0 ? envelope.topic : envelope.topic.slice(0, mark);
  const query = mark < 0 ? queryOf(envelope.params) : envelope.topic.slice(mark + 1);
  const params = readParams(query, format.route);
  return 'refused' in params ? params : { path, params };
}

function queryOf(params: unknown): string {
  if (typeof params !== 'object' || params === null) return '';
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (typeof value === 'string') query.set(key, value);
  return query.toString();
}
