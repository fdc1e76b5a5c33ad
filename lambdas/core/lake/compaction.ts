/**
 * Intraday compaction of the lake's gzip NDJSON (issue 22, "fewer, bigger lake objects").
 * The ingest path writes one small object per batch and partition; at 1,000 devices and
 * a 20 s batching window that is about 180 `readings/` objects an hour, and Athena is
 * slow on many small objects (each one also an S3 GET billed to the account). Every few minutes this
 * merges the objects of each hour partition of `readings/` and `raw/` of today (and of
 * yesterday until {@link YESTERDAY_UNTIL_HOUR}, for late data) into one object in the
 * same prefix, so the `readings` and `raw` tables and every query keep working unchanged.
 * A query of today's readings then opens about one object per past hour plus the
 * current hour's last few minutes of batches (`npm run bench -- lake.compaction`).
 *
 * Choices:
 * - Rows are deduplicated as the daily job dedupes (`daily.ts`): `readings` one row per
 *   device_id, time, metric, the first by received_at, message_id; `raw` one row per
 *   message_id, the first by received_at. The output is sorted, so the same rows always
 *   give the same bytes.
 * - The merged object is named after its rows: `compacted-<sha256 of its text>.ndjson.gz`.
 *   Merging it again with newer small objects is the same operation (it is one more
 *   input); merging the same rows again gives the same key, which is overwritten with the
 *   same bytes and never deleted.
 * - The hour still filling (until its end and {@link MIN_AGE_MS} after) gets a merged
 *   piece per run from its new batches only; once the hour has closed, the next run
 *   merges its pieces into one. Each stored byte is then read about twice, not once per
 *   run, and a copy that two pieces of the open hour hold (a write whose answer was lost)
 *   stays until that merge.
 * - Order: the merged object is written first, the inputs deleted after (one
 *   DeleteObjects call per partition, up to 1,000 keys). A crash in between leaves every
 *   row twice (inputs and merged object), never missing; the next run merges them all
 *   and drops the copies. So for the length of that one call a query may count a row
 *   twice, and a query that listed an input before the delete and opens it after fails
 *   (S3: NoSuchKey) and must be run again. `curated_readings` (built by the daily job
 *   with the same dedupe) and the series route (`SELECT DISTINCT`) stay exact throughout.
 * - Two runs at once (a slow run and the next schedule) are safe: both write the same
 *   content-named object, or one finds an input gone (NoSuchKey: skipped, not deleted)
 *   and leaves copies for the next run. Yesterday stops being compacted at
 *   {@link YESTERDAY_UNTIL_HOUR}, before the daily job reads it.
 * - Objects written in the last {@link MIN_AGE_MS} are left alone: an ingest retry may
 *   still be rewriting that key. An object that cannot be read, gunzipped or parsed (a
 *   line that is not JSON, a row without its key columns) is left in place and reported;
 *   the partition's other objects are compacted without it. Keys outside the partition
 *   prefix, with `..`, or not `*.ndjson.gz` are never touched.
 * - Memory is bounded: one partition at a time, inputs read in groups of at most
 *   {@link CompactionLimits.maxInputBytes} (stored, gzip) bytes, and an output object
 *   holds at most {@link CompactionLimits.maxObjectBytes} of NDJSON. An output that
 *   reached that cap is written as `compacted-full-<hash>.ndjson.gz` and is not merged
 *   again. Both bounds are reached only by an hour partition over about 6 MiB of gzip
 *   (some 5,000 devices at one message a minute): there a copy split across two groups or
 *   across a full object and later ones (rare: a write whose answer was lost) stays until
 *   the daily job's dedupe, as it did before compaction; below that every run is exact.
 */
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { SOURCES } from '../formats/index.ts';
import type { LakeStore } from '../ingest/ports.ts';
import { LAKE_PREFIXES } from './layout.ts';

/** One object as a listing shows it. */
export interface LakeObject {
  readonly key: string;
  /** Last write, epoch ms. */
  readonly lastModified: number;
  /** Stored (gzip) bytes. */
  readonly size: number;
}

/** The lake as compaction needs it: listing with times and sizes, and deleting in bulk. */
export interface CompactionStore extends LakeStore {
  /** Every object under a prefix, in no particular order. */
  listObjects(prefix: string): Promise<LakeObject[]>;
  /** Deletes these keys (S3: one DeleteObjects call per 1,000); throws when any was not deleted. */
  deleteMany(keys: readonly string[]): Promise<void>;
}

/** Objects younger than this are left alone: an ingest retry may still rewrite their key. */
export const MIN_AGE_MS = 2 * 60_000;

/**
 * Yesterday is compacted until this hour (UTC) of today: late data of yesterday lands
 * before then, and the daily job (01:15 UTC by default) then reads yesterday's
 * `readings/` undisturbed by deletes.
 */
export const YESTERDAY_UNTIL_HOUR = 1;

export interface CompactionLimits {
  /** Largest NDJSON text (uncompressed) of one output object. */
  readonly maxObjectBytes: number;
  /** Largest sum of stored (gzip) bytes of the inputs read into memory at once. */
  readonly maxInputBytes: number;
  /** Objects younger than this are left alone. */
  readonly minAgeMs: number;
}

export const COMPACTION_LIMITS: CompactionLimits = {
  maxObjectBytes: 128 * 1024 * 1024,
  // About 130 MB of rows (gzip NDJSON is ~22x smaller): a few hundred MB of heap at most.
  maxInputBytes: 6 * 1024 * 1024,
  minAgeMs: MIN_AGE_MS,
};

/** What compaction tells its operator: an object it left in place, and why. */
export interface CompactionLog {
  skipped(key: string, reason: string): void;
}

export interface CompactionResult {
  /** Partitions that had something merged. */
  readonly partitions: number;
  readonly objectsRead: number;
  readonly objectsWritten: number;
  readonly objectsDeleted: number;
  readonly rowsRead: number;
  readonly rowsWritten: number;
  /** Objects that could not be read or parsed, left in place. */
  readonly skipped: number;
  /** Stored bytes read. */
  readonly bytesRead: number;
  /** LIST calls (pages) made. */
  readonly lists: number;
}

/** The days to compact at `now`: today, and yesterday before {@link YESTERDAY_UNTIL_HOUR} UTC. */
export function compactionDays(now: number, yesterdayUntilHour = YESTERDAY_UNTIL_HOUR): string[] {
  const today = new Date(now).toISOString().slice(0, 10);
  const sinceMidnight = now - Date.parse(`${today}T00:00:00Z`);
  return sinceMidnight < yesterdayUntilHour * 3_600_000
    ? [new Date(now - 86_400_000).toISOString().slice(0, 10), today]
    : [today];
}

type Table = 'readings' | 'raw';

/** The prefixes listed for a day: `readings/dt=D/` and `raw/source=S/dt=D/` for each source. */
export function dayPrefixes(day: string): { table: Table; prefix: string }[] {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new Error(`"${day}" is not a day; write YYYY-MM-DD`);
  return [
    { table: 'readings', prefix: `${LAKE_PREFIXES.readings}dt=${day}/` },
    ...SOURCES.map((source) => ({
      table: 'raw' as const,
      prefix: `${LAKE_PREFIXES.raw}source=${source}/dt=${day}/`,
    })),
  ];
}

const OBJECT_NAME = /^[A-Za-z0-9_.-]+\.ndjson\.gz$/;
const FULL = /^compacted-full-[0-9a-f]+\.ndjson\.gz$/;

/** The hour partition a listed key belongs to, or undefined for a key compaction must not touch. */
export function partitionOfKey(prefix: string, key: string): string | undefined {
  if (!key.startsWith(prefix) || key.includes('..') || key.includes('\\')) return undefined;
  const rest = key.slice(prefix.length).split('/');
  if (rest.length !== 2) return undefined;
  const [hour, name] = rest as [string, string];
  if (!/^hour=([01]\d|2[0-3])$/.test(hour) || !OBJECT_NAME.test(name) || name.startsWith('.'))
    return undefined;
  return `${prefix}${hour}/`;
}

/** One row, with what it is deduplicated and ordered by. */
interface Row {
  readonly id: string;
  /** Which copy wins: the smallest. */
  readonly rank: string;
  /** Output order. */
  readonly order: string;
  readonly line: string;
}

class UnreadableObjectError extends Error {}

function text(row: Record<string, unknown>, column: string, required: boolean): string {
  const value = row[column];
  if (typeof value === 'string') return value;
  if (!required && (value === null || value === undefined)) return '';
  throw new UnreadableObjectError(`a row has no ${column}`);
}

function parseRow(table: Table, line: string): Row {
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch {
    throw new UnreadableObjectError('a line is not JSON');
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row))
    throw new UnreadableObjectError('a line is not a JSON object');
  const r = row as Record<string, unknown>;
  const sep = '\u0000';
  if (table === 'readings') {
    const device = text(r, 'device_id', true);
    const time = text(r, 'time', true);
    const metric = text(r, 'metric', true);
    const rank = `${text(r, 'received_at', false)}${sep}${text(r, 'message_id', false)}${sep}${line}`;
    return {
      id: `${device}${sep}${time}${sep}${metric}`,
      rank,
      order: `${time}${sep}${device}${sep}${metric}`,
      line,
    };
  }
  const messageId = text(r, 'message_id', true);
  const receivedAt = text(r, 'received_at', false);
  return {
    id: messageId,
    rank: `${receivedAt}${sep}${line}`,
    order: `${receivedAt}${sep}${messageId}`,
    line,
  };
}

/** The rows of one stored object; throws {@link UnreadableObjectError} when any line cannot be taken. */
function rowsOf(table: Table, body: Buffer): Row[] {
  let content: string;
  try {
    content = gunzipSync(body).toString('utf8');
  } catch (error) {
    throw new UnreadableObjectError(`not gzip: ${(error as Error).message}`);
  }
  const rows: Row[] = [];
  for (const line of content.split('\n')) if (line.trim() !== '') rows.push(parseRow(table, line));
  return rows;
}

/** The key of an output object: named after its text, `full` when it reached the cap. */
export function compactedKey(partition: string, body: string, full: boolean): string {
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 32);
  return `${partition}compacted-${full ? 'full-' : ''}${hash}.ndjson.gz`;
}

/** Groups of inputs of at most `maxBytes` stored bytes each (an object larger than that alone). */
function groupsOf(objects: readonly LakeObject[], maxBytes: number): LakeObject[][] {
  const groups: LakeObject[][] = [];
  let current: LakeObject[] = [];
  let bytes = 0;
  for (const object of objects) {
    if (current.length > 0 && bytes + object.size > maxBytes) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(object);
    bytes += object.size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * Compacts the hour partitions of `readings/` and `raw/` of the given days: see the
 * module comment for what it guarantees.
 */
export async function compactLake(
  store: CompactionStore,
  options: {
    readonly days: readonly string[];
    readonly now: number;
    readonly limits?: Partial<CompactionLimits>;
  },
  log: CompactionLog = { skipped: () => undefined },
): Promise<CompactionResult> {
  const limits = { ...COMPACTION_LIMITS, ...options.limits };
  const totals = {
    partitions: 0,
    objectsRead: 0,
    objectsWritten: 0,
    objectsDeleted: 0,
    rowsRead: 0,
    rowsWritten: 0,
    skipped: 0,
    bytesRead: 0,
    lists: 0,
  };
  for (const day of options.days) {
    for (const { table, prefix } of dayPrefixes(day)) {
      const listed = await store.listObjects(prefix);
      totals.lists += Math.max(1, Math.ceil(listed.length / 1000));
      const partitions = new Map<string, LakeObject[]>();
      for (const object of listed) {
        const partition = partitionOfKey(prefix, object.key);
        if (partition === undefined) continue;
        const name = object.key.slice(partition.length);
        if (FULL.test(name) || object.lastModified > options.now - limits.minAgeMs) continue;
        // An hour still filling: its new batches become one more piece; the pieces are
        // merged once, when the hour has closed (each stored byte read about twice, not
        // once per run).
        if (name.startsWith('compacted-') && isOpen(partition, options.now, limits.minAgeMs)) continue;
        const list = partitions.get(partition);
        if (list) list.push(object);
        else partitions.set(partition, [object]);
      }
      for (const [partition, objects] of [...partitions].sort(([a], [b]) => a.localeCompare(b))) {
        if (objects.length < 2) continue;
        objects.sort((a, b) => a.key.localeCompare(b.key));
        let merged = false;
        for (const group of groupsOf(objects, limits.maxInputBytes)) {
          if (group.length < 2) continue;
          const done = await compactGroup(store, table, partition, group, limits.maxObjectBytes, log);
          totals.objectsRead += done.read;
          totals.bytesRead += done.bytesRead;
          totals.rowsRead += done.rowsRead;
          totals.rowsWritten += done.rowsWritten;
          totals.objectsWritten += done.written;
          totals.objectsDeleted += done.deleted;
          totals.skipped += done.skipped;
          merged ||= done.written > 0;
        }
        if (merged) totals.partitions++;
      }
    }
  }
  return totals;
}

/** Whether an hour partition (`.../dt=D/hour=H/`) may still get batches: until its end and `settleMs` after. */
function isOpen(partition: string, now: number, settleMs: number): boolean {
  const match = /dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\/$/.exec(partition);
  if (!match) return false;
  const end = Date.parse(`${match[1]}T${match[2]}:00:00Z`) + 3_600_000;
  return now < end + settleMs;
}

async function compactGroup(
  store: CompactionStore,
  table: Table,
  partition: string,
  group: readonly LakeObject[],
  maxObjectBytes: number,
  log: CompactionLog,
) {
  const best = new Map<string, Row>();
  const read: string[] = [];
  let rowsRead = 0;
  let bytesRead = 0;
  let skipped = 0;
  for (const object of group) {
    let rows: Row[];
    try {
      const body = await store.get(object.key);
      bytesRead += body.length;
      rows = rowsOf(table, body);
    } catch (error) {
      // Never deleted: its rows stay where they are, and the next run tries again.
      skipped++;
      log.skipped(object.key, (error as Error).message);
      continue;
    }
    read.push(object.key);
    rowsRead += rows.length;
    for (const row of rows) {
      const kept = best.get(row.id);
      if (!kept || row.rank < kept.rank) best.set(row.id, row);
    }
  }
  const result = {
    read: read.length,
    bytesRead,
    rowsRead,
    rowsWritten: best.size,
    written: 0,
    deleted: 0,
    skipped,
  };
  // Nothing to gain from rewriting a single object as it is.
  if (read.length < 2) return { ...result, rowsWritten: 0 };
  const rows = [...best.values()].sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
  best.clear();
  const written = new Set<string>();
  let lines: string[] = [];
  let bytes = 0;
  const flush = async (full: boolean) => {
    const body = `${lines.join('\n')}\n`;
    const key = compactedKey(partition, body, full);
    await store.put(key, gzipSync(body), 'application/x-ndjson', 'gzip');
    written.add(key);
    lines = [];
    bytes = 0;
  };
  for (const row of rows) {
    const size = Buffer.byteLength(row.line) + 1;
    if (lines.length > 0 && bytes + size > maxObjectBytes) await flush(true);
    lines.push(row.line);
    bytes += size;
  }
  if (lines.length > 0) await flush(false);
  // Only after every output is stored: a crash before this leaves copies, never a gap.
  const inputs = read.filter((key) => !written.has(key));
  if (inputs.length > 0) await store.deleteMany(inputs);
  return { ...result, written: written.size, deleted: inputs.length };
}

/** A fleet's ingest, as compaction sees it. */
export interface CompactionFleet {
  /** Ingest batches per hour; each writes one `readings/` object and one `raw/` object per source in it. */
  readonly batchesPerHour: number;
  /** Stored (gzip) bytes written to `readings/` and `raw/` together per hour. */
  readonly bytesPerHour: number;
  /** Sources in use: `raw/` has a partition per source. */
  readonly sourcesInUse: number;
  /** Minutes between runs; default 10. */
  readonly everyMinutes?: number;
  /** Lambda memory, MB; default 1024 (the construct's). */
  readonly memoryMb?: number;
}

/** S3 requests and Lambda time of compaction, per 30-day month. DELETE requests are free. */
export interface CompactionUsage {
  readonly runs: number;
  readonly list: number;
  readonly get: number;
  readonly put: number;
  readonly deleteCalls: number;
  readonly lambdaMs: number;
  readonly lambdaGbSeconds: number;
}

/**
 * Lambda time of a run: a start (listing the day's prefixes, one round trip each) and
 * the bytes merged. `npm run bench -- lake.compaction` measured 1,700 ms per stored MB
 * (gzip NDJSON is about 22 times smaller than its rows: gunzip, parse, sort, gzip) on one
 * shared laptop core; a 1,024 MB Lambda has about 0.6 of a vCPU: twice that.
 */
export const COMPACTION_RUN_BASE_MS = 400;
export const COMPACTION_MS_PER_STORED_MB = 3400;

/**
 * What running compaction costs a fleet, per month: per run, one LIST per prefix of the
 * day (`readings/` and each source of `raw/`, of every source the stack knows, since a
 * run cannot know which are used), a GET of each object written since the last run, one
 * PUT and one DeleteObjects per partition touched (the current hour's new piece); and
 * once an hour, the closed hour's pieces merged into one (a GET of each, a PUT, a delete).
 */
export function compactionUsage(fleet: CompactionFleet): CompactionUsage {
  const every = fleet.everyMinutes ?? 10;
  const memoryMb = fleet.memoryMb ?? 1024;
  const runs = (30 * 24 * 60) / every;
  // Yesterday too, for the first YESTERDAY_UNTIL_HOUR hours of each day.
  const daysPerRun = 1 + YESTERDAY_UNTIL_HOUR / 24;
  const prefixesPerDay = 1 + SOURCES.length;
  const tables = 1 + fleet.sourcesInUse;
  const newObjects = (fleet.batchesPerHour * every) / 60;
  // The current hour's new piece of each table; and, once an hour, the closed hour's merge.
  const piecesPerHour = 60 / every;
  const partitionsPerRun = tables * (1 + every / 60);
  const getsPerRun = tables * (newObjects + piecesPerHour * (every / 60));
  // Bytes read: the new objects, and the closed hour's pieces once an hour (each byte twice).
  const storedMbPerRun = (fleet.bytesPerHour * 2 * (every / 60)) / 1024 ** 2;
  const msPerRun = COMPACTION_RUN_BASE_MS + storedMbPerRun * COMPACTION_MS_PER_STORED_MB;
  return {
    runs,
    list: runs * daysPerRun * prefixesPerDay,
    get: runs * getsPerRun,
    put: runs * partitionsPerRun,
    deleteCalls: runs * partitionsPerRun,
    lambdaMs: runs * msPerRun,
    lambdaGbSeconds: (runs * msPerRun * memoryMb) / 1024 / 1000,
  };
}
