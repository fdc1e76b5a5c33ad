/**
 * `GET /v1/devices/{id}/raw?from=&to=&limit=&next=`: the last messages of one device as
 * they arrived, newest first, from the lake table `raw` through the query engine (Athena,
 * DuckDB locally), every value a parameter. Each with its payload in base64 (what
 * `iot-pipeline decode --base64` takes, and the command to run), its way in, topic and
 * the warnings of what could not be stored though the message was.
 *
 * The table is partitioned by source, day and hour, not by device: the plan reads only
 * the hours of the range asked (`dt` and `hour`), which is why the range is short (a day
 * by default, at most {@link MAX_RAW_DAYS}) and the console asks from an hour before
 * the device's last reading.
 *
 * Read scope, as `GET /v1/quarantine`: a raw payload is the same kind of data that route
 * already serves (the bytes a device sent, in base64), and the readings decoded from them
 * are readable under read scope too. A key made for some devices sees only theirs.
 */
import { DEVICE_ID_PATTERN } from '../ids.ts';
import { partitionOf } from '../lake/layout.ts';
import { lakeTimestamp } from '../lake/tables.ts';
import type { Gate } from './gate.ts';
import { type HttpRequest, type HttpResponse, json } from './http.ts';
import { apiToken, DAY_MS, ParameterError, parseTime, readApiToken } from './list-params.ts';
import { messageFields } from './quarantine.ts';
import {
  admitDeviceRead,
  InvalidTokenError,
  type PagedQueries,
  type QueryParam,
  type QueryPlan,
} from './query.ts';
import { daysOf } from './series.ts';

const RAW_PATH = /^\/v1\/devices\/([^/]+)\/raw$/;
/** The widest range one request may ask for: the table is not partitioned by device. */
export const MAX_RAW_DAYS = 7;
/** Without `from`: the last day. */
const DEFAULT_RANGE_MS = DAY_MS;
export const DEFAULT_RAW_LIMIT = 10;
/**
 * Messages a page holds at most: a payload may be `validation.maxPayloadBytes` (128 KiB,
 * 175 KB in base64), and a Lambda answer at most 6 MB.
 */
export const MAX_RAW_LIMIT = 25;
/**
 * The newest messages of a range that paging reaches: the engine writes the whole result
 * (payloads included) before the first page; ask a range ending earlier for older ones.
 */
export const MAX_RAW_ROWS = 1000;

export function isRawPath(path: string): boolean {
  return RAW_PATH.test(path);
}

export interface RawQuery {
  readonly deviceId: string;
  readonly from: number;
  readonly to: number;
}

const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/**
 * The plan: the device's messages received in [from, to), newest first, from the days of
 * the range and, on its first and last day, only the hours it touches.
 */
export function rawPlan(query: RawQuery): QueryPlan {
  const { deviceId, from, to } = query;
  if (!DEVICE_ID_PATTERN.test(deviceId)) throw new RangeError(`device id must match ${DEVICE_ID_PATTERN}`);
  if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && to > from))
    throw new RangeError('from and to must be epoch milliseconds, from before to');
  if (to - from > MAX_RAW_DAYS * DAY_MS) throw new RangeError(`at most ${MAX_RAW_DAYS} days`);
  const days = daysOf(from, to);
  const first = partitionOf(from);
  const last = partitionOf(to - 1);
  const text = (value: string): QueryParam => ({ type: 'varchar', value });
  return {
    sql: `SELECT received_at, message_id, source, topic, device_type, payload, warnings
FROM raw
WHERE device_id = ? AND dt IN (${placeholders(days.length)})
  AND (dt > ? OR hour >= ?) AND (dt < ? OR hour <= ?)
  AND received_at >= ? AND received_at < ?
ORDER BY received_at DESC, message_id
LIMIT ${MAX_RAW_ROWS}`,
    params: [
      text(deviceId),
      ...days.map(text),
      text(first.dt),
      text(first.hour),
      text(last.dt),
      text(last.hour),
      { type: 'timestamp', value: lakeTimestamp(from) },
      { type: 'timestamp', value: lakeTimestamp(to) },
    ],
  };
}

/** The `warnings` column (a JSON array of strings, or null) as an array; text that is not one, as its one warning. */
export function warningsOf(value: unknown): string[] {
  if (typeof value !== 'string' || value === '') return [];
  try {
    const parsed: unknown = JSON.parse(value);
    if (Array.isArray(parsed)) return parsed.map((w) => (typeof w === 'string' ? w : JSON.stringify(w)));
  } catch {
    // Not JSON: kept as it is, below.
  }
  return [value];
}

export function rawRow(row: Record<string, unknown>): Record<string, unknown> {
  return { ...messageFields(row), warnings: warningsOf(row.warnings) };
}

export interface RawApiDeps {
  /** Authenticates and throttles; the route needs the `read` scope. */
  readonly gate: Gate;
  readonly engine: PagedQueries;
  /** How long a request waits for a running query before answering 202 with a token. */
  readonly waitMs?: number;
  readonly now?: () => number;
}

export async function handleRawRequest(request: HttpRequest, deps: RawApiDeps): Promise<HttpResponse> {
  const admitted = await admitDeviceRead(request, RAW_PATH, deps.gate);
  if ('statusCode' in admitted) return admitted;
  const { deviceId, params } = admitted;
  try {
    const limitText = params.get('limit');
    const pageSize = limitText === null ? DEFAULT_RAW_LIMIT : Number(limitText);
    if (!/^\d{1,3}$/.test(limitText ?? '1') || pageSize < 1 || pageSize > MAX_RAW_LIMIT)
      throw new ParameterError(`limit must be 1 to ${MAX_RAW_LIMIT} (messages carry whole payloads)`);
    // A `next` carries the range its first page resolved (`to` defaults to now, which moves on).
    const resumed = readApiToken(params.get('next'));
    const from = parseTime(params.get('from'), 'from');
    const to = parseTime(params.get('to'), 'to');
    const end = to ?? resumed?.to ?? (deps.now ?? Date.now)();
    const range = { from: from ?? resumed?.from ?? end - DEFAULT_RANGE_MS, to: end };
    if (range.from >= range.to) throw new ParameterError('from must be before to');
    if (range.to - range.from > MAX_RAW_DAYS * DAY_MS)
      throw new ParameterError(
        `At most ${MAX_RAW_DAYS} days per request: the raw table is read by the hour, every device's messages in it`,
      );
    const page = await deps.engine.page(rawPlan({ deviceId, ...range }), resumed?.inner, {
      waitMs: deps.waitMs ?? 20_000,
      pageSize,
    });
    return json(page.running ? 202 : 200, {
      deviceId,
      from: new Date(range.from).toISOString(),
      to: new Date(range.to).toISOString(),
      source: 'lake',
      rows: page.running ? [] : page.rows.map(rawRow),
      ...(page.running ? { running: true } : {}),
      ...(page.next === undefined ? {} : { next: apiToken(range, page.next) }),
      ...(page.bytesScanned === undefined ? {} : { bytesScanned: page.bytesScanned }),
    });
  } catch (error) {
    if (error instanceof ParameterError)
      return json(400, { error: 'invalid_parameter', message: error.message });
    if (error instanceof InvalidTokenError)
      return json(400, { error: 'invalid_token', message: error.message });
    throw error;
  }
}
