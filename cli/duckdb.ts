/**
 * The CLI's reads of the local data folder with DuckDB (an in-memory database over the
 * lake folder): SQL for `query`, the device registry for `devices`, the daily job for `daily`.
 *
 * The runtime's own tables (`timeseries`, `devices`, `claims`) come from its DuckDB file,
 * attached read-only (nothing created in it) when no runtime holds it; while one runs,
 * DuckDB's lock keeps every other process out of the file, even read-only, so they come
 * from the snapshot the runtime refreshes under `<data>/snapshot/`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { type DailyJobReport, runDailyJob, type UptimeConfig } from '../lambdas/core/analytics/daily.ts';
import type { DeviceRecord } from '../lambdas/core/estate/alerts.ts';
import {
  createLakeViews,
  DEVICES_TABLE,
  duckdbEngine,
  listDevices,
  PIPELINE_TABLES,
  type QueryResult,
  runQuery,
} from '../local/adapters/duckdb.ts';
import { folderStore } from '../local/adapters/folder-store.ts';
import type { DataPaths } from '../local/data-dir.ts';
import { damagedFileMessage, isLockError } from '../local/database-check.ts';
import { SNAPSHOT_INFO_FILE, type SnapshotInfo, snapshotFile } from '../local/snapshot.ts';
import { UsageError } from './args.ts';
import { CliError } from './errors.ts';

async function withMemoryDatabase<T>(work: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    return await work(connection);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** Where the runtime's tables were read from, for the user to know how fresh they are. */
export type PipelineTables =
  | { readonly from: 'file'; readonly tables: ReadonlySet<string> }
  | { readonly from: 'snapshot'; readonly tables: ReadonlySet<string>; readonly info: SnapshotInfo }
  | { readonly from: 'none'; readonly tables: ReadonlySet<string>; readonly why: string };

/**
 * Views named after the runtime's tables on `connection`: over its DuckDB file (read
 * only) when no runtime holds it, else over the running runtime's snapshot; none, and
 * why, when neither can be read.
 */
async function openPipelineTables(connection: DuckDBConnection, paths: DataPaths): Promise<PipelineTables> {
  const file = paths.databaseFile;
  const none = (why: string): PipelineTables => ({ from: 'none', tables: new Set(), why });
  if (!existsSync(file)) return none(`${file} does not exist yet: iot-pipeline start makes it`);
  try {
    await connection.run(`ATTACH ${sqlString(file)} AS pipeline (READ_ONLY)`);
  } catch (error) {
    const message = firstLine(error);
    return isLockError(message) ? snapshotTables(connection, paths) : none(damagedFileMessage(file, message));
  }
  const found = await connection.runAndReadAll(
    "SELECT table_name FROM duckdb_tables() WHERE database_name = 'pipeline' AND schema_name = 'main'",
  );
  const present = new Set(found.getRowObjectsJson().map((r) => String(r.table_name)));
  const tables = new Set<string>();
  for (const table of PIPELINE_TABLES) {
    if (!present.has(table)) continue;
    await connection.run(`CREATE TEMP VIEW ${table} AS SELECT * FROM pipeline.main.${table}`);
    tables.add(table);
  }
  return { from: 'file', tables };
}

/** The running runtime's snapshot of its tables, once it has written one. */
async function snapshotTables(connection: DuckDBConnection, paths: DataPaths): Promise<PipelineTables> {
  let info: SnapshotInfo;
  try {
    info = JSON.parse(readFileSync(join(paths.snapshotDir, SNAPSHOT_INFO_FILE), 'utf8')) as SnapshotInfo;
  } catch {
    return {
      from: 'none',
      tables: new Set(),
      why: `a running runtime holds ${paths.databaseFile} and has not written its snapshot to ${paths.snapshotDir} yet: try again in a few seconds`,
    };
  }
  const tables = new Set<string>();
  for (const table of PIPELINE_TABLES) {
    await connection.run(
      `CREATE TEMP VIEW ${table} AS SELECT * FROM read_parquet(${sqlString(snapshotFile(paths.snapshotDir, table))})`,
    );
    tables.add(table);
  }
  return { from: 'snapshot', tables, info };
}

/**
 * Runs SQL over the lake views and the runtime's tables (`timeseries`, `devices`,
 * `claims`: see {@link openPipelineTables}); a bad query is a UsageError.
 */
export function queryLocalLake(
  paths: DataPaths,
  sql: string,
): Promise<QueryResult & { readonly pipeline: PipelineTables }> {
  return withMemoryDatabase(async (connection) => {
    await createLakeViews(connection, paths.lakeDir);
    const pipeline = await openPipelineTables(connection, paths);
    try {
      return { ...(await runQuery(connection, sql)), pipeline };
    } catch (error) {
      const message = (error as Error).message;
      const missing = /Table with name (\w+) does not exist/.exec(message)?.[1];
      const why =
        pipeline.from === 'none' && missing && (PIPELINE_TABLES as readonly string[]).includes(missing)
          ? ` (${missing}: ${pipeline.why})`
          : /Corrupt database file|Could not read enough bytes/.test(message)
            ? ` (${damagedFileMessage(paths.databaseFile, firstLine(error))})`
            : '';
      throw new UsageError(`The query failed: ${message}${why}`);
    }
  });
}

/**
 * The device registry of the data folder (read only), from the DuckDB file or, while a
 * runtime holds it, from its snapshot; undefined when there is no DuckDB file.
 */
export async function registryFromDataFolder(
  paths: DataPaths,
): Promise<{ readonly records: DeviceRecord[]; readonly pipeline: PipelineTables } | undefined> {
  if (!existsSync(paths.databaseFile)) return undefined;
  return withMemoryDatabase(async (connection) => {
    const pipeline = await openPipelineTables(connection, paths);
    if (pipeline.from === 'none') throw new CliError(pipeline.why);
    if (!pipeline.tables.has(DEVICES_TABLE)) return { records: [], pipeline };
    try {
      return { records: await listDevices(connection, DEVICES_TABLE), pipeline };
    } catch (error) {
      throw new CliError(damagedFileMessage(paths.databaseFile, firstLine(error)));
    }
  });
}

/** The daily job (curated readings, daily metrics, uptime, the report and its manifest) on the local lake. */
export function dailyOnLocalLake(
  lakeDir: string,
  day: string,
  log: (line: string) => void,
  config?: UptimeConfig,
): Promise<DailyJobReport> {
  return withMemoryDatabase(async (connection) =>
    runDailyJob(day, {
      engine: await duckdbEngine(connection, lakeDir),
      lake: folderStore(lakeDir),
      bucket: 'local-lake',
      ...(config ? { config } : {}),
      log,
    }),
  );
}

function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
