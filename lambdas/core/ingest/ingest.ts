/**
 * The ingest path without AWS: a batch of queue messages in, every message out as
 * stored readings, quarantine records with a reason, or a failure to retry. Shared
 * by the ingest Lambda and the local runtime.
 *
 * Order of writes, chosen so a retry never stores a reading twice in the lake:
 * Timestream first (identical records are idempotent there), then raw and quarantine,
 * then `readings/` last; a message that failed an earlier step is left out of the
 * later ones and retried whole. Object keys are derived from the message ids they
 * hold, so a batch redelivered unchanged overwrites its own objects.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { DEVICE_TYPE_PATTERN, type HttpMapping, type RuntimeConfig } from '../config.ts';
import {
  type DecodeContext,
  type DecodeResult,
  decodeJson,
  type Rejection,
  type RejectionCode,
  readingsFrom,
} from '../decoders/json.ts';
import { type Decoded, type Decoder, decoderFor, JSON_DECODER } from '../decoders/registry.ts';
import { type EstateDeps, updateEstate } from '../estate/update.ts';
import { parseSigfoxCallback, parseTtnUplink } from '../formats/callbacks.ts';
import { type Envelope, sourceOf } from '../formats/envelope.ts';
import { quarantineKey, rawKey, readingsKey, SOURCES, type Source } from '../lake/layout.ts';
import { lakeTimestamp } from '../lake/tables.ts';
import { type Reading, toNdjsonRows } from '../reading.ts';
import { parseTelemetryTopic, truncate } from '../topics.ts';
import {
  type IngestLog,
  type IngestMetrics,
  NO_LOG,
  NO_METRICS,
  type ObjectStore,
  type ReadingClaims,
  type TimeSeriesSink,
} from './ports.ts';

export interface QueueMessage {
  readonly messageId: string;
  readonly body: string;
}

/** A row of the `raw` table. */
export interface RawRecord {
  readonly message_id: string;
  readonly received_at: string;
  readonly source: Source;
  readonly topic: string;
  readonly client_id: string | null;
  readonly device_id: string | null;
  readonly device_type: string | null;
  readonly payload: string;
}

/** A row of the `quarantine` table. */
export interface QuarantineRecord {
  readonly message_id: string;
  readonly received_at: string;
  readonly source: Source;
  readonly topic: string;
  readonly device_id: string | null;
  readonly device_type: string | null;
  readonly reason_code: RejectionCode;
  readonly reason: string;
  readonly payload: string;
}

/** What one message became, before anything is written. */
export interface MessageOutcome {
  readonly messageId: string;
  readonly receivedAt: number;
  readonly raw?: RawRecord;
  readonly readings: readonly Reading[];
  readonly quarantine: readonly QuarantineRecord[];
  /** Set when decoding itself broke (a bug): the message is retried, not stored. */
  readonly error?: Error;
}

export interface IngestDeps {
  readonly config: RuntimeConfig;
  readonly lake: ObjectStore;
  /** Absent when Timestream is switched off. */
  readonly timeseries?: TimeSeriesSink;
  /** Device registry and alerts, updated once per device per batch; none when absent. */
  readonly estate?: EstateDeps;
  /** Duplicate suppression across batches for network callbacks (Sigfox, The Things Stack). */
  readonly claims?: ReadingClaims;
  readonly metrics?: IngestMetrics;
  readonly log?: IngestLog;
  /** Write `raw/` objects (the default); re-decoding, which reads them, turns this off. */
  readonly writeRaw?: boolean;
  /** Clock for messages whose envelope has no arrival time. */
  readonly now?: () => number;
}

/** Device type of readings posted to `/v1/telemetry` (the route names no type). */
export const DEFAULT_HTTP_DEVICE_TYPE = 'http';

/**
 * Decodes one queue message. Pure and total: any input, however broken, comes back
 * as readings and/or quarantine records, never as an exception.
 */
export function decodeMessage(
  message: QueueMessage,
  config: RuntimeConfig,
  now: () => number = Date.now,
): MessageOutcome {
  const prepared = prepare(message, config, now);
  return 'outcome' in prepared ? prepared.outcome : finish(prepared, undefined);
}

/**
 * Decodes a batch of queue messages, in order. Messages whose device type has a codec
 * go to its sandbox together, one request per codec and batch, and are decoded there
 * on another thread while this one goes on serving.
 */
export async function decodeMessages(
  messages: readonly QueueMessage[],
  config: RuntimeConfig,
  now: () => number = Date.now,
): Promise<MessageOutcome[]> {
  const prepared = messages.map((message) => prepare(message, config, now));
  // Most batches have no codec message: nothing to group.
  if (
    !prepared.some((p) => !('outcome' in p) && p.binary && p.decoder.kind !== 'json' && p.decoder.decodeMany)
  ) {
    return prepared.map((p) => ('outcome' in p ? p.outcome : finish(p, undefined)));
  }
  const decoded = new Map<number, Decoded>();
  const groups = new Map<Decoder, number[]>();
  prepared.forEach((p, index) => {
    if ('outcome' in p || !p.binary || p.decoder.kind === 'json' || !p.decoder.decodeMany) return;
    const group = groups.get(p.decoder);
    if (group) group.push(index);
    else groups.set(p.decoder, [index]);
  });
  await Promise.all(
    [...groups].map(async ([decoder, indexes]) => {
      if (decoder.kind === 'json' || !decoder.decodeMany) return;
      const inputs = indexes.map((i) => {
        const p = prepared[i] as Prepared;
        const binary = p.binary as NonNullable<Prepared['binary']>;
        return {
          bytes: binary.bytes,
          input: { fPort: binary.fPort, recvTime: new Date(p.context.receivedAt) },
        };
      });
      (await decoder.decodeMany(inputs)).forEach((result, k) => {
        decoded.set(indexes[k] as number, result);
      });
    }),
  );
  return prepared.map((p, index) => ('outcome' in p ? p.outcome : finish(p, decoded.get(index))));
}

interface Prepared {
  readonly messageId: string;
  readonly envelope: Envelope;
  /** The payload as it arrived: what a rejection keeps. */
  readonly bytes: Buffer;
  readonly context: DecodeContext;
  readonly deviceId?: string;
  readonly deviceType?: string;
  readonly decoder: Decoder;
  /** What the device type's decoder reads: the payload, Sigfox `data`, or TTN `frm_payload`. */
  readonly binary?: { readonly bytes: Buffer; readonly fPort?: number };
  /** Readings the network decoded already: Sigfox `customData#`, TTN `decoded_payload`. */
  readonly given?: Record<string, unknown>;
  /** Why there is nothing to decode. */
  readonly missing?: string;
  /** What the message says besides its payload (time, sequence number, radio), merged under each reading. */
  readonly base?: Record<string, unknown>;
  readonly mapping?: HttpMapping;
}

/** Every prepared message with the same fields in the same order: one hidden class for the hot path. */
function shaped(p: Prepared): Prepared {
  return {
    messageId: p.messageId,
    envelope: p.envelope,
    bytes: p.bytes,
    context: p.context,
    deviceId: p.deviceId,
    deviceType: p.deviceType,
    decoder: p.decoder,
    binary: p.binary,
    given: p.given,
    missing: p.missing,
    base: p.base,
    mapping: p.mapping,
  };
}

function prepare(
  message: QueueMessage,
  config: RuntimeConfig,
  now: () => number,
): Prepared | { outcome: MessageOutcome } {
  const envelope = parseEnvelope(message.body);
  if ('error' in envelope) {
    const receivedAt = now();
    return {
      outcome: {
        messageId: message.messageId,
        receivedAt,
        readings: [],
        quarantine: [
          quarantineRecord(message.messageId, receivedAt, 'mqtt', '', undefined, {
            code: 'invalid_envelope',
            reason: envelope.error,
            payload: Buffer.from(message.body, 'utf8'),
          }),
        ],
      },
    };
  }
  const source = sourceOf(envelope);
  const bytes = Buffer.from(envelope.payload, 'base64');
  if (source === 'mqtt') {
    // The hot path: no closure, no spread.
    const topic = parseTelemetryTopic(envelope.topic);
    if ('error' in topic) {
      return {
        outcome: withRaw(envelope, message.messageId, undefined, undefined, [
          { code: 'invalid_topic', reason: topic.error, deviceId: undefined, payload: bytes },
        ]),
      };
    }
    const decoder = decoderFor(config.deviceTypes, topic.deviceType);
    // The hot path: a literal of fixed shape (object spreads here cost V8 several µs).
    return {
      messageId: message.messageId,
      envelope,
      bytes,
      context: {
        deviceId: topic.deviceId,
        deviceType: topic.deviceType,
        source,
        messageId: message.messageId,
        receivedAt: envelope.receivedAt,
        limits: config.validation,
      },
      deviceId: topic.deviceId,
      deviceType: topic.deviceType,
      decoder,
      binary: decoder.kind === 'json' ? undefined : { bytes },
      given: undefined,
      missing: undefined,
      base: undefined,
      mapping: undefined,
    };
  }
  const reject = (code: RejectionCode, reason: string, deviceId?: string, deviceType?: string) => ({
    outcome: withRaw(envelope, message.messageId, deviceId, deviceType, [
      { code, reason, deviceId, payload: bytes },
    ]),
  });
  const context = (deviceId: string | undefined, deviceType: string): DecodeContext => ({
    deviceId,
    deviceType,
    source,
    messageId: message.messageId,
    receivedAt: envelope.receivedAt,
    limits: config.validation,
  });
  const common = { messageId: message.messageId, envelope, bytes };
  // HTTP routes: the route's parameters travel in the topic (`/v1/sigfox?type=tracker`).
  const params = new URLSearchParams(envelope.topic.split('?')[1] ?? '');
  const type = params.get('type');
  if (type !== null && !DEVICE_TYPE_PATTERN.test(type)) {
    return reject('invalid_topic', `?type=${truncate(type)} must match ${DEVICE_TYPE_PATTERN}`);
  }
  if (source === 'http') {
    const mappingName = params.get('mapping');
    const mapping = mappingName === null ? undefined : config.httpMappings[mappingName];
    if (mappingName !== null && !mapping) {
      return reject('invalid_topic', `no mapping "${truncate(mappingName)}" in the config (httpMappings)`);
    }
    const deviceType = type ?? mapping?.type ?? DEFAULT_HTTP_DEVICE_TYPE;
    return {
      messageId: message.messageId,
      envelope,
      bytes,
      context: context(undefined, deviceType),
      deviceId: undefined,
      deviceType,
      decoder: JSON_DECODER,
      binary: undefined,
      given: undefined,
      missing: undefined,
      base: undefined,
      mapping,
    };
  }
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    return reject('invalid_callback', `the ${source} callback is not JSON: ${(error as Error).message}`);
  }
  if (source === 'sigfox') {
    const callback = parseSigfoxCallback(body);
    if ('error' in callback) return reject('invalid_callback', callback.error);
    const deviceType = type ?? 'sigfox';
    const decoder = decoderFor(config.deviceTypes, deviceType);
    const custom = Object.keys(callback.customData).length > 0 ? { ...callback.customData } : undefined;
    return shaped({
      ...common,
      context: context(callback.device, deviceType),
      deviceId: callback.device,
      deviceType,
      decoder,
      ...(decoder.kind !== 'json'
        ? { binary: { bytes: callback.data } }
        : custom
          ? { given: custom }
          : {
              missing: `device type "${deviceType}" has no decoder for the ${callback.data.length} bytes of "data": set deviceTypes.${deviceType}.decoder.sigfox (and ?type=${deviceType} on the callback URL), or send customData# fields`,
            }),
      base: {
        $ts: callback.time,
        ...(callback.seqNumber === undefined ? {} : { $seq: callback.seqNumber }),
        ...callback.radio,
      },
    });
  }
  const uplink = parseTtnUplink(body);
  if ('error' in uplink) return reject('invalid_callback', uplink.error);
  const deviceType = type ?? 'ttn';
  const decoder = decoderFor(config.deviceTypes, deviceType);
  return shaped({
    ...common,
    context: context(uplink.deviceId, deviceType),
    deviceId: uplink.deviceId,
    deviceType,
    decoder,
    ...(uplink.decodedPayload
      ? { given: uplink.decodedPayload }
      : decoder.kind !== 'json'
        ? { binary: { bytes: uplink.frmPayload, fPort: uplink.fPort } }
        : {
            missing: `no decoded_payload and device type "${deviceType}" has no codec: set deviceTypes.${deviceType}.decoder.codec (and ?type=${deviceType} on the webhook URL), or a payload formatter in The Things Stack`,
          }),
    base: {
      ...(uplink.receivedAt === undefined ? {} : { $ts: uplink.receivedAt }),
      $seq: uplink.fCnt,
      ...uplink.radio,
    },
  });
}

/** The readings of a prepared message: its payload decoded, merged over what the message says besides. */
function finish(p: Prepared, predecoded: Decoded | undefined): MessageOutcome {
  const { decoder, bytes, context } = p;
  let result: DecodeResult;
  const failed = (reason: string): DecodeResult => ({
    readings: [],
    rejections: [{ code: 'decode_failed', reason, deviceId: context.deviceId, payload: bytes }],
  });
  if (p.mapping) result = decodeJsonWith(bytes, context, p.mapping);
  else if (!p.binary && !p.given && !p.missing) result = decodeJson(bytes, context);
  else if (p.missing) result = failed(p.missing);
  else {
    let data: unknown = p.given;
    if (p.binary && decoder.kind !== 'json') {
      const decoded =
        predecoded ??
        decoder.decode(p.binary.bytes, { fPort: p.binary.fPort, recvTime: new Date(context.receivedAt) });
      data = decoded.ok ? decoded.data : undefined;
      if (!decoded.ok) result = failed(decoded.reason);
      // A codec that found nothing to report (`{ data: {} }`): the raw message is kept, nothing else.
      else if (isEmpty(decoded.data)) result = { readings: [], rejections: [] };
    }
    result ??= readingsFrom(withBase(data, p.base), bytes, context);
  }
  return {
    ...withRaw(p.envelope, p.messageId, p.deviceId, p.deviceType, result.rejections),
    readings: result.readings,
  };
}

function isEmpty(data: unknown): boolean {
  return typeof data === 'object' && data !== null && Object.keys(data).length === 0;
}

/** Merges the message's own fields under decoded readings (a decoded `$ts` wins); an array's elements get no `$seq`, each being its own reading. */
function withBase(data: unknown, base: Record<string, unknown> | undefined): unknown {
  if (!base) return data;
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(data)) return { ...base, ...data };
  if (Array.isArray(data)) {
    const { $seq: _, ...rest } = base;
    return data.map((item) => (isObject(item) ? { ...rest, ...item } : item));
  }
  return data;
}

/** JSON through a field mapping: the mapped id and time fields become `$id` and `$ts`. */
function decodeJsonWith(bytes: Buffer, context: DecodeContext, mapping: HttpMapping): DecodeResult {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return decodeJson(bytes, context); // the same rejection, with the same words
  }
  const map = (item: unknown) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return item;
    const { [mapping.id]: id, ...rest } = item as Record<string, unknown>;
    const out: Record<string, unknown> = { ...rest, $id: id };
    if (mapping.time !== undefined && mapping.time in rest) {
      out.$ts = rest[mapping.time];
      delete out[mapping.time];
    }
    return out;
  };
  return readingsFrom(Array.isArray(value) ? value.map(map) : map(value), bytes, context);
}

function withRaw(
  envelope: Envelope,
  messageId: string,
  deviceId: string | undefined,
  deviceType: string | undefined,
  rejections: readonly Rejection[],
): MessageOutcome {
  const source = sourceOf(envelope);
  return {
    messageId,
    receivedAt: envelope.receivedAt,
    raw: {
      message_id: messageId,
      received_at: lakeTimestamp(envelope.receivedAt),
      source,
      topic: envelope.topic,
      client_id: envelope.clientId ?? null,
      device_id: deviceId ?? null,
      device_type: deviceType ?? null,
      payload: envelope.payload,
    },
    readings: [],
    quarantine: rejections.map((r) =>
      quarantineRecord(messageId, envelope.receivedAt, source, envelope.topic, deviceType, r),
    ),
  };
}

function quarantineRecord(
  messageId: string,
  receivedAt: number,
  source: Source,
  topic: string,
  deviceType: string | undefined,
  rejection: Rejection,
): QuarantineRecord {
  return {
    message_id: messageId,
    received_at: lakeTimestamp(receivedAt),
    source,
    topic,
    device_id: rejection.deviceId ?? null,
    device_type: deviceType ?? null,
    reason_code: rejection.code,
    reason: rejection.reason,
    payload: rejection.payload.toString('base64'),
  };
}

function parseEnvelope(body: string): Envelope | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return { error: 'queue message is not a JSON envelope' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { error: 'envelope is not an object' };
  const e = value as Record<string, unknown>;
  if (typeof e.payload !== 'string') return { error: 'envelope has no base64 "payload"' };
  if (typeof e.topic !== 'string') return { error: 'envelope has no "topic"' };
  if (typeof e.receivedAt !== 'number' || !Number.isFinite(e.receivedAt))
    return { error: 'envelope has no numeric "receivedAt"' };
  if (e.source !== undefined && !SOURCES.includes(e.source as Source))
    return { error: `envelope source ${JSON.stringify(e.source)} is unknown` };
  if (e.clientId !== undefined && typeof e.clientId !== 'string')
    return { error: 'envelope "clientId" is not a string' };
  return e as unknown as Envelope;
}

/** Failures by message id: these messages must be retried; every other one is done. */
export type BatchFailures = Map<string, Error>;

/**
 * Writes a batch of decoded messages to the sinks and says which messages failed.
 * Duplicates (same device and reading key) are stored once.
 */
export async function writeBatch(
  outcomes: readonly MessageOutcome[],
  deps: IngestDeps,
): Promise<BatchFailures> {
  const metrics = deps.metrics ?? NO_METRICS;
  const failures: BatchFailures = new Map();
  const fail = (messageIds: Iterable<string>, error: Error) => {
    for (const id of messageIds) if (!failures.has(id)) failures.set(id, error);
  };
  const alive = (messageId: string) => !failures.has(messageId);
  for (const outcome of outcomes) if (outcome.error) fail([outcome.messageId], outcome.error);

  const seen = new Set<string>();
  const readings: Reading[] = [];
  let duplicates = 0;
  for (const outcome of outcomes) {
    for (const reading of outcome.readings) {
      const id = `${reading.deviceId}\u0000${reading.key}`;
      if (seen.has(id)) {
        duplicates++;
        continue;
      }
      seen.add(id);
      readings.push(reading);
    }
  }
  if (deps.claims) {
    const { kept, dropped } = await claimReadings(readings, deps.claims, fail);
    duplicates += dropped;
    readings.splice(0, readings.length, ...kept);
  }
  const extraQuarantine: { q: QuarantineRecord; at: number }[] = [];

  if (deps.timeseries && readings.length > 0) {
    const sink = deps.timeseries;
    const started = performance.now();
    const chunks = chunk(readings, sink.maxRecordsPerWrite);
    await Promise.all(
      chunks.map(async (part) => {
        try {
          const rejected = await sink.write(part);
          for (const { index, reason } of rejected) {
            const reading = part[index];
            if (!reading) continue;
            extraQuarantine.push({
              at: reading.receivedAt,
              q: {
                message_id: reading.messageId,
                received_at: lakeTimestamp(reading.receivedAt),
                source: reading.source,
                topic: '',
                device_id: reading.deviceId,
                device_type: reading.deviceType,
                reason_code: 'timestream_rejected',
                reason: `Timestream rejected the record: ${reason}`,
                payload: Buffer.from(JSON.stringify(reading.metrics)).toString('base64'),
              },
            });
          }
        } catch (error) {
          fail(new Set(part.map((r) => r.messageId)), asError(error));
        }
      }),
    );
    metrics.latency('timeseries', performance.now() - started);
  }

  const started = performance.now();
  const quarantine = [
    ...outcomes.flatMap((o) => o.quarantine.map((q) => ({ q, at: o.receivedAt }))),
    ...extraQuarantine,
  ];
  const rows = readings.filter((r) => alive(r.messageId));
  await Promise.all([
    writeObjects(
      deps.lake,
      outcomes.flatMap(({ raw, messageId, receivedAt }) =>
        raw && alive(messageId) && deps.writeRaw !== false
          ? [
              {
                messageId,
                keyFor: (id: string) => rawKey(raw.source, receivedAt, id),
                lines: [JSON.stringify(raw)],
              },
            ]
          : [],
      ),
      fail,
    ),
    writeObjects(
      deps.lake,
      quarantine
        .filter(({ q }) => alive(q.message_id))
        .map(({ q, at }) => ({
          messageId: q.message_id,
          keyFor: (id: string) => quarantineKey(at, id),
          lines: [JSON.stringify(q)],
        })),
      fail,
    ),
  ]);
  if (deps.estate) {
    // Before readings/: a device whose record could not be written fails its messages,
    // which are then retried whole. Applying the same readings again changes nothing.
    const pending = rows.filter((r) => alive(r.messageId));
    const { failed } = await updateEstate(pending, deps.estate);
    for (const [deviceId, error] of failed) {
      fail(new Set(pending.filter((r) => r.deviceId === deviceId).map((r) => r.messageId)), error);
    }
  }
  // readings/ last: a message that failed anything above is retried whole, so its
  // readings reach the lake exactly once.
  await writeObjects(
    deps.lake,
    rows
      .filter((r) => alive(r.messageId))
      .map((r) => ({
        messageId: r.messageId,
        keyFor: (id: string) => readingsKey(r.time, id),
        lines: toNdjsonRows(r),
      })),
    fail,
  );
  metrics.latency('lake', performance.now() - started);

  const stored = rows.filter((r) => alive(r.messageId));
  const quarantined = quarantine.filter(({ q }) => alive(q.message_id));
  const log = deps.log ?? NO_LOG;
  for (const { q } of quarantined) log.quarantined(q);
  for (const [messageId, error] of failures) log.retrying(messageId, error);
  metrics.count('messages', outcomes.length);
  metrics.count('accepted', stored.length);
  metrics.count('quarantined', quarantined.length);
  metrics.count('duplicates', duplicates);
  return failures;
}

/** Sources whose networks resend the same uplink in separate requests. */
const RESENDING_SOURCES: ReadonlySet<Source> = new Set(['sigfox', 'ttn']);

/**
 * The claim key of a reading: device, sequence number and time, so a counter that
 * wraps (Sigfox at 4096) or restarts (a LoRaWAN rejoin) is not taken for a duplicate.
 */
export function claimKey(reading: Reading): string {
  return `${reading.source}#${reading.deviceId}#${reading.key}@${reading.time}`;
}

async function claimReadings(
  readings: readonly Reading[],
  claims: ReadingClaims,
  fail: (ids: Iterable<string>, error: Error) => void,
): Promise<{ kept: Reading[]; dropped: number }> {
  const claimable = readings.filter((r) => RESENDING_SOURCES.has(r.source) && r.key.startsWith('seq:'));
  if (claimable.length === 0) return { kept: [...readings], dropped: 0 };
  let taken: Set<string>;
  try {
    taken = await claims.claim(claimable.map((r) => ({ key: claimKey(r), messageId: r.messageId })));
  } catch (error) {
    // Without the check a duplicate could be stored: retry these messages instead.
    fail(new Set(claimable.map((r) => r.messageId)), asError(error));
    return { kept: readings.filter((r) => !claimable.includes(r)), dropped: 0 };
  }
  const kept = readings.filter((r) => !(RESENDING_SOURCES.has(r.source) && taken.has(claimKey(r))));
  return { kept, dropped: readings.length - kept.length };
}

interface LakeEntry {
  readonly messageId: string;
  /** The object key for a batch id; entries with the same key shape share an object. */
  readonly keyFor: (batchId: string) => string;
  /** NDJSON lines, serialized. */
  readonly lines: readonly string[];
}

/**
 * Writes entries that share a partition as one gzip NDJSON object named after the
 * messages it holds, and fails those messages when the write fails.
 */
async function writeObjects(
  store: ObjectStore,
  entries: readonly LakeEntry[],
  fail: (ids: Iterable<string>, error: Error) => void,
): Promise<void> {
  const groups = new Map<string, LakeEntry[]>();
  for (const entry of entries) {
    const partition = entry.keyFor('');
    const list = groups.get(partition);
    if (list) list.push(entry);
    else groups.set(partition, [entry]);
  }
  await Promise.all(
    [...groups.values()].map(async (group) => {
      const ids = new Set(group.map((e) => e.messageId));
      const first = group[0] as LakeEntry;
      const body = gzipSync(`${group.flatMap((e) => e.lines).join('\n')}\n`);
      try {
        await store.put(first.keyFor(batchId(ids)), body, 'application/x-ndjson', 'gzip');
      } catch (error) {
        fail(ids, asError(error));
      }
    }),
  );
}

/** A short, stable name for a set of messages: the same messages give the same object key. */
export function batchId(messageIds: Iterable<string>): string {
  return createHash('sha256')
    .update([...messageIds].sort().join('\n'))
    .digest('hex')
    .slice(0, 32);
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1)
    throw new Error(`chunk size must be a positive integer, got ${size}`);
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * Collects the messages of one batch as they are handed over one by one (Powertools
 * processes SQS records in parallel, each through its own handler call), writes them
 * together once all have arrived, and settles each message's promise with its own
 * result: the batching that cuts S3 PUTs and Timestream calls by the batch size,
 * with per-message partial failure kept.
 */
export class IngestBatch {
  private readonly messages: QueueMessage[] = [];
  private readonly written: Promise<BatchFailures>;
  private release!: (messages: QueueMessage[]) => void;

  constructor(
    private readonly size: number,
    deps: IngestDeps,
  ) {
    // Decoded together once all have arrived: codecs run once per batch, not per message.
    this.written = new Promise<QueueMessage[]>((resolve) => {
      this.release = resolve;
    }).then(async (messages) => writeBatch(await decodeMessagesSafely(messages, deps), deps));
  }

  /** Resolves when the message is stored or quarantined; rejects when it must be retried. */
  async submit(message: QueueMessage): Promise<void> {
    this.messages.push(message);
    if (this.messages.length === this.size) this.release(this.messages);
    const failure = (await this.written).get(message.messageId);
    if (failure) throw failure;
  }
}

/**
 * decodeMessages is total; should it throw anyway (a bug), each message is decoded on
 * its own, and one that still throws is failed for a retry without taking the rest along.
 */
async function decodeMessagesSafely(
  messages: readonly QueueMessage[],
  deps: IngestDeps,
): Promise<MessageOutcome[]> {
  try {
    return await decodeMessages(messages, deps.config, deps.now);
  } catch {
    return messages.map((message) => {
      try {
        return decodeMessage(message, deps.config, deps.now);
      } catch (error) {
        return {
          messageId: message.messageId,
          receivedAt: Date.now(),
          readings: [],
          quarantine: [],
          error: asError(error),
        };
      }
    });
  }
}
