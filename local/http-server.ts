/**
 * The local HTTP server: the same routes, request and response shapes as the API
 * Gateway HTTP API, answered by the same core (`handleIngress`) the http Lambda calls.
 * Like API Gateway, it stops reading a body that is too large and answers 413.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { DEVICES_PATH, handleDevicesRequest } from '../lambdas/core/api/devices.ts';
import { type HttpIngressDeps, type HttpRequest, handleIngress, json } from '../lambdas/core/api/ingress.ts';
import { handleQueryRequest, isQueryPath, type PagedQueries } from '../lambdas/core/api/query.ts';
import type { DeviceRegistry } from '../lambdas/core/estate/update.ts';
import { listen } from './listen.ts';

export interface LocalHttpServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startHttpServer(options: {
  readonly host: string;
  readonly port: number;
  readonly ingress: HttpIngressDeps;
  /** Answers GET /v1/devices from the registry. */
  readonly registry?: DeviceRegistry;
  /** Answers GET /v1/devices/{id}/readings|daily. */
  readonly queries?: PagedQueries;
  /** Requests per second and burst, as the API Gateway stage throttles; 429 past them. */
  readonly throttle?: { readonly rate: number; readonly burst: number };
  readonly onRequest?: (line: { method: string; path: string; status: number; bytes: number }) => void;
}): Promise<LocalHttpServer> {
  const bucket = options.throttle ? tokenBucket(options.throttle.rate, options.throttle.burst) : undefined;
  const server = createServer((request, response) => {
    if (bucket && !bucket()) {
      request.resume();
      send(
        response,
        json(429, {
          error: 'too_many_requests',
          message: `More than ${options.throttle?.rate} requests a second (burst ${options.throttle?.burst}); retry later or raise http.throttleRateLimit`,
        }),
      );
      return;
    }
    void serve(request, response, options).catch((error: Error) => {
      // Only the queue can fail here; the client may retry, as with a 5xx from API Gateway.
      send(
        response,
        json(503, { error: 'unavailable', message: `Could not queue the message: ${error.message}` }),
      );
    });
  });
  // Keep-alive connections would hold close() open.
  server.keepAliveTimeout = 1000;
  await listen(server, options.port, options.host, 'HTTP', '--http-port');
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function serve(
  request: IncomingMessage,
  response: ServerResponse,
  options: Parameters<typeof startHttpServer>[0],
): Promise<void> {
  const receivedAt = Date.now();
  const url = new URL(request.url ?? '/', 'http://localhost');
  const path = url.pathname;
  const body = await readBody(request, options.ingress.maxBodyBytes);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const asRequest: HttpRequest = {
    method: request.method ?? 'GET',
    path,
    query: url.search.slice(1),
    headers,
    body: body === 'too_large' ? Buffer.alloc(0) : body,
    requestId: randomUUID(),
    receivedAt,
  };
  const result =
    body === 'too_large'
      ? json(413, {
          error: 'payload_too_large',
          message: `The body is larger than ${options.ingress.maxBodyBytes} bytes`,
        })
      : isQueryPath(path) && options.queries
        ? await handleQueryRequest(asRequest, { apiKey: options.ingress.apiKey, engine: options.queries })
        : path === DEVICES_PATH && options.registry
          ? await handleDevicesRequest(asRequest, {
              apiKey: options.ingress.apiKey,
              registry: options.registry,
            })
          : await handleIngress(asRequest, options.ingress);
  send(response, result);
  options.onRequest?.({
    method: request.method ?? '',
    path,
    status: result.statusCode,
    bytes: body === 'too_large' ? -1 : body.length,
  });
}

/** The body, or 'too_large' once it passes the limit (the rest is not buffered). */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer | 'too_large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      else chunks.push(chunk);
    });
    request.on('end', () => resolve(tooLarge ? 'too_large' : Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

/** A token bucket: `rate` tokens a second, at most `burst` held; true when a request may pass. */
export function tokenBucket(
  rate: number,
  burst: number,
  now: () => number = performance.now.bind(performance),
) {
  let tokens = burst;
  let last = now();
  return (): boolean => {
    const t = now();
    tokens = Math.min(burst, tokens + ((t - last) / 1000) * rate);
    last = t;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
}

function send(
  response: ServerResponse,
  result: { statusCode: number; headers: Record<string, string>; body: string },
) {
  if (response.headersSent) return;
  response.writeHead(result.statusCode, result.headers);
  response.end(result.body);
}
