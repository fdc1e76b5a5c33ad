/**
 * The running runtime's DuckDB tables as Parquet under `<data>/snapshot/`, for the CLI.
 * DuckDB lets one process hold its file (another cannot attach it, even read-only), so
 * while the runtime runs, `query` and `devices` read these files instead, with the
 * time they were taken (`snapshot.json`).
 *
 * Files rather than a SQL route into the runtime: nothing new listens, no SQL of a caller
 * runs in the process that ingests (a heavy query cannot stall it, nor read or write
 * files through DuckDB), and the CLI reads them as it reads the lake. The price is
 * freshness: a snapshot is at most `everyMs` old (plus the time to write it) while
 * readings arrive, and exact once the runtime has stopped.
 *
 * All tables are read in one transaction (one point in time), written to temporary files
 * and renamed over the old ones. A refresh copies nothing when nothing changed (it only
 * notes that the files are still current), and after a copy the next waits nine times as
 * long as the copy took, so snapshots of a large table cost the runtime at most a tenth
 * of its time.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { CLAIMS_TABLE, DEVICES_TABLE, PIPELINE_TABLES, TIME_SERIES_TABLE } from './adapters/duckdb.ts';

/** What `snapshot.json` holds: when the files were written and last found current, and their rows. */
export interface SnapshotInfo {
  /** When the tables were copied (ISO-8601). */
  readonly takenAt: string;
  /** When they were last found unchanged, or copied: the files are the tables as of then. */
  readonly currentAt: string;
  /** How often the runtime refreshes them (while something changes). */
  readonly everyMs: number;
  readonly rows: Readonly<Record<string, number>>;
}

/** The snapshot's description, written last: the files it names are complete. */
export const SNAPSHOT_INFO_FILE = 'snapshot.json';

/** The Parquet file of a table in the snapshot folder. */
export function snapshotFile(dir: string, table: string): string {
  return join(dir, `${table}.parquet`);
}

export interface SnapshotOptions {
  /** A connection of the runtime's database (its own: ingest goes on meanwhile). */
  readonly connect: () => Promise<DuckDBConnection>;
  readonly dir: string;
  readonly everyMs: number;
  readonly log?: (line: string) => void;
}

export interface Snapshots {
  /** Writes the snapshot now, unless nothing changed since the last one. */
  refresh(): Promise<void>;
  /** Stops refreshing, after a last refresh. */
  close(): Promise<void>;
}

/** What changes when a table does: `timeseries` only grows, a device put raises its version, a claim its expiry. */
const CHANGES = `SELECT
  (SELECT count(*) FROM ${TIME_SERIES_TABLE}) AS ${TIME_SERIES_TABLE},
  (SELECT count(*) FROM ${DEVICES_TABLE}) AS ${DEVICES_TABLE},
  (SELECT count(*) FROM ${CLAIMS_TABLE}) AS ${CLAIMS_TABLE},
  (SELECT coalesce(sum(version), 0) FROM ${DEVICES_TABLE}) AS versions,
  (SELECT coalesce(max(expires_at), 0) FROM ${CLAIMS_TABLE}) AS expiry`;

/** Starts refreshing the snapshot every `everyMs` (the first one right away), replacing an earlier run's. */
export function startSnapshots(options: SnapshotOptions): Snapshots {
  const { dir, everyMs } = options;
  // An earlier run's snapshot would be taken for this one's.
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let taken:
    | { readonly signature: string; readonly takenAt: string; readonly rows: Record<string, number> }
    | undefined;
  let notBefore = 0;
  let turn: Promise<void> = Promise.resolve();
  let pending = 0;

  const write = async () => {
    const started = performance.now();
    const connection = await options.connect();
    let copied = false;
    try {
      await connection.run('BEGIN TRANSACTION');
      try {
        const changes = (await connection.runAndReadAll(CHANGES)).getRowObjectsJson()[0] ?? {};
        const signature = JSON.stringify(changes);
        if (signature !== taken?.signature) {
          for (const table of PIPELINE_TABLES) {
            const temporary = `${snapshotFile(dir, table)}.tmp`;
            await connection.run(
              `COPY (SELECT * FROM ${table}) TO '${temporary.replaceAll("'", "''")}' (FORMAT PARQUET)`,
            );
          }
          const rows = Object.fromEntries(PIPELINE_TABLES.map((t) => [t, Number(changes[t] ?? 0)]));
          taken = { signature, takenAt: new Date().toISOString(), rows };
          copied = true;
        }
      } finally {
        await connection.run('COMMIT');
      }
    } finally {
      connection.closeSync();
    }
    if (copied)
      for (const table of PIPELINE_TABLES)
        renameSync(`${snapshotFile(dir, table)}.tmp`, snapshotFile(dir, table));
    if (!taken) return;
    const info: SnapshotInfo = {
      takenAt: taken.takenAt,
      currentAt: new Date().toISOString(),
      everyMs,
      rows: taken.rows,
    };
    const infoFile = join(dir, SNAPSHOT_INFO_FILE);
    writeFileSync(`${infoFile}.tmp`, `${JSON.stringify(info)}\n`);
    renameSync(`${infoFile}.tmp`, infoFile);
    if (copied) notBefore = Date.now() + 9 * (performance.now() - started);
  };
  const refresh = () => {
    pending++;
    turn = turn
      .then(write)
      .catch((error: Error) => {
        // The tables may have changed without the files: copy them again next time.
        taken = undefined;
        options.log?.(`could not write the snapshot for the CLI in ${dir}: ${error.message}`);
      })
      .finally(() => {
        pending--;
      });
    return turn;
  };
  const timer = setInterval(() => {
    if (pending === 0 && Date.now() >= notBefore) void refresh();
  }, everyMs);
  timer.unref();
  void refresh();
  return {
    refresh,
    async close() {
      clearInterval(timer);
      await refresh();
    },
  };
}
