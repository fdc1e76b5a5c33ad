/**
 * The local data folder (`--data`, `./.data` by default), spelled out once: the local
 * runtime writes it, the CLI's other commands (`query`, `devices`, `daily`, `redecode`,
 * `simulate` over HTTP) read it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The data folder when `--data` is not given, relative to the working directory. */
export const DEFAULT_DATA_DIR = './.data';

export interface DataPaths {
  readonly dataDir: string;
  /** The API key `start` generated, for the other commands (mode 0600). */
  readonly apiKeyFile: string;
  /** The lake folder: `raw/`, `readings/`, `quarantine/`, `reports/`, the same keys as the S3 bucket. */
  readonly lakeDir: string;
  /** The DuckDB file: the time-series table (in place of Timestream), the device registry, the claims. */
  readonly databaseFile: string;
  /** Messages the local queue gave up on, one JSON line each (the dead-letter queue). */
  readonly deadLetterFile: string;
}

/** Where each thing lives under `dataDir` (joined, not resolved: relative in, relative out). */
export function dataPaths(dataDir: string): DataPaths {
  return {
    dataDir,
    apiKeyFile: join(dataDir, 'api-key'),
    lakeDir: join(dataDir, 'lake'),
    databaseFile: join(dataDir, 'pipeline.duckdb'),
    deadLetterFile: join(dataDir, 'dead-letter.ndjson'),
  };
}

/** The API key: IOT_PIPELINE_API_KEY, else the one `start` generated into the data folder, else undefined. */
export function localApiKey(dataDir: string): string | undefined {
  if (process.env.IOT_PIPELINE_API_KEY) return process.env.IOT_PIPELINE_API_KEY;
  try {
    return readFileSync(dataPaths(dataDir).apiKeyFile, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Keeps a generated API key in the data folder, readable by its owner only; returns the file. */
export function writeApiKey(dataDir: string, apiKey: string): string {
  const file = dataPaths(dataDir).apiKeyFile;
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, `${apiKey}\n`, { mode: 0o600 });
  return file;
}
