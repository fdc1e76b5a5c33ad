/**
 * `GET /v1/quarantine?from=&to=&reason=&source=&device=&limit=&next=`: what could not be
 * stored, from the lake table `quarantine` through the query engine (Athena, DuckDB
 * locally). Two queries, every value a parameter: reasons by count over time (hourly
 * buckets for ranges up to 2 days, daily beyond) and the latest records as examples,
 * each with its payload in base64, exactly what `iot-pipeline decode --base64` takes.
 * Read scope; a key made for some devices sees only theirs.
 */
import { coversDevice, READ_SCOPE } from '../access/keys.ts';
import { SOURCES } from '../formats/index.ts';
import { lakeTimestamp } from '../lake/tables.ts';
import { type Gate, isResponse } from './gate.ts';
import { type HttpRequest, type HttpResponse, json } from './http.ts';
import {
  apiToken,
  DAY_MS,
  devicesClause,
  isoTime,
  numberOf,
  ParameterError,
  parseChoice,
  parseDevice,
  parseName,
  parseRange,
  readApiToken,
  textOf,
} from './list-params.ts';
import {
  InvalidTokenError,
  type PagedQueries,
  type QueryPage,
  type QueryParam,
  type QueryPlan,
} from './query.ts';

export const QUARANTINE_PATH = '/v1/quarantine';
/** Without `from`: the last day. */
const DEFAULT_RANGE_MS = DAY_MS;
/** Ranges up to this are counted per hour, longer ones per day. */
export const HOURLY_UP_TO_MS = 2 * DAY_MS;
const DEFAULT_EXAMPLES = 10;
/**
 * Examples a page holds at most: a payload may be `validation.maxPayloadBytes` (128 KiB,
 * 175 KB in base64), and a Lambda answer at most 6 MB.
 */
export const MAX_EXAMPLES = 25;
/** A `decode` command is given beside payloads up to this many base64 characters; paste longer ones. */
const DECODE_COMMAND_MAX = 8192;
/** Count rows read at most (31 days of every reason code). */
const MAX_COUNT_PAGES = 10;
/** The part of a `next` that is done: nothing more to fetch. */
const DONE = '-';

export interface QuarantineFilter {
  readonly reason?: string;
  readonly source?: string;
  readonly device?: string;
  readonly devices?: readonly string[];
}

function whereOf(
  from: number,
  to: number,
  filter: QuarantineFilter,
): { where: string; params: QueryParam[] } {
  const params: QueryParam[] = [
    { type: 'varchar', value: lakeTimestamp(from).slice(0, 10) },
    { type: 'varchar', value: lakeTimestamp(to).slice(0, 10) },
    { type: 'timestamp', value: lakeTimestamp(from) },
    { type: 'timestamp', value: lakeTimestamp(to) },
  ];
  const where = ['dt BETWEEN ? AND ?', 'received_at >= ?', 'received_at < ?'];
  for (const [column, value] of [
    ['reason_code', filter.reason],
    ['source', filter.source],
    ['device_id', filter.device],
  ] as const) {
    if (value === undefined) continue;
    where.push(`${column} = ?`);
    params.push({ type: 'varchar', value });
  }
  if (filter.devices !== undefined) {
    const clause = devicesClause(filter.devices);
    where.push(clause.sql);
    params.push(...clause.params);
  }
  return { where: where.join(' AND '), params };
}

/** The bucket a range is counted in: per hour up to 2 days, per day beyond. */
export function bucketOf(from: number, to: number): 'hour' | 'day' {
  return to - from <= HOURLY_UP_TO_MS ? 'hour' : 'day';
}

/** Reasons by count per bucket (the unit is one of two words, never input). */
export function quarantineCountsPlan(from: number, to: number, filter: QuarantineFilter): QueryPlan {
  const { where, params } = whereOf(from, to, filter);
  return {
    sql: `SELECT date_trunc('${bucketOf(from, to)}', received_at) AS bucket, reason_code, count(*) AS count
FROM quarantine
WHERE ${where}
GROUP BY 1, 2
ORDER BY 1, 2`,
    params,
  };
}

/** The latest quarantined records, newest first. */
export function quarantineExamplesPlan(from: number, to: number, filter: QuarantineFilter): QueryPlan {
  const { where, params } = whereOf(from, to, filter);
  return {
    sql: `SELECT received_at, message_id, source, topic, device_id, device_type, reason_code, reason, payload
FROM quarantine
WHERE ${where}
ORDER BY received_at DESC, message_id
LIMIT 100000`,
    params,
  };
}

/** A shell word: as it is when it is plainly safe, else in single quotes. */
function shellWord(text: string): string {
  return /^[A-Za-z0-9_.:/=+-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/** The command that decodes a quarantined payload as its device type's decoder would. */
export function decodeCommand(deviceType: string | null, payload: string): string | null {
  if (deviceType === null || payload.length > DECODE_COMMAND_MAX) return null;
  return `npm run cli -- decode --type ${shellWord(deviceType)} --base64 ${shellWord(payload)}`;
}

/**
 * What a stored message of `raw` or `quarantine` answers as: when and how it came, its
 * device type, its payload in base64 (`decode --base64` takes it as it is) and the
 * command that decodes it.
 */
export function messageFields(row: Record<string, unknown>) {
  const payload = textOf(row.payload) ?? '';
  const deviceType = textOf(row.device_type);
  return {
    receivedAt: isoTime(row.received_at),
    messageId: textOf(row.message_id),
    source: textOf(row.source),
    topic: textOf(row.topic),
    deviceType,
    payload,
    decode: decodeCommand(deviceType, payload),
  };
}

export function exampleRow(row: Record<string, unknown>): Record<string, unknown> {
  return {
    ...messageFields(row),
    deviceId: textOf(row.device_id),
    reasonCode: textOf(row.reason_code),
    reason: textOf(row.reason),
  };
}

export interface QuarantineApiDeps {
  readonly gate: Gate;
  readonly engine: PagedQueries;
  readonly waitMs?: number;
  readonly now?: () => number;
}

export async function handleQuarantineRequest(
  request: HttpRequest,
  deps: QuarantineApiDeps,
): Promise<HttpResponse> {
  if (request.path !== QUARANTINE_PATH)
    return json(404, { error: 'not_found', message: `No route ${request.path}` });
  if (request.method !== 'GET')
    return json(405, { error: 'method_not_allowed', message: 'Use GET' }, { allow: 'GET' });
  const caller = await deps.gate.admit(request, READ_SCOPE);
  if (isResponse(caller)) return caller;
  const params = new URLSearchParams(request.query ?? '');
  try {
    const filter: QuarantineFilter = {
      reason: parseName(params, 'reason'),
      source: parseChoice(params, 'source', SOURCES),
      device: parseDevice(params),
      ...(caller.devices === undefined ? {} : { devices: caller.devices }),
    };
    if (filter.device !== undefined && !coversDevice(caller.devices, filter.device))
      return json(403, {
        error: 'forbidden_device',
        message: `Key "${caller.name}" may not read device "${filter.device}": it was created for ${caller.devices?.join(', ')}`,
      });
    const limitText = params.get('limit');
    const pageSize = limitText === null ? DEFAULT_EXAMPLES : Number(limitText);
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_EXAMPLES)
      throw new ParameterError(`limit must be 1 to ${MAX_EXAMPLES} (examples carry whole payloads)`);
    const resumed = readApiToken(params.get('next'));
    const parts = resumed === undefined ? undefined : splitParts(resumed.inner);
    const range = parseRange(params, resumed, (deps.now ?? Date.now)(), DEFAULT_RANGE_MS);
    const options = { waitMs: deps.waitMs ?? 20_000, pageSize };
    // The counts come with the first page (or until their query is done); `next` then pages the examples.
    const [counts, examples] = await Promise.all([
      parts?.counts === DONE
        ? undefined
        : readCounts(deps.engine, quarantineCountsPlan(range.from, range.to, filter), parts?.counts, options),
      parts?.examples === DONE
        ? undefined
        : deps.engine.page(quarantineExamplesPlan(range.from, range.to, filter), parts?.examples, options),
    ]);
    const countsNext = counts?.running ? (counts.next ?? DONE) : DONE;
    const examplesNext = examples?.next ?? DONE;
    const running = counts?.running === true || examples?.running === true;
    return json(running ? 202 : 200, {
      from: new Date(range.from).toISOString(),
      to: new Date(range.to).toISOString(),
      source: 'lake',
      ...(counts && !counts.running
        ? { bucket: bucketOf(range.from, range.to), counts: counts.rows, truncated: counts.truncated }
        : {}),
      ...(examples && !examples.running ? { examples: examples.rows.map(exampleRow) } : {}),
      ...(running ? { running: true } : {}),
      ...(countsNext === DONE && examplesNext === DONE
        ? {}
        : { next: apiToken(range, `${countsNext}.${examplesNext}`) }),
    });
  } catch (error) {
    if (error instanceof ParameterError)
      return json(400, { error: 'invalid_parameter', message: error.message });
    if (error instanceof InvalidTokenError)
      return json(400, { error: 'invalid_token', message: error.message });
    throw error;
  }
}

/** `<counts>.<examples>`: each an engine token, or `-` when that part is done. */
function splitParts(inner: string): { counts: string; examples: string } {
  const match = /^([A-Za-z0-9_=-]+)\.([A-Za-z0-9_=-]+)$/.exec(inner);
  if (!match) throw new InvalidTokenError('next is not a token this API gave');
  return { counts: match[1] as string, examples: match[2] as string };
}

/** Every count row (a few pages at most), as `{bucket, reasonCode, count}`. */
async function readCounts(
  engine: PagedQueries,
  plan: QueryPlan,
  token: string | undefined,
  options: { waitMs: number; pageSize: number },
): Promise<{ rows: Record<string, unknown>[]; running: boolean; next?: string; truncated: boolean }> {
  const rows: Record<string, unknown>[] = [];
  let next = token;
  for (let n = 0; n < MAX_COUNT_PAGES; n++) {
    const page: QueryPage = await engine.page(plan, next, { ...options, pageSize: 1000 });
    if (page.running) return { rows, running: true, next: page.next, truncated: false };
    for (const row of page.rows)
      rows.push({
        bucket: isoTime(row.bucket),
        reasonCode: textOf(row.reason_code),
        count: numberOf(row.count),
      });
    next = page.next;
    if (next === undefined) return { rows, running: false, truncated: false };
  }
  return { rows, running: false, truncated: true };
}
