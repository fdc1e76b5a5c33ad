/**
 * The local HTTP server: the same routes, request and response shapes as the API
 * Gateway HTTP API, answered by the same core (`handleIngress`) the http Lambda calls
 * (every method on an ingest path reaches it: it answers a GET callback, or 405),
 * behind the same gate (keys, scopes, per-key and keyless throttles). Like API Gateway,
 * it stops reading a body that is too large and answers 413.
 *
 * Sockets that do nothing cannot keep real clients out ({@link HttpLimits}): headers
 * must be complete within 5 s and the whole request within 10 s (else 408 and the
 * socket is closed), idle keep-alive sockets close after 1 s, and at 1,000 open
 * connections a new one closes the oldest that has no request being answered.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ALERTS_PATH, handleAlertsRequest } from '../lambdas/core/api/alerts.ts';
import { DEVICES_PATH, handleDevicesRequest } from '../lambdas/core/api/devices.ts';
import { ESTATE_PATH, handleEstateRequest, lakeTraffic } from '../lambdas/core/api/estate.ts';
import { type HttpRequest, json } from '../lambdas/core/api/http.ts';
import { type HttpIngressDeps, handleIngress } from '../lambdas/core/api/ingress.ts';
import { handleQuarantineRequest, QUARANTINE_PATH } from '../lambdas/core/api/quarantine.ts';
import { handleQueryRequest, isQueryPath, type PagedQueries } from '../lambdas/core/api/query.ts';
import { handleRawRequest, isRawPath } from '../lambdas/core/api/raw.ts';
import { type CuratedDays, handleSeriesRequest, isSeriesPath } from '../lambdas/core/api/series.ts';
import type { RuntimeConfig } from '../lambdas/core/config.ts';
import type { AlertRule } from '../lambdas/core/estate/alerts.ts';
import { type OfflineTimeouts, offlineTimeouts } from '../lambdas/core/estate/registry-query.ts';
import type { DeviceRegistry } from '../lambdas/core/estate/update.ts';
import type { LocalConsole } from './console.ts';
import { EVENTS_PATH, type EventHub } from './events.ts';
import { HEALTH_PATH, type Health, handleHealthRequest } from './health.ts';
import { connectionCap, floodLog } from './limits.ts';
import { listen } from './listen.ts';

export interface LocalHttpServer {
  readonly port: number;
  close(): Promise<void>;
}

/** How long a client may take and how many may be connected: enough for any local client, short for a stuck one. */
export interface HttpLimits {
  /**
   * Open connections at most. At the cap a new connection closes the oldest one with no
   * request being answered (idle keep-alive, headers or body unfinished); when every one
   * is being answered, the new one is closed.
   *
   * @default 1000
   */
  readonly maxConnections: number;
  /**
   * Time from the connection (or the end of the last response) to complete headers; then
   * 408 and close. Node's default is 60 s.
   *
   * @default 5000
   */
  readonly headersTimeoutMs: number;
  /**
   * Time to receive the whole request, body included (a body at most
   * `validation.maxPayloadBytes` long); then 408 and close. Node's default is 300 s.
   *
   * @default 10000
   */
  readonly requestTimeoutMs: number;
  /**
   * Time an idle keep-alive connection stays open after a response.
   *
   * @default 1000
   */
  readonly keepAliveTimeoutMs: number;
}

export const HTTP_LIMITS: HttpLimits = {
  maxConnections: 1000,
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 1000,
};

export async function startHttpServer(options: {
  readonly host: string;
  readonly port: number;
  readonly ingress: HttpIngressDeps;
  /** Answers GET /v1/devices (and with `queries` GET /v1/estate) from the registry. */
  readonly registry?: Pick<DeviceRegistry, 'list' | 'query' | 'tally'>;
  /** What device status is measured by (`offline`, each type's `offlineAfter`); absent: no device is offline. */
  readonly estate?: Pick<RuntimeConfig, 'offline' | 'deviceTypes'>;
  /** Answers GET /v1/devices/{id}/readings|daily. */
  readonly queries?: PagedQueries;
  /** With `queries`, for GET /v1/devices/{id}/series: the days read from the curated Parquet. */
  readonly curatedDays?: CuratedDays;
  /** Answers GET /healthz (read scope). */
  readonly health?: () => Promise<Health>;
  /** The configured rules, for GET /v1/alerts (with `registry` and `queries`; GET /v1/quarantine needs `queries`). */
  readonly alertRules?: readonly AlertRule[];
  /** Answers GET /v1/events (Server-Sent Events of readings and alerts, `local/events.ts`). */
  readonly events?: EventHub;
  /** Answers GET / and /console/* (the web console, `local/console.ts`). */
  readonly console?: LocalConsole;
  /** {@link HTTP_LIMITS} where absent. */
  readonly limits?: Partial<HttpLimits>;
  /** Said when the connection cap closes or refuses connections; silent when absent. */
  readonly log?: (line: string) => void;
  readonly onRequest?: (line: { method: string; path: string; status: number; bytes: number }) => void;
}): Promise<LocalHttpServer> {
  const limits: HttpLimits = { ...HTTP_LIMITS, ...options.limits };
  // Sockets with a whole request being answered: never closed to make room.
  const answering = new Set<Socket>();
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Node looks for expired headers and requests every 30 s by default: a 5 s timeout would take up to 35.
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    },
    (request, response) => {
      void serve(request, response, options, answering).catch((error: Error) => {
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
    },
  );
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Requests Node refuses before any handler sees them (headers past its 16 KB, such as a
  // GET callback with a 100 KB query string; a timeout; bad HTTP) get Node's status, with
  // a JSON reason like every other answer.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const response = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (error.code === 'ECONNRESET' || !socket.writable || response?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, text, code, message] = clientErrorAnswer(error.code);
    const body = JSON.stringify({ error: code, message });
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
  // One flood log each: a burst of evictions must not hide that requests were refused.
  const capLog = {
    evicted: floodLog(options.log ?? (() => {})),
    refused: floodLog(options.log ?? (() => {})),
  };
  const cap = connectionCap({
    max: limits.maxConnections,
    inUse: (socket) => answering.has(socket),
    onFull: (what, open) =>
      capLog[what](
        what === 'evicted'
          ? `HTTP: ${open + 1} connections, the cap (${limits.maxConnections}): closed the oldest one with no request being answered, to take a new one`
          : `HTTP: refused a connection: ${open} requests are being answered, the cap (${limits.maxConnections})`,
      ),
  });
  // After Node's own connection listener: a socket closed here is one Node has set up.
  server.on('connection', (socket: Socket) => cap.admit(socket));
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
  answering: Set<Socket>,
): Promise<void> {
  const receivedAt = Date.now();
  const url = new URL(request.url ?? '/', 'http://localhost');
  const path = url.pathname;
  const body = await readBody(request, options.ingress.maxBodyBytes);
  if (body === 'incomplete') {
    // The client went away, or Node's requestTimeout answered 408 and closed the socket.
    options.onRequest?.({ method: request.method ?? '', path, status: 408, bytes: -1 });
    return;
  }
  const socket = request.socket;
  answering.add(socket);
  response.once('close', () => answering.delete(socket));
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
  if (path === EVENTS_PATH && options.events) {
    // A stream stays open: the hub answers it, or hands back the refusal. Its `?token=` is never logged (path only).
    const refused =
      request.method === 'GET'
        ? await options.events.open(asRequest, response, options.ingress.gate)
        : json(405, { error: 'method_not_allowed', message: 'Use GET' }, { allow: 'GET' });
    if (refused) send(response, refused);
    options.onRequest?.({ method: request.method ?? '', path, status: refused?.statusCode ?? 200, bytes: 0 });
    return;
  }
  const result =
    body === 'too_large'
      ? json(413, {
          error: 'payload_too_large',
          message: `The body is larger than ${options.ingress.maxBodyBytes} bytes`,
        })
      : options.console?.handles(path)
        ? await options.console.answer(asRequest)
        : path === HEALTH_PATH && options.health
          ? await handleHealthRequest(asRequest, { gate: options.ingress.gate, health: options.health })
          : isQueryPath(path) && options.queries
            ? await handleQueryRequest(asRequest, { gate: options.ingress.gate, engine: options.queries })
            : isSeriesPath(path) && options.queries
              ? await handleSeriesRequest(asRequest, {
                  gate: options.ingress.gate,
                  engine: options.queries,
                  curatedDays: options.curatedDays,
                })
              : path === ALERTS_PATH && options.queries && options.registry
                ? await handleAlertsRequest(asRequest, {
                    gate: options.ingress.gate,
                    registry: options.registry,
                    engine: options.queries,
                    rules: options.alertRules ?? [],
                  })
                : path === QUARANTINE_PATH && options.queries
                  ? await handleQuarantineRequest(asRequest, {
                      gate: options.ingress.gate,
                      engine: options.queries,
                    })
                  : path === DEVICES_PATH && options.registry
                    ? await handleDevicesRequest(asRequest, {
                        gate: options.ingress.gate,
                        registry: options.registry,
                        timeouts: timeoutsOf(options),
                      })
                    : path === ESTATE_PATH && options.registry && options.queries
                      ? await handleEstateRequest(asRequest, {
                          gate: options.ingress.gate,
                          registry: options.registry,
                          timeouts: timeoutsOf(options),
                          rules: options.alertRules ?? [],
                          offlineSeverity: options.estate?.offline.severity ?? 'warning',
                          traffic: lakeTraffic(options.queries),
                          engine: options.queries,
                        })
                      : isRawPath(path) && options.queries
                        ? await handleRawRequest(asRequest, {
                            gate: options.ingress.gate,
                            engine: options.queries,
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

/** The offline timeouts status is measured by (read per request: only the estate routes need them). */
function timeoutsOf(options: Parameters<typeof startHttpServer>[0]): OfflineTimeouts {
  return options.estate ? offlineTimeouts(options.estate) : { byType: {} };
}

/** Node's status for a request its parser or timers refused, and our reason. */
function clientErrorAnswer(code: string | undefined): [number, string, string, string] {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'Request Timeout', 'request_timeout', 'The request took too long to arrive'];
    case 'HPE_HEADER_OVERFLOW':
      return [
        431,
        'Request Header Fields Too Large',
        'headers_too_large',
        'The request line and headers pass 16 KB: a GET callback with this many variables must be a POST',
      ];
    default:
      return [
        400,
        'Bad Request',
        'bad_request',
        `The request is not valid HTTP (${code ?? 'unknown error'})`,
      ];
  }
}

/**
 * The body; 'too_large' once it passes the limit (the rest is read, not buffered);
 * 'incomplete' when the connection ends first (Node's requestTimeout closes it).
 */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer | 'too_large' | 'incomplete'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      else chunks.push(chunk);
    });
    request.on('end', () => resolve(tooLarge ? 'too_large' : Buffer.concat(chunks)));
    // An aborted request errors (ECONNRESET) and closes without 'end'; resolve settles once.
    request.on('error', () => resolve('incomplete'));
    request.on('close', () => resolve('incomplete'));
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
