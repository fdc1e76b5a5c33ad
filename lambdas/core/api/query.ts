/**
 * The query API: `GET /v1/devices/{id}/readings?from&to&metric` and
 * `GET /v1/devices/{id}/daily?from&to`, answered by the query engine (Athena, DuckDB
 * locally). Every parameter is checked first and travels as a query parameter, never
 * spliced into SQL. A query that runs longer than the API may wait answers 202 with a
 * token to come back with; a long result comes in pages, with a token for the next.
 */

import { coversDevice, READ_SCOPE } from '../access/keys.ts';
import { DEVICE_ID_PATTERN } from '../ids.ts';
import { lakeTimestamp } from '../lake/tables.ts';
import { type Caller, type Gate, isResponse } from './gate.ts';
import { type HttpRequest, type HttpResponse, json, pathSegment } from './http.ts';

/** A parameter of a planned query: its SQL type and value. */
export interface QueryParam {
  readonly type: 'varchar' | 'timestamp' | 'date';
  readonly value: string;
}

/** SQL with `?` placeholders and their parameters, in order. */
export interface QueryPlan {
  readonly sql: string;
  readonly params: readonly QueryParam[];
}

/** A page of rows, or a token to come back with while the query still runs. */
export interface QueryPage {
  readonly rows: readonly Record<string, unknown>[];
  readonly next?: string;
  readonly running?: boolean;
  /** Bytes the query scanned, when the engine tells (Athena does). */
  readonly bytesScanned?: number;
}

/** What the API needs from an engine: a page of a plan's result, resumable by token. */
export interface PagedQueries {
  page(
    plan: QueryPlan,
    token: string | undefined,
    options: { waitMs: number; pageSize: number },
  ): Promise<QueryPage>;
}

const DAY_MS = 86_400_000;
/** The widest range one request may ask for. */
export const MAX_RANGE_DAYS = 31;
const DEFAULT_PAGE = 500;
const MAX_PAGE = 1000;
const QUERY_PATH = /^\/v1\/devices\/([^/]+)\/(readings|daily)$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
export const METRIC_PATTERN = /^[^\u0000-\u001f\u007f]{1,256}$/;

export function isQueryPath(path: string): boolean {
  return QUERY_PATH.test(path);
}

export function readingsPlan(
  deviceId: string,
  from: number,
  to: number,
  metric: string | undefined,
  limit: number,
): QueryPlan {
  const params: QueryParam[] = [
    { type: 'varchar', value: deviceId },
    { type: 'varchar', value: lakeTimestamp(from).slice(0, 10) },
    { type: 'varchar', value: lakeTimestamp(to).slice(0, 10) },
    { type: 'timestamp', value: lakeTimestamp(from) },
    { type: 'timestamp', value: lakeTimestamp(to) },
  ];
  if (metric !== undefined) params.push({ type: 'varchar', value: metric });
  return {
    sql: `SELECT time, metric, value, value_str, value_bool
FROM readings
WHERE device_id = ? AND dt BETWEEN ? AND ? AND time >= ? AND time < ?${metric === undefined ? '' : ' AND metric = ?'}
ORDER BY time, metric
LIMIT ${limit}`,
    params,
  };
}

export function dailyPlan(deviceId: string, fromDay: string, toDay: string, metric?: string): QueryPlan {
  return {
    sql: `SELECT CAST(day AS VARCHAR) AS day, metric, min, max, max - min AS range, avg, count, first_time, last_time
FROM daily_metrics
WHERE device_id = ? AND dt BETWEEN ? AND ?${metric === undefined ? '' : ' AND metric = ?'}
ORDER BY day, metric`,
    params: [
      { type: 'varchar', value: deviceId },
      { type: 'varchar', value: fromDay },
      { type: 'varchar', value: toDay },
      ...(metric === undefined ? [] : [{ type: 'varchar' as const, value: metric }]),
    ],
  };
}

/** A parameter as an Athena execution parameter: a SQL literal, quotes doubled. */
export function athenaLiteral(param: QueryParam): string {
  const quoted = `'${param.value.replaceAll("'", "''")}'`;
  return param.type === 'timestamp'
    ? `TIMESTAMP ${quoted}`
    : param.type === 'date'
      ? `DATE ${quoted}`
      : quoted;
}

/** A time parameter: ISO-8601 with a zone, or epoch milliseconds. */
export function parseTime(text: string | null, name: string): number | { error: string } | undefined {
  if (text === null) return undefined;
  const ms = /^\d{1,15}$/.test(text)
    ? Number(text)
    : /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2}))?$/.test(text)
      ? Date.parse(text)
      : Number.NaN;
  if (Number.isNaN(ms))
    return {
      error: `${name}=${text.slice(0, 40)} is not a time: use ISO-8601 (2026-11-24T06:00:00Z) or epoch milliseconds`,
    };
  return ms;
}

/** Recent readings from the time-series store (Timestream), for ranges inside its window. */
export interface RecentReadings {
  /** How far back the store answers (its memory store retention). */
  readonly windowMs: number;
  page(
    query: {
      readonly deviceId: string;
      readonly from: number;
      readonly to: number;
      readonly metric?: string;
    },
    token: string | undefined,
    options: { pageSize: number },
  ): Promise<QueryPage>;
}

export interface QueryApiDeps {
  /** Authenticates and throttles; the routes need the `read` scope. */
  readonly gate: Gate;
  readonly engine: PagedQueries;
  /** When Timestream is on: recent ranges of readings are answered from it. */
  readonly recent?: RecentReadings;
  /** How long a request waits for a running query before answering 202 with a token. */
  readonly waitMs?: number;
  readonly now?: () => number;
}

/**
 * The steps every per-device read route takes, in order: the route matched, GET, the
 * caller admitted with the read scope, the device id in the path validated and covered
 * by the caller's key. The path's match, the device and the query's parameters, or the
 * answer (404, 405, 401/403/429, 400) to send instead.
 */
export async function admitDeviceRead(
  request: HttpRequest,
  path: RegExp,
  gate: Gate,
): Promise<
  { match: RegExpExecArray; deviceId: string; params: URLSearchParams; caller: Caller } | HttpResponse
> {
  const match = path.exec(request.path);
  if (!match) return json(404, { error: 'not_found', message: `No route ${request.path}` });
  if (request.method !== 'GET')
    return json(405, { error: 'method_not_allowed', message: 'Use GET' }, { allow: 'GET' });
  const caller = await gate.admit(request, READ_SCOPE);
  if (isResponse(caller)) return caller;
  const deviceId = pathSegment(match[1] ?? '');
  if (deviceId === undefined || !DEVICE_ID_PATTERN.test(deviceId)) {
    return json(400, {
      error: 'invalid_device_id',
      message: `The device id must match ${DEVICE_ID_PATTERN}${deviceId === undefined ? ' (its %-escapes are malformed)' : ''}`,
    });
  }
  if (!coversDevice(caller.devices, deviceId))
    return json(403, {
      error: 'forbidden_device',
      message: `Key "${caller.name}" may not read device "${deviceId}": it was created for ${caller.devices?.join(', ')}`,
    });
  return { match, deviceId, params: new URLSearchParams(request.query ?? ''), caller };
}

export async function handleQueryRequest(request: HttpRequest, deps: QueryApiDeps): Promise<HttpResponse> {
  const admitted = await admitDeviceRead(request, QUERY_PATH, deps.gate);
  if ('statusCode' in admitted) return admitted;
  const { match, deviceId, params } = admitted;
  const now = (deps.now ?? Date.now)();
  const from = parseTime(params.get('from'), 'from');
  const to = parseTime(params.get('to'), 'to');
  if (typeof from === 'object') return json(400, { error: 'invalid_parameter', message: from.error });
  if (typeof to === 'object') return json(400, { error: 'invalid_parameter', message: to.error });
  // A `next` carries the range its first page resolved (`to` defaults to now, which moves on).
  const resumed = readApiToken(params.get('next') ?? undefined);
  if (resumed instanceof InvalidTokenError)
    return json(400, { error: 'invalid_token', message: resumed.message });
  const end = to ?? resumed?.to ?? now;
  const start = from ?? resumed?.from ?? end - (match[2] === 'daily' ? 7 * DAY_MS : DAY_MS);
  if (start >= end) return json(400, { error: 'invalid_parameter', message: 'from must be before to' });
  if (end - start > MAX_RANGE_DAYS * DAY_MS) {
    return json(400, {
      error: 'invalid_parameter',
      message: `At most ${MAX_RANGE_DAYS} days per request; page through longer ranges`,
    });
  }
  const sizeText = params.get('limit');
  const pageSize = sizeText === null ? DEFAULT_PAGE : Number(sizeText);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE) {
    return json(400, { error: 'invalid_parameter', message: `limit must be 1 to ${MAX_PAGE}` });
  }
  const metric = params.get('metric') ?? undefined;
  if (metric !== undefined && !METRIC_PATTERN.test(metric)) {
    return json(400, {
      error: 'invalid_parameter',
      message: 'metric must be 1-256 characters without control characters',
    });
  }
  const token = resumed?.inner;
  const recent = deps.recent;
  const range = { from: start, to: end };
  if (
    match[2] === 'readings' &&
    recent &&
    (token === undefined ? start >= now - recent.windowMs : token.startsWith('ts.'))
  ) {
    try {
      const page = await recent.page({ deviceId, from: start, to: end, metric }, token, { pageSize });
      return json(200, {
        deviceId,
        from: new Date(start).toISOString(),
        to: new Date(end).toISOString(),
        source: 'timeseries',
        ...withApiToken(page, range),
      });
    } catch (error) {
      if (error instanceof InvalidTokenError)
        return json(400, { error: 'invalid_token', message: error.message });
      throw error;
    }
  }
  const plan =
    match[2] === 'readings'
      ? readingsPlan(deviceId, start, end, metric, 100_000)
      : dailyPlan(deviceId, lakeTimestamp(start).slice(0, 10), lakeTimestamp(end).slice(0, 10), metric);
  let page: QueryPage;
  try {
    page = await deps.engine.page(plan, token, {
      waitMs: deps.waitMs ?? 20_000,
      pageSize,
    });
  } catch (error) {
    if (error instanceof InvalidTokenError)
      return json(400, { error: 'invalid_token', message: error.message });
    throw error;
  }
  const body = {
    deviceId,
    from: new Date(start).toISOString(),
    to: new Date(end).toISOString(),
    source: 'lake',
    ...withApiToken(page, range),
  };
  return json(page.running ? 202 : 200, body);
}

/**
 * The API's `next`: `<from>~<to>~<engine token>`, the range in epoch ms, so that a caller
 * who follows `next` without repeating `from` and `to` pages through the same query. The
 * engine's token is bound to its query (page-token.ts, Athena's execution check).
 */
function withApiToken(page: QueryPage, range: { from: number; to: number }): QueryPage {
  return page.next === undefined ? page : { ...page, next: `${range.from}~${range.to}~${page.next}` };
}

function readApiToken(
  text: string | undefined,
): { from: number; to: number; inner: string } | InvalidTokenError | undefined {
  if (text === undefined) return undefined;
  const match = /^(\d{1,15})~(\d{1,15})~([A-Za-z0-9_.=-]{1,8192})$/.exec(text);
  if (!match) return new InvalidTokenError('next is not a token this API gave');
  return { from: Number(match[1]), to: Number(match[2]), inner: match[3] as string };
}

/** A continuation token that does not belong to this query. */
export class InvalidTokenError extends Error {}
