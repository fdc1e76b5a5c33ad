/**
 * The MQTT topic contract (DESIGN.md, "Contracts"), in one place: the CDK construct
 * renders the IoT rule SQL from it and the local broker matches the same topics.
 *
 * Devices publish to `dt/<deviceType>/<deviceId>`, or through Basic Ingest to
 * `$aws/rules/<ruleName>/dt/<deviceType>/<deviceId>` (no IoT messaging charge).
 */
import { DEVICE_TYPE_PATTERN } from './config.ts';

export const TELEMETRY_TOPIC_FILTER = 'dt/+/+';

/** Device ids reach S3 keys, Timestream dimensions and SQL: this is the only shape allowed. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

const BASIC_INGEST = /^\$aws\/rules\/[A-Za-z0-9_]+\//;

export interface TelemetryTopic {
  readonly deviceType: string;
  readonly deviceId: string;
}

/** The IoT rule name for a stage; rule names allow only letters, digits and underscores. */
export function telemetryRuleName(stage: string): string {
  return `iot_pipeline_${stage}_telemetry`;
}

/**
 * The rule SQL: every payload, JSON or binary, is base64-encoded whole, so nothing is
 * lost in the rule and the device type's decoder decides what the bytes mean.
 */
export function telemetryRuleSql(): string {
  return [
    "SELECT encode(*, 'base64') AS payload,",
    'topic() AS topic,',
    'clientid() AS clientId,',
    'principal() AS principal,',
    'timestamp() AS receivedAt',
    `FROM '${TELEMETRY_TOPIC_FILTER}'`,
  ].join(' ');
}

/**
 * Parses a telemetry topic (either form) into device type and id, or explains why not.
 * The id is checked against {@link DEVICE_ID_PATTERN} here, before it reaches anything.
 */
export function parseTelemetryTopic(topic: string): TelemetryTopic | { error: string } {
  const known = parsedTopics.get(topic);
  if (known) return known;
  const parsed = parseTopic(topic);
  // Each device publishes on one topic: remember valid ones (bounded), never errors.
  if (!('error' in parsed) && parsedTopics.size < 100_000) parsedTopics.set(topic, parsed);
  return parsed;
}

const parsedTopics = new Map<string, TelemetryTopic>();

function parseTopic(topic: string): TelemetryTopic | { error: string } {
  const plain = topic.replace(BASIC_INGEST, '');
  const parts = plain.split('/');
  if (parts.length !== 3 || parts[0] !== 'dt') {
    return { error: `topic "${truncate(topic)}" is not dt/<deviceType>/<deviceId>` };
  }
  const [, deviceType = '', deviceId = ''] = parts;
  if (!DEVICE_TYPE_PATTERN.test(deviceType)) {
    return { error: `device type "${truncate(deviceType)}" in the topic must match ${DEVICE_TYPE_PATTERN}` };
  }
  if (!DEVICE_ID_PATTERN.test(deviceId)) {
    return { error: `device id "${truncate(deviceId)}" in the topic must match ${DEVICE_ID_PATTERN}` };
  }
  return { deviceType, deviceId };
}

/** Shortens outside input before it goes into an error message. */
export function truncate(text: string, max = 64): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
