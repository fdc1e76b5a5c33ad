/**
 * The HTTP way in, without AWS: route, authenticate and authorize (the key's scope, its
 * devices, and who else the registry knows each device from), check the body with the
 * route's format, and enqueue an {@link Envelope}. Decoding happens later, in the ingest
 * path; here a caller learns at once, with a 4xx and a JSON reason, what it must fix.
 * Never a 500 for bad input.
 */
import { coversDevice, namesDevice, routeScope } from '../access/keys.ts';
import { NO_DECODERS } from '../decoders/decoder.ts';
import { jsonDecoder } from '../decoders/json.ts';
import {
  contentTypesOf,
  type Envelope,
  FORM_TYPE,
  type FormatConfig,
  type FormatContext,
  InboundMessage,
  isRefusal,
  JSON_TYPE,
  mediaTypeOf,
  methodsOf,
  readParams,
  type Uplink,
} from '../formats/format.ts';
import { HTTP_FORMATS } from '../formats/index.ts';
import { isObject } from '../ids.ts';
import { DEFAULT_VALIDATION } from '../readings/limits.ts';
import { type Caller, type Gate, isResponse } from './gate.ts';
import { type HttpRequest, type HttpResponse, json } from './http.ts';

/** The way in the registry first knew each device from (devices it does not know are left out). */
export type DeviceSources = (deviceIds: readonly string[]) => Promise<ReadonlyMap<string, string>>;

export interface HttpIngressDeps {
  /** Authenticates, throttles and checks the scope of every request. */
  readonly gate: Gate;
  /**
   * Where each device was first seen: a write for a device known from another way in is
   * refused (403) unless the key was created for that device.
   */
  readonly sources: DeviceSources;
  /** Puts the envelope on the ingest queue; resolves once it is durably queued. */
  readonly enqueue: (envelope: Envelope) => Promise<string>;
  /** Largest body accepted, in bytes. */
  readonly maxBodyBytes: number;
  /** Told when the queue refused a message (the caller got a 503). */
  readonly onEnqueueError?: (error: Error) => void;
  /** Mappings, device types and downlinks; without it no mapping and no downlink is known. */
  readonly config?: FormatConfig;
}

/**
 * Handles one request to an ingest route: its method and content type checked against
 * the route's, then the route's format reads the body once, here as in the ingest path.
 * A GET's variables are its query string, queued as a form body. A request that carries
 * several messages (a Sigfox batch) is split by its format and each part is queued as
 * its own message: a part that cannot be read is queued too, to be quarantined alone.
 */
export async function handleIngress(request: HttpRequest, deps: HttpIngressDeps): Promise<HttpResponse> {
  const format = HTTP_FORMATS.find((f) => f.route.path === request.path);
  if (!format)
    return json(404, {
      error: 'not_found',
      message: `No route ${request.path}; POST to ${HTTP_FORMATS.map((f) => f.route.path).join(', ')}`,
    });
  const { route } = format;
  const methods = methodsOf(route);
  if (!(methods as readonly string[]).includes(request.method))
    return json(
      405,
      { error: 'method_not_allowed', message: `Use ${methods.join(' or ')} on ${route.path}` },
      { allow: methods.join(', ') },
    );
  const caller = await deps.gate.admit(request, routeScope(route.path));
  if (isResponse(caller)) return caller;
  const query = request.query ?? '';
  const get = request.method === 'GET';
  // A GET callback's variables are its query string: the body queued, as a form.
  const body = get ? Buffer.from(query, 'utf8') : request.body;
  const contentType = get ? FORM_TYPE : mediaTypeOf(request.headers['content-type']);
  const accepted = contentTypesOf(route);
  if (!accepted.includes(contentType)) {
    return json(415, {
      error: 'unsupported_media_type',
      message: `Send Content-Type: ${accepted.join(' or ')} (got "${contentType}")`,
    });
  }
  if (body.length === 0)
    return json(400, {
      error: 'empty_body',
      message: get
        ? `The query string is empty; put the callback's variables in it (${route.path}?device={device}&...)`
        : 'The body is empty; send a JSON object or array',
    });
  if (body.length > deps.maxBodyBytes) {
    return json(get ? 414 : 413, {
      error: get ? 'uri_too_long' : 'payload_too_large',
      message: `The ${get ? 'query string' : 'body'} is ${body.length} bytes; the limit is ${deps.maxBodyBytes}`,
    });
  }
  const params = readParams(query, route);
  if (isRefusal(params)) return json(400, { error: params.error ?? route.refusal, message: params.reason });
  const inbound = new InboundMessage(body, route.path, params, request.receivedAt, contentType);
  const context: FormatContext = {
    config: deps.config ?? NO_CONFIG,
    // The edge decodes nothing: a payload without a decoder is the ingest path's to quarantine.
    decoders: NO_DECODERS,
    json: EDGE_JSON,
  };
  const parts = format.split?.(inbound);
  if (parts !== undefined && isRefusal(parts))
    return json(413, { error: parts.error ?? route.refusal, message: parts.reason });
  const envelopeOf = (payload: Buffer): Envelope => ({
    source: format.source,
    payload: payload.toString('base64'),
    topic: route.path,
    ...(Object.keys(params).length > 0 ? { params } : {}),
    receivedAt: request.receivedAt,
    requestId: request.requestId,
    ...(contentType === JSON_TYPE ? {} : { contentType }),
  });
  if (parts !== undefined) return ingestParts(parts, inbound, format, caller, context, envelopeOf, deps);

  const parsed = contentType === JSON_TYPE ? inbound.json() : { value: undefined };
  if ('error' in parsed)
    return json(400, { error: 'invalid_json', message: `The body is not JSON: ${parsed.error}` });
  const uplink = format.read(inbound, context);
  if (isRefusal(uplink)) return json(400, { error: uplink.error ?? route.refusal, message: uplink.reason });
  const refused = await mayWrite(
    caller,
    format.source,
    devicesWritten(uplink, parsed.value, idFieldOf(params.mapping, context.config)),
    deps,
  );
  if (refused) return refused;
  let messageId: string;
  try {
    messageId = await deps.enqueue(envelopeOf(body));
  } catch (error) {
    return unavailable(error, deps);
  }
  const answer = format.answer?.(uplink, context);
  if (!answer) return json(202, { accepted: true, messageId });
  return answer.body === undefined
    ? { statusCode: answer.statusCode, headers: {}, body: '' }
    : json(answer.statusCode, answer.body);
}

/** Messages of one batch queued at once, at most: SQS answers in milliseconds, and Sigfox waits 10 s. */
const ENQUEUE_CONCURRENCY = 16;

/**
 * The parts of a batch: each read (for the devices it writes and the caller's answer),
 * then each queued as its own message. A part the format refuses is queued all the
 * same, to be quarantined alone with its reason: a bad line never costs its neighbours.
 */
async function ingestParts(
  parts: readonly Buffer[],
  inbound: InboundMessage,
  format: (typeof HTTP_FORMATS)[number],
  caller: Caller,
  context: FormatContext,
  envelopeOf: (payload: Buffer) => Envelope,
  deps: HttpIngressDeps,
): Promise<HttpResponse> {
  const devices = new Set<string>();
  const refused: { line: number; error: string; message: string }[] = [];
  parts.forEach((part, index) => {
    const uplink = format.read(
      new InboundMessage(part, inbound.topic, inbound.params, inbound.receivedAt, inbound.contentType),
      context,
    );
    if (isRefusal(uplink))
      refused.push({ line: index + 1, error: uplink.error ?? format.route.refusal, message: uplink.reason });
    else if (uplink.deviceId !== undefined) devices.add(uplink.deviceId);
  });
  const denied = await mayWrite(caller, format.source, [...devices], deps);
  if (denied) return denied;
  const messageIds: string[] = new Array(parts.length);
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: Math.min(ENQUEUE_CONCURRENCY, parts.length) }, async () => {
        for (let i = next++; i < parts.length; i = next++) {
          messageIds[i] = await deps.enqueue(envelopeOf(parts[i] as Buffer));
        }
      }),
    );
  } catch (error) {
    // Sigfox sends the whole batch again: lines queued already are claimed once by their seqNumber.
    return unavailable(error, deps);
  }
  return json(202, { accepted: true, messages: parts.length, messageIds, refused });
}

function unavailable(error: unknown, deps: HttpIngressDeps): HttpResponse {
  // Not acknowledged: the caller (Sigfox, The Things Stack, a device) sends it again.
  deps.onEnqueueError?.(error as Error);
  return json(
    503,
    { error: 'unavailable', message: 'The message could not be queued; send it again' },
    { 'retry-after': '5' },
  );
}

const NO_CONFIG: FormatConfig = {
  validation: DEFAULT_VALIDATION,
  deviceTypes: {},
  httpMappings: {},
  sigfoxDownlinks: {},
};
const EDGE_JSON = jsonDecoder(DEFAULT_VALIDATION);

/**
 * The device ids a message writes: the one the network names, else each reading's `$id`
 * (or its mapping's id field). Ids that are not strings are the ingest path's to quarantine.
 */
function devicesWritten(uplink: Uplink, body: unknown, idField: string): string[] {
  if (uplink.deviceId !== undefined) return [uplink.deviceId];
  const ids = new Set<string>();
  for (const item of Array.isArray(body) ? body : [body]) {
    const id = isObject(item) && Object.hasOwn(item, idField) ? item[idField] : undefined;
    if (typeof id === 'string') ids.add(id);
  }
  return [...ids];
}

/** The field naming each reading's device: `$id`, or the mapping's (the format refused unknown mappings). */
function idFieldOf(mapping: string | undefined, config: FormatConfig): string {
  if (mapping === undefined || !Object.hasOwn(config.httpMappings, mapping)) return '$id';
  return config.httpMappings[mapping]?.id ?? '$id';
}

/** A 403 when the key may not write one of the devices, or the device belongs to another way in. */
async function mayWrite(
  caller: Caller,
  source: string,
  deviceIds: readonly string[],
  deps: HttpIngressDeps,
): Promise<HttpResponse | undefined> {
  for (const id of deviceIds) {
    if (!coversDevice(caller.devices, id))
      return json(403, {
        error: 'forbidden_device',
        message: `Key "${caller.name}" may not write device "${id}": it was created for ${caller.devices?.join(', ')}`,
      });
  }
  if (deviceIds.length === 0) return undefined;
  const known = await deps.sources(deviceIds);
  for (const id of deviceIds) {
    const first = known.get(id);
    if (first !== undefined && first !== source && !namesDevice(caller.devices, id))
      return json(403, {
        error: 'foreign_device',
        message: `Device "${id}" is known from ${first}, not ${source}: only a key created for it (keys create --devices ${id}) may write it here`,
      });
  }
  return undefined;
}

export { type HttpRequest, type HttpResponse, json };
