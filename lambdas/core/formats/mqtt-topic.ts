/**
 * The MQTT topic contract (DESIGN.md, "Contracts"), in one place: the CDK construct
 * renders the IoT rule SQL from it and the local broker matches the same topics.
 *
 * Devices publish to `dt/<deviceType>/<deviceId>`, or through Basic Ingest to
 * `$aws/rules/<ruleName>/dt/<deviceType>/<deviceId>` (no IoT messaging charge). A fourth
 * level, `dt/<deviceType>/<deviceId>/<fPort>`, gives a binary payload's LoRaWAN port
 * (0 to 255) to the type's codec; without it the codec gets `deviceTypes.<type>.fPort`.
 */
import { DEVICE_ID_PATTERN, DEVICE_TYPE_PATTERN, truncate } from '../ids.ts';
import type { Envelope } from './format.ts';

/**
 * One filter for both forms (IoT SQL takes one): `dt/+/+` and `dt/+/+/+`. Anything else
 * under `dt/` reaches the queue too and is quarantined with the reason, never dropped.
 */
export const TELEMETRY_TOPIC_FILTER = 'dt/#';

const BASIC_INGEST = /^\$aws\/rules\/[A-Za-z0-9_]+\//;

export interface TelemetryTopic {
  readonly deviceType: string;
  readonly deviceId: string;
  /** The LoRaWAN port the topic's fourth level names. */
  readonly fPort?: number;
}

/** A port level: a decimal from 0 to 255, no sign, no leading zero. */
const FPORT_LEVEL = /^(0|[1-9][0-9]{0,2})$/;

/** An MQTT publish as a broker sees it: what the telemetry rule's SQL functions read. */
export interface Publish {
  readonly topic: string;
  readonly payload: Buffer;
  readonly clientId: string;
  /** IoT Core: the certificate id the client authenticated with. */
  readonly principal?: string;
  /** Arrival, epoch ms. */
  readonly timestamp: number;
}

/**
 * The telemetry rule, defined once: each envelope field with the IoT SQL that selects
 * it and the same derivation for the local broker. The CDK construct renders the SQL
 * from this list; the local runtime applies the functions. Every payload, JSON or
 * binary, is base64-encoded whole, so nothing is lost in the rule and the device
 * type's decoder decides what the bytes mean.
 */
export const TELEMETRY_RULE_FIELDS: readonly {
  readonly field: keyof Envelope;
  readonly sql: string;
  readonly local: (publish: Publish) => string | number | undefined;
}[] = [
  { field: 'payload', sql: "encode(*, 'base64')", local: (p) => p.payload.toString('base64') },
  { field: 'topic', sql: 'topic()', local: (p) => p.topic },
  { field: 'clientId', sql: 'clientid()', local: (p) => p.clientId },
  { field: 'principal', sql: 'principal()', local: (p) => p.principal },
  { field: 'receivedAt', sql: 'timestamp()', local: (p) => p.timestamp },
];

/** The rule SQL, rendered from {@link TELEMETRY_RULE_FIELDS}. */
export function telemetryRuleSql(): string {
  const select = TELEMETRY_RULE_FIELDS.map((f) => `${f.sql} AS ${f.field}`).join(', ');
  return `SELECT ${select} FROM '${TELEMETRY_TOPIC_FILTER}'`;
}

/**
 * The local broker's telemetry rule: the envelope IoT Core's rule would enqueue for
 * this publish, or undefined when the topic is not one the rule listens to (directly
 * or through Basic Ingest).
 */
export function applyTelemetryRule(publish: Publish): Envelope | undefined {
  if (!matchesFilter(TELEMETRY_TOPIC_FILTER, publish.topic.replace(BASIC_INGEST, ''))) return undefined;
  const envelope: Record<string, string | number> = {};
  for (const { field, local } of TELEMETRY_RULE_FIELDS) {
    const value = local(publish);
    // IoT SQL leaves a field out when its function yields undefined.
    if (value !== undefined) envelope[field] = value;
  }
  return envelope as unknown as Envelope;
}

/** MQTT topic filter matching (`+` one level, `#` the rest); `$` topics need a filter that names them. */
export function matchesFilter(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && !filter.startsWith('$')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
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
  if ((parts.length !== 3 && parts.length !== 4) || parts[0] !== 'dt') {
    return {
      error: `topic "${truncate(topic)}" is not dt/<deviceType>/<deviceId> or dt/<deviceType>/<deviceId>/<fPort>`,
    };
  }
  const [, deviceType = '', deviceId = '', port] = parts;
  if (!DEVICE_TYPE_PATTERN.test(deviceType)) {
    return { error: `device type "${truncate(deviceType)}" in the topic must match ${DEVICE_TYPE_PATTERN}` };
  }
  if (!DEVICE_ID_PATTERN.test(deviceId)) {
    return { error: `device id "${truncate(deviceId)}" in the topic must match ${DEVICE_ID_PATTERN}` };
  }
  if (port === undefined) return { deviceType, deviceId };
  if (!FPORT_LEVEL.test(port) || Number(port) > 255) {
    return { error: `LoRaWAN port "${truncate(port)}" in the topic must be 0 to 255` };
  }
  return { deviceType, deviceId, fPort: Number(port) };
}
