/**
 * The lake's objects: entries that share a partition are written as one gzip NDJSON
 * object named after the messages it holds, so a batch redelivered unchanged
 * overwrites its own objects instead of adding new ones.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { asError } from './claims.ts';
import type { ObjectStore } from './ports.ts';

export interface LakeEntry {
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
export async function writeObjects(
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
