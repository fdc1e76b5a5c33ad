import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { IngestMetrics } from '../../core/ingest/ports.ts';

/**
 * The dimensions of the ingest function's metrics: its service and its own function name,
 * which tells two stages in one account apart (`GET /v1/estate` reads its stage's counts by them).
 */
export function ingestMetricDimensions(functionName: string): Record<string, string> {
  return { service: 'iot-pipeline-ingest', FunctionName: functionName };
}

/** Ingest counters and sink latencies as CloudWatch EMF, through Powertools. */
export function emfMetrics(metrics: Metrics): IngestMetrics {
  return {
    count: (name, value) => metrics.addMetric(name, MetricUnit.Count, value),
    latency: (sink, ms) => metrics.addMetric(`${sink}Latency`, MetricUnit.Milliseconds, ms),
  };
}
