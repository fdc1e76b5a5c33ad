/**
 * DuckDB in the local runtime: the time-series store (in place of Timestream) and the
 * query engine over the lake folder (in place of Athena), with the table names and
 * columns of the Glue catalog, built from the same definition (`LAKE_TABLES`).
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import { type QueryEngine, VIEWS } from '../../lambdas/core/analytics/daily.ts';
import {
  decodePageToken,
  encodePageToken,
  NOT_A_TOKEN,
  planDigest,
} from '../../lambdas/core/api/page-token.ts';
import { InvalidTokenError, type PagedQueries } from '../../lambdas/core/api/query.ts';
import { type DeviceRecord, OFFLINE_RULE } from '../../lambdas/core/estate/alerts.ts';
import {
  type EstatePage,
  type EstateQuery,
  type EstateTally,
  NEVER_SEEN,
  seenRanges,
  type TallyQuery,
} from '../../lambdas/core/estate/registry-query.ts';
import type { DeviceRegistry } from '../../lambdas/core/estate/update.ts';
import type { ReadingClaims, TimeSeriesSink } from '../../lambdas/core/ingest/ports.ts';
import { type ColumnType, LAKE_TABLES, type LakeTable } from '../../lambdas/core/lake/tables.ts';
import type { Reading } from '../../lambdas/core/reading.ts';

const DUCKDB_TYPES: Record<ColumnType, string> = {
  string: 'VARCHAR',
  double: 'DOUBLE',
  boolean: 'BOOLEAN',
  timestamp: 'TIMESTAMP',
  bigint: 'BIGINT',
  date: 'DATE',
};

/** The time-series table: one row per device, time and metric, like `readings`. */
export const TIME_SERIES_TABLE = 'timeseries';
/** The device registry's table: one row per device, its record as JSON. */
export const DEVICES_TABLE = 'devices';
/** The claims' table (duplicate suppression of network resends). */
export const CLAIMS_TABLE = 'claims';
/** The runtime's own tables in its DuckDB file, besides the lake views. */
export const PIPELINE_TABLES = [TIME_SERIES_TABLE, DEVICES_TABLE, CLAIMS_TABLE] as const;
/** How long a claim is kept, as DynamoDB's TTL does: two days. */
export const CLAIM_TTL_MS = 2 * 86_400_000;

/**
 * The time-series port over a DuckDB table. A reading written twice is stored once
 * (the key is device, time and metric), as Timestream accepts an identical record twice.
 */
export async function duckdbTimeSeries(connection: DuckDBConnection): Promise<TimeSeriesSink> {
  await connection.run(`CREATE TABLE IF NOT EXISTS ${TIME_SERIES_TABLE} (
    device_id VARCHAR NOT NULL,
    device_type VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    time TIMESTAMP NOT NULL,
    metric VARCHAR NOT NULL,
    value DOUBLE,
    value_str VARCHAR,
    value_bool BOOLEAN,
    PRIMARY KEY (device_id, time, metric)
  )`);
  // Rows go through an appender into a staging table (no SQL to parse, no WAL), then
  // into the keyed table in one statement that skips the rows already there.
  await connection.run(`CREATE OR REPLACE TEMP TABLE ${TIME_SERIES_TABLE}_staging (
    device_id VARCHAR, device_type VARCHAR, source VARCHAR, time_ms BIGINT,
    metric VARCHAR, value DOUBLE, value_str VARCHAR, value_bool BOOLEAN
  )`);
  const appender = await connection.createAppender(`${TIME_SERIES_TABLE}_staging`, 'main', 'temp');
  return {
    maxRecordsPerWrite: 1000,
    async write(readings: readonly Reading[]) {
      let rows = 0;
      try {
        for (const reading of readings) {
          const metrics = reading.metrics;
          for (const metric in metrics) {
            const value = metrics[metric];
            appender.appendVarchar(reading.deviceId);
            appender.appendVarchar(reading.deviceType);
            appender.appendVarchar(reading.source);
            appender.appendBigInt(BigInt(reading.time));
            appender.appendVarchar(metric);
            if (typeof value === 'number') appender.appendDouble(value);
            else appender.appendNull();
            if (typeof value === 'string') appender.appendVarchar(value);
            else appender.appendNull();
            if (typeof value === 'boolean') appender.appendBoolean(value);
            else appender.appendNull();
            appender.endRow();
            rows++;
          }
        }
        appender.flushSync();
      } catch (error) {
        appender.clear();
        throw error;
      }
      if (rows === 0) return [];
      try {
        await connection.run(
          `INSERT INTO ${TIME_SERIES_TABLE}
           SELECT device_id, device_type, source, epoch_ms(time_ms), metric, value, value_str, value_bool
           FROM ${TIME_SERIES_TABLE}_staging ON CONFLICT DO NOTHING`,
        );
      } finally {
        await connection.run(`DELETE FROM ${TIME_SERIES_TABLE}_staging`);
      }
      return [];
    },
  };
}

/** Claims (duplicate suppression across batches) in a DuckDB table, kept two days like DynamoDB's. */
export async function duckdbClaims(
  connection: DuckDBConnection,
  now: () => number = Date.now,
): Promise<ReadingClaims> {
  await connection.run(
    `CREATE TABLE IF NOT EXISTS ${CLAIMS_TABLE} (pk VARCHAR PRIMARY KEY, message_id VARCHAR NOT NULL, expires_at BIGINT NOT NULL)`,
  );
  return {
    async claim(claims) {
      const at = now();
      await connection.run('DELETE FROM claims WHERE expires_at < $1', [at]);
      const taken = new Set<string>();
      if (claims.length === 0) return taken;
      const reader = await connection.runAndReadAll(
        `SELECT pk, message_id FROM claims WHERE pk IN (${claims.map((_, i) => `$${i + 1}`).join(', ')})`,
        claims.map((c) => c.key),
      );
      const owners = new Map(reader.getRowObjectsJson().map((r) => [String(r.pk), String(r.message_id)]));
      const fresh = new Map<string, string>();
      for (const { key, messageId } of claims) {
        const owner = owners.get(key) ?? fresh.get(key);
        if (owner !== undefined && owner !== messageId) taken.add(key);
        else if (owner === undefined) fresh.set(key, messageId);
      }
      if (fresh.size > 0) {
        const values: DuckDBValue[] = [];
        const rows = [...fresh].map(([key, messageId], i) => {
          values.push(key, messageId, at + CLAIM_TTL_MS);
          return `($${i * 3 + 1}, $${i * 3 + 2}, $${i * 3 + 3})`;
        });
        await connection.run(`INSERT INTO claims VALUES ${rows.join(', ')} ON CONFLICT DO NOTHING`, values);
      }
      return taken;
    },
  };
}

/** The device registry in a DuckDB table: the record as JSON, versioned like DynamoDB's. */
export async function duckdbRegistry(connection: DuckDBConnection): Promise<DeviceRegistry> {
  await connection.run(
    `CREATE TABLE IF NOT EXISTS ${DEVICES_TABLE} (device_id VARCHAR PRIMARY KEY, device_type VARCHAR, last_seen TIMESTAMP, version BIGINT, record JSON)`,
  );
  // The estate writes every device of a batch at once. Those puts go together: staged
  // through an appender, applied by two set-based statements (each row still conditional
  // on its version) in one transaction, then read back to tell each put whether it won.
  await connection.run(
    'CREATE OR REPLACE TEMP TABLE devices_staging (device_id VARCHAR, device_type VARCHAR, last_seen_ms BIGINT, version BIGINT, record VARCHAR, expected BIGINT)',
  );
  const appender = await connection.createAppender('devices_staging', 'main', 'temp');
  interface Put {
    readonly record: DeviceRecord;
    readonly json: string;
    readonly expected: number;
    readonly done: (ok: boolean) => void;
    readonly fail: (e: Error) => void;
  }
  let pending: Put[] = [];
  let scheduled = false;
  let flushing: Promise<void> = Promise.resolve();
  const flush = async () => {
    // One put per device a round: a second one for the same device waits for the next.
    const seen = new Set<string>();
    const group: Put[] = [];
    const later: Put[] = [];
    for (const put of pending) {
      if (seen.has(put.record.deviceId)) later.push(put);
      else {
        seen.add(put.record.deviceId);
        group.push(put);
      }
    }
    pending = later;
    if (later.length > 0) schedule();
    // Told only once the staging table is empty again: a caller's next statement on the
    // connection must not run beside this round's last one.
    let settle: () => void;
    try {
      for (const { record, json, expected } of group) {
        appender.appendVarchar(record.deviceId);
        appender.appendVarchar(record.deviceType);
        appender.appendBigInt(BigInt(record.lastSeen));
        appender.appendBigInt(BigInt(record.version));
        appender.appendVarchar(json);
        appender.appendBigInt(BigInt(expected));
        appender.endRow();
      }
      appender.flushSync();
      await connection.run('BEGIN TRANSACTION');
      await connection.run(
        `UPDATE devices SET device_type = s.device_type, last_seen = epoch_ms(s.last_seen_ms), version = s.version, record = s.record
         FROM devices_staging s WHERE devices.device_id = s.device_id AND s.expected > 0 AND devices.version = s.expected`,
      );
      await connection.run(
        `INSERT INTO devices SELECT device_id, device_type, epoch_ms(last_seen_ms), version, record
         FROM devices_staging WHERE expected = 0 ON CONFLICT DO NOTHING`,
      );
      const stored = await connection.runAndReadAll(
        `SELECT s.device_id FROM devices_staging s JOIN devices d USING (device_id)
         WHERE d.version = s.version AND d.record::VARCHAR = s.record`,
      );
      await connection.run('COMMIT');
      const won = new Set(stored.getRowObjectsJson().map((r) => String(r.device_id)));
      settle = () => {
        for (const put of group) put.done(won.has(put.record.deviceId));
      };
    } catch (error) {
      appender.clear();
      await connection.run('ROLLBACK').catch(() => undefined);
      settle = () => {
        for (const put of group) put.fail(error as Error);
      };
    }
    await connection.run('DELETE FROM devices_staging').catch(() => undefined);
    settle();
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      flushing = flushing.then(flush);
    });
  };
  return {
    get: (ids) => recordsOf(connection, ids),
    put(record, expected) {
      return new Promise<boolean>((done, fail) => {
        pending.push({ record, json: JSON.stringify(record), expected, done, fail });
        schedule();
      });
    },
    list: () => listDevices(connection, DEVICES_TABLE),
    query: (query) => queryDevices(connection, DEVICES_TABLE, query),
    tally: (query) => tallyDevices(connection, DEVICES_TABLE, query),
  };
}

/**
 * The registry read by callers that come at any time (HTTP requests, the CLI's runtime
 * handle): each read on a connection of its own, closed after it. A DuckDB connection
 * runs one statement at a time, and the one `duckdbRegistry` was given belongs to ingest,
 * which holds it between statements (its staging tables, its transactions).
 */
export function duckdbRegistryReads(
  connect: () => Promise<DuckDBConnection>,
): Pick<DeviceRegistry, 'get' | 'list' | 'query' | 'tally'> {
  const read = async <T>(work: (connection: DuckDBConnection) => Promise<T>): Promise<T> => {
    const connection = await connect();
    try {
      return await work(connection);
    } finally {
      connection.closeSync();
    }
  };
  return {
    get: (ids) =>
      ids.length === 0 ? Promise.resolve(new Map()) : read((connection) => recordsOf(connection, ids)),
    list: () => read((connection) => listDevices(connection, DEVICES_TABLE)),
    query: (query) => read((connection) => queryDevices(connection, DEVICES_TABLE, query)),
    tally: (query) => read((connection) => tallyDevices(connection, DEVICES_TABLE, query)),
  };
}

/**
 * Every device record of a registry table, by device id, reading only: `table` may name
 * another catalog's (`pipeline.devices`, a read-only attach) or a snapshot of it.
 */
export function listDevices(connection: DuckDBConnection, table: string): Promise<DeviceRecord[]> {
  return deviceRecords(connection, `SELECT record FROM ${table} ORDER BY device_id`);
}

/**
 * A page of the estate from a registry table (`table` as {@link listDevices} takes it):
 * the filter, the key's devices and the position as one WHERE, the order as ORDER BY,
 * one row more than the page (to tell whether another follows); the count, when asked,
 * a second statement with the same WHERE but the position.
 */
export async function queryDevices(
  connection: DuckDBConnection,
  table: string,
  query: EstateQuery,
): Promise<EstatePage> {
  const where = estateWhere(query);
  const position = query.after ? afterSql(query, where.values) : undefined;
  const direction = query.order === 'asc' ? 'ASC' : 'DESC';
  const order =
    query.sort === 'lastSeen'
      ? `epoch_ms(last_seen) ${direction}, device_id ${direction}`
      : `device_id ${direction}`;
  const records = await deviceRecords(
    connection,
    `SELECT record FROM ${table} WHERE ${where.sql}${position ? ` AND ${position}` : ''} ORDER BY ${order} LIMIT ${query.limit + 1}`,
    where.values,
  );
  let total: number | undefined;
  if (query.count) {
    const counted = await connection.runAndReadAll(
      `SELECT count(*)::INTEGER AS n FROM ${table} WHERE ${where.sql}`,
      where.values.slice(0, where.filterValues),
    );
    total = Number(counted.getRowObjectsJson()[0]?.n ?? 0);
  }
  return {
    records: records.slice(0, query.limit),
    more: records.length > query.limit,
    ...(total === undefined ? {} : { total }),
  };
}

/** The caller's devices by status at the tally's time, and their open alerts by rule, in two statements. */
export async function tallyDevices(
  connection: DuckDBConnection,
  table: string,
  query: TallyQuery,
): Promise<EstateTally> {
  const scope = estateWhere({ ...query, filter: {} });
  const offline = estateWhere(
    { at: query.at, timeouts: query.timeouts, filter: { status: 'offline' } },
    scope.values.length,
  );
  const values = [...scope.values, ...offline.values];
  const counts = (
    await connection.runAndReadAll(
      `SELECT count(*)::INTEGER AS devices,
        (count(*) FILTER (WHERE epoch_ms(last_seen) <= ${NEVER_SEEN}))::INTEGER AS never,
        (count(*) FILTER (WHERE ${offline.sql}))::INTEGER AS offline
      FROM ${table} WHERE ${scope.sql}`,
      values,
    )
  ).getRowObjectsJson()[0];
  const alerts = (
    await connection.runAndReadAll(
      `SELECT a.key AS rule, CASE WHEN a.key = '${OFFLINE_RULE}' THEN (a.value->>'value') END AS severity, count(*)::INTEGER AS n
      FROM ${table}, json_each(record->'alerts') AS a
      WHERE ${scope.sql} AND (a.value->>'state') = 'raised'
      GROUP BY 1, 2 ORDER BY 1, 2`,
      scope.values,
    )
  ).getRowObjectsJson();
  const devices = Number(counts?.devices ?? 0);
  const never = Number(counts?.never ?? 0);
  const offlineCount = Number(counts?.offline ?? 0);
  return {
    devices,
    online: devices - never - offlineCount,
    offline: offlineCount,
    never,
    alerts: alerts.map((r) => ({
      rule: String(r.rule),
      ...(typeof r.severity === 'string' ? { severity: r.severity } : {}),
      count: Number(r.n),
    })),
  };
}

/**
 * The query's filter and the key's devices as SQL over a registry table, with its values
 * as `$n` parameters from `$offset + 1`: nothing from outside is spliced in. `filterValues`
 * is how many values the filter takes (the position's come after).
 */
function estateWhere(
  query: Pick<EstateQuery, 'filter' | 'devices' | 'at' | 'timeouts'>,
  offset = 0,
): { sql: string; values: DuckDBValue[]; filterValues: number } {
  const values: DuckDBValue[] = [];
  const param = (value: DuckDBValue) => `$${offset + values.push(value)}`;
  const terms: string[] = [];
  const { filter } = query;
  if (filter.type !== undefined) terms.push(`device_type = ${param(filter.type)}`);
  if (filter.prefix !== undefined) terms.push(`starts_with(device_id, ${param(filter.prefix)})`);
  if (filter.tag) {
    // A JSON pointer (RFC 6901) reads any key, `__proto__` and `$x` too, as itself.
    const pointer = `/attributes/${filter.tag.key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
    terms.push(`json_extract_string(record, ${param(pointer)}) = ${param(filter.tag.value)}`);
  }
  if (query.devices) {
    const scope = query.devices.map((entry) =>
      entry.endsWith('*')
        ? `starts_with(device_id, ${param(entry.slice(0, -1))})`
        : `device_id = ${param(entry)}`,
    );
    terms.push(scope.length === 0 ? 'false' : `(${scope.join(' OR ')})`);
  }
  const ranges = seenRanges(filter, query.at, query.timeouts);
  if (ranges) {
    const arms = ranges.map((range) => {
      const parts: string[] = [];
      if (range.types) parts.push(`device_type IN (${range.types.map(param).join(', ')})`);
      if (range.otherThan) parts.push(`device_type NOT IN (${range.otherThan.map(param).join(', ')})`);
      if (range.from !== undefined) parts.push(`epoch_ms(last_seen) >= ${param(range.from)}`);
      if (range.before !== undefined) parts.push(`epoch_ms(last_seen) < ${param(range.before)}`);
      return parts.length === 0 ? 'true' : `(${parts.join(' AND ')})`;
    });
    terms.push(arms.length === 0 ? 'false' : `(${arms.join(' OR ')})`);
  }
  return { sql: terms.length === 0 ? 'true' : terms.join(' AND '), values, filterValues: values.length };
}

/** Strictly after the position in the query's order (appends its values). */
function afterSql(query: EstateQuery, values: DuckDBValue[]): string {
  const after = query.after as NonNullable<EstateQuery['after']>;
  const op = query.order === 'asc' ? '>' : '<';
  const id = `$${values.push(after.deviceId)}`;
  if (query.sort === 'deviceId') return `device_id ${op} ${id}`;
  const seen = `$${values.push(after.lastSeen)}`;
  return `(epoch_ms(last_seen) ${op} ${seen} OR (epoch_ms(last_seen) = ${seen} AND device_id ${op} ${id}))`;
}

/** The records of these devices (those the table has). */
async function recordsOf(
  connection: DuckDBConnection,
  ids: readonly string[],
): Promise<Map<string, DeviceRecord>> {
  if (ids.length === 0) return new Map();
  const found = await deviceRecords(
    connection,
    `SELECT record FROM ${DEVICES_TABLE} WHERE device_id IN (${ids.map((_, i) => `$${i + 1}`).join(', ')})`,
    [...ids],
  );
  return new Map(found.map((r) => [r.deviceId, r]));
}

async function deviceRecords(
  connection: DuckDBConnection,
  sql: string,
  values: DuckDBValue[] = [],
): Promise<DeviceRecord[]> {
  return (await connection.runAndReadAll(sql, values))
    .getRowObjectsJson()
    .map((r) => JSON.parse(String(r.record)) as DeviceRecord);
}

/**
 * Creates one view per lake table over the lake folder (`readings`, `raw`,
 * `quarantine`, ...), typed as the Glue tables are, partition columns included. A table
 * with no object yet is an empty view with the same columns, so queries never fail
 * just because nothing has arrived.
 */
export async function createLakeViews(connection: DuckDBConnection, lakeDir: string): Promise<void> {
  for (const table of LAKE_TABLES) {
    await connection.run(`CREATE OR REPLACE TEMP VIEW ${table.name} AS ${lakeTableSql(table, lakeDir)}`);
  }
  // The analysts' views, as the daily job creates them in Athena.
  for (const view of VIEWS) await connection.run(`CREATE OR REPLACE TEMP VIEW ${view.name} AS ${view.sql}`);
}

/**
 * The query engine over the local lake: SQL on the lake views, and `unload` as DuckDB
 * COPY into the lake folder (Parquet, or headerless comma-separated values written as
 * they are), where Athena would UNLOAD.
 */
export async function duckdbEngine(connection: DuckDBConnection, lakeDir: string): Promise<QueryEngine> {
  await createLakeViews(connection, lakeDir);
  return {
    async run(sql) {
      const { rows } = await runQuery(connection, sql);
      return { rows: [...rows], bytesScanned: 0 };
    },
    async unload(select, prefix, format, layout) {
      const dir = join(lakeDir, prefix);
      mkdirSync(dir, { recursive: true });
      const file = join(dir, format === 'parquet' ? 'data.parquet' : 'data.csv');
      const rows = layout?.rowGroupRows;
      if (rows !== undefined && !(Number.isSafeInteger(rows) && rows > 0))
        throw new Error(`rowGroupRows must be a positive integer, not ${rows}`);
      // Parquet V2: delta-encoded timestamps (a device's times step evenly once sorted by it).
      const options =
        format === 'parquet'
          ? `(FORMAT PARQUET, COMPRESSION 'snappy', PARQUET_VERSION 'V2'${rows === undefined ? '' : `, ROW_GROUP_SIZE ${rows}`})`
          : // As Athena's TEXTFILE: values as they are (the select quotes its text fields).
            "(FORMAT CSV, HEADER false, QUOTE '', ESCAPE '')";
      await connection.run(`COPY (${select}) TO ${sqlString(file)} ${options}`);
      // New files: the views must see them.
      await createLakeViews(connection, lakeDir);
    },
  };
}

function lakeTableSql(table: LakeTable, lakeDir: string): string {
  const dir = join(lakeDir, table.prefix);
  const extension = table.format === 'parquet' ? '.parquet' : '.ndjson.gz';
  if (!hasFile(dir, extension)) {
    const columns = [
      ...table.columns.map((c) => `CAST(NULL AS ${DUCKDB_TYPES[c.type]}) AS ${c.name}`),
      ...table.partitions.map((p) => `CAST(NULL AS VARCHAR) AS ${p.name}`),
    ];
    return `SELECT ${columns.join(', ')} WHERE false`;
  }
  const glob = sqlString(join(dir, '**', `*${extension}`));
  const hiveTypes = `{${table.partitions.map((p) => `'${p.name}': 'VARCHAR'`).join(', ')}}`;
  if (table.format === 'parquet') {
    return `SELECT * FROM read_parquet(${glob}, hive_partitioning = true, hive_types = ${hiveTypes})`;
  }
  const columns = `{${table.columns.map((c) => `${c.name}: '${DUCKDB_TYPES[c.type]}'`).join(', ')}}`;
  return `SELECT * FROM read_json(${glob}, format = 'newline_delimited', compression = 'gzip', columns = ${columns}, hive_partitioning = true, hive_types = ${hiveTypes}, timestampformat = '%Y-%m-%d %H:%M:%S.%g')`;
}

function hasFile(dir: string, extension: string): boolean {
  if (!existsSync(dir)) return false;
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).some((f) => f.endsWith(extension));
}

function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * The query API's engine locally: each page runs the plan again over the lake views
 * with LIMIT/OFFSET; the token is the offset, bound to the plan it pages through (a
 * token of another device's query, range or metric is refused).
 */
export function duckdbPagedQueries(connect: () => Promise<DuckDBConnection>, lakeDir: string): PagedQueries {
  return {
    async page(plan, token, { pageSize }) {
      const digest = planDigest(plan);
      const offset = token === undefined ? 0 : decodePageToken(token, digest).o;
      if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
        throw new InvalidTokenError(NOT_A_TOKEN);
      const connection = await connect();
      try {
        await createLakeViews(connection, lakeDir);
        let n = 0;
        const sql = plan.sql.replace(/\?/g, () => {
          const param = plan.params[n++];
          return param?.type === 'timestamp'
            ? `CAST($${n} AS TIMESTAMP)`
            : param?.type === 'date'
              ? `CAST($${n} AS DATE)`
              : `$${n}`;
        });
        const reader = await connection.runAndReadAll(
          `SELECT * FROM (${sql}) LIMIT ${pageSize + 1} OFFSET ${offset}`,
          plan.params.map((p) => p.value),
        );
        const rows = reader.getRowObjectsJson();
        return {
          rows: rows.slice(0, pageSize),
          ...(rows.length > pageSize ? { next: encodePageToken(digest, { o: offset + pageSize }) } : {}),
        };
      } finally {
        connection.closeSync();
      }
    },
  };
}

export interface QueryResult {
  readonly columns: readonly string[];
  /** Rows as JSON-safe values (timestamps and big integers as strings). */
  readonly rows: readonly Record<string, unknown>[];
}

export async function runQuery(connection: DuckDBConnection, sql: string): Promise<QueryResult> {
  const reader = await connection.runAndReadAll(sql);
  return { columns: reader.columnNames(), rows: reader.getRowObjectsJson() };
}
