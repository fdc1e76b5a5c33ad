/**
 * The lake's key layout (DESIGN.md, "Normalized reading and storage layout"), in one
 * place: the ingest path writes these keys, the Glue tables' partition projection
 * templates read them, and the local runtime uses the same keys under a folder.
 */
import type { Source } from '../formats/index.ts';

export const LAKE_PREFIXES = {
  raw: 'raw/',
  readings: 'readings/',
  quarantine: 'quarantine/',
  alerts: 'alerts/',
  curated: 'curated/readings/',
  dailyMetrics: 'curated/daily_metrics/',
  dailyUptime: 'curated/daily_uptime/',
  reports: 'reports/',
  ruleErrors: 'errors/iot-rule/',
} as const;

/** `YYYY-MM-DD` and `HH` of an instant, in UTC: the `dt=` and `hour=` partitions. */
export function partitionOf(epochMs: number): { dt: string; hour: string } {
  const iso = new Date(epochMs).toISOString();
  return { dt: iso.slice(0, 10), hour: iso.slice(11, 13) };
}

/** `raw/source=<src>/dt=YYYY-MM-DD/hour=HH/<batch>.ndjson.gz` */
export function rawKey(source: Source, epochMs: number, batchId: string): string {
  const { dt, hour } = partitionOf(epochMs);
  return `${LAKE_PREFIXES.raw}source=${source}/dt=${dt}/hour=${hour}/${batchId}.ndjson.gz`;
}

/** `readings/dt=YYYY-MM-DD/hour=HH/<batch>.ndjson.gz` */
export function readingsKey(epochMs: number, batchId: string): string {
  const { dt, hour } = partitionOf(epochMs);
  return `${LAKE_PREFIXES.readings}dt=${dt}/hour=${hour}/${batchId}.ndjson.gz`;
}

/** `quarantine/dt=YYYY-MM-DD/<batch>.ndjson.gz` */
export function quarantineKey(epochMs: number, batchId: string): string {
  const { dt } = partitionOf(epochMs);
  return `${LAKE_PREFIXES.quarantine}dt=${dt}/${batchId}.ndjson.gz`;
}

/** `alerts/dt=YYYY-MM-DD/<alert id>.ndjson.gz`: one object per alert event, named after it. */
export function alertKey(epochMs: number, alertId: string): string {
  const { dt } = partitionOf(epochMs);
  return `${LAKE_PREFIXES.alerts}dt=${dt}/${alertId}.ndjson.gz`;
}
