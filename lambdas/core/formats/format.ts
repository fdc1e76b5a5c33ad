/**
 * The one interface every way in implements (MQTT, HTTP JSON, Sigfox, The Things
 * Stack, and the next ones), and what travels between them and the ingest path.
 *
 * A format reads one message: at the HTTP edge, where a refusal is the caller's 400,
 * and again in the ingest path, where it becomes readings. The bytes cross the queue
 * untouched (the raw archive keeps what arrived, and re-decoding reads it back), so
 * each hop reads them once, with the same function. What a format finds besides the
 * payload (device, type, time, sequence number, radio) travels typed in the
 * {@link Uplink}, never as text to be parsed again.
 */
import type { Decoder, Decoders } from '../decoders/decoder.ts';
import { DEVICE_TYPE_PATTERN, truncate } from '../ids.ts';
import type { ValidationLimits } from '../readings/limits.ts';
import type { Refusal } from '../readings/rejection.ts';

/** What travels on the ingest queue: the bytes that arrived, untouched, and how they arrived. */
export interface Envelope {
  /** Where it came from (a format's `source`); absent in MQTT envelopes written by the IoT rule. */
  readonly source?: string;
  /** The payload bytes, base64. */
  readonly payload: string;
  /** MQTT topic, or the HTTP route path. */
  readonly topic: string;
  /** HTTP: the route's parameters. */
  readonly params?: Params;
  /** Arrival time, epoch milliseconds. */
  readonly receivedAt: number;
  /** MQTT client id. */
  readonly clientId?: string;
  /** MQTT: the certificate id the device authenticated with. */
  readonly principal?: string;
  /** HTTP: the API Gateway request id. */
  readonly requestId?: string;
  /**
   * HTTP: the body's media type, lower case, no parameters (`text/plain`); absent means
   * `application/json`, as in envelopes written before routes took other types. A GET
   * callback's variables arrive as its query string, kept as a form body
   * (`application/x-www-form-urlencoded`): the raw archive holds what was sent, read
   * the same way as a POST of the same variables.
   */
  readonly contentType?: string;
}

/**
 * An HTTP route's parameters: `?type=<deviceType>` on every route, `?mapping=<name>`
 * and `?event=<kind>` where the format takes them.
 */
export interface Params {
  readonly type?: string;
  readonly mapping?: string;
  /** The kind of event, for networks that post every event to one URL (ChirpStack: `?event=up`). */
  readonly event?: string;
}

/** One message as a format reads it. */
export interface Inbound {
  readonly bytes: Buffer;
  readonly topic: string;
  readonly params: Params;
  readonly receivedAt: number;
  /** The body's media type, lower case, no parameters: one of the route's {@link HttpRoute.contentTypes}. */
  readonly contentType: string;
  /** The bytes as JSON, parsed on first use and kept: the edge's check and the format share one parse. */
  json(): { readonly value: unknown } | { readonly error: string };
}

/** What the payload is, and how it becomes data. */
export type Payload =
  /** Bytes for a decoder: the device type's own, else JSON. */
  | { readonly decoder: Decoder; readonly bytes: Buffer; readonly fPort?: number }
  /** Data the network decoded already (Sigfox `customData#`, The Things Stack `decoded_payload`). */
  | { readonly data: unknown }
  /** Nothing can be decoded, and why (no decoder configured; a time that cannot be read). */
  | { readonly refused: Refusal }
  /**
   * A message that carries no reading by nature (a join, an ack, a status or error
   * report with nothing to measure), and what it is: kept in the raw archive, neither
   * readings nor quarantine.
   */
  | { readonly kept: string };

/** One message, read: who sent it, what to decode, and what the message says besides. */
export interface Uplink {
  /** The device, when the way in authenticates or names it; else each reading's `$id` says. */
  readonly deviceId?: string;
  readonly deviceType: string;
  readonly payload: Payload;
  /** The network's time of the message, epoch ms; a reading's own `$ts` wins. */
  readonly time?: number;
  /** The network's sequence number (Sigfox `seqNumber`, LoRaWAN `f_cnt`); a reading's own `$seq` wins. */
  readonly seq?: number;
  /** Metrics of the message itself (radio), under each reading's own. */
  readonly metrics?: Readonly<Record<string, number | string>>;
  /**
   * Attributes of the device the network keeps (ChirpStack's device and profile tags),
   * read with `readAttributes` (estate/attributes.ts): merged into the device's registry record by
   * its readings.
   */
  readonly attributes?: Readonly<Record<string, string>>;
  /**
   * What the message could not wholly give, though it was stored (bytes past a Sigfox
   * grammar's fields, a field refused): kept with the message's raw record.
   */
  readonly warnings?: readonly string[];
  /**
   * The network says the device has gone silent (Sigfox's communication-loss ERROR
   * callback): its offline alert is raised, once, as the scheduled check would raise
   * it, unless the device has been seen since `at`.
   */
  readonly offline?: OfflineSignal;
}

/** "This device is offline", said by the network rather than found by the scheduled check. */
export interface OfflineSignal {
  /** When the network said so, epoch ms: a reading after it means the device is back. */
  readonly at: number;
  /** The network's words (`No message received since 2026-11-25 06:00:00`). */
  readonly reason: string;
}

/** A refusal, with the `error` name of the 400 the HTTP edge answers (else the route's). */
export interface FormatRefusal extends Refusal {
  readonly refused: true;
  readonly error?: string;
}

/** The parts of the config the formats read; each format validates its own part. */
export interface FormatConfig {
  readonly validation: ValidationLimits;
  /** `fPort`: the LoRaWAN port a codec gets over MQTT when the topic names none. */
  readonly deviceTypes: Readonly<
    Record<string, { readonly sigfoxDownlink?: string; readonly fPort?: number }>
  >;
  readonly httpMappings: Readonly<
    Record<string, { readonly id: string; readonly time?: string; readonly type?: string }>
  >;
  readonly sigfoxDownlinks: Readonly<Record<string, string>>;
  /** AWS IoT Core for LoRaWAN's devices (`IotLorawanConfig`, `iot-lorawan.ts`); none listed when absent. */
  readonly iotLorawan?: {
    readonly deviceId: 'wirelessDeviceId' | 'devEui';
    readonly deviceType?: string;
    readonly devices: Readonly<Record<string, { readonly type?: string; readonly name?: string }>>;
  };
}

export interface FormatContext {
  readonly config: FormatConfig;
  readonly decoders: Decoders;
  /** The JSON decoder for the config's limits. */
  readonly json: Decoder;
}

/** The HTTP methods a way in may be called with. */
export type HttpMethod = 'GET' | 'POST';

/** The HTTP route a format is posted to. */
export interface HttpRoute {
  readonly path: string;
  /**
   * Methods the route takes; a GET's variables are its query string (Sigfox lets a
   * callback use GET).
   *
   * @default ['POST']
   */
  readonly methods?: readonly HttpMethod[];
  /**
   * Body media types the route takes (lower case, no parameters); others are answered 415.
   *
   * @default ['application/json']
   */
  readonly contentTypes?: readonly string[];
  /** Whether the route takes `?mapping=`. */
  readonly mapping?: boolean;
  /** The `?event=` kinds the route takes, one of them required; routes without it refuse `?event=`. */
  readonly events?: readonly string[];
  /** The `error` name of a 400 for a body the format refuses. */
  readonly refusal: string;
}

/** The methods of a route, its default filled in. */
export function methodsOf(route: HttpRoute): readonly HttpMethod[] {
  return route.methods ?? ['POST'];
}

/** The body media types of a route, its default filled in. */
export function contentTypesOf(route: HttpRoute): readonly string[] {
  return route.contentTypes ?? [JSON_TYPE];
}

export const JSON_TYPE = 'application/json';
export const FORM_TYPE = 'application/x-www-form-urlencoded';
export const TEXT_TYPE = 'text/plain';

/** A Content-Type header's media type, lower case, without parameters (`; charset=utf-8`). */
export function mediaTypeOf(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** An answer other than 202 Accepted (a Sigfox downlink, or its 204). */
export interface Answer {
  readonly statusCode: number;
  readonly body?: unknown;
}

export interface Format<U extends Uplink = Uplink, S extends string = string> {
  /** The `source` of its envelopes, readings and raw partition. */
  readonly source: S;
  /** Its name for people (reports, listings). */
  readonly title: string;
  /** Where it arrives over HTTP; none for MQTT. */
  readonly route?: HttpRoute;
  /** The network sends the same uplink again in separate requests: its readings are claimed once across batches. */
  readonly resends: boolean;
  /** The network's sequence numbers count modulo this (Sigfox: 4096): lost messages are counted across the wrap. */
  readonly sequenceWrapsAt?: number;
  read(message: Inbound, context: FormatContext): U | FormatRefusal;
  /**
   * The messages of a request that carries several (a Sigfox BATCH_URL callback: one
   * line each), each then read, queued and stored on its own; undefined for one message.
   * A part that cannot be read is quarantined alone, with its reason.
   */
  split?(message: Inbound): readonly Buffer[] | FormatRefusal | undefined;
  /** The HTTP answer to an accepted message, when not 202. */
  answer?(uplink: U, context: FormatContext): Answer;
}

export function refuse(code: Refusal['code'], reason: string, error?: string): FormatRefusal {
  return error === undefined ? { refused: true, code, reason } : { refused: true, code, reason, error };
}

/** A network's JSON body, read with its parser; a refusal (`invalid_callback`) says why it cannot be used. */
export function readBody<T extends object>(
  message: Inbound,
  network: string,
  parse: (value: unknown) => T | { readonly error: string },
): T | FormatRefusal {
  const body = message.json();
  if ('error' in body)
    return refuse('invalid_callback', `the ${network} callback is not JSON: ${body.error}`);
  const parsed = parse(body.value);
  return 'error' in parsed ? refuse('invalid_callback', parsed.error) : parsed;
}

export function isRefusal<T extends object>(read: T | FormatRefusal): read is FormatRefusal {
  return 'refused' in read;
}

/** An {@link Inbound} over some bytes. */
export class InboundMessage implements Inbound {
  private parsed?: { readonly value: unknown } | { readonly error: string };

  constructor(
    readonly bytes: Buffer,
    readonly topic: string,
    readonly params: Params,
    readonly receivedAt: number,
    readonly contentType: string = JSON_TYPE,
  ) {}

  json(): { readonly value: unknown } | { readonly error: string } {
    if (!this.parsed) {
      try {
        this.parsed = { value: JSON.parse(this.bytes.toString('utf8')) };
      } catch (error) {
        this.parsed = { error: (error as Error).message };
      }
    }
    return this.parsed;
  }
}

/**
 * A route's query string as {@link Params}, or why not: the one place `?type=`,
 * `?mapping=` and `?event=` are read, by the HTTP edge and (for envelopes from older raw records,
 * whose topic carries them) the ingest path.
 */
export function readParams(query: string, route: HttpRoute): Params | FormatRefusal {
  const search = new URLSearchParams(query);
  const type = search.get('type');
  if (type !== null && !DEVICE_TYPE_PATTERN.test(type)) {
    return refuse(
      'invalid_topic',
      `?type=${truncate(type)} must match ${DEVICE_TYPE_PATTERN}`,
      'invalid_type',
    );
  }
  const mapping = search.get('mapping');
  if (mapping !== null && !route.mapping) {
    return refuse('invalid_topic', `?mapping= applies to /v1/telemetry only`, 'unknown_mapping');
  }
  const event = search.get('event');
  if (event !== null && !route.events) {
    return refuse('invalid_topic', `?event= does not apply to ${route.path}`, 'unknown_event');
  }
  if (route.events && (event === null || !route.events.includes(event))) {
    const got = event === null ? 'no ?event=' : `?event=${JSON.stringify(truncate(event))}`;
    return refuse(
      'invalid_topic',
      `${got}: ${route.path} takes ?event=${route.events.join('|')}`,
      'unknown_event',
    );
  }
  return {
    ...(type === null ? {} : { type }),
    ...(mapping === null ? {} : { mapping }),
    ...(event === null ? {} : { event }),
  };
}

/** The route with its parameters, as the raw archive's `topic` column keeps it. */
export function topicOf(envelope: Pick<Envelope, 'topic' | 'params'>): string {
  // MQTT envelopes have no parameters: the hot path allocates nothing.
  if (envelope.params === undefined) return envelope.topic;
  const query = new URLSearchParams();
  if (envelope.params?.type !== undefined) query.set('type', envelope.params.type);
  if (envelope.params?.mapping !== undefined) query.set('mapping', envelope.params.mapping);
  if (envelope.params?.event !== undefined) query.set('event', envelope.params.event);
  return query.size > 0 ? `${envelope.topic}?${query}` : envelope.topic;
}
