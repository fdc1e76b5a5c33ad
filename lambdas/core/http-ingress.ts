/**
 * The HTTP way in, without AWS: route, authenticate, check the body, and enqueue an
 * {@link Envelope}. Decoding happens later, in the ingest path; here a caller learns
 * at once, with a 4xx and a JSON reason, what it must fix. Never a 500 for bad input.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Envelope } from './envelope.ts';
import { INGEST_ROUTES } from './http-routes.ts';

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
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
  try {
    JSON.parse(request.body.toString('utf8'));
  } catch (error) {
    return json(400, { error: 'invalid_json', message: `The body is not JSON: ${(error as Error).message}` });
  }
  const messageId = await deps.enqueue({
    source: route.source,
    payload: request.body.toString('base64'),
    topic: route.path,
    receivedAt: request.receivedAt,
    requestId: request.requestId,
  });
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
