/**
 * The CLI's reads of the local data folder with DuckDB (an in-memory database over the
 * lake folder): SQL for `query`, the device registry for `devices`, the daily job for `daily`.
 */
import { existsSync } from 'node:fs';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { type DailyJobReport, runDailyJob } from '../lambdas/core/analytics/daily.ts';
import type { DeviceRecord } from '../lambdas/core/estate/alerts.ts';
import {
  createLakeViews,
  duckdbEngine,
  duckdbRegistry,
  type QueryResult,
  runQuery,
} from '../local/adapters/duckdb.ts';
import { folderStore } from '../local/adapters/folder-store.ts';
import type { DataPaths } from '../local/data-dir.ts';
import { UsageError } from './args.ts';

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

const attach = (connection: DuckDBConnection, file: string) =>
  connection.run(`ATTACH '${file.replaceAll("'", "''")}' AS pipeline (READ_ONLY)`);

/** Runs SQL over the lake views and, when readable, the runtime's `timeseries` table; a bad query is a UsageError. */
export function queryLocalLake(paths: DataPaths, sql: string): Promise<QueryResult> {
  return withMemoryDatabase(async (connection) => {
    await createLakeViews(connection, paths.lakeDir);
    await attachTimeSeries(connection, paths.databaseFile);
    return runQuery(connection, sql).catch((error: Error) => {
      throw new UsageError(`The query failed: ${error.message}`);
    });
  });
}

/** The runtime's time-series table, when its file exists and no running runtime holds it. */
async function attachTimeSeries(connection: DuckDBConnection, file: string): Promise<void> {
  if (!existsSync(file)) return;
  try {
    await attach(connection, file);
    await connection.run('CREATE TEMP VIEW timeseries AS SELECT * FROM pipeline.timeseries');
  } catch {
    // DuckDB lets one process write a file; the lake views hold every reading anyway.
  }
}

/** The device registry in the runtime's DuckDB file (read only), or undefined when there is no file. */
export async function registryFromFile(file: string): Promise<DeviceRecord[] | undefined> {
  if (!existsSync(file)) return undefined;
  return withMemoryDatabase(async (connection) => {
    await attach(connection, file);
    await connection.run('USE pipeline');
    return (await duckdbRegistry(connection)).list();
  });
}

/** The daily job (curated readings, daily metrics, the report and its manifest) on the local lake. */
export function dailyOnLocalLake(
  lakeDir: string,
  day: string,
  log: (line: string) => void,
): Promise<DailyJobReport> {
  return withMemoryDatabase(async (connection) =>
    runDailyJob(day, {
      engine: await duckdbEngine(connection, lakeDir),
      lake: folderStore(lakeDir),
      bucket: 'local-lake',
      log,
    }),
  );
}
