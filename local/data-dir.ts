/**
 * The local data folder (`--data`, `./.data` by default), spelled out once: the local
 * runtime writes it, the CLI's other commands (`query`, `devices`, `daily`, `redecode`,
 * `simulate` over HTTP) read it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The data folder when `--data` is not given, relative to the working directory. */
export const DEFAULT_DATA_DIR = './.data';

export interface DataPaths {
  readonly dataDir: string;
  /** The API keys' records, hashed (`keys create`, `keys revoke`; mode 0600). */
  readonly keysFile: string;
  /** When each key was last used, written by the runtime (`keys list` shows it). */
  readonly keyUsageFile: string;
  /**
   * The local ingest and read keys `start` made on its first run, as `export` lines to
   * paste or `source` (mode 0600): the other commands read their keys from it.
   */
  readonly localKeysFile: string;
  /** The lake folder: `raw/`, `readings/`, `quarantine/`, `reports/`, the same keys as the S3 bucket. */
  readonly lakeDir: string;
  /** The DuckDB file: the time-series table (in place of Timestream), the device registry, the claims. */
  readonly databaseFile: string;
  /** Messages the local queue gave up on, one JSON line each (the dead-letter queue). */
  readonly deadLetterFile: string;
  /** The local queue's journal: every acknowledged message until it is settled (`00000001.log`, …). */
  readonly journalDir: string;
  /** Device passwords for `start --mqtt-auth` (`devices add`; hashes only, mode 0600). */
  readonly deviceCredentialsFile: string;
  /**
   * The running runtime's tables as Parquet (`timeseries.parquet`, …, `snapshot.json`),
   * refreshed every few seconds and on stop: what `query` and `devices` read while the
   * runtime holds the DuckDB file.
   */
  readonly snapshotDir: string;
}

/** Where each thing lives under `dataDir` (joined, not resolved: relative in, relative out). */
export function dataPaths(dataDir: string): DataPaths {
  return {
    dataDir,
    keysFile: join(dataDir, 'keys.json'),
    keyUsageFile: join(dataDir, 'key-usage.json'),
    localKeysFile: join(dataDir, 'local-keys.env'),
    lakeDir: join(dataDir, 'lake'),
    databaseFile: join(dataDir, 'pipeline.duckdb'),
    deadLetterFile: join(dataDir, 'dead-letter.ndjson'),
    journalDir: join(dataDir, 'journal'),
    deviceCredentialsFile: join(dataDir, 'device-credentials.json'),
    snapshotDir: join(dataDir, 'snapshot'),
  };
}

/** The variables the local keys go by, in `local-keys.env` and the environment. */
export const KEY_VARIABLES = {
  ingest: 'IOT_PIPELINE_INGEST_KEY',
  read: 'IOT_PIPELINE_READ_KEY',
  /** One more key with every scope, set by the user (scripts). */
  all: 'IOT_PIPELINE_API_KEY',
} as const;

/**
 * The key a local command sends for `use`: its variable (or IOT_PIPELINE_API_KEY) from
 * the environment, else the one `start` keeps in the data folder, else undefined.
 */
export function localKey(dataDir: string, use: 'ingest' | 'read'): string | undefined {
  const given = process.env[KEY_VARIABLES[use]] || process.env[KEY_VARIABLES.all];
  if (given) return given;
  return readLocalKeys(dataPaths(dataDir).localKeysFile)[use];
}

/** The keys of a `local-keys.env` file (`export NAME=value` lines); none when it is absent. */
export function readLocalKeys(file: string): { ingest?: string; read?: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  const value = (name: string) => new RegExp(`^export ${name}=(\\S+)$`, 'm').exec(text)?.[1];
  const ingest = value(KEY_VARIABLES.ingest);
  const read = value(KEY_VARIABLES.read);
  return { ...(ingest ? { ingest } : {}), ...(read ? { read } : {}) };
}
