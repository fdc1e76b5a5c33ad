/**
 * The estate's updates, applied now or queued. A stored batch's readings move the
 * device registry on (last seen, last values, sequence gaps, alert states); where that
 * happens is the {@link EstateSink} the ingest path is given:
 *
 * - {@link applyNow}: in the same turn as the batch (the local runtime: a DuckDB row
 *   costs nothing, and alerts go out at once).
 * - {@link queueDeltas}: on AWS, the ingest function sends the batch's readings to the
 *   estate queue as a few compressed messages (the "deltas"), and the estate function
 *   drains that queue with a long batching window ({@link applyDeltas}). A device that
 *   reports every minute is then read and written once per window instead of once per
 *   message: at the default 300 s window, a fifth of the registry's read and write units,
 *   for threshold and lost-message alerts that wait up to the window.
 *
 * Either way a device whose update did not happen fails its messages, which are retried
 * whole; applying the same readings again changes nothing (`applyReadings` moves a
 * record on only with readings newer than it has seen), so a delta sent twice, or a
 * batch of deltas retried, is harmless.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { SOURCES } from '../formats/index.ts';
import { DEVICE_ID_PATTERN } from '../ids.ts';
import type { EstateReading, Reading } from '../reading.ts';
import { type EstateDeps, type OfflineNotice, updateEstate } from './update.ts';

/** Where a stored batch's readings go to move the estate on. */
export interface EstateSink {
  /**
   * Takes the readings (and a network's offline notices); resolves with the devices whose
   * update did not happen, each with why (their messages are retried).
   */
  apply(readings: readonly Reading[], offline: readonly OfflineNotice[]): Promise<Map<string, Error>>;
}

/** The estate updated in the batch's own turn. */
export function applyNow(deps: EstateDeps): EstateSink {
  return {
    apply: async (readings, offline) => (await updateEstate(readings, deps, offline)).failed,
  };
}

/** The estate queue: SQS on AWS, one queue per shard. */
export interface DeltaQueue {
  /** How many queues a device's updates are spread over (each device always to the same one). */
  readonly shards: number;
  /** Sends bodies, each to its shard's queue; resolves with the indexes of the ones not sent, each with why. */
  send(
    deltas: readonly { readonly shard: number; readonly body: string }[],
  ): Promise<ReadonlyMap<number, Error>>;
}

/** The most estate shards: queues a stack creates, and SendMessageBatch calls a batch makes. */
export const MAX_SHARDS = 16;

/**
 * The shard of a device (FNV-1a of its id): the same for every batch, so one shard's
 * window holds all of a device's readings of that window. An invocation takes at most
 * 6 MB of updates (about 75,000 readings of 200-byte messages, under a minute of 100,000
 * devices): spread over shards, each holds a share of the devices for the whole window.
 */
export function shardOf(deviceId: string, shards: number): number {
  if (!(Number.isInteger(shards) && shards >= 1 && shards <= MAX_SHARDS))
    throw new RangeError(`shards must be 1 to ${MAX_SHARDS}`);
  let hash = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) {
    hash ^= deviceId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % shards;
}

/**
 * The largest delta body: SQS's 256 KiB message, with room to spare. A delta's readings
 * are gzip JSON in base64; a message over 64 KiB is billed as more than one request, so
 * a batch costs `ceil(compressed size / 64 KiB)` requests, about one.
 */
export const MAX_DELTA_BYTES = 200 * 1024;

/** What a delta says, before it is compressed. */
export interface EstateDelta {
  readonly readings: readonly EstateReading[];
  readonly offline: readonly OfflineNotice[];
}

/** A body that is not a delta this code wrote (a bug, or someone else's message). */
export class DeltaError extends Error {
  override readonly name = 'DeltaError';
}

const VERSION = 1;

/** What of a reading the estate reads: about half its bytes compressed (message ids do not compress). */
function estatePart(reading: EstateReading): EstateReading {
  const { deviceId, deviceType, time, source, metrics, seq, attributes } = reading;
  return {
    deviceId,
    deviceType,
    time,
    source,
    metrics,
    ...(seq === undefined ? {} : { seq }),
    ...(attributes === undefined ? {} : { attributes }),
  };
}

function encodeOne(delta: EstateDelta): string {
  return gzipSync(JSON.stringify({ v: VERSION, readings: delta.readings, offline: delta.offline })).toString(
    'base64',
  );
}

interface DeviceDelta {
  readonly deviceId: string;
  readonly readings: EstateReading[];
  readonly offline: OfflineNotice[];
}

/** A delta body, the shard it goes to, and the devices it carries. */
export interface EncodedDelta {
  readonly shard: number;
  readonly body: string;
  readonly devices: string[];
}

/**
 * A batch's readings and notices as delta bodies, each at most `maxBytes`, per shard: a
 * device's readings and notices in one body where they fit, the set of a shard's devices
 * halved until each part fits; a device too large for one body has its readings halved
 * in turn.
 *
 * @throws RangeError when a single reading does not fit a body
 */
export function encodeDeltas(
  readings: readonly Reading[],
  offline: readonly OfflineNotice[],
  maxBytes = MAX_DELTA_BYTES,
  shards = 1,
): EncodedDelta[] {
  const byDevice = new Map<string, DeviceDelta>();
  const of = (deviceId: string) => {
    let entry = byDevice.get(deviceId);
    if (!entry) {
      entry = { deviceId, readings: [], offline: [] };
      byDevice.set(deviceId, entry);
    }
    return entry;
  };
  for (const reading of readings) of(reading.deviceId).readings.push(estatePart(reading));
  for (const notice of offline) of(notice.deviceId).offline.push(notice);
  const out: EncodedDelta[] = [];
  let shard = 0;
  const pack = (parts: readonly DeviceDelta[]) => {
    const body = encodeOne({
      readings: parts.flatMap((p) => p.readings),
      offline: parts.flatMap((p) => p.offline),
    });
    if (body.length <= maxBytes) {
      out.push({ shard, body, devices: parts.map((p) => p.deviceId) });
      return;
    }
    if (parts.length > 1) {
      const half = Math.ceil(parts.length / 2);
      pack(parts.slice(0, half));
      pack(parts.slice(half));
      return;
    }
    const [part] = parts as [DeviceDelta];
    if (part.readings.length <= 1)
      throw new RangeError(`device ${part.deviceId}: one reading is larger than a delta (${maxBytes} bytes)`);
    const half = Math.ceil(part.readings.length / 2);
    pack([{ deviceId: part.deviceId, readings: part.readings.slice(0, half), offline: part.offline }]);
    pack([{ deviceId: part.deviceId, readings: part.readings.slice(half), offline: [] }]);
  };
  const byShard = new Map<number, DeviceDelta[]>();
  for (const part of byDevice.values()) {
    const n = shardOf(part.deviceId, shards);
    const list = byShard.get(n);
    if (list) list.push(part);
    else byShard.set(n, [part]);
  }
  for (const [n, parts] of [...byShard].sort(([a], [b]) => a - b)) {
    shard = n;
    pack(parts);
  }
  return out;
}

/**
 * The estate updated later: the readings sent to the estate queue(s), every device of the
 * batch failed when any of its bodies was not taken.
 */
export function queueDeltas(queue: DeltaQueue): EstateSink {
  return {
    async apply(readings, offline) {
      const failed = new Map<string, Error>();
      if (readings.length === 0 && offline.length === 0) return failed;
      let deltas: EncodedDelta[];
      try {
        deltas = encodeDeltas(readings, offline, MAX_DELTA_BYTES, queue.shards);
      } catch (error) {
        const reason = error instanceof Error ? error : new Error(String(error));
        for (const r of readings) failed.set(r.deviceId, reason);
        for (const o of offline) failed.set(o.deviceId, reason);
        return failed;
      }
      let unsent: ReadonlyMap<number, Error>;
      try {
        unsent = await queue.send(deltas);
      } catch (error) {
        const reason = error instanceof Error ? error : new Error(String(error));
        for (const d of deltas) for (const id of d.devices) failed.set(id, reason);
        return failed;
      }
      // Whole or not at all: one body not taken fails every device of the batch. The
      // batch's readings/ objects are named after the messages they hold, so a retry of
      // only some of them (after a redelivery that had stored them all) would store those
      // readings again under another name; the bodies that were taken are sent again,
      // which changes nothing.
      const [first] = unsent.values();
      if (first) for (const d of deltas) for (const id of d.devices) failed.set(id, first);
      return failed;
    },
  };
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isTime = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

function checkReading(value: unknown): EstateReading {
  if (!isObject(value)) throw new DeltaError('a reading is not an object');
  const { deviceId, deviceType, time, source, metrics, seq, attributes } = value;
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId))
    throw new DeltaError('a reading has no valid deviceId');
  if (typeof deviceType !== 'string' || deviceType.length === 0 || deviceType.length > 128)
    throw new DeltaError(`device ${deviceId}: no valid deviceType`);
  if (!isTime(time)) throw new DeltaError(`device ${deviceId}: time is not epoch ms`);
  if (typeof source !== 'string' || !(SOURCES as readonly string[]).includes(source))
    throw new DeltaError(`device ${deviceId}: unknown source`);
  if (!isObject(metrics)) throw new DeltaError(`device ${deviceId}: metrics is not an object`);
  for (const v of Object.values(metrics)) {
    if (!(typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))))
      throw new DeltaError(`device ${deviceId}: a metric value is not a number, text or boolean`);
  }
  if (seq !== undefined && !Number.isSafeInteger(seq)) throw new DeltaError(`device ${deviceId}: seq`);
  if (attributes !== undefined) {
    if (!isObject(attributes) || Object.values(attributes).some((a) => typeof a !== 'string'))
      throw new DeltaError(`device ${deviceId}: attributes must be text`);
  }
  return {
    deviceId,
    deviceType,
    time,
    source: source as EstateReading['source'],
    metrics: metrics as EstateReading['metrics'],
    ...(seq === undefined ? {} : { seq: seq as number }),
    ...(attributes === undefined ? {} : { attributes: attributes as Record<string, string> }),
  };
}

/**
 * A delta body read back and checked field by field (the queue is ours, but what a
 * registry record is made of is checked where it is read).
 *
 * @throws DeltaError when it is not a delta this code wrote
 */
export function decodeDelta(body: string): EstateDelta {
  let parsed: unknown;
  try {
    parsed = JSON.parse(
      gunzipSync(Buffer.from(body, 'base64'), { maxOutputLength: 16 * 1024 * 1024 }).toString(),
    );
  } catch {
    throw new DeltaError('not gzip JSON in base64');
  }
  if (!isObject(parsed) || parsed.v !== VERSION) throw new DeltaError(`not a version ${VERSION} delta`);
  if (!Array.isArray(parsed.readings) || !Array.isArray(parsed.offline))
    throw new DeltaError('readings and offline must be arrays');
  const offline = parsed.offline.map((notice): OfflineNotice => {
    if (!isObject(notice) || typeof notice.deviceId !== 'string' || !DEVICE_ID_PATTERN.test(notice.deviceId))
      throw new DeltaError('an offline notice has no valid deviceId');
    if (!isTime(notice.at)) throw new DeltaError(`device ${notice.deviceId}: offline time is not epoch ms`);
    return { deviceId: notice.deviceId, at: notice.at };
  });
  return { readings: parsed.readings.map(checkReading), offline };
}

/**
 * The estate function's batch: every delta of the window read, the devices' records
 * updated once each with all their readings, and the deltas to retry (a delta that is
 * not one, or that holds a device whose update failed).
 */
export async function applyDeltas(
  messages: readonly { readonly messageId: string; readonly body: string }[],
  deps: EstateDeps,
): Promise<Map<string, Error>> {
  const failures = new Map<string, Error>();
  const readings: EstateReading[] = [];
  const offline: OfflineNotice[] = [];
  const carriers = new Map<string, string[]>();
  const carries = (deviceId: string, messageId: string) => {
    const list = carriers.get(deviceId);
    if (!list) carriers.set(deviceId, [messageId]);
    else if (list[list.length - 1] !== messageId) list.push(messageId);
  };
  for (const message of messages) {
    let delta: EstateDelta;
    try {
      delta = decodeDelta(message.body);
    } catch (error) {
      failures.set(message.messageId, error as Error);
      continue;
    }
    for (const reading of delta.readings) {
      readings.push(reading);
      carries(reading.deviceId, message.messageId);
    }
    for (const notice of delta.offline) {
      offline.push(notice);
      carries(notice.deviceId, message.messageId);
    }
  }
  const { failed } = await updateEstate(readings, deps, offline);
  for (const [deviceId, error] of failed)
    for (const messageId of carriers.get(deviceId) ?? [])
      if (!failures.has(messageId)) failures.set(messageId, error);
  return failures;
}
