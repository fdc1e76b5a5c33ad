/**
 * The lake's tables (DESIGN.md, "Contracts: Tables"): one definition that the Glue
 * catalog (CDK) and the local runtime's DuckDB views are both built from, so an
 * analyst's SQL means the same on a laptop and in Athena.
 */

import { SOURCES } from '../formats/index.ts';
import { LAKE_PREFIXES } from './layout.ts';

export type ColumnType = 'string' | 'double' | 'boolean' | 'timestamp' | 'bigint' | 'date';

export interface TableColumn {
  readonly name: string;
  readonly type: ColumnType;
  readonly comment: string;
}

export interface Partition {
  readonly name: string;
  /** Partition projection: a day (`yyyy-MM-dd`), an hour (`00`..`23`) or one of the sources. */
  readonly projection: 'day' | 'hour' | 'source';
}

export interface LakeTable {
  readonly name: string;
  readonly description: string;
  /** Key prefix under the lake bucket. */
  readonly prefix: string;
  readonly format: 'ndjson-gzip' | 'parquet';
  readonly columns: readonly TableColumn[];
  /** In key order. */
  readonly partitions: readonly Partition[];
}

/** Time columns are written as `yyyy-MM-dd HH:mm:ss.SSS` in UTC, the form Hive's JSON SerDe reads as a timestamp. */
export const LAKE_TABLES: readonly LakeTable[] = [
  {
    name: 'readings',
    description: 'One row per device, time and metric (long format), gzip NDJSON from the ingest path.',
    prefix: LAKE_PREFIXES.readings,
    format: 'ndjson-gzip',
    columns: [
      { name: 'device_id', type: 'string', comment: 'Device id (thing name, Sigfox id, TTN device id)' },
      { name: 'device_type', type: 'string', comment: 'Device type, from the topic or route' },
      {
        name: 'time',
        type: 'timestamp',
        comment: 'Device time when given and sane, else arrival time (UTC)',
      },
      { name: 'metric', type: 'string', comment: 'Metric name; nested objects flatten to dotted names' },
      { name: 'value', type: 'double', comment: 'Numeric value, null for strings and booleans' },
      { name: 'value_str', type: 'string', comment: 'String value, null otherwise' },
      { name: 'value_bool', type: 'boolean', comment: 'Boolean value, null otherwise' },
      { name: 'source', type: 'string', comment: 'mqtt, http, sigfox or ttn' },
      { name: 'received_at', type: 'timestamp', comment: 'When the pipeline received the message (UTC)' },
      { name: 'message_id', type: 'string', comment: 'Id of the message the reading came in' },
    ],
    partitions: [
      { name: 'dt', projection: 'day' },
      { name: 'hour', projection: 'hour' },
    ],
  },
  {
    name: 'raw',
    description: 'Every message as it arrived (payload base64, lossless) with its envelope.',
    prefix: LAKE_PREFIXES.raw,
    format: 'ndjson-gzip',
    columns: [
      {
        name: 'message_id',
        type: 'string',
        comment: 'Id given at arrival (SQS message id or HTTP request id)',
      },
      { name: 'received_at', type: 'timestamp', comment: 'Arrival time (UTC)' },
      { name: 'topic', type: 'string', comment: 'MQTT topic or HTTP route' },
      { name: 'client_id', type: 'string', comment: 'MQTT client id, when over MQTT' },
      {
        name: 'device_id',
        type: 'string',
        comment:
          'Device id from the authenticated identity; for HTTP JSON, the one device every reading of the body names ($id); null when unknown or the body names several devices',
      },
      { name: 'device_type', type: 'string', comment: 'Device type, when known' },
      { name: 'payload', type: 'string', comment: 'The payload bytes, base64' },
      {
        name: 'warnings',
        type: 'string',
        comment:
          'What could not be stored though the message was (fields refused, format and decoder warnings): a JSON array of strings; null when none',
      },
    ],
    partitions: [
      { name: 'source', projection: 'source' },
      { name: 'dt', projection: 'day' },
      { name: 'hour', projection: 'hour' },
    ],
  },
  {
    name: 'quarantine',
    description: 'Messages and readings that could not be stored, with the reason.',
    prefix: LAKE_PREFIXES.quarantine,
    format: 'ndjson-gzip',
    columns: [
      { name: 'message_id', type: 'string', comment: 'Id of the message' },
      { name: 'received_at', type: 'timestamp', comment: 'Arrival time (UTC)' },
      { name: 'source', type: 'string', comment: 'mqtt, http, sigfox or ttn' },
      { name: 'topic', type: 'string', comment: 'MQTT topic or HTTP route' },
      { name: 'device_id', type: 'string', comment: 'Device id, when it could be read' },
      { name: 'device_type', type: 'string', comment: 'Device type, when known' },
      { name: 'reason_code', type: 'string', comment: 'Machine-readable reason (e.g. invalid_json)' },
      { name: 'reason', type: 'string', comment: 'What was wrong, in words' },
      { name: 'payload', type: 'string', comment: 'The payload bytes, base64' },
    ],
    partitions: [{ name: 'dt', projection: 'day' }],
  },
  {
    name: 'alerts',
    description: 'Every alert event (raised and cleared, threshold and offline), written as it is published.',
    prefix: LAKE_PREFIXES.alerts,
    format: 'ndjson-gzip',
    columns: [
      {
        name: 'alert_id',
        type: 'string',
        comment: 'Digest of device, rule, state and time: the same event has the same id',
      },
      {
        name: 'time',
        type: 'timestamp',
        comment: 'When the condition was met or ended (UTC): reading time, or the offline check time',
      },
      { name: 'device_id', type: 'string', comment: 'Device id' },
      { name: 'device_type', type: 'string', comment: 'Device type' },
      { name: 'rule', type: 'string', comment: 'Rule name (offline for offline alerts)' },
      { name: 'state', type: 'string', comment: 'raised or cleared' },
      { name: 'severity', type: 'string', comment: 'info, warning or critical' },
      { name: 'metric', type: 'string', comment: 'Metric of a threshold rule; null for offline' },
      { name: 'value', type: 'double', comment: 'The value that raised or cleared a threshold rule' },
      { name: 'comparison', type: 'string', comment: 'The rule comparison (> >= < <= == !=)' },
      { name: 'threshold', type: 'double', comment: 'The rule threshold' },
      {
        name: 'last_seen',
        type: 'timestamp',
        comment: 'Offline raised: when the device was last seen (UTC)',
      },
      { name: 'message', type: 'string', comment: 'The subject line the alert was sent with' },
    ],
    partitions: [{ name: 'dt', projection: 'day' }],
  },
  {
    name: 'curated_readings',
    description: 'readings compacted to Parquet by the daily job.',
    prefix: LAKE_PREFIXES.curated,
    format: 'parquet',
    columns: [
      { name: 'device_id', type: 'string', comment: 'Device id' },
      { name: 'device_type', type: 'string', comment: 'Device type' },
      { name: 'time', type: 'timestamp', comment: 'Reading time (UTC)' },
      { name: 'metric', type: 'string', comment: 'Metric name' },
      { name: 'value', type: 'double', comment: 'Numeric value' },
      { name: 'value_str', type: 'string', comment: 'String value' },
      { name: 'value_bool', type: 'boolean', comment: 'Boolean value' },
      { name: 'source', type: 'string', comment: 'mqtt, http, sigfox or ttn' },
      { name: 'received_at', type: 'timestamp', comment: 'Arrival time (UTC)' },
    ],
    partitions: [{ name: 'dt', projection: 'day' }],
  },
  {
    name: 'daily_metrics',
    description: 'Per device, metric and day: min, max, avg, count, first and last time.',
    prefix: LAKE_PREFIXES.dailyMetrics,
    format: 'parquet',
    columns: [
      { name: 'device_id', type: 'string', comment: 'Device id' },
      { name: 'metric', type: 'string', comment: 'Metric name' },
      { name: 'day', type: 'date', comment: 'UTC day' },
      { name: 'min', type: 'double', comment: 'Smallest value of the day' },
      { name: 'max', type: 'double', comment: 'Largest value of the day' },
      { name: 'avg', type: 'double', comment: 'Mean value of the day' },
      { name: 'count', type: 'bigint', comment: 'Readings that day' },
      { name: 'first_time', type: 'timestamp', comment: 'Time of the first reading' },
      { name: 'last_time', type: 'timestamp', comment: 'Time of the last reading' },
    ],
    partitions: [{ name: 'dt', projection: 'day' }],
  },
  {
    name: 'daily_uptime',
    description:
      "Per device and day, and the estate's ('*'): share of the observed time not offline by its type's timeout.",
    prefix: LAKE_PREFIXES.dailyUptime,
    format: 'parquet',
    columns: [
      { name: 'device_id', type: 'string', comment: "Device id; '*' for the whole estate" },
      { name: 'device_type', type: 'string', comment: "Device type (its latest); '*' for the estate" },
      { name: 'uptime_pct', type: 'double', comment: '100 * (observed_ms - offline_ms) / observed_ms' },
      {
        name: 'offline_ms',
        type: 'bigint',
        comment: 'Time offline: from a reading plus the timeout to the next reading',
      },
      {
        name: 'observed_ms',
        type: 'bigint',
        comment: 'From midnight if heard in the 7 days before, else from the first reading of the day',
      },
    ],
    partitions: [{ name: 'dt', projection: 'day' }],
  },
];

/** The `source=` partition's values, for the enum projection. */
export const SOURCE_VALUES = SOURCES.join(',');

/** `yyyy-MM-dd HH:mm:ss.SSS` in UTC: what the lake's timestamp columns hold. */
export function lakeTimestamp(epochMs: number): string {
  // Hot path (two timestamps per row): the `yyyy-MM-dd HH:mm:` part changes once a
  // minute, so it is cached for the last two minutes seen (device time and arrival).
  const minute = Math.floor(epochMs / 60_000);
  let prefix: string;
  if (minute === minuteA) prefix = prefixA;
  else if (minute === minuteB) prefix = prefixB;
  else {
    const iso = new Date(minute * 60_000).toISOString();
    prefix = `${iso.slice(0, 10)} ${iso.slice(11, 17)}`;
    minuteB = minuteA;
    prefixB = prefixA;
    minuteA = minute;
    prefixA = prefix;
  }
  const rest = epochMs - minute * 60_000;
  const seconds = Math.floor(rest / 1000);
  const millis = Math.floor(rest - seconds * 1000);
  return `${prefix}${seconds < 10 ? '0' : ''}${seconds}.${millis < 100 ? (millis < 10 ? '00' : '0') : ''}${millis}`;
}
let minuteA = Number.NaN;
let prefixA = '';
let minuteB = Number.NaN;
let prefixB = '';
