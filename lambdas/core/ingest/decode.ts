/**
 * Decoding a batch of queue messages, each in three steps: its format reads it (who,
 * what type, what to decode, the network's time and sequence number), the payload is
 * decoded (JSON, the type's Sigfox grammar or codec, or data the network decoded),
 * and the normalizer turns the data into readings. Pure and total: any input, however
 * broken, comes back as readings and/or quarantine records, never as an exception.
 */
import type { RuntimeConfig } from '../config.ts';
import type { Decoded, Decoder, Decoders } from '../decoders/decoder.ts';
import { jsonDecoder } from '../decoders/json.ts';
import {
  type Envelope,
  type FormatContext,
  InboundMessage,
  isRefusal,
  type OfflineSignal,
  type Payload,
} from '../formats/format.ts';
import type { Source } from '../formats/index.ts';
import type { Rejection } from '../readings/rejection.ts';
import { type NormalizeContext, normalize } from './normalize.ts';
import { type QueueMessage, readEnvelope, routeOf } from './queue-message.ts';
import { type MessageOutcome, outcomeOf, quarantineRecord, soleDevice } from './records.ts';

/** What decoding needs: the config and its decoders, built once. */
export interface IngestContext {
  readonly config: RuntimeConfig;
  readonly decoders: Decoders;
  /** Clock for messages whose envelope cannot be read. */
  readonly now?: () => number;
}

/** A message its format has read, waiting for its payload's decode. */
interface Read {
  readonly messageId: string;
  /** The envelope, its topic the route's path and its parameters read. */
  readonly envelope: Envelope;
  readonly source: Source;
  /** The payload as it arrived: what a rejection keeps. */
  readonly bytes: Buffer;
  readonly payload: Payload;
  readonly context: NormalizeContext;
  /** What the format could not wholly give (its `Uplink.warnings`): kept with the raw record. */
  readonly warnings?: readonly string[];
  /** The network says the device went silent: for the estate, beside the message's readings. */
  readonly offline?: OfflineSignal;
}

/** Decodes one queue message. */
export function decodeMessage(message: QueueMessage, ingest: IngestContext): MessageOutcome {
  const read = readMessage(message, formatContext(ingest), ingest.now ?? Date.now);
  return 'readings' in read ? read : finish(read, undefined);
}

/**
 * Decodes a batch of queue messages, in order. Messages whose decoder takes many at
 * once (a codec) go to it together, one request per decoder and batch, and are decoded
 * on another thread while this one goes on serving.
 */
export async function decodeMessages(
  messages: readonly QueueMessage[],
  ingest: IngestContext,
): Promise<MessageOutcome[]> {
  const formats = formatContext(ingest);
  const now = ingest.now ?? Date.now;
  const reads = messages.map((message) => readMessage(message, formats, now));
  const groups = new Map<Decoder, number[]>();
  reads.forEach((read, index) => {
    if ('readings' in read || !('decoder' in read.payload) || !read.payload.decoder.decodeMany) return;
    const group = groups.get(read.payload.decoder);
    if (group) group.push(index);
    else groups.set(read.payload.decoder, [index]);
  });
  const decoded = new Map<number, Decoded>();
  await Promise.all(
    [...groups].map(async ([decoder, indexes]) => {
      const inputs = indexes.map((i) => {
        const read = reads[i] as Read;
        const payload = read.payload as Extract<Payload, { decoder: Decoder }>;
        return { bytes: payload.bytes, fPort: payload.fPort, receivedAt: read.context.receivedAt };
      });
      const results = await (decoder.decodeMany as NonNullable<Decoder['decodeMany']>)(inputs);
      results.forEach((result, k) => {
        decoded.set(indexes[k] as number, result);
      });
    }),
  );
  return reads.map((read, index) => ('readings' in read ? read : finish(read, decoded.get(index))));
}

function formatContext(ingest: IngestContext): FormatContext {
  return { config: ingest.config, decoders: ingest.decoders, json: jsonDecoder(ingest.config.validation) };
}

function readMessage(
  message: QueueMessage,
  formats: FormatContext,
  now: () => number,
): Read | MessageOutcome {
  const opened = readEnvelope(message.body);
  if ('error' in opened) {
    const receivedAt = now();
    const rejection: Rejection = {
      code: 'invalid_envelope',
      reason: opened.error,
      payload: Buffer.from(message.body, 'utf8'),
    };
    return {
      messageId: message.messageId,
      receivedAt,
      readings: [],
      quarantine: [quarantineRecord(message.messageId, receivedAt, 'mqtt', '', undefined, rejection)],
    };
  }
  const { envelope, format } = opened;
  const source = format.source as Source;
  const bytes = Buffer.from(envelope.payload, 'base64');
  const route = routeOf(envelope, format);
  if (isRefusal(route)) {
    return outcomeOf(envelope, source, message.messageId, undefined, undefined, [
      { code: route.code, reason: route.reason, payload: bytes },
    ]);
  }
  // MQTT envelopes are used as they are (the hot path); HTTP ones carry their route's parameters typed.
  const routed = format.route ? { ...envelope, topic: route.path, params: route.params } : envelope;
  const uplink = format.read(
    new InboundMessage(bytes, route.path, route.params, envelope.receivedAt, envelope.contentType),
    formats,
  );
  if (isRefusal(uplink)) {
    return outcomeOf(routed, source, message.messageId, undefined, undefined, [
      { code: uplink.code, reason: uplink.reason, payload: bytes },
    ]);
  }
  return {
    messageId: message.messageId,
    envelope: routed,
    source,
    bytes,
    payload: uplink.payload,
    ...(uplink.warnings !== undefined && uplink.warnings.length > 0 ? { warnings: uplink.warnings } : {}),
    ...(uplink.offline ? { offline: uplink.offline } : {}),
    context: {
      deviceId: uplink.deviceId,
      deviceType: uplink.deviceType,
      source,
      messageId: message.messageId,
      receivedAt: envelope.receivedAt,
      limits: formats.config.validation,
      time: uplink.time,
      seq: uplink.seq,
      metrics: uplink.metrics,
      attributes: uplink.attributes,
    },
  };
}

/** The readings of a message its format read: its payload decoded (or given), normalized. */
function finish(read: Read, predecoded: Decoded | undefined): MessageOutcome {
  const { payload, bytes, context } = read;
  let data: unknown;
  let warnings = read.warnings;
  if ('refused' in payload) return outcome(read, [rejection(read, payload.refused)], undefined, warnings);
  if ('kept' in payload) return outcome(read, [], undefined, warnings);
  if ('data' in payload) data = payload.data;
  else {
    const decoded =
      predecoded ??
      payload.decoder.decode({ bytes: payload.bytes, fPort: payload.fPort, receivedAt: context.receivedAt });
    if (!decoded.ok) return outcome(read, [rejection(read, decoded)]);
    // What the decoder warned of (a codec's `warnings`, a grammar's), before the normalizer's.
    if (decoded.warnings !== undefined && decoded.warnings.length > 0)
      warnings = [...(warnings ?? []), ...decoded.warnings];
    // A decoder that found nothing to report (`{ data: {} }`): the raw message is kept, nothing else.
    if (decoded.nothing) return outcome(read, [], undefined, warnings);
    data = decoded.data;
  }
  const normalized = normalize(data, bytes, context);
  // The fields the normalizer left out of stored readings.
  if (normalized.warnings.length > 0) warnings = [...(warnings ?? []), ...normalized.warnings];
  return outcome(read, normalized.rejections, normalized.readings, warnings);
}

function rejection(read: Read, refusal: Pick<Rejection, 'code' | 'reason'>): Rejection {
  return { code: refusal.code, reason: refusal.reason, deviceId: read.context.deviceId, payload: read.bytes };
}

function outcome(
  read: Read,
  rejections: readonly Rejection[],
  readings?: MessageOutcome['readings'],
  warnings?: readonly string[],
): MessageOutcome {
  const { deviceId, deviceType } = read.context;
  // No authenticated device (HTTP JSON): the raw record is the one device its body names, if one.
  const named =
    deviceId === undefined && readings !== undefined ? soleDevice(readings, rejections) : undefined;
  const done = outcomeOf(
    read.envelope,
    read.source,
    read.messageId,
    deviceId ?? named?.deviceId,
    named?.deviceType ?? deviceType,
    rejections,
    readings,
    warnings,
  );
  return read.offline && deviceId !== undefined
    ? { ...done, offline: { ...read.offline, deviceId, deviceType, messageId: read.messageId } }
    : done;
}
