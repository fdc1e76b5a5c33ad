/**
 * The local live view: `GET /v1/events`, Server-Sent Events of each `reading` (device,
 * time, metrics) and `alert` (raised or cleared) as the ingest path stores them. The
 * hook is the lake store: once a `readings/` or `alerts/` object is written, its lines
 * go to the open streams (after the write has answered, on a later turn of the event
 * loop, and only while someone listens), so ingest never waits for a client.
 *
 * A stream is a client's own: each has a bounded buffer, and a client that lets it
 * fill (it reads slower than events come) is disconnected, never waited for. At most
 * `maxClients` streams are open at once; more answer 503.
 *
 * The browser's EventSource cannot send headers, so besides the usual headers this
 * route, and only this one, takes the key as `?token=<key>`; such a key must have the
 * `read` scope and nothing more, so a URL that leaks (history, a proxy log) cannot
 * write. The server never logs query strings.
 */
import type { ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { coversDevice, READ_SCOPE } from '../lambdas/core/access/keys.ts';
import { type Caller, type Gate, isResponse, presentedKey } from '../lambdas/core/api/gate.ts';
import { type HttpRequest, type HttpResponse, json } from '../lambdas/core/api/http.ts';
import type { ObjectStore } from '../lambdas/core/ingest/ports.ts';
import { LAKE_PREFIXES } from '../lambdas/core/lake/layout.ts';

export const EVENTS_PATH = '/v1/events';

export interface EventStreamLimits {
  /**
   * Streams open at once; one more answers 503.
   *
   * @default 100
   */
  readonly maxClients: number;
  /**
   * Bytes a stream may still have waiting to be sent when new events come; past them the
   * client is disconnected (it reads slower than events come).
   *
   * @default 1048576
   */
  readonly maxBufferedBytes: number;
  /**
   * A comment line this often keeps proxies and the browser from closing an idle stream.
   *
   * @default 15000
   */
  readonly heartbeatMs: number;
}

export const EVENT_STREAM_LIMITS: EventStreamLimits = {
  maxClients: 100,
  maxBufferedBytes: 1 << 20,
  heartbeatMs: 15_000,
};

/** A reading as the stream sends it: one event per device, time and message. */
export interface ReadingEvent {
  readonly deviceId: string;
  readonly deviceType: string;
  readonly time: string;
  readonly receivedAt: string;
  readonly source: string;
  readonly metrics: Record<string, number | string | boolean | null>;
}

export interface EventHub {
  /** The store with the hook: objects written through it are streamed once written. */
  tap(store: ObjectStore): ObjectStore;
  /**
   * Takes a `GET /v1/events` request: the stream is opened on `response`, or the refusal
   * (401, 403, 429, 503) is returned for the caller to send.
   */
  open(request: HttpRequest, response: ServerResponse, gate: Gate): Promise<HttpResponse | undefined>;
  /** Open streams now. */
  readonly clients: number;
  /** Clients disconnected for falling behind, since the start. */
  readonly dropped: number;
  /** Ends every stream. */
  close(): void;
}

interface Client {
  readonly response: ServerResponse;
  readonly devices?: readonly string[];
}

export function createEventHub(
  limits: Partial<EventStreamLimits> = {},
  log?: (line: string) => void,
): EventHub {
  const { maxClients, maxBufferedBytes, heartbeatMs } = { ...EVENT_STREAM_LIMITS, ...limits };
  const clients = new Set<Client>();
  let dropped = 0;
  let sequence = 0;
  const heartbeat = setInterval(() => {
    for (const client of clients) send(client, ': ping\n\n');
  }, heartbeatMs);
  heartbeat.unref();

  function drop(client: Client, why: string) {
    if (!clients.delete(client)) return;
    dropped++;
    log?.(`events: disconnected a client: ${why}`);
    client.response.destroy();
  }

  /**
   * Writes to a client, unless what it was sent before is still waiting past its buffer:
   * then it is behind for good, and disconnected rather than waited for. The check comes
   * before each write, so one stored object (a whole batch's readings) is sent whole.
   */
  function send(client: Client, text: string) {
    if (client.response.writableLength > maxBufferedBytes) {
      drop(client, `more than ${maxBufferedBytes} bytes waiting (it reads slower than events come)`);
      return;
    }
    client.response.write(text);
  }

  function broadcast(events: readonly { kind: 'reading' | 'alert'; deviceId: string; data: unknown }[]) {
    const texts = events.map(
      (e) => `event: ${e.kind}\nid: ${++sequence}\ndata: ${JSON.stringify(e.data)}\n\n`,
    );
    for (const client of clients) {
      const own = texts.filter((_, i) => coversDevice(client.devices, events[i]?.deviceId ?? ''));
      if (own.length > 0) send(client, own.join(''));
    }
  }

  function stored(key: string, body: Buffer) {
    const isReadings = key.startsWith(LAKE_PREFIXES.readings);
    if (!isReadings && !key.startsWith(LAKE_PREFIXES.alerts)) return;
    let lines: Record<string, unknown>[];
    try {
      lines = gunzipSync(body)
        .toString('utf8')
        .split('\n')
        .filter((line) => line.length > 0)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    } catch (error) {
      log?.(`events: could not read ${key}: ${(error as Error).message}`);
      return;
    }
    broadcast(
      isReadings
        ? groupReadings(lines).map((data) => ({ kind: 'reading' as const, deviceId: data.deviceId, data }))
        : lines.map((row) => ({
            kind: 'alert' as const,
            deviceId: String(row.device_id),
            data: alertData(row),
          })),
    );
  }

  return {
    tap(store) {
      return {
        async put(key, body, contentType, contentEncoding) {
          await store.put(key, body, contentType, contentEncoding);
          // After the write has answered, and only while someone listens: ingest never waits.
          if (clients.size > 0) setImmediate(() => stored(key, body));
        },
      };
    },
    async open(request, response, gate) {
      const query = new URLSearchParams(request.query ?? '');
      const token = query.get('token');
      const fromQuery = presentedKey(request.headers) === undefined && token !== null && token !== '';
      const caller = await gate.admit(
        fromQuery ? { headers: { ...request.headers, 'x-api-key': token } } : request,
        READ_SCOPE,
      );
      if (isResponse(caller)) return caller;
      if (fromQuery && !readOnly(caller))
        return json(403, {
          error: 'forbidden',
          message: `Key "${caller.name}" has scopes ${caller.scopes.join(', ')}: a key in ?token= may have only "read" (make one with \`keys create --scope read\`), or send the key as a header`,
        });
      if (clients.size >= maxClients)
        return json(
          503,
          {
            error: 'too_many_streams',
            message: `${maxClients} event streams are open, the most there may be`,
          },
          { 'retry-after': '5' },
        );
      const client: Client = {
        response,
        ...(caller.devices === undefined ? {} : { devices: caller.devices }),
      };
      clients.add(client);
      response.once('close', () => clients.delete(client));
      response.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      response.write('retry: 3000\n: connected\n\n');
      return undefined;
    },
    get clients() {
      return clients.size;
    },
    get dropped() {
      return dropped;
    },
    close() {
      clearInterval(heartbeat);
      for (const client of clients) client.response.end();
      clients.clear();
    },
  };
}

function readOnly(caller: Caller): boolean {
  return caller.scopes.length > 0 && caller.scopes.every((scope) => scope === READ_SCOPE);
}

/** `readings/` lines (one per metric) back into one event per device, time and message. */
export function groupReadings(lines: readonly Record<string, unknown>[]): ReadingEvent[] {
  const events = new Map<string, ReadingEvent>();
  for (const line of lines) {
    const key = JSON.stringify([line.device_id, line.time, line.message_id]);
    let event = events.get(key);
    if (!event) {
      event = {
        deviceId: String(line.device_id),
        deviceType: String(line.device_type),
        time: isoOf(line.time),
        receivedAt: isoOf(line.received_at),
        source: String(line.source),
        metrics: {},
      };
      events.set(key, event);
    }
    const value = line.value ?? line.value_str ?? line.value_bool ?? null;
    Object.defineProperty(event.metrics, String(line.metric), {
      value: value as number | string | boolean | null,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return [...events.values()];
}

function alertData(row: Record<string, unknown>): Record<string, unknown> {
  return {
    alertId: row.alert_id,
    time: isoOf(row.time),
    deviceId: row.device_id,
    deviceType: row.device_type,
    rule: row.rule,
    state: row.state,
    severity: row.severity,
    metric: row.metric ?? null,
    value: row.value ?? null,
    comparison: row.comparison ?? null,
    threshold: row.threshold ?? null,
    lastSeen: typeof row.last_seen === 'string' ? isoOf(row.last_seen) : null,
    message: row.message,
  };
}

/** `2026-11-25 06:00:00.000` (the lake's form) as ISO-8601. */
function isoOf(value: unknown): string {
  return typeof value === 'string' ? `${value.replace(' ', 'T')}Z` : '';
}
