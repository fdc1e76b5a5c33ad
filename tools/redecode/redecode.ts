/**
 * Re-decoding history: the raw archive keeps every message's bytes, so when a decoder
 * changes (or a device type gets one), the days it touched can be decoded again with
 * the current config. For each arrival day, every raw message is decoded anew; the
 * `readings/` and `quarantine/` lines those messages produced before are removed, then
 * the new ones are written. Run it again to finish an interrupted run: the raw archive
 * is the source of truth and is never changed.
 *
 * The old readings of a message sit in the partitions of their reading time, which is
 * at most `maxFutureSeconds` after arrival and, for devices that send late, up to
 * `lookbackDays` before it: older ones are not looked for.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import type { RuntimeConfig } from '../../lambdas/core/config.ts';
import { buildDecoders } from '../../lambdas/core/decoders/registry.ts';
import type { Envelope } from '../../lambdas/core/formats/format.ts';
import { SOURCES } from '../../lambdas/core/formats/index.ts';
import { decodeMessages, type IngestContext } from '../../lambdas/core/ingest/decode.ts';
import { chunk } from '../../lambdas/core/ingest/lake-objects.ts';
import type { LakeStore, ReadingClaims } from '../../lambdas/core/ingest/ports.ts';
import type { QueueMessage } from '../../lambdas/core/ingest/queue-message.ts';
import type { MessageOutcome, RawRecord } from '../../lambdas/core/ingest/records.ts';
import { writeBatch } from '../../lambdas/core/ingest/write.ts';
import { LAKE_PREFIXES } from '../../lambdas/core/lake/layout.ts';

export interface RedecodeOptions {
  /** First and last arrival day, `YYYY-MM-DD`. */
  readonly from: string;
  readonly to: string;
  /** Days before the arrival day searched for a message's old readings. */
  readonly lookbackDays: number;
  readonly onProgress?: (line: string) => void;
}

export interface RedecodeReport {
  readonly days: number;
  readonly messages: number;
  readonly readings: number;
  readonly quarantined: number;
  /** Old lines removed from `readings/` and `quarantine/`. */
  readonly removedLines: number;
  readonly rewrittenObjects: number;
  readonly failedMessages: number;
}

const DAY_MS = 86_400_000;

/** Decodes the raw archive of the days again with the config's decoders (built for the run, then freed). */
export async function redecode(
  store: LakeStore,
  config: RuntimeConfig,
  options: RedecodeOptions,
): Promise<RedecodeReport> {
  const decoders = buildDecoders(config.deviceTypes);
  try {
    return await redecodeWith(store, { config, decoders }, options);
  } finally {
    await decoders.close();
  }
}

async function redecodeWith(
  store: LakeStore,
  ingest: IngestContext,
  options: RedecodeOptions,
): Promise<RedecodeReport> {
  const first = parseDay(options.from, 'from');
  const last = parseDay(options.to, 'to');
  if (last < first) throw new Error(`--to ${options.to} is before --from ${options.from}`);
  // Network resends (Sigfox, The Things Stack) are stored once, as the ingest path does.
  const claims = memoryClaims();
  const report = {
    days: 0,
    messages: 0,
    readings: 0,
    quarantined: 0,
    removedLines: 0,
    rewrittenObjects: 0,
    failedMessages: 0,
  };
  for (let day = first; day <= last; day += DAY_MS) {
    const dt = new Date(day).toISOString().slice(0, 10);
    const messages = await rawMessages(store, dt);
    report.days++;
    if (messages.length === 0) continue;
    const outcomes: MessageOutcome[] = await decodeMessages(messages, ingest);
    const ids = new Set(messages.map((m) => m.messageId));
    // Old lines first: the new ones carry the same message ids.
    const readingDays = days(day - options.lookbackDays * DAY_MS, day + DAY_MS);
    for (const prefix of [
      ...readingDays.map((d) => `${LAKE_PREFIXES.readings}dt=${d}/`),
      `${LAKE_PREFIXES.quarantine}dt=${dt}/`,
    ]) {
      const { removed, rewritten } = await removeLines(store, prefix, ids);
      report.removedLines += removed;
      report.rewrittenObjects += rewritten;
    }
    for (const part of chunk(outcomes, 1000)) {
      let quarantined = 0;
      let accepted = 0;
      const failures = await writeBatch(part, {
        ...ingest,
        lake: store,
        writeRaw: false,
        claims,
        metrics: {
          count: (name, value) => {
            if (name === 'accepted') accepted += value;
            if (name === 'quarantined') quarantined += value;
          },
          latency: () => undefined,
        },
      });
      report.readings += accepted;
      report.quarantined += quarantined;
      report.failedMessages += failures.size;
    }
    report.messages += messages.length;
    options.onProgress?.(`redecode: ${dt}: ${messages.length} messages decoded again`);
  }
  return report;
}

/**
 * Claims held in memory (one redecode run, tests): the first message to claim a key owns
 * it, as the DynamoDB adapter behaves.
 */
export function memoryClaims(): ReadingClaims {
  const owners = new Map<string, string>();
  return {
    async claim(claims) {
      const taken = new Set<string>();
      for (const { key, messageId } of claims) {
        const owner = owners.get(key);
        if (owner === undefined) owners.set(key, messageId);
        else if (owner !== messageId) taken.add(key);
      }
      return taken;
    },
  };
}

/** The day's raw records as the queue messages they came in. */
async function rawMessages(store: LakeStore, dt: string): Promise<QueueMessage[]> {
  const messages: { message: QueueMessage; at: number }[] = [];
  for (const source of SOURCES) {
    for (const key of await store.list(`${LAKE_PREFIXES.raw}source=${source}/dt=${dt}/`)) {
      for (const line of await readLines(store, key)) {
        const raw = JSON.parse(line) as RawRecord;
        const envelope: Envelope = {
          source: raw.source,
          payload: raw.payload,
          topic: raw.topic,
          receivedAt: Date.parse(`${raw.received_at.replace(' ', 'T')}Z`),
          ...(raw.client_id === null ? {} : { clientId: raw.client_id }),
        };
        messages.push({
          message: { messageId: raw.message_id, body: JSON.stringify(envelope) },
          at: envelope.receivedAt,
        });
      }
    }
  }
  // In arrival order, so the first of several resends keeps its reading, as at ingest.
  return messages.sort((a, b) => a.at - b.at).map((m) => m.message);
}

/** Removes the lines of these messages from every object under the prefix. */
async function removeLines(
  store: LakeStore,
  prefix: string,
  ids: ReadonlySet<string>,
): Promise<{ removed: number; rewritten: number }> {
  let removed = 0;
  let rewritten = 0;
  for (const key of await store.list(prefix)) {
    if (!key.endsWith('.ndjson.gz')) continue;
    const lines = await readLines(store, key);
    const kept = lines.filter((line) => !ids.has((JSON.parse(line) as { message_id: string }).message_id));
    if (kept.length === lines.length) continue;
    removed += lines.length - kept.length;
    rewritten++;
    if (kept.length === 0) await store.delete(key);
    else await store.put(key, gzipSync(`${kept.join('\n')}\n`), 'application/x-ndjson', 'gzip');
  }
  return { removed, rewritten };
}

async function readLines(store: LakeStore, key: string): Promise<string[]> {
  return gunzipSync(await store.get(key))
    .toString('utf8')
    .split('\n')
    .filter((line) => line.length > 0);
}

function parseDay(text: string, name: string): number {
  const ms = Date.parse(`${text}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text) || Number.isNaN(ms)) {
    throw new Error(`--${name} "${text}" is not a day; write YYYY-MM-DD`);
  }
  return ms;
}

function days(fromMs: number, toMs: number): string[] {
  const out: string[] = [];
  for (let d = Math.floor(fromMs / DAY_MS) * DAY_MS; d <= toMs; d += DAY_MS)
    out.push(new Date(d).toISOString().slice(0, 10));
  return out;
}
