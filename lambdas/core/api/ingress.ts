/**
 * The HTTP way in, without AWS: route, authenticate, check the body with the route's
 * format, and enqueue an {@link Envelope}. Decoding happens later, in the ingest path; here a caller learns
 * at once, with a 4xx and a JSON reason, what it must fix. Never a 500 for bad input.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { NO_DECODERS } from '../decoders/decoder.ts';
import { jsonDecoder } from '../decoders/json.ts';
import {
  type Envelope,
  type FormatConfig,
  type FormatContext,
  InboundMessage,
  isRefusal,
  readParams,
} from '../formats/format.ts';
import { HTTP_FORMATS } from '../formats/index.ts';
import { DEFAULT_VALIDATION } from '../readings/limits.ts';

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  /** The query string without `?` (API Gateway's `rawQueryString`). */
  readonly query?: string;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Buffer;
  readonly requestId: string;
  readonly receivedAt: number;
}

export interface HttpResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface HttpIngressDeps {
  /** The key callers must present. */
  readonly apiKey: string;
  /** Puts the envelope on the ingest queue; resolves once it is durably queued. */
  readonly enqueue: (envelope: Envelope) => Promise<string>;
  /** Largest body accepted, in bytes. */
  readonly maxBodyBytes: number;
  /** Told when the queue refused a message (the caller got a 503). */
  readonly onEnqueueError?: (error: Error) => void;
  /** Mappings, device types and downlinks; without it no mapping and no downlink is known. */
  readonly config?: FormatConfig;
}

/** Handles one POST to an ingest route: the route's format reads the body once, here as in the ingest path. */
export async function handleIngress(request: HttpRequest, deps: HttpIngressDeps): Promise<HttpResponse> {
  const format = HTTP_FORMATS.find((f) => f.route.path === request.path);
  if (!format)
    return json(404, {
      error: 'not_found',
      message: `No route ${request.path}; POST to ${HTTP_FORMATS.map((f) => f.route.path).join(', ')}`,
    });
  const { route } = format;
  if (request.method !== 'POST')
    return json(
      405,
      { error: 'method_not_allowed', message: `Use POST on ${route.path}` },
      { allow: 'POST' },
    );
  if (!authenticated(request.headers, deps.apiKey)) {
    return json(401, {
      error: 'unauthorized',
      message: 'Send the API key as "Authorization: Bearer <key>" or "x-api-key: <key>"',
    });
  }
  const contentType = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (contentType !== 'application/json') {
    return json(415, {
      error: 'unsupported_media_type',
      message: `Send Content-Type: application/json (got "${contentType ?? ''}")`,
    });
  }
  if (request.body.length === 0)
    return json(400, { error: 'empty_body', message: 'The body is empty; send a JSON object or array' });
  if (request.body.length > deps.maxBodyBytes) {
    return json(413, {
      error: 'payload_too_large',
      message: `The body is ${request.body.length} bytes; the limit is ${deps.maxBodyBytes}`,
    });
  }
  const params = readParams(request.query ?? '', route);
  if (isRefusal(params)) return json(400, { error: params.error ?? route.refusal, message: params.reason });
  const inbound = new InboundMessage(request.body, route.path, params, request.receivedAt);
  const body = inbound.json();
  if ('error' in body)
    return json(400, { error: 'invalid_json', message: `The body is not JSON: ${body.error}` });
  const context: FormatContext = {
    config: deps.config ?? NO_CONFIG,
    // The edge decodes nothing: a payload without a decoder is the ingest path's to quarantine.
    decoders: NO_DECODERS,
    json: EDGE_JSON,
  };
  const uplink = format.read(inbound, context);
  if (isRefusal(uplink)) return json(400, { error: uplink.error ?? route.refusal, message: uplink.reason });
  let messageId: string;
  try {
    messageId = await deps.enqueue({
      source: format.source,
      payload: request.body.toString('base64'),
      topic: route.path,
      ...(Object.keys(params).length > 0 ? { params } : {}),
      receivedAt: request.receivedAt,
      requestId: request.requestId,
    });
  } catch (error) {
    // Not acknowledged: the caller (Sigfox, The Things Stack, a device) sends it again.
    deps.onEnqueueError?.(error as Error);
    return json(
      503,
      { error: 'unavailable', message: 'The message could not be queued; send it again' },
      { 'retry-after': '5' },
    );
  }
  const answer = format.answer?.(uplink, context);
  if (!answer) return json(202, { accepted: true, messageId });
  return answer.body === undefined
    ? { statusCode: answer.statusCode, headers: {}, body: '' }
    : json(answer.statusCode, answer.body);
}

const NO_CONFIG: FormatConfig = {
  validation: DEFAULT_VALIDATION,
  deviceTypes: {},
  httpMappings: {},
  sigfoxDownlinks: {},
};
const EDGE_JSON = jsonDecoder(DEFAULT_VALIDATION);

/**
 * True when the request carries the key, compared in constant time (hashing both
 * sides first makes the lengths equal, so the comparison leaks neither content nor length).
 */
export function authenticated(headers: HttpRequest['headers'], apiKey: string): boolean {
  const authorization = headers.authorization?.trim();
  // Sigfox lets users set the Authorization header's whole value: accept a bare key too.
  const presented = headers['x-api-key']?.trim() ?? authorization?.replace(/^Bearer\s+/i, '');
  if (!presented || !apiKey) return false;
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(apiKey));
}

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}
