/**
 * The HTTP way in, without AWS: route, authenticate, check the body, and enqueue an
 * {@link Envelope}. Decoding happens later, in the ingest path; here a caller learns
 * at once, with a 4xx and a JSON reason, what it must fix. Never a 500 for bad input.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { DEVICE_TYPE_PATTERN, type RuntimeConfig } from '../config.ts';
import { parseSigfoxCallback, parseTtnUplink } from '../formats/callbacks.ts';
import type { Envelope } from '../formats/envelope.ts';
import { truncate } from '../topics.ts';
import { INGEST_ROUTES } from './routes.ts';

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
  readonly config?: Pick<RuntimeConfig, 'deviceTypes' | 'httpMappings' | 'sigfoxDownlinks'>;
}

/** Handles one POST to an ingest route. */
export async function handleIngress(request: HttpRequest, deps: HttpIngressDeps): Promise<HttpResponse> {
  const route = INGEST_ROUTES.find((r) => r.path === request.path);
  if (!route)
    return json(404, {
      error: 'not_found',
      message: `No route ${request.path}; POST to ${INGEST_ROUTES.map((r) => r.path).join(', ')}`,
    });
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
  let body: unknown;
  try {
    body = JSON.parse(request.body.toString('utf8'));
  } catch (error) {
    return json(400, { error: 'invalid_json', message: `The body is not JSON: ${(error as Error).message}` });
  }
  const params = new URLSearchParams(request.query ?? '');
  const type = params.get('type');
  if (type !== null && !DEVICE_TYPE_PATTERN.test(type)) {
    return json(400, {
      error: 'invalid_type',
      message: `?type=${truncate(type)} must match ${DEVICE_TYPE_PATTERN}`,
    });
  }
  const mapping = params.get('mapping');
  if (mapping !== null && (route.source !== 'http' || !deps.config?.httpMappings[mapping])) {
    const known = Object.keys(deps.config?.httpMappings ?? {});
    return json(400, {
      error: 'unknown_mapping',
      message:
        route.source !== 'http'
          ? `?mapping= applies to /v1/telemetry only`
          : `No mapping "${truncate(mapping)}"; configured: ${known.length ? known.join(', ') : 'none (httpMappings in the config)'}`,
    });
  }
  let downlink: string | undefined;
  let device: string | undefined;
  if (route.source === 'sigfox') {
    const callback = parseSigfoxCallback(body);
    if ('error' in callback) return json(400, { error: 'invalid_callback', message: callback.error });
    device = callback.device;
    if (callback.ack) {
      downlink =
        deps.config?.sigfoxDownlinks[callback.device] ?? deps.config?.deviceTypes[type ?? '']?.sigfoxDownlink;
    }
  } else if (route.source === 'ttn') {
    const uplink = parseTtnUplink(body);
    if ('error' in uplink) return json(400, { error: 'invalid_webhook', message: uplink.error });
  }
  // Only what the ingest path reads goes along: the route, and the parameters it knows.
  const query = new URLSearchParams();
  if (type !== null) query.set('type', type);
  if (mapping !== null) query.set('mapping', mapping);
  let messageId: string;
  try {
    messageId = await deps.enqueue({
      source: route.source,
      payload: request.body.toString('base64'),
      topic: query.size > 0 ? `${route.path}?${query}` : route.path,
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
  if (route.source === 'sigfox') {
    // Sigfox reads a downlink from a 200 with the device id as key; 204 means none.
    return downlink && device
      ? json(200, { [device]: { downlinkData: downlink } })
      : { statusCode: 204, headers: {}, body: '' };
  }
  return json(202, { accepted: true, messageId });
}

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
