import {
  type ColumnInfo,
  QueryCommand,
  type Row,
  type TimestreamQueryClient,
} from '@aws-sdk/client-timestream-query';
import { decodePageToken, encodePageToken, NOT_A_TOKEN, queryDigest } from '../../core/api/page-token.ts';
import { InvalidTokenError, type RecentReadings } from '../../core/api/query.ts';
import { DEVICE_ID_PATTERN } from '../../core/ids.ts';

/** Columns of a multi-measure record that are not metrics. */
const NOT_METRICS = new Set(['time', 'device_id', 'device_type', 'source', 'measure_name']);

/**
 * The most records at one millisecond a token may say were returned already. A device
 * has at most one record per millisecond for each (device_type, source) pair (they are
 * the record's dimensions beside device_id), so real tokens carry a handful.
 */
export const MAX_SKIP = 100;
/** Timestream's largest MaxRows: the most rows one Query call answers. */
const MAX_ROWS_PER_CALL = 1000;
/** Query calls one page may make following Timestream's NextToken before giving up. */
const MAX_CALLS_PER_PAGE = 50;

/**
 * Recent readings from Timestream: the device's records in the range, turned into the
 * long format of the lake (one row per metric). Timestream's query language takes no
 * parameters, so only checked values go in: the device id matches its pattern (no quote
 * can pass) and the times are integers; the metric is filtered here.
 *
 * A page is `pageSize` records of the multi-measure table (one per device, time, type
 * and source), each giving a row per metric it holds (or per matching metric): a page
 * has at most `pageSize` records, not rows. Pages are keyset pages: `next` is `ts.` and
 * a page token holding a position in this query only, `{ q, at, skip }` (the last
 * record's time in epoch ms, and how many records at exactly that time were returned),
 * and each page asks Timestream afresh for the path's device from `at`, in a total order
 * (time, then the other dimensions), `LIMIT skip + pageSize + 1`. Timestream's own
 * NextToken is followed within the request until that result is complete and never
 * handed out, so no token holds a handle on another query's results; a token's digest
 * (device, range, metric) refuses one made for another query, and a forged one can at
 * worst move the position within the caller's own device's query.
 */
export function timestreamRecentReadings(
  client: TimestreamQueryClient,
  options: { readonly database: string; readonly table: string; readonly windowMs: number },
): RecentReadings {
  return {
    windowMs: options.windowMs,
    async page({ deviceId, from, to, metric }, token, { pageSize }) {
      if (
        !DEVICE_ID_PATTERN.test(deviceId) ||
        !Number.isSafeInteger(from) ||
        !Number.isSafeInteger(to) ||
        !Number.isSafeInteger(pageSize) ||
        pageSize < 1
      ) {
        throw new Error('timestreamRecentReadings: unchecked parameters');
      }
      const digest = queryDigest([
        'timestream',
        options.database,
        options.table,
        deviceId,
        from,
        to,
        metric ?? null,
      ]);
      const { at, skip } = token === undefined ? { at: from, skip: 0 } : positionOf(token, digest, from, to);
      const limit = skip + pageSize + 1;
      const queryString = `SELECT * FROM "${options.database}"."${options.table}" WHERE device_id = '${deviceId}' AND measure_name = 'telemetry' AND time >= from_milliseconds(${at}) AND time < from_milliseconds(${to}) ORDER BY time, device_type, source LIMIT ${limit}`;
      const { columns, records } = await queryAll(client, queryString, limit);
      const timeIndex = columns.findIndex((c) => c.Name === 'time');
      const times = records.map((record) => epochMs(record.Data?.[timeIndex]?.ScalarValue));
      // The first `skip` records at `at` came on the page before (fewer, if fewer are there now).
      let dropped = 0;
      while (dropped < skip && times[dropped] === at) dropped++;
      const end = Math.min(records.length, dropped + pageSize);
      const rows: Record<string, unknown>[] = [];
      for (const record of records.slice(dropped, end)) {
        const data = record.Data ?? [];
        // Timestream writes nanoseconds: keep the lake's milliseconds.
        const time = (data[timeIndex]?.ScalarValue ?? '').slice(0, 23);
        columns.forEach((column, i) => {
          const name = column.Name ?? '';
          const value = data[i]?.ScalarValue;
          if (NOT_METRICS.has(name) || value === undefined || data[i]?.NullValue) return;
          if (metric !== undefined && name !== metric) return;
          const type = column.Type?.ScalarType;
          rows.push({
            time,
            metric: name,
            value: type === 'DOUBLE' || type === 'BIGINT' || type === 'INTEGER' ? Number(value) : null,
            value_str: type === 'VARCHAR' ? value : null,
            value_bool: type === 'BOOLEAN' ? value === 'true' : null,
          });
        });
      }
      if (records.length <= end) return { rows };
      // More follow: the position after the last record of this page.
      const last = times[end - 1] as number;
      let same = 0;
      while (same < end && times[end - 1 - same] === last) same++;
      if (same > MAX_SKIP) {
        throw new Error(
          `timestreamRecentReadings: ${same} records of ${deviceId} at ${last}, more than ${MAX_SKIP}`,
        );
      }
      return { rows, next: `ts.${encodePageToken(digest, { at: last, skip: same })}` };
    },
  };
}

/**
 * The position a token holds, once it is this query's and its values are in bounds.
 *
 * @throws InvalidTokenError "next is not a token this API gave" unless it is `ts.` and
 *   `{ q, at, skip }` with `at` an integer in [from, to) and `skip` an integer 0 to
 *   {@link MAX_SKIP}; "next belongs to another query" when `q` is another query's digest
 */
function positionOf(token: string, digest: string, from: number, to: number): { at: number; skip: number } {
  if (!token.startsWith('ts.')) throw new InvalidTokenError(NOT_A_TOKEN);
  const { at, skip, ...rest } = decodePageToken(token.slice(3), digest);
  if (
    Object.keys(rest).length > 0 ||
    typeof at !== 'number' ||
    typeof skip !== 'number' ||
    !Number.isSafeInteger(at) ||
    at < from ||
    at >= to ||
    !Number.isSafeInteger(skip) ||
    skip < 0 ||
    skip > MAX_SKIP
  ) {
    throw new InvalidTokenError(NOT_A_TOKEN);
  }
  return { at, skip };
}

/**
 * All of one query's result: Timestream may answer in parts (even an empty first part)
 * with a NextToken for the rest, which is followed here, with the same query string, until
 * there is none or `limit` records are in.
 */
async function queryAll(
  client: TimestreamQueryClient,
  queryString: string,
  limit: number,
): Promise<{ columns: ColumnInfo[]; records: Row[] }> {
  let columns: ColumnInfo[] = [];
  const records: Row[] = [];
  let nextToken: string | undefined;
  for (let call = 1; ; call++) {
    const result = await client.send(
      new QueryCommand({
        QueryString: queryString,
        MaxRows: Math.min(limit, MAX_ROWS_PER_CALL),
        ...(nextToken === undefined ? {} : { NextToken: nextToken }),
      }),
    );
    if (result.ColumnInfo?.length) columns = result.ColumnInfo;
    records.push(...(result.Rows ?? []));
    nextToken = result.NextToken || undefined;
    if (nextToken === undefined || records.length >= limit)
      return { columns, records: records.slice(0, limit) };
    if (call >= MAX_CALLS_PER_PAGE) {
      throw new Error(`timestreamRecentReadings: no complete result after ${call} Query calls`);
    }
  }
}

/** Epoch milliseconds of a Timestream timestamp (`2026-11-25 05:00:00.123456789`, UTC). */
function epochMs(text: string | undefined): number {
  const match = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)/.exec(text ?? '');
  const ms = match ? Date.parse(`${match[1]}T${match[2]}Z`) : Number.NaN;
  if (!Number.isSafeInteger(ms))
    throw new Error(`timestreamRecentReadings: ${text} is not a Timestream time`);
  return ms;
}
