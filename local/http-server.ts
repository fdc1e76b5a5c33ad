/**
 * The local HTTP server: the same routes, request and response shapes as the API
 * Gateway HTTP API, answered by the same core (`handleIngress`) the http Lambda calls,
 * behind the same gate (keys, scopes, per-key and keyless throttles). Like API Gateway,
 * it stops reading a body that is too large and answers 413.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { DEVICES_PATH, handleDevicesRequest } from '../lambdas/core/api/devices.ts';
import { type HttpRequest, json } from '../lambdas/core/api/http.ts';
import { type HttpIngressDeps, handleIngress } from '../lambdas/core/api/ingress.ts';
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
  readonly onRequest?: (line: { method: string; path: string; status: number; bytes: number }) => void;
}): Promise<LocalHttpServer> {
  const server = createServer((request, response) => {
    void serve(request, response, options).catch((error: Error) => {
      // A store behind the request failed (the keys file, the registry, the query engine; the
      // queue's own refusal is ingress's 503): the client may retry, as with a 5xx from API Gateway.
      send(
        response,
        json(
          503,
          { error: 'unavailable', message: `The request could not be answered: ${error.message}` },
          { 'retry-after': '5' },
        ),
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
        ? await handleQueryRequest(asRequest, { gate: options.ingress.gate, engine: options.queries })
        : path === DEVICES_PATH && options.registry
          ? await handleDevicesRequest(asRequest, {
              gate: options.ingress.gate,
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

function send(
  response: ServerResponse,
  result: { statusCode: number; headers: Record<string, string>; body: string },
) {
  if (response.headersSent) return;
  response.writeHead(result.statusCode, result.headers);
  response.end(result.body);
}
