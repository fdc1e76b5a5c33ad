/**
 * The normalized reading (DESIGN.md) and the two forms it is stored in: lake rows in
 * long format and Timestream multi-measure records. Pure: no AWS import.
 */
import type { Source } from './formats/index.ts';
import { lakeTimestamp } from './lake/tables.ts';

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
  /** The sequence number (the device's `$seq`, else the network's), when there is one. */
  readonly seq?: number;
  /**
   * Attributes of the device its network sent with the message (ChirpStack tags), for
   * the registry record; not stored with the reading's rows.
   */
  readonly attributes?: Readonly<Record<string, string>>;
}

/**
 * What of a reading moves the device estate on (last seen, values, sequence, alerts,
 * attributes): not its message id, key or arrival, which only the lake needs.
 */
export type EstateReading = Pick<
  Reading,
  'deviceId' | 'deviceType' | 'time' | 'source' | 'metrics' | 'seq' | 'attributes'
>;

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
 * The long-format rows of a reading (one {@link ReadingRow} per metric), serialized as
 * NDJSON lines. Of `value`, `value_str` and `value_bool` a line carries only the one
 * that is set: the JSON SerDe (Athena) and DuckDB read a missing key as null, and the
 * lake is a fifth smaller for it. The parts every row of a reading shares are
 * serialized once: long format multiplies the output by the number of metrics, and
 * this is the ingest path's hottest loop.
 */
export function toNdjsonRows(reading: Reading): string[] {
  const head = `{"device_id":${jsonString(reading.deviceId)},"device_type":${jsonString(reading.deviceType)},"time":"${lakeTimestamp(reading.time)}","metric":`;
  const tail = `"source":"${reading.source}","received_at":"${lakeTimestamp(reading.receivedAt)}","message_id":${jsonString(reading.messageId)}}`;
  const lines: string[] = [];
  const metrics = reading.metrics;
  for (const metric in metrics) {
    const value = metrics[metric];
    const column =
      typeof value === 'number'
        ? `"value":${value},`
        : typeof value === 'boolean'
          ? `"value_bool":${value},`
          : `"value_str":${JSON.stringify(value)},`;
    lines.push(`${head}${jsonString(metric)},${column}${tail}`);
  }
  return lines;
}

/** JSON string literals of names that repeat (device ids, types, metric names), bounded. */
const literals = new Map<string, string>();

function jsonString(text: string): string {
  let literal = literals.get(text);
  if (literal === undefined) {
    literal = JSON.stringify(text);
    if (literals.size < 50_000) literals.set(text, literal);
  }
  return literal;
}

/**
 * A Timestream multi-measure record, in the SDK's shape but without importing it.
 * What every record shares (measure name, `MULTI`, milliseconds) travels once per
 * WriteRecords call as {@link TIME_SERIES_COMMON_ATTRIBUTES}.
 */
export interface TimeSeriesRecord {
  readonly Dimensions: { Name: string; Value: string }[];
  readonly MeasureValues: { Name: string; Value: string; Type: 'DOUBLE' | 'BOOLEAN' | 'VARCHAR' }[];
  readonly Time: string;
}

/** The measure name every record carries; the metrics are its measure attributes. */
export const MEASURE_NAME = 'telemetry';

/** WriteRecords `CommonAttributes`: the fields every {@link TimeSeriesRecord} shares. */
export const TIME_SERIES_COMMON_ATTRIBUTES = {
  MeasureName: MEASURE_NAME,
  MeasureValueType: 'MULTI',
  TimeUnit: 'MILLISECONDS',
} as const;

/** Dimension names; a metric may not take one of them, nor a Timestream column name. */
export const RESERVED_METRIC_NAMES = new Set(['device_id', 'device_type', 'source', 'time', 'measure_name']);

/**
 * The reading as one multi-measure record: the device, its type and the source as
 * dimensions, every metric a typed measure attribute. Identical records written twice
 * are accepted once by Timestream, which makes redelivery harmless.
 */
export function toTimeSeriesRecord(reading: Reading): TimeSeriesRecord {
  const values: TimeSeriesRecord['MeasureValues'] = [];
  const metrics = reading.metrics;
  for (const name in metrics) {
    const value = metrics[name];
    values.push({
      Name: name,
      Value: String(value),
      Type: typeof value === 'number' ? 'DOUBLE' : typeof value === 'boolean' ? 'BOOLEAN' : 'VARCHAR',
    });
  }
  return {
    Dimensions: [
      { Name: 'device_id', Value: reading.deviceId },
      { Name: 'device_type', Value: reading.deviceType },
      { Name: 'source', Value: reading.source },
    ],
    MeasureValues: values,
    Time: String(reading.time),
  };
}
