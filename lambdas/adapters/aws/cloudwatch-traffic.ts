import { type CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import type { HourCount, TrafficCounts } from '../../core/api/estate.ts';
import { ingestMetricDimensions } from './metrics.ts';

const HOUR_S = 3600;

/**
 * The estate's traffic from the metrics the ingest function already emits (EMF:
 * `messages` and `quarantined` per batch, dimensioned by the function's name): one
 * GetMetricData call of two metrics, hourly sums. No lake read: a Scan of a day of raw
 * payloads per call is what this replaces. CloudWatch lists a metric's hourly sums a
 * few minutes behind, and keeps them 15 months.
 */
export function cloudwatchTraffic(
  client: CloudWatchClient,
  options: { readonly namespace: string; readonly ingestFunctionName: string },
): TrafficCounts {
  const dimensions = Object.entries(ingestMetricDimensions(options.ingestFunctionName)).map(
    ([Name, Value]) => ({
      Name,
      Value,
    }),
  );
  const query = (id: 'messages' | 'quarantined') => ({
    Id: id,
    MetricStat: {
      Metric: { Namespace: options.namespace, MetricName: id, Dimensions: dimensions },
      Period: HOUR_S,
      Stat: 'Sum',
    },
    ReturnData: true,
  });
  return {
    source: 'cloudwatch',
    async hourly(from, to) {
      const hours = new Map<number, { messages: number; quarantined: number }>();
      let token: string | undefined;
      do {
        const result = await client.send(
          new GetMetricDataCommand({
            MetricDataQueries: [query('messages'), query('quarantined')],
            StartTime: new Date(from),
            EndTime: new Date(to),
            ScanBy: 'TimestampAscending',
            NextToken: token,
          }),
        );
        for (const series of result.MetricDataResults ?? []) {
          const id = series.Id;
          if (id !== 'messages' && id !== 'quarantined') continue;
          (series.Timestamps ?? []).forEach((time, i) => {
            const hour = Math.floor(time.getTime() / (HOUR_S * 1000)) * HOUR_S * 1000;
            const entry = hours.get(hour) ?? { messages: 0, quarantined: 0 };
            entry[id] += series.Values?.[i] ?? 0;
            hours.set(hour, entry);
          });
        }
        token = result.NextToken;
      } while (token);
      return [...hours].sort(([a], [b]) => a - b).map(([hour, counts]): HourCount => ({ hour, ...counts }));
    },
  };
}
