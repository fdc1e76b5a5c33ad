import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { IngestMetrics } from '../../core/ingest/ports.ts';

/** Ingest counters and sink latencies as CloudWatch EMF, through Powertools. */
export function emfMetrics(metrics: Metrics): IngestMetrics {
  return {
    count: (name, value) => metrics.addMetric(name, MetricUnit.Count, value),
    latency: (sink, ms) => metrics.addMetric(`${sink}Latency`, MetricUnit.Milliseconds, ms),
  };
}
