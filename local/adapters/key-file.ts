/**
 * The local key store: `<data>/keys.json` holds the key records (hashes, never keys),
 * written by `keys create` and `keys revoke` whether or not the runtime runs, always
 * whole (a temporary file renamed over it) and readable by its owner only. The runtime
 * reads it again when it changes, so a revoked key stops at once, and notes when keys
 * were used in its own file, `<data>/key-usage.json`, so the two writers never race.
 */
import { readFileSync, statSync } from 'node:fs';
import {
  type KeyRecord,
  KeySpecError,
  type KeyStore,
  readKeyRecord,
} from '../../lambdas/core/access/keys.ts';
import { writeWhole } from '../write-whole.ts';

/** A file that is not a key file: the message says which and what to do. */
export class KeyFileError extends Error {}

export function fileKeyStore(file: string, usageFile: string): KeyStore {
  let cached: { mtimeMs: number; size: number; keys: KeyRecord[] } | undefined;
  const load = (): KeyRecord[] => {
    let stat: { mtimeMs: number; size: number };
    try {
      stat = statSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    if (cached && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return cached.keys;
    const keys = parseKeyFile(readFileSync(file, 'utf8'), file);
    cached = { mtimeMs: stat.mtimeMs, size: stat.size, keys };
    return keys;
  };
  const usage = (): Record<string, number> => {
    try {
      const value = JSON.parse(readFileSync(usageFile, 'utf8')) as unknown;
      return typeof value === 'object' && value !== null ? (value as Record<string, number>) : {};
    } catch {
      return {};
    }
  };
  const save = (keys: readonly KeyRecord[]) => {
    writeWhole(file, `${JSON.stringify({ keys }, null, 2)}\n`);
    cached = undefined;
  };
  return {
    async find(id) {
      return load().find((k) => k.id === id);
    },
    async list() {
      const used = usage();
      return load().map((k) =>
        typeof used[k.id] === 'number' ? { ...k, lastUsedAt: used[k.id] as number } : k,
      );
    },
    async add(record) {
      const keys = load();
      if (keys.some((k) => k.name === record.name && k.revokedAt === undefined))
        throw new KeySpecError(`a key named "${record.name}" exists: revoke it first, or pick another name`);
      save([...keys, record]);
    },
    async revoke(name, at) {
      const keys = load();
      if (!keys.some((k) => k.name === name && k.revokedAt === undefined)) return false;
      save(keys.map((k) => (k.name === name && k.revokedAt === undefined ? { ...k, revokedAt: at } : k)));
      return true;
    },
    async touch(used) {
      writeWhole(usageFile, `${JSON.stringify({ ...usage(), ...Object.fromEntries(used) })}\n`);
    },
  };
}

function parseKeyFile(text: string, file: string): KeyRecord[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new KeyFileError(`${file} is not JSON (${(error as Error).message}); restore it or move it away`);
  }
  const keys = (value as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw new KeyFileError(`${file} has no "keys" list; restore it or move it away`);
  return keys.map((k, i) => {
    const record = readKeyRecord(k);
    if (!record) throw new KeyFileError(`${file}: key ${i + 1} is damaged; restore the file or move it away`);
    return record;
  });
}
