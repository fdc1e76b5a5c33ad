/**
 * The local runtime's own keys: on the first start one `ingest` key and one `read` key
 * are made, their records added to `<data>/keys.json` and the keys themselves kept in
 * `<data>/local-keys.env` (mode 0600) as `export` lines, which later starts reuse. A key
 * revoked since (or a file lost) is replaced by a new one, and said so.
 */
import {
  createKey,
  INGEST_SCOPE,
  type KeyStore,
  keyId,
  keyMatches,
  READ_SCOPE,
} from '../lambdas/core/access/keys.ts';
import { KEY_VARIABLES, readLocalKeys } from './data-dir.ts';
import { writeWhole } from './write-whole.ts';

export interface LocalKeys {
  readonly ingest: string;
  readonly read: string;
  /** Which of the two were made now (first start, or the old one revoked). */
  readonly made: readonly ('ingest' | 'read')[];
}

const NAMES = { ingest: 'local-ingest', read: 'local-read' } as const;

export async function ensureLocalKeys(store: KeyStore, file: string, now = Date.now()): Promise<LocalKeys> {
  const kept = readLocalKeys(file);
  const made: ('ingest' | 'read')[] = [];
  const keys = { ingest: '', read: '' };
  for (const use of ['ingest', 'read'] as const) {
    const key = kept[use];
    const id = key === undefined ? undefined : keyId(key);
    const record = id === undefined ? undefined : await store.find(id);
    if (key && record && record.revokedAt === undefined && keyMatches(record, key)) {
      keys[use] = key;
      continue;
    }
    // The name is free once the old key is revoked; a stored one nobody holds any more is revoked first.
    await store.revoke(NAMES[use], now);
    const fresh = createKey(
      { name: NAMES[use], scopes: [use === 'ingest' ? INGEST_SCOPE : READ_SCOPE] },
      now,
    );
    await store.add(fresh.record);
    keys[use] = fresh.key;
    made.push(use);
  }
  if (made.length > 0)
    writeWhole(
      file,
      `# The local runtime's keys (iot-pipeline start). Paste these lines, or: source ${file}\n` +
        `export ${KEY_VARIABLES.ingest}=${keys.ingest}\nexport ${KEY_VARIABLES.read}=${keys.read}\n`,
    );
  return { ...keys, made };
}
