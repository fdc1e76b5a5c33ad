import { QueryCommand, type TimestreamQueryClient } from '@aws-sdk/client-timestream-query';
import { InvalidTokenError, type RecentReadings } from '../../core/api/query.ts';
import { DEVICE_ID_PATTERN } from '../../core/ids.ts';

/** Columns of a multi-measure record that are not metrics. */
const NOT_METRICS = new Set(['time', 'device_id', 'device_type', 'source', 'measure_name']);

/**
 * Recent readings from Timestream: one query for the device's records in the range,
 * turned into the long format of the lake (one row per metric). Timestream's query
 * language takes no parameters, so only checked values go in: the device id matches its
 * pattern (no quote can pass) and the times are integers; the metric is filtered here.
 */
export function timestreamRecentReadings(
  client: TimestreamQueryClient,
  options: { readonly database: string; readonly table: string; readonly windowMs: number },
): RecentReadings {
  return {
    windowMs: options.windowMs,
    async page({ deviceId, from, to, metric }, token, { pageSize }) {
      if (!DEVICE_ID_PATTERN.test(deviceId) || !Number.isInteger(from) || !Number.isInteger(to)) {
        throw new Error('timestreamRecentReadings: unchecked parameters');
      }
      let nextToken: string | undefined;
      if (token !== undefined) {
        if (!token.startsWith('ts.')) throw new InvalidTokenError('next is not a token of this query');
        nextToken = Buffer.from(token.slice(3), 'base64url').toString('utf8');
      }
      const result = await client.send(
        new QueryCommand({
          QueryString: `SELECT * FROM "${options.database}"."${options.table}" WHERE device_id = '${deviceId}' AND measure_name = 'telemetry' AND time >= from_milliseconds(${from}) AND time < from_milliseconds(${to}) ORDER BY time`,
          MaxRows: pageSize,
          ...(nextToken === undefined ? {} : { NextToken: nextToken }),
        }),
      );
      const columns = result.ColumnInfo ?? [];
      const rows: Record<string, unknown>[] = [];
      for (const row of result.Rows ?? []) {
        const data = row.Data ?? [];
        const timeIndex = columns.findIndex((c) => c.Name === 'time');
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
      return {
        rows,
        ...(result.NextToken ? { next: `ts.${Buffer.from(result.NextToken).toString('base64url')}` } : {}),
      };
    },
  };
}
