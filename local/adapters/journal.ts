/**
 * The local queue's journal: every message the runtime acknowledges (a PUBACK, an HTTP
 * 202) is on disk first, and what was not settled (stored, quarantined or dead-lettered)
 * when the process stopped is delivered again on the next start.
 *
 * An append-only log of segments under `<data>/journal/` (`00000001.log`, `00000002.log`,
 * …; a new one after `segmentBytes`). Each record is one frame,
 * `[u32 length][u32 crc32][payload]` (little-endian; the CRC is over the payload), the
 * payload a JSON object: `{"k":"put","id","at","body"}` for a message, `{"k":"batch","b","ids"}`
 * for the messages handed to the consumer together (written before they are), and
 * `{"k":"settle","ids"}` for messages done with (one settle never split across frames).
 *
 * Batches: a message's last batch record says which batch it was last delivered in.
 * Opening gives back, with each unsettled message, the batch of its last record; the
 * queue delivers the unsettled members of each such batch together again, so the lake
 * objects they were written to (named after the batch's messages) are overwritten, not
 * added to. In one write the settles go before the batch records, so a durable batch
 * record of a retried message implies the durable settles of its earlier batch's others.
 *
 * Group commit: appends that arrive while a write is on its way are batched into the next
 * single write and `fdatasync`; each put resolves only once its bytes are on disk. One
 * write is in flight at a time, so a crash can tear only the last write of the last
 * segment. A segment is deleted, oldest first, once it holds neither the put nor the last
 * batch record of an unsettled message (and a segment whose settles refer to an older
 * segment still on disk is kept, or that segment's settled messages would come back).
 *
 * Opening reads the segments in order and checks every frame. A bad frame at the end of
 * the last segment, with no intact frame after it, is the tail of a write that was
 * interrupted (never acknowledged): it is cut off and said so in the `report`. A bad frame
 * anywhere else is damage: {@link JournalDamageError}, naming the file, the offset and what
 * to do ({@link repairJournal} keeps what precedes the damage).
 *
 * A write that fails (ENOSPC, EDQUOT, EIO…) rejects the puts of its batch, cuts the file
 * back to its last good size, and puts the journal in a `failing` state, said once through
 * `log`; the next append, or a probe every `probeMs`, tries again, and the first success is
 * said once too.
 */
import * as nodeFs from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { StartupError } from '../listen.ts';

/** The file-system calls the journal and the dead-letter file make: replaced by tests to inject faults. */
export interface JournalFs {
  open(path: string, flags: string | number): Promise<number>;
  /** Writes at `position`; resolves with the bytes written (possibly fewer than asked). */
  write(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  size(fd: number): Promise<number>;
  close(fd: number): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  readdir(path: string): Promise<string[]>;
  /** Creates the folder and its parents when missing. */
  mkdir(path: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Makes a folder's entries (a created or renamed file) durable. */
  syncDir(path: string): Promise<void>;
}

const fsync = promisify(nodeFs.fsync);
const closeFd = promisify(nodeFs.close);
const openFd = promisify(nodeFs.open);

/** The real file system. */
export const nodeJournalFs: JournalFs = {
  open: (path, flags) => openFd(path, flags),
  write: (fd, buffer, offset, length, position) =>
    new Promise((done, fail) =>
      nodeFs.write(fd, buffer, offset, length, position, (error, written) =>
        error ? fail(error) : done(written),
      ),
    ),
  fdatasync: promisify(nodeFs.fdatasync),
  ftruncate: promisify(nodeFs.ftruncate),
  size: async (fd) => (await promisify(nodeFs.fstat)(fd)).size,
  close: closeFd,
  readFile: (path) => nodeFs.promises.readFile(path),
  readdir: (path) => nodeFs.promises.readdir(path),
  mkdir: async (path) => {
    await nodeFs.promises.mkdir(path, { recursive: true });
  },
  unlink: (path) => nodeFs.promises.unlink(path),
  rename: (from, to) => nodeFs.promises.rename(from, to),
  syncDir: async (path) => {
    const fd = await openFd(path, 'r');
    try {
      await fsync(fd);
    } finally {
      await closeFd(fd);
    }
  },
};

export interface JournalOptions {
  /** The journal's folder (`<data>/journal`), made when missing. */
  readonly dir: string;
  /**
   * A new segment starts once the current one reaches this size.
   *
   * @default 64 MiB
   */
  readonly segmentBytes?: number;
  /**
   * While failing, how often a write is tried even without appends.
   *
   * @default 1000
   */
  readonly probeMs?: number;
  /** Says once when the journal starts failing and once when it works again. */
  readonly log?: (line: string) => void;
  /** @default the real file system */
  readonly fs?: JournalFs;
}

/** A message journalled and not settled. */
export interface JournalPut {
  readonly id: string;
  readonly body: string;
  /** When it was journalled (ms since the epoch). */
  readonly at: number;
  /**
   * The batch it was last delivered in (its last batch record); absent when it never was.
   * The unsettled messages with the same `batch` are to be delivered together again.
   */
  readonly batch?: number;
}

/** Unsettled messages that were delivered together, to be delivered together again. */
export interface JournalBatch {
  readonly b: number;
  /** In the order of the batch record. */
  readonly ids: readonly string[];
}

export interface JournalOpenReport {
  /** Segments read. */
  readonly segments: number;
  /** Records read (puts, batches and settles). */
  readonly records: number;
  /** Puts not settled: delivered again. */
  readonly unsettled: number;
  /** Of those, the ones that come back in the batches they were last delivered in. */
  readonly batched: number;
  /** How many such batches. */
  readonly batches: number;
  /** The torn tail of the last segment that was cut off: a write a crash interrupted, never acknowledged. */
  readonly truncated?: { readonly file: string; readonly offset: number; readonly bytes: number };
}

export interface OpenedJournal {
  readonly journal: Journal;
  /** In the order they were journalled. */
  readonly unsettled: readonly JournalPut[];
  /** The unsettled messages' last batches, oldest first: each to be delivered again as it is. */
  readonly batches: readonly JournalBatch[];
  readonly report: JournalOpenReport;
}

export interface JournalStats {
  /** Puts on disk and not settled. */
  readonly unsettled: number;
  readonly segments: number;
  /** Group writes done, each one write and one fdatasync. */
  readonly syncs: number;
  readonly puts: number;
  /** Batch records written. */
  readonly batches: number;
  readonly bytes: number;
  readonly failing: boolean;
}

/** A segment is damaged somewhere other than its torn tail: the runtime refuses to start (a StartupError for the CLI). */
export class JournalDamageError extends StartupError {
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly why: string,
    /** Unsettled messages read from the file before the damage. */
    readonly unsettled: number,
    /** Bytes from the damage to the end of the file, not readable. */
    readonly bytesAfter: number,
  ) {
    super(
      `The queue journal ${file} is damaged at byte ${offset} (${why}); ${bytesAfter} byte(s) from there on cannot be read. ` +
        `To start without it, move ${file} away (its ${unsettled} unsettled message(s) are then lost, and whatever follows the damage), ` +
        'or run `iot-pipeline start --repair` to keep every intact record before the damage ' +
        '(the damaged file is moved aside as <name>.damaged-<time>).',
    );
  }
}

/** A journal write failed: the message was not acknowledged, and the caller may send it again. */
export class JournalWriteError extends Error {
  readonly code: string | undefined;
  readonly diskFull: boolean;
  constructor(dir: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException)?.code;
    const diskFull = isDiskFull(cause);
    super(
      diskFull
        ? `disk full: the message was not journalled (${dir}, ${code ?? 'no space'})`
        : `the message was not journalled (${dir}): ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    );
    this.name = 'JournalWriteError';
    this.code = code;
    this.diskFull = diskFull;
  }
}

/** True for an error of a full disk or an exceeded quota (Node's codes, or DuckDB's messages). */
export function isDiskFull(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; e = (e as Error).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    if (e instanceof JournalWriteError) return e.diskFull;
    if (/ENOSPC|EDQUOT|no space left on device|disk quota exceeded/i.test((e as Error).message ?? ''))
      return true;
  }
  return false;
}

const SEGMENT_BYTES = 64 * 1024 * 1024;
const HEADER_BYTES = 8;
/** Every payload starts with it; also how an intact frame is recognised after a bad one. */
const PAYLOAD_PREFIX = Buffer.from('{"k":"');
const SEGMENT_NAME = /^(\d{8})\.log$/;
/** A group write takes the appends that wait up to about this many bytes. */
const MAX_WRITE_BYTES = 8 * 1024 * 1024;
/**
 * Settles of several calls share a frame up to about this many ids; one call's ids are
 * never split, so a batch's settle is whole or not at all after a crash.
 */
const SETTLE_CHUNK = 4096;
/**
 * While failing, each write starts with a probe: a settle of nothing, padded to 64 KiB. A
 * few bytes (a settle, a small put) can fit in a block a file already holds on a disk that
 * is still full, and would say "space back" too soon, then "disk full" again.
 */
const PROBE_BYTES = 64 * 1024;
let probe: Buffer | undefined;
const probeFrame = () => {
  probe ??= encode({ k: 'settle', ids: [], pad: ' '.repeat(PROBE_BYTES) });
  return probe;
};

type JournalRecord =
  | { readonly k: 'put'; readonly id: string; readonly at: number; readonly body: string }
  | { readonly k: 'batch'; readonly b: number; readonly ids: readonly string[] }
  | { readonly k: 'settle'; readonly ids: readonly string[]; readonly pad?: string };

interface Segment {
  readonly no: number;
  readonly file: string;
  livePuts: number;
  /** Unsettled messages whose last batch record is here: it is kept for them. */
  liveBatches: number;
  /** Older segments whose puts this one settles: it goes only after them. */
  readonly refs: Set<number>;
}

interface Waiter {
  readonly frame?: Buffer;
  readonly putId?: string;
  /** A batch record's ids. */
  readonly batchIds?: readonly string[];
  resolve(): void;
  reject(error: Error): void;
}

const segmentName = (no: number) => `${String(no).padStart(8, '0')}.log`;

function encode(record: JournalRecord): Buffer {
  const json = JSON.stringify(record);
  const length = Buffer.byteLength(json);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32LE(length, 0);
  frame.write(json, HEADER_BYTES);
  frame.writeUInt32LE(crc32(frame.subarray(HEADER_BYTES)), 4);
  return frame;
}

function decode(payload: Buffer): JournalRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  const r = value as Record<string, unknown>;
  if (r?.k === 'put' && typeof r.id === 'string' && typeof r.body === 'string' && typeof r.at === 'number')
    return r as JournalRecord;
  const ids = Array.isArray(r?.ids) && (r.ids as unknown[]).every((id) => typeof id === 'string');
  if (r?.k === 'settle' && ids) return r as JournalRecord;
  if (r?.k === 'batch' && ids && Number.isSafeInteger(r.b)) return r as JournalRecord;
  return undefined;
}

interface Scan {
  readonly records: JournalRecord[];
  /** Where the intact frames end. */
  readonly end: number;
  readonly bad?: { readonly offset: number; readonly why: string };
}

/** The intact frames of a segment, up to the first bad one. */
function scan(buffer: Buffer): Scan {
  const records: JournalRecord[] = [];
  let offset = 0;
  const bad = (why: string): Scan => ({ records, end: offset, bad: { offset, why } });
  while (offset < buffer.length) {
    if (buffer.length - offset < HEADER_BYTES) return bad('a partial frame header');
    const length = buffer.readUInt32LE(offset);
    if (length === 0) return bad('a frame of length 0');
    const end = offset + HEADER_BYTES + length;
    if (end > buffer.length) return bad(`a frame of ${length} bytes that runs past the end of the file`);
    const payload = buffer.subarray(offset + HEADER_BYTES, end);
    if (crc32(payload) !== buffer.readUInt32LE(offset + 4)) return bad('a checksum mismatch');
    const record = decode(payload);
    if (!record) return bad('a frame that is not a journal record');
    records.push(record);
    offset = end;
  }
  return { records, end: offset };
}

/** True when an intact frame starts somewhere after `from`: what a torn tail never has. */
function intactFrameAfter(buffer: Buffer, from: number): boolean {
  for (
    let at = buffer.indexOf(PAYLOAD_PREFIX, from + HEADER_BYTES + 1);
    at >= 0;
    at = buffer.indexOf(PAYLOAD_PREFIX, at + 1)
  ) {
    const start = at - HEADER_BYTES;
    const length = buffer.readUInt32LE(start);
    if (length === 0 || at + length > buffer.length) continue;
    const payload = buffer.subarray(at, at + length);
    if (crc32(payload) === buffer.readUInt32LE(start + 4) && decode(payload)) return true;
  }
  return false;
}

async function segmentNumbers(fs: JournalFs, dir: string): Promise<number[]> {
  return (await fs.readdir(dir))
    .map((name) => SEGMENT_NAME.exec(name)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** Writes all of `data` at `position`, however many calls it takes. */
async function writeAll(fs: JournalFs, fd: number, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const written = await fs.write(fd, data, done, data.length - done, position + done);
    if (written <= 0) throw Object.assign(new Error('write wrote nothing'), { code: 'EIO' });
    done += written;
  }
}

/** Cuts a file to `length` bytes, durably. */
async function cut(fs: JournalFs, file: string, length: number): Promise<void> {
  const fd = await fs.open(file, 'r+');
  try {
    await fs.ftruncate(fd, length);
    await fs.fdatasync(fd);
  } finally {
    await fs.close(fd);
  }
}

/** Opens the journal in `options.dir`, cutting a torn tail; rejects with {@link JournalDamageError} on damage. */
export async function openJournal(options: JournalOptions): Promise<OpenedJournal> {
  const fs = options.fs ?? nodeJournalFs;
  const dir = resolve(options.dir);
  await fs.mkdir(dir);
  const numbers = await segmentNumbers(fs, dir);
  const segments = new Map<number, Segment>();
  const live = new Map<string, { id: string; body: string; at: number; segment: number }>();
  /** Unsettled id → its last batch record, and the segment holding it. */
  const lastBatch = new Map<string, { b: number; segment: number }>();
  const batchIds = new Map<number, readonly string[]>();
  let nextBatch = 1;
  let records = 0;
  let truncated: JournalOpenReport['truncated'];
  let damage: { no: number; file: string; offset: number; why: string; bytesAfter: number } | undefined;
  for (const [index, no] of numbers.entries()) {
    const file = join(dir, segmentName(no));
    const buffer = await fs.readFile(file);
    const segment: Segment = { no, file, livePuts: 0, liveBatches: 0, refs: new Set() };
    segments.set(no, segment);
    const { records: read, bad } = scan(buffer);
    records += read.length;
    for (const record of read) {
      if (record.k === 'put') {
        if (live.has(record.id)) continue;
        live.set(record.id, { id: record.id, body: record.body, at: record.at, segment: no });
        segment.livePuts++;
      } else if (record.k === 'batch') {
        nextBatch = Math.max(nextBatch, record.b + 1);
        batchIds.set(record.b, record.ids);
        for (const id of record.ids) if (live.has(id)) lastBatch.set(id, { b: record.b, segment: no });
      } else {
        for (const id of record.ids) {
          const put = live.get(id);
          if (!put) continue;
          live.delete(id);
          lastBatch.delete(id);
          const home = segments.get(put.segment);
          if (home) home.livePuts--;
          if (put.segment !== no) segment.refs.add(put.segment);
        }
      }
    }
    if (!bad) continue;
    const last = index === numbers.length - 1;
    if (last && !intactFrameAfter(buffer, bad.offset)) {
      await cut(fs, file, bad.offset);
      truncated = { file, offset: bad.offset, bytes: buffer.length - bad.offset };
    } else {
      damage ??= { no, file, offset: bad.offset, why: bad.why, bytesAfter: buffer.length - bad.offset };
    }
  }
  if (damage) {
    const lost = [...live.values()].filter((p) => p.segment === damage.no).length;
    throw new JournalDamageError(damage.file, damage.offset, damage.why, lost, damage.bytesAfter);
  }
  // Appends go to a fresh segment: the last one may have just been cut.
  const no = (numbers.at(-1) ?? 0) + 1;
  const file = join(dir, segmentName(no));
  const fd = await fs.open(file, 'w');
  await fs.syncDir(dir);
  segments.set(no, { no, file, livePuts: 0, liveBatches: 0, refs: new Set() });
  const ids = new Map<string, number>();
  for (const put of live.values()) ids.set(put.id, put.segment);
  const batched = new Map<string, number>();
  for (const [id, { segment }] of lastBatch) {
    batched.set(id, segment);
    const home = segments.get(segment);
    if (home) home.liveBatches++;
  }
  // Each batch's unsettled members, in the order of its record (the consumer sees them so again).
  const batches: JournalBatch[] = [];
  for (const b of [...new Set([...lastBatch.values()].map((l) => l.b))].sort((x, y) => x - y)) {
    const members = (batchIds.get(b) ?? []).filter((id) => lastBatch.get(id)?.b === b);
    batches.push({ b, ids: [...new Set(members)] });
  }
  const journal = new Journal(dir, fs, options, segments, ids, batched, nextBatch, { no, fd, size: 0 });
  await journal.collect();
  return {
    journal,
    unsettled: [...live.values()].map(({ id, body, at }) => {
      const b = lastBatch.get(id)?.b;
      return b === undefined ? { id, body, at } : { id, body, at, batch: b };
    }),
    batches,
    report: {
      segments: numbers.length,
      records,
      unsettled: live.size,
      batched: lastBatch.size,
      batches: batches.length,
      ...(truncated ? { truncated } : {}),
    },
  };
}

/** Made by {@link openJournal}. */
export class Journal {
  private waiters: Waiter[] = [];
  /** Settles that wait for the next write, one group per call (never split across frames). */
  private settles: string[][] = [];
  private writing = false;
  private dirtyTail = false;
  private closed = false;
  private failingSince: { diskFull: boolean } | undefined;
  private probe: NodeJS.Timeout | undefined;
  private counts = { syncs: 0, puts: 0, batches: 0, bytes: 0 };
  private sweeping: Promise<void> = Promise.resolve();
  private readonly segmentBytes: number;

  /** @internal */
  constructor(
    readonly dir: string,
    private readonly fs: JournalFs,
    private readonly options: JournalOptions,
    private readonly segments: Map<number, Segment>,
    /** Unsettled id → the segment holding its put. */
    private readonly live: Map<string, number>,
    /** Unsettled id → the segment holding its last batch record (absent: never batched). */
    private readonly batched: Map<string, number>,
    private nextBatch: number,
    private active: { no: number; fd: number; size: number },
  ) {
    this.segmentBytes = options.segmentBytes ?? SEGMENT_BYTES;
  }

  /** True while writes fail: puts reject until one succeeds. */
  get failing(): boolean {
    return this.failingSince !== undefined;
  }

  stats(): JournalStats {
    return { ...this.counts, unsettled: this.live.size, segments: this.segments.size, failing: this.failing };
  }

  /** Journals a message; resolves once it is on disk, rejects with {@link JournalWriteError} when it could not be. */
  put(id: string, body: string, at = Date.now()): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the queue journal is closed'));
    const frame = encode({ k: 'put', id, at, body });
    return new Promise((resolve, reject) => {
      this.waiters.push({ frame, putId: id, resolve, reject });
      this.kick();
    });
  }

  /**
   * Records that `ids` are delivered together, before they are: resolves with the batch's
   * number once the record is on disk (group-committed with the puts), rejects with
   * {@link JournalWriteError} when it could not be written. Settles asked before it are
   * on disk no later than it.
   */
  batch(ids: readonly string[]): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the queue journal is closed'));
    const b = this.nextBatch++;
    const frame = encode({ k: 'batch', b, ids });
    return new Promise((resolve, reject) => {
      this.waiters.push({ frame, batchIds: ids, resolve: () => resolve(b), reject });
      this.kick();
    });
  }

  /**
   * Notes messages done with; written with the next group write, and retried until it is.
   * The ids of one call go in one frame: after a crash they are all settled or none is.
   */
  settle(ids: readonly string[]): void {
    if (this.closed) return;
    const group = ids.filter((id) => this.live.has(id));
    if (group.length === 0) return;
    this.settles.push(group);
    this.kick();
  }

  /** Resolves once everything asked so far is on disk; rejects when that write fails. */
  flush(): Promise<void> {
    if (!this.writing && this.waiters.length === 0 && this.settles.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.kick();
    });
  }

  /** Writes what is pending (one last try), deletes what is settled, and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.probe);
    this.probe = undefined;
    await this.flush().catch(() => undefined);
    this.closed = true;
    // A last write that failed may have started the probe again.
    clearInterval(this.probe);
    await this.fs.close(this.active.fd).catch(() => undefined);
    await this.collect(true);
  }

  /** Deletes every segment whose puts are all settled, oldest first; the active one only when closing. @internal */
  collect(includeActive = false): Promise<void> {
    // One sweep at a time: the pump's and close()'s.
    this.sweeping = this.sweeping.then(() => this.sweep(includeActive));
    return this.sweeping;
  }

  /** Forgets the last batch record of `id`; true when that frees its segment. */
  private unbatch(id: string): boolean {
    const at = this.batched.get(id);
    if (at === undefined) return false;
    this.batched.delete(id);
    const segment = this.segments.get(at);
    return segment !== undefined && --segment.liveBatches === 0 && segment.livePuts === 0;
  }

  private async sweep(includeActive: boolean): Promise<void> {
    for (const segment of [...this.segments.values()].sort((a, b) => a.no - b.no)) {
      if (segment.no === this.active.no && !includeActive) continue;
      // Kept while it holds the put or the last batch record of an unsettled message.
      if (segment.livePuts > 0 || segment.liveBatches > 0) continue;
      if ([...segment.refs].some((no) => this.segments.has(no))) continue;
      try {
        await this.fs.unlink(segment.file);
        this.segments.delete(segment.no);
      } catch {
        // Kept: tried again after the next write. A settled segment left over is harmless.
      }
    }
  }

  private kick(): void {
    if (!this.writing) void this.pump();
  }

  private async pump(): Promise<void> {
    this.writing = true;
    try {
      while (this.waiters.length > 0 || this.settles.length > 0) {
        // Everything that waits, up to about MAX_WRITE_BYTES: the rest goes in the next write.
        let take = 0;
        for (let bytes = 0; take < this.waiters.length && bytes < MAX_WRITE_BYTES; take++)
          bytes += this.waiters[take]?.frame?.length ?? 0;
        const waiters = this.waiters.splice(0, take);
        const groups = this.settles;
        this.settles = [];
        // While failing, every write carries the probe: only one that finds real space ends the state.
        const frames: Buffer[] = this.failingSince ? [probeFrame()] : [];
        // Settles first: a torn write that kept a batch record kept the settles asked before it.
        for (let i = 0; i < groups.length; ) {
          let ids = groups[i++] as string[];
          if (ids.length < SETTLE_CHUNK) {
            ids = [...ids];
            while (i < groups.length && ids.length + (groups[i] as string[]).length <= SETTLE_CHUNK)
              ids.push(...(groups[i++] as string[]));
          }
          frames.push(encode({ k: 'settle', ids }));
        }
        for (const w of waiters) if (w.frame) frames.push(w.frame);
        try {
          await this.write(frames);
        } catch (error) {
          // The settles wait for the next write; the puts and batches were not acknowledged.
          this.settles = groups.concat(this.settles);
          const failure = new JournalWriteError(this.dir, error);
          this.fail(failure);
          for (const w of waiters) w.reject(failure);
          // Appends that came meanwhile are tried at once; else the next append or the probe tries.
          if (this.waiters.length === 0) break;
          continue;
        }
        const segment = this.segments.get(this.active.no);
        let freed = false;
        // In the order of the frames: settles, then puts and batch records.
        for (const ids of groups)
          for (const id of ids) {
            const home = this.live.get(id);
            if (home === undefined) continue;
            this.live.delete(id);
            const put = this.segments.get(home);
            if (put && --put.livePuts === 0) freed = true;
            if (home !== this.active.no) segment?.refs.add(home);
            if (this.unbatch(id)) freed = true;
          }
        for (const w of waiters) {
          if (w.batchIds) {
            this.counts.batches++;
            for (const id of w.batchIds) {
              if (!this.live.has(id)) continue;
              if (this.unbatch(id)) freed = true;
              this.batched.set(id, this.active.no);
              if (segment) segment.liveBatches++;
            }
          }
          if (w.putId === undefined || this.live.has(w.putId)) continue;
          this.live.set(w.putId, this.active.no);
          if (segment) segment.livePuts++;
          this.counts.puts++;
        }
        this.recover();
        for (const w of waiters) w.resolve();
        // Not awaited: deleting files holds up no acknowledgement (sweeps run one at a time).
        if (freed || this.segments.size > 1) void this.collect();
      }
    } finally {
      this.writing = false;
    }
  }

  /** One write and one fdatasync; on failure the file is cut back to its last good size. */
  private async write(frames: readonly Buffer[]): Promise<void> {
    if (frames.length === 0) return;
    if (this.closed) throw new Error('the queue journal is closed');
    if (this.dirtyTail) {
      await this.fs.ftruncate(this.active.fd, this.active.size);
      this.dirtyTail = false;
    }
    if (this.active.size >= this.segmentBytes) await this.rotate();
    const { fd, size } = this.active;
    const data = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames);
    this.dirtyTail = true;
    try {
      await writeAll(this.fs, fd, data, size);
      await this.fs.fdatasync(fd);
    } catch (error) {
      // Cut the partial frames off now; if that fails too, before the next write.
      await this.fs.ftruncate(fd, size).then(
        () => {
          this.dirtyTail = false;
        },
        () => undefined,
      );
      throw error;
    }
    this.dirtyTail = false;
    this.active.size += data.length;
    this.counts.syncs++;
    this.counts.bytes += data.length;
  }

  private async rotate(): Promise<void> {
    const no = this.active.no + 1;
    const file = join(this.dir, segmentName(no));
    const fd = await this.fs.open(file, 'w');
    try {
      await this.fs.syncDir(this.dir);
    } catch (error) {
      await this.fs.close(fd).catch(() => undefined);
      await this.fs.unlink(file).catch(() => undefined);
      throw error;
    }
    await this.fs.close(this.active.fd).catch(() => undefined);
    this.segments.set(no, { no, file, livePuts: 0, liveBatches: 0, refs: new Set() });
    this.active = { no, fd, size: 0 };
  }

  private fail(error: JournalWriteError): void {
    if (this.failingSince || this.closed) return;
    this.failingSince = { diskFull: error.diskFull };
    this.options.log?.(
      error.diskFull
        ? `disk full: not acknowledging messages until space returns (${this.dir})`
        : `queue journal failing (${error.code ?? (error.cause as Error)?.message}): not acknowledging messages until it writes again (${this.dir})`,
    );
    this.probe = setInterval(() => {
      if (this.writing || this.closed) return;
      // A write of the probe alone (and of the settles that wait).
      this.waiters.push({ resolve: () => {}, reject: () => {} });
      this.kick();
    }, this.options.probeMs ?? 1000);
    this.probe.unref();
  }

  private recover(): void {
    if (!this.failingSince) return;
    const { diskFull } = this.failingSince;
    this.failingSince = undefined;
    clearInterval(this.probe);
    this.probe = undefined;
    this.options.log?.(
      diskFull ? 'disk space back: acknowledging again' : 'queue journal writes again: acknowledging again',
    );
  }
}

export interface JournalRepair {
  /** Segments read. */
  readonly segments: number;
  /** Intact records kept, in all segments. */
  readonly kept: number;
  /** Unsettled messages in what was kept: delivered on the next start. */
  readonly unsettled: number;
  /** Damaged segments: the intact frames before the damage stay under the segment's name, the whole file is moved aside. */
  readonly damaged: readonly {
    readonly file: string;
    readonly movedTo: string;
    readonly offset: number;
    readonly keptRecords: number;
    readonly lostBytes: number;
  }[];
  /** A torn tail cut off the last segment, as opening does. */
  readonly truncated?: { readonly file: string; readonly offset: number; readonly bytes: number };
}

/**
 * What `start --repair` runs: each damaged segment is moved aside to
 * `<name>.damaged-<time>` and replaced by its intact frames before the damage; a torn tail
 * of the last segment is cut. Afterwards the journal opens.
 */
export async function repairJournal(dir: string, fs: JournalFs = nodeJournalFs): Promise<JournalRepair> {
  const folder = resolve(dir);
  await fs.mkdir(folder);
  const numbers = await segmentNumbers(fs, folder);
  const damaged: JournalRepair['damaged'][number][] = [];
  let truncated: JournalRepair['truncated'];
  let kept = 0;
  const live = new Set<string>();
  const time = new Date().toISOString().replace(/[:.]/g, '-');
  for (const [index, no] of numbers.entries()) {
    const file = join(folder, segmentName(no));
    const buffer = await fs.readFile(file);
    const { records, end, bad } = scan(buffer);
    kept += records.length;
    for (const record of records) {
      if (record.k === 'put') live.add(record.id);
      else if (record.k === 'settle') for (const id of record.ids) live.delete(id);
    }
    if (!bad) continue;
    if (index === numbers.length - 1 && !intactFrameAfter(buffer, bad.offset)) {
      await cut(fs, file, bad.offset);
      truncated = { file, offset: bad.offset, bytes: buffer.length - bad.offset };
      continue;
    }
    const movedTo = `${file}.damaged-${time}`;
    await fs.rename(file, movedTo);
    const fd = await fs.open(file, 'wx');
    try {
      await writeAll(fs, fd, buffer.subarray(0, end), 0);
      await fs.fdatasync(fd);
    } finally {
      await fs.close(fd);
    }
    await fs.syncDir(folder);
    damaged.push({
      file,
      movedTo,
      offset: bad.offset,
      keptRecords: records.length,
      lostBytes: buffer.length - end,
    });
  }
  return {
    segments: numbers.length,
    kept,
    unsettled: live.size,
    damaged,
    ...(truncated ? { truncated } : {}),
  };
}

/**
 * Appends `text` to `file` whole or not at all: one write at the file's end, then
 * fdatasync; on any error the file is cut back to its size before (removed when this
 * made it), and the error is thrown. The dead-letter file is written so.
 */
export async function appendWhole(file: string, text: string, fs: JournalFs = nodeJournalFs): Promise<void> {
  const { O_WRONLY, O_CREAT, O_EXCL } = nodeFs.constants;
  await fs.mkdir(dirname(file));
  let created = true;
  let fd: number;
  try {
    fd = await fs.open(file, O_WRONLY | O_CREAT | O_EXCL);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    created = false;
    fd = await fs.open(file, O_WRONLY);
  }
  let size = 0;
  try {
    size = await fs.size(fd);
    await writeAll(fs, fd, Buffer.from(text), size);
    await fs.fdatasync(fd);
    if (created) await fs.syncDir(dirname(file));
  } catch (error) {
    await fs.ftruncate(fd, size).catch(() => undefined);
    await fs.close(fd).catch(() => undefined);
    if (created) await fs.unlink(file).catch(() => undefined);
    throw error;
  }
  await fs.close(fd);
}
