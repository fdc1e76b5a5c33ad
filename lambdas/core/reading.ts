/**
 * The normalized reading (DESIGN.md) and the two forms it is stored in: lake rows in
 * long format and Timestream multi-measure records. Pure: no AWS import.
 */
import type { Source } from './lake-layout.ts';
import { lakeTimestamp } from './tables.ts';

export type MetricValue = number | boolean | string;

export interface Reading {
  readonly deviceId: string;
  readonly deviceType: string;
  /** Device time if given and sane, else arrival; epoch ms. */
  readonly time: number;
  /** Arrival time; epoch ms. */
  readonly receivedAt: number;
  readonly source: Source;
  /** Queue message the reading came in. */
  readonly messageId: string;
  /** Metric name (nested objects flattened to dotted names) to value. */
  readonly metrics: Readonly<Record<string, MetricValue>>;
  /**
   * What makes this reading unique for its device: the sequence number or device
   * timestamp when the device sent one, else the message and position. Two readings
   * with the same device and key are the same reading delivered twice.
   */
  readonly key: string;
}

/** One row of the `readings` table: the shape of each line {@link toNdjsonRows} writes. */
export interface ReadingRow {
  readonly device_id: string;
  readonly device_type: string;
  readonly time: string;
  readonly metric: string;
  readonly value: number | null;
  readonly value_str: string | null;
  readonly value_bool: boolean | null;
  readonly source: Source;
  readonly received_at: string;
  readonly message_id: string;
}

/**
 * The long-format rows of a reading (one {@link ReadingRow} per metric), serialized as NDJSON lines. The parts every
 * row of a reading shares are serialized once: long format multiplies the output by
 * the number of metrics, and this is the ingest path's hottest loop.
 */
export function toNdjsonRows(reading: Reading): string[] {
  const head = `{"device_id":${JSON.stringify(reading.deviceId)},"device_type":${JSON.stringify(reading.deviceType)},"time":"${lakeTimestamp(reading.time)}","metric":`;
  const tail = `"source":"${reading.source}","received_at":"${lakeTimestamp(reading.receivedAt)}","message_id":${JSON.stringify(reading.messageId)}}`;
  const lines: string[] = [];
  for (const metric in reading.metrics) {
    const value = reading.metrics[metric];
    const values =
      typeof value === 'number'
        ? `"value":${value},"value_str":null,"value_bool":null,`
        : typeof value === 'boolean'
          ? `"value":null,"value_str":null,"value_bool":${value},`
          : `"value":null,"value_str":${JSON.stringify(value)},"value_bool":null,`;
    lines.push(`${head}${JSON.stringify(metric)},${values}${tail}`);
  }
  return lines;
}

/** A Timestream multi-measure record, in the SDK's shape but without importing it. */
export interface TimeSeriesRecord {
  readonly Dimensions: { Name: string; Value: string }[];
  readonly MeasureName: string;
  readonly MeasureValueType: 'MULTI';
  readonly MeasureValues: { Name: string; Value: string; Type: 'DOUBLE' | 'BOOLEAN' | 'VARCHAR' }[];
  readonly Time: string;
  readonly TimeUnit: 'MILLISECONDS';
}

/** The measure name every record carries; the metrics are its measure attributes. */
export const MEASURE_NAME = 'telemetry';

/** Dimension names; a metric may not take one of them, nor a Timestream column name. */
export const RESERVED_METRIC_NAMES = new Set(['device_id', 'device_type', 'source', 'time', 'measure_name']);

/**
 * The reading as one multi-measure record: the device, its type and the source as
 * dimensions, every metric a typed measure attribute. Identical records written twice
 * are accepted once by Timestream, which makes redelivery harmless.
 */
export function toTimeSeriesRecord(reading: Reading): TimeSeriesRecord {
  return {
    Dimensions: [
      { Name: 'device_id', Value: reading.deviceId },
      { Name: 'device_type', Value: reading.deviceType },
      { Name: 'source', Value: reading.source },
    ],
    MeasureName: MEASURE_NAME,
    MeasureValueType: 'MULTI',
    MeasureValues: Object.entries(reading.metrics).map(([name, value]) => ({
      Name: name,
      Value: String(value),
      Type: typeof value === 'number' ? 'DOUBLE' : typeof value === 'boolean' ? 'BOOLEAN' : 'VARCHAR',
    })),
    Time: String(reading.time),
    TimeUnit: 'MILLISECONDS',
  };
}
