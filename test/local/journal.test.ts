/**
 * The local queue's journal (local/adapters/journal.ts): what the runtime acknowledged
 * is on disk, group-committed; a torn tail is cut and said, damage is refused with what
 * to do; settled segments go; a full disk refuses appends (said once) until space returns
 * (said once), and through the runtime HTTP answers 503 meanwhile, 202 after. Batches are
 * recorded before delivery and come back with the same members after a crash.
 */
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  JournalDamageError,
  type JournalFs,
  nodeJournalFs,
  openJournal,
  repairJournal,
} from '../../local/adapters/journal.ts';
import { LocalQueue } from '../../local/adapters/queue.ts';
import { startLocalRuntime } from '../../local/runtime.ts';

const WAIT = { timeout: 10_000, interval: 50 };
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function folder(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'journal-'));
}

/** A crash, as far as the disk can tell: a copy of what `dir` holds now, while its journal stays open. */
function crashCopy(dir: string): string {
  for (let attempt = 0; ; attempt++) {
    const copy = `${dir}-crash-${Math.random().toString(36).slice(2)}`;
    try {
      cpSync(dir, copy, { recursive: true });
      return copy;
    } catch (error) {
      // A settled segment deleted while it was copied: copied again.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw error;
      rmSync(copy, { recursive: true, force: true });
    }
  }
}

const segmentsIn = (dir: string) =>
  readdirSync(dir)
    .filter((name) => /^\d{8}\.log$/.test(name))
    .sort();

/** The real file system, counting fdatasyncs and noting how far each made the file durable. */
function countingFs() {
  const written = new Map<number, number>();
  const state = { syncs: 0, durableUpTo: 0 };
  const fs: JournalFs = {
    ...nodeJournalFs,
    async write(fd, buffer, offset, length, position) {
      const n = await nodeJournalFs.write(fd, buffer, offset, length, position);
      written.set(fd, Math.max(written.get(fd) ?? 0, position + n));
      return n;
    },
    async fdatasync(fd) {
      const upTo = written.get(fd) ?? 0;
      await nodeJournalFs.fdatasync(fd);
      state.syncs++;
      state.durableUpTo = upTo;
    },
  };
  return { fs, state };
}

/**
 * A disk of `bytes` for `dir`: a tmpfs mounted there when this process may mount one,
 * else the real file system with an injected limit (writes past `bytes`, counting every
 * file under `dir`, are cut short and then fail with ENOSPC, as a full disk does).
 */
function smallDisk(dir: string, bytes: number, prefer: 'tmpfs' | 'injected' = 'tmpfs') {
  mkdirSync(dir, { recursive: true });
  let mounted = false;
  if (prefer === 'tmpfs')
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'ignore' });
      mounted = true;
    } catch {
      // Not allowed here: the injected limit instead.
    }
  const used = () => readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
  const limited: JournalFs = {
    ...nodeJournalFs,
    async write(fd, buffer, offset, length, position) {
      const free = bytes - used();
      if (free <= 0)
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return nodeJournalFs.write(fd, buffer, offset, Math.min(length, free), position);
    },
  };
  const filler = join(dir, 'filler');
  return {
    kind: mounted ? 'tmpfs' : 'injected limit',
    /** Undefined on a real tmpfs: nothing to inject. */
    fs: mounted ? undefined : limited,
    /** Takes every free byte. */
    fill() {
      if (!mounted) {
        writeFileSync(filler, Buffer.alloc(Math.max(0, bytes - used())));
        return;
      }
      const fd = openSync(filler, 'a');
      try {
        for (const chunk of [65536, 4096, 1])
          try {
            for (;;) writeSync(fd, Buffer.alloc(chunk));
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
          }
      } finally {
        closeSync(fd);
      }
    },
    /** Space returns: the filler is deleted. */
    free() {
      rmSync(filler, { force: true });
    },
    cleanup() {
      if (mounted) execFileSync('umount', [dir]);
    },
  };
}

describe('queue journal', () => {
  it('gives back on open, in order, what was put and not settled', async () => {
    const dir = await folder();
    const first = await openJournal({ dir });
    await Promise.all(['a', 'b', 'c', 'd'].map((id) => first.journal.put(id, `body ${id}`, 1000)));
    first.journal.settle(['b']);
    await first.journal.flush();
    expect(first.journal.stats()).toMatchObject({ unsettled: 3 });
    await first.journal.close();

    const second = await openJournal({ dir });
    expect(second.unsettled).toEqual([
      { id: 'a', body: 'body a', at: 1000 },
      { id: 'c', body: 'body c', at: 1000 },
      { id: 'd', body: 'body d', at: 1000 },
    ]);
    expect(second.report).toMatchObject({ segments: 1, records: 5, unsettled: 3 });
    expect(second.report.truncated).toBeUndefined();
    second.journal.settle(['a', 'c', 'd']);
    await second.journal.close();
    // Everything settled: nothing left on disk.
    expect(segmentsIn(dir)).toEqual([]);
    expect((await openJournal({ dir })).unsettled).toEqual([]);
  });

  it('group-commits: concurrent puts share fdatasyncs, and each resolves only once its bytes are synced', async () => {
    const dir = await folder();
    const { fs, state } = countingFs();
    const { journal } = await openJournal({ dir, fs });
    const N = 500;
    const file = join(dir, segmentsIn(dir).at(-1) as string);
    const early: string[] = [];
    await Promise.all(
      Array.from({ length: N }, (_, i) =>
        journal.put(`m-${i}`, 'x'.repeat(200)).then(() => {
          // The put's frame lies wholly before what the last fdatasync covered.
          const content = readFileSync(file);
          const at = content.indexOf(`"id":"m-${i}"`);
          const end = content.indexOf('"}', at) + 2;
          if (at < 0 || end > state.durableUpTo) early.push(`m-${i}`);
        }),
      ),
    );
    expect(early).toEqual([]);
    expect(journal.stats()).toMatchObject({ puts: N, unsettled: N });
    // The first write goes alone; every put that came meanwhile shares the next one or two.
    expect(state.syncs).toBeGreaterThan(0);
    expect(state.syncs).toBeLessThanOrEqual(N / 50);
    await journal.close();
  });

  it('cuts a torn tail off the last segment, says so, and keeps every record before it', async () => {
    const dir = await folder();
    const { journal } = await openJournal({ dir });
    await journal.put('kept-1', 'one');
    await journal.put('kept-2', 'two');
    await journal.close();
    const [name] = segmentsIn(dir);
    const file = join(dir, name as string);
    const intact = statSync(file).size;
    // Half a frame: what a write a crash interrupted leaves.
    appendFileSync(file, Buffer.from([60, 0, 0, 0, 1, 2, 3, 4, 123, 34, 107]));

    const reopened = await openJournal({ dir });
    expect(reopened.report.truncated).toEqual({ file, offset: intact, bytes: 11 });
    expect(statSync(file).size).toBe(intact);
    expect(reopened.unsettled.map((p) => p.id)).toEqual(['kept-1', 'kept-2']);
    await reopened.journal.close();
  });

  it('refuses a journal damaged before its end, naming the file, the offset and what to do; repair keeps what precedes', async () => {
    const dir = await folder();
    const { journal } = await openJournal({ dir });
    for (const id of ['before-1', 'before-2', 'damaged', 'after']) await journal.put(id, `body of ${id}`);
    await journal.close();
    const [name] = segmentsIn(dir);
    const file = join(dir, name as string);
    const bytes = readFileSync(file);
    // The frame starts 8 header bytes and `{"k":"put",` before its id.
    const offset = bytes.indexOf('"id":"damaged"') - 19;
    // One byte of the third record's payload flipped (bit rot): the checksum no longer matches.
    bytes[offset + 20] = (bytes[offset + 20] as number) ^ 0xff;
    writeFileSync(file, bytes);

    const refused = await openJournal({ dir }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(JournalDamageError);
    const message = (refused as Error).message;
    expect(message).toContain(file);
    expect(message).toContain(`at byte ${offset}`);
    expect(message).toContain('checksum mismatch');
    expect(message).toContain(`move ${file} away`);
    expect(message).toContain('2 unsettled message(s)');
    expect(message).toContain('iot-pipeline start --repair');
    expect((refused as Error).name).toBe('StartupError');

    const repair = await repairJournal(dir);
    expect(repair).toMatchObject({ segments: 1, kept: 2, unsettled: 2 });
    expect(repair.damaged).toEqual([
      {
        file,
        movedTo: expect.stringMatching(/\.log\.damaged-\d{4}-\d\d-\d\dT/),
        offset,
        keptRecords: 2,
        lostBytes: bytes.length - offset,
      },
    ]);
    expect(readFileSync(repair.damaged[0]?.movedTo as string)).toEqual(bytes);
    const reopened = await openJournal({ dir });
    expect(reopened.unsettled.map((p) => p.id)).toEqual(['before-1', 'before-2']);
    await reopened.journal.close();
  });

  it('treats a bad frame followed by intact ones, even in the last segment, as damage, not a torn tail', async () => {
    const dir = await folder();
    const { journal } = await openJournal({ dir });
    for (const id of ['a', 'b', 'c']) await journal.put(id, 'body');
    await journal.close();
    const file = join(dir, segmentsIn(dir)[0] as string);
    const bytes = readFileSync(file);
    // The first frame's length field zeroed: the frames after it are still intact.
    bytes.writeUInt32LE(0, 0);
    writeFileSync(file, bytes);
    await expect(openJournal({ dir })).rejects.toThrow(/damaged at byte 0 \(a frame of length 0\)/);
  });

  it('deletes a segment once its puts are settled, and keeps one whose settles an older segment still needs', async () => {
    const dir = await folder();
    // Tiny segments: every group write after the first starts a new one.
    const { journal } = await openJournal({ dir, segmentBytes: 1 });
    // x goes alone into 00000001; b and c, arriving meanwhile, share the next write, 00000002.
    await Promise.all([journal.put('x', 'X'), journal.put('b', 'B'), journal.put('c', 'C')]);
    journal.settle(['b']); // 00000003, settling b of 00000002
    await journal.flush();
    await journal.put('d', 'D'); // 00000004
    // 00000002 still holds c; 00000003 has no puts, but dropping it would bring b back.
    expect(segmentsIn(dir)).toEqual(['00000001.log', '00000002.log', '00000003.log', '00000004.log']);
    journal.settle(['c']); // 00000005: 00000002 goes, then 00000003
    await journal.flush();
    // Deleted after the settle is on disk, without holding anything up.
    await vi.waitFor(
      () => expect(segmentsIn(dir)).toEqual(['00000001.log', '00000004.log', '00000005.log']),
      WAIT,
    );
    await journal.close();

    const reopened = await openJournal({ dir, segmentBytes: 1 });
    expect(reopened.unsettled.map((p) => p.id)).toEqual(['x', 'd']);
    reopened.journal.settle(['x', 'd']);
    await reopened.journal.flush();
    expect(reopened.journal.stats()).toMatchObject({ unsettled: 0 });
    await reopened.journal.close();
    expect(segmentsIn(dir)).toEqual([]);
  });

  it('rotates segments at segmentBytes and replays the unsettled ones across them', async () => {
    const dir = await folder();
    const { journal } = await openJournal({ dir, segmentBytes: 300 });
    for (let i = 0; i < 20; i++) await journal.put(`m-${i}`, 'y'.repeat(100));
    journal.settle(Array.from({ length: 10 }, (_, i) => `m-${i}`));
    await journal.flush();
    await journal.close();
    const reopened = await openJournal({ dir, segmentBytes: 300 });
    expect(reopened.unsettled.map((p) => p.id)).toEqual(Array.from({ length: 10 }, (_, i) => `m-${i + 10}`));
    // The segments of the settled messages are gone.
    expect(reopened.report.segments).toBeLessThan(15);
    await reopened.journal.close();
  });

  it('records batches: on open each unsettled message comes with its last batch, members in the order recorded', async () => {
    const dir = await folder();
    const { journal } = await openJournal({ dir });
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) await journal.put(id, `body ${id}`, 1000);
    const first = await journal.batch(['c', 'a', 'b']);
    const second = await journal.batch(['d', 'e']);
    expect(second).toBe(first + 1);
    // b failed in the first batch and was batched again with e's batch gone: its last record wins.
    journal.settle(['a', 'c']);
    const third = await journal.batch(['b']);
    journal.settle(['d']);
    await journal.flush();
    expect(journal.stats()).toMatchObject({ unsettled: 3, batches: 3 });

    const reopened = await openJournal({ dir: crashCopy(dir) });
    expect(reopened.unsettled).toEqual([
      { id: 'b', body: 'body b', at: 1000, batch: third },
      { id: 'e', body: 'body e', at: 1000, batch: second },
      // Never batched: no batch.
      { id: 'f', body: 'body f', at: 1000 },
    ]);
    // Settled members are not part of it any more (d); b is no longer in the first one.
    expect(reopened.batches).toEqual([
      { b: second, ids: ['e'] },
      { b: third, ids: ['b'] },
    ]);
    expect(reopened.report).toMatchObject({ unsettled: 3, batched: 2, batches: 2 });
    // Numbers go on from the highest on disk.
    expect(await reopened.journal.batch(['f'])).toBe(third + 1);
    await reopened.journal.close();
    await journal.close();
  });

  it("writes one call's settles as one frame, and a group write's settles before its batch records", async () => {
    const dir = await folder();
    const { journal } = await openJournal({ dir });
    const ids = Array.from({ length: 5000 }, (_, i) => `m-${i}`);
    await Promise.all([...ids, 'x'].map((id) => journal.put(id, 'b')));
    journal.settle(ids);
    journal.settle(['x']);
    const batched = journal.batch(['x']);
    await batched;
    await journal.flush();
    const content = readFileSync(join(dir, segmentsIn(dir).at(-1) as string), 'utf8');
    // More ids than a frame usually takes, but one call's: whole after a crash, or not at all.
    expect(content.split('"k":"settle"')).toHaveLength(3);
    expect(content.indexOf('"k":"settle","ids":["m-0"')).toBeGreaterThan(0);
    expect(content.indexOf('"k":"settle","ids":["x"]')).toBeGreaterThan(0);
    expect(content.indexOf('"k":"settle","ids":["x"]')).toBeLessThan(content.indexOf('"k":"batch"'));
    await journal.close();
  });

  it('keeps a segment while it holds the last batch record of an unsettled message, and deletes it once superseded or settled', async () => {
    const dir = await folder();
    // Tiny segments: every group write after the first starts a new one.
    const { journal } = await openJournal({ dir, segmentBytes: 1 });
    await journal.put('a', 'A'); // 00000001
    await journal.put('b', 'B'); // 00000002
    await journal.batch(['a', 'b']); // 00000003: no puts, the batch of a and b
    journal.settle(['b']); // 00000004
    await journal.flush();
    await journal.put('c', 'C'); // 00000005
    // 00000002 goes, then 00000004 (its settle); 00000003 holds no put, but a's last batch:
    // without it a would come back batched afresh.
    await vi.waitFor(
      () => expect(segmentsIn(dir)).toEqual(['00000001.log', '00000003.log', '00000005.log']),
      WAIT,
    );
    let crashed = await openJournal({ dir: crashCopy(dir) });
    expect(crashed.batches).toEqual([{ b: 1, ids: ['a'] }]);
    await crashed.journal.close();

    await journal.batch(['a']); // 00000006: a batched again (retried); 00000003 is free
    await vi.waitFor(
      () => expect(segmentsIn(dir)).toEqual(['00000001.log', '00000005.log', '00000006.log']),
      WAIT,
    );
    crashed = await openJournal({ dir: crashCopy(dir) });
    expect(crashed.batches).toEqual([{ b: 2, ids: ['a'] }]);
    expect(crashed.unsettled.map((p) => [p.id, p.batch])).toEqual([
      ['a', 2],
      ['c', undefined],
    ]);
    await crashed.journal.close();

    journal.settle(['a']); // 00000007: 00000001 and 00000006 go
    await journal.flush();
    await vi.waitFor(() => expect(segmentsIn(dir)).toEqual(['00000005.log', '00000007.log']), WAIT);
    await journal.close();
    const reopened = await openJournal({ dir });
    expect(reopened.unsettled.map((p) => p.id)).toEqual(['c']);
    expect(reopened.batches).toEqual([]);
    await reopened.journal.close();
  });

  it('repair counts batch records as neither puts nor settles', async () => {
    const dir = await folder();
    const { journal } = await openJournal({ dir });
    await journal.put('a', 'A');
    await journal.put('b', 'B');
    await journal.batch(['a', 'b']);
    await journal.close();
    expect(await repairJournal(dir)).toMatchObject({ kept: 3, unsettled: 2, damaged: [] });
  });

  // On a tmpfs mounted for the test where this process may mount one (else the injected limit), and on the injected limit.
  for (const prefer of ['tmpfs', 'injected'] as const) {
    it(`on a full disk (${prefer}) rejects appends (said once), and accepts them again when space returns (said once)`, async () => {
      const dir = join(await folder(), 'journal');
      const disk = smallDisk(dir, 256 * 1024, prefer);
      cleanups.push(disk.cleanup);
      const lines: string[] = [];
      const { journal } = await openJournal({
        dir,
        fs: disk.fs,
        log: (line) => lines.push(line),
        probeMs: 50,
      });
      cleanups.push(() => journal.close());
      // Bodies larger than a page, so that no append fits in space a file already holds.
      const body = 'z'.repeat(8192);
      await journal.put('before', body);
      disk.fill();
      for (let i = 0; i < 5; i++)
        await expect(journal.put(`full-${i}`, body), disk.kind).rejects.toThrow(
          /^disk full: the message was not journalled/,
        );
      expect(journal.failing).toBe(true);
      expect(lines).toEqual([`disk full: not acknowledging messages until space returns (${dir})`]);
      // Nothing of the refused appends is left in the segment.
      const segment = join(dir, segmentsIn(dir)[0] as string);
      expect(readFileSync(segment).includes('full-')).toBe(false);

      disk.free();
      await journal.put('after', body);
      await journal.put('after-2', body);
      expect(journal.failing).toBe(false);
      expect(lines).toEqual([
        `disk full: not acknowledging messages until space returns (${dir})`,
        'disk space back: acknowledging again',
      ]);
      await journal.close();
      const reopened = await openJournal({ dir, fs: disk.fs });
      expect(reopened.unsettled.map((p) => p.id)).toEqual(['before', 'after', 'after-2']);
      await reopened.journal.close();
    });

    it(`notices space returning without appends (the probe, ${prefer}), and writes the settles that waited`, async () => {
      const dir = join(await folder(), 'journal');
      const disk = smallDisk(dir, 256 * 1024, prefer);
      cleanups.push(disk.cleanup);
      const lines: string[] = [];
      const { journal } = await openJournal({
        dir,
        fs: disk.fs,
        log: (line) => lines.push(line),
        probeMs: 20,
      });
      cleanups.push(() => journal.close());
      await journal.put('m', 'z'.repeat(8192));
      disk.fill();
      await expect(journal.put('refused', 'z'.repeat(8192))).rejects.toThrow(/disk full/);
      journal.settle(['m']);
      disk.free();
      await vi.waitFor(() => expect(lines).toContain('disk space back: acknowledging again'), WAIT);
      await vi.waitFor(() => expect(journal.stats().unsettled).toBe(0), WAIT);
    });
  }
});

describe('durable LocalQueue', () => {
  const options = (dir: string) => ({
    batchSize: 10,
    batchWindowMs: 5,
    maxReceiveCount: 3,
    retryDelayMs: 5,
    maxConcurrency: 1,
    deadLetterFile: join(dir, 'dead.ndjson'),
    durable: true,
    journalDir: join(dir, 'journal'),
  });

  it('delivers again, with the same ids, what was sent and not settled before a stop', async () => {
    const dir = await folder();
    const first = await LocalQueue.open(options(dir));
    const ids = [];
    for (const body of ['a', 'b', 'c']) ids.push(await first.send(body));
    expect(first.stats()).toMatchObject({ sent: 3, journalled: 3, durable: true, failing: false });
    // Stopped before any consumer ran (a crash, as far as the journal can tell).
    await first.close();

    const lines: string[] = [];
    const second = await LocalQueue.open({ ...options(dir), log: (line) => lines.push(line) });
    expect(lines).toEqual(['queue journal: delivering again 3 message(s) not settled before the last stop']);
    const seen: string[] = [];
    second.consume(async (batch) => {
      seen.push(...batch.map((m) => `${m.messageId}=${m.body}`));
      return new Map();
    });
    await second.idle();
    expect(seen).toEqual([`${ids[0]}=a`, `${ids[1]}=b`, `${ids[2]}=c`]);
    expect(second.stats()).toMatchObject({ sent: 0, replayed: 3, done: 3 });
    await vi.waitFor(() => expect(second.stats().journalled).toBe(0), WAIT);
    await second.drain();
    await second.close();
    const third = await LocalQueue.open(options(dir));
    expect(third.stats()).toMatchObject({ replayed: 0, journalled: 0, pending: 0 });
    await third.close();
  });

  it('delivers a batch written and not settled before a crash with the same members, and batches the rest afresh', async () => {
    const dir = await folder();
    const first = await LocalQueue.open({ ...options(dir), batchSize: 3 });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await first.send(`m${i}`));
    let crashed: string | undefined;
    const before: string[][] = [];
    first.consume(async (batch) => {
      before.push(batch.map((m) => m.messageId));
      // The second batch is written to the lake, then the process dies before its settle.
      // The first batch's settle is written in the journal's own time (group commit): wait
      // for it, so the crash is the one this test means (a loaded machine can be slower).
      if (before.length === 2) {
        await vi.waitFor(() => expect(first.stats().journalled).toBe(5), WAIT);
        crashed ??= crashCopy(dir);
      }
      return new Map();
    });
    await first.idle();
    expect(before).toEqual([ids.slice(0, 3), ids.slice(3, 6), ids.slice(6)]);
    await first.close();

    // Larger batches now: without the record, the crashed batch would come back mixed with m6 and m7.
    const lines: string[] = [];
    const second = await LocalQueue.open({
      ...options(crashed as string),
      batchSize: 10,
      log: (l) => lines.push(l),
    });
    expect(lines).toEqual([
      'queue journal: delivering again 5 message(s) not settled before the last stop (3 in the 1 batch(es) they were delivered in)',
    ]);
    const after: string[][] = [];
    let again: string | undefined;
    second.consume(async (batch) => {
      after.push(batch.map((m) => m.messageId));
      // And crashed once more, amid the same batch.
      if (after.length === 1) again ??= crashCopy(crashed as string);
      return new Map();
    });
    await second.idle();
    // The same id set as at the crash (batchId sorts, so the lake keys are the same); the never-batched ones together.
    expect(after).toEqual([ids.slice(3, 6), ids.slice(6)]);
    expect(second.stats()).toMatchObject({ replayed: 5, replayedInBatches: 3, done: 5 });
    await second.drain();
    await second.close();

    const third = await LocalQueue.open({ ...options(again as string), batchSize: 10 });
    const last: string[][] = [];
    third.consume(async (batch) => {
      last.push(batch.map((m) => m.messageId));
      return new Map();
    });
    await third.idle();
    expect(last).toEqual([ids.slice(3, 6), ids.slice(6)]);
    await third.drain();
    await third.close();
  });

  it('batches a message retried after a partial failure again alone, and a crash then brings back only that batch', async () => {
    const dir = await folder();
    const first = await LocalQueue.open(options(dir));
    const [a, b, c] = [await first.send('a'), await first.send('b'), await first.send('c')];
    let crashed: string | undefined;
    const before: string[][] = [];
    first.consume(async (batch) => {
      before.push(batch.map((m) => m.messageId));
      if (before.length === 1) return new Map([[b, new Error('S3 said no')]]);
      crashed ??= crashCopy(dir);
      return new Map();
    });
    await first.idle();
    // Only the failed one is delivered again, in a batch of its own (a new record).
    expect(before).toEqual([[a, b, c], [b]]);
    await first.close();

    const second = await LocalQueue.open(options(crashed as string));
    const d = await second.send('d');
    const after: string[][] = [];
    second.consume(async (batch) => {
      after.push(batch.map((m) => m.messageId));
      return new Map();
    });
    await second.idle();
    // a and c were settled before b's second batch was recorded; d, sent since, goes in a batch of its own.
    expect(after).toEqual([[b], [d]]);
    expect(second.stats()).toMatchObject({ replayed: 1, replayedInBatches: 1, done: 2 });
    await second.drain();
    await second.close();
  });

  it('needs LocalQueue.open to be durable', () => {
    expect(() => new LocalQueue({ ...options('/nowhere') })).toThrow(/LocalQueue\.open/);
  });
});

describe.each(['tmpfs', 'injected'] as const)('local runtime on a full disk (%s)', (prefer) => {
  it('answers 503 with Retry-After while the journal cannot write, 202 after; MQTT gets no PUBACK until then', async () => {
    const dataDir = await folder();
    const disk = smallDisk(join(dataDir, 'journal'), 256 * 1024, prefer);
    cleanups.push(disk.cleanup);
    const lines: string[] = [];
    const rt = await startLocalRuntime({
      dataDir,
      mqttPort: 0,
      httpPort: 0,
      apiKey: 'test-key-0123456789',
      queue: { batchWindowMs: 20, retryDelayMs: 20, ...(disk.fs ? { fs: disk.fs } : {}) },
      log: (line) => lines.push(line),
    });
    cleanups.push(() => rt.close());
    // Strings are kept up to 2 KB: four of them.
    const notes = Object.fromEntries([1, 2, 3, 4].map((n) => [`note${n}`, 'n'.repeat(1500)]));
    const post = (device: string) =>
      fetch(`http://127.0.0.1:${rt.httpPort}/v1/telemetry`, {
        method: 'POST',
        headers: { authorization: 'Bearer test-key-0123456789', 'content-type': 'application/json' },
        // Larger than a page: no append fits in space the segment already holds.
        body: JSON.stringify({ $id: device, temp: 20, ...notes }),
      });
    expect((await post('pump-1')).status).toBe(202);

    disk.fill();
    const refused = await post('pump-2');
    expect(refused.status, disk.kind).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(rt.queue.stats()).toMatchObject({ failing: true, durable: true });

    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, {
      clientId: 'dev-full',
      reconnectPeriod: 50,
    });
    cleanups.push(() => device.endAsync(true));
    let closes = 0;
    device.on('close', () => closes++);
    let acked = false;
    const published = device
      .publishAsync('dt/thermo/dev-full', JSON.stringify({ temp: 1, ...notes }), { qos: 1 })
      .then(() => {
        acked = true;
      });
    // Refused: disconnected without a PUBACK; mqtt.js sends it again on every reconnect.
    await vi.waitFor(() => expect(closes).toBeGreaterThan(0), WAIT);
    expect(acked).toBe(false);
    expect((await post('pump-3')).status).toBe(503);

    disk.free();
    await published;
    expect((await post('pump-4')).status).toBe(202);
    expect(rt.queue.stats().failing).toBe(false);
    const full = `disk full: not acknowledging messages until space returns (${join(dataDir, 'journal')})`;
    expect(lines.filter((l) => l === full)).toHaveLength(1);
    expect(lines.filter((l) => l === 'disk space back: acknowledging again')).toHaveLength(1);
    await vi.waitFor(async () => {
      const { rows } = await rt.query('SELECT DISTINCT device_id FROM readings ORDER BY device_id');
      expect(rows.map((r) => r.device_id)).toEqual(['dev-full', 'pump-1', 'pump-4']);
    }, WAIT);
    expect(existsSync(join(dataDir, 'journal'))).toBe(true);
  });
});
