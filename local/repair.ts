/**
 * `start --repair`: the local DuckDB file rebuilt from the lake, the source of truth.
 * The old file is moved aside (never deleted) and a new one built next to it, then
 * renamed into place: an interrupted repair leaves no half-built file to start on.
 *
 * - `timeseries`: every row of `readings` (the lake views), one per device, time and
 *   metric, the first to arrive where the lake has several (as the keyed insert of the
 *   ingest path keeps the first written).
 * - the registry: each device's readings (those rows, one reading per device and time)
 *   applied in time order with the estate's own `applyReadings` and the config's alert
 *   rules, so type, source, first and last seen, last values and alert states are what
 *   ingest made of them. No alert is sent again: they were sent when the readings came.
 *   The readings table keeps no sequence numbers: `lostMessages` starts again at 0, and
 *   `lastSeq` comes back for the devices of the networks that resend heard in the last
 *   two days (decoded again for the claims, below). Offline alerts are not in the
 *   readings: the first offline check after the start raises them again (and sends them
 *   again: twice, never zero times, as everywhere in the estate).
 * - `claims` (network resends already stored, kept two days): rebuilt from the raw
 *   archive of the networks that resend, the last two days decoded again with the
 *   config's decoders, the first message of each reading its owner, expiring two days
 *   after it arrived. Readings the current decoders read differently get other claims.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { buildDecoders } from '../lambdas/core/decoders/registry.ts';
import { type AlertRule, applyReadings, type DeviceRecord } from '../lambdas/core/estate/alerts.ts';
import type { DeviceRegistry } from '../lambdas/core/estate/update.ts';
import { FORMATS, type Source } from '../lambdas/core/formats/index.ts';
import { claimable, claimKey } from '../lambdas/core/ingest/claims.ts';
import { decodeMessages } from '../lambdas/core/ingest/decode.ts';
import type { QueueMessage } from '../lambdas/core/ingest/queue-message.ts';
import type { MetricValue, Reading } from '../lambdas/core/reading.ts';
import type { PipelineConfig } from '../lib/config.ts';
import {
  CLAIM_TTL_MS,
  CLAIMS_TABLE,
  createLakeViews,
  duckdbClaims,
  duckdbRegistry,
  duckdbTimeSeries,
  TIME_SERIES_TABLE,
} from './adapters/duckdb.ts';
import { dataPaths } from './data-dir.ts';
import { findDamage, isLockError, verifyBlocks } from './database-check.ts';
import { StartupError } from './listen.ts';

export interface RepairReport {
  readonly databaseFile: string;
  /** What was wrong with the old file, in DuckDB's words; absent when it was whole (or there was none). */
  readonly damage?: string;
  /** Where the old file and its WAL went. */
  readonly movedAside: readonly string[];
  /** Rows of `timeseries`. */
  readonly rows: number;
  readonly devices: number;
  /** Alert states of the rebuilt records: raised, and conditions waiting for their duration. */
  readonly alerts: { readonly raised: number; readonly pending: number };
  readonly claims: number;
  readonly ms: number;
}

/**
 * Rebuilds `<dataDir>/pipeline.duckdb` from `<dataDir>/lake/`, damaged or not (after an
 * edit of the lake too), and says what it did through `log`.
 *
 * @throws StartupError when a running runtime holds the file
 */
export async function repairDatabase(
  dataDir: string,
  config: PipelineConfig,
  log: (line: string) => void,
): Promise<RepairReport> {
  const started = performance.now();
  const { databaseFile, lakeDir } = dataPaths(resolve(dataDir));
  const existed = existsSync(databaseFile);
  const damage = existed ? await inspect(databaseFile) : undefined;
  log(
    damage !== undefined
      ? `repair: ${databaseFile} is damaged (${damage}): rebuilding it from ${lakeDir}`
      : existed
        ? `repair: ${databaseFile} is whole: rebuilding it from ${lakeDir} all the same`
        : `repair: no ${databaseFile} yet: building it from ${lakeDir}`,
  );
  const building = `${databaseFile}.rebuilding`;
  removeDatabase(building);
  let built: Awaited<ReturnType<typeof build>>;
  try {
    built = await build(building, lakeDir, config);
  } catch (error) {
    removeDatabase(building);
    throw error;
  }
  const movedAside = existed ? moveAside(databaseFile, damage === undefined ? 'replaced' : 'damaged') : [];
  renameSync(building, databaseFile);
  const report: RepairReport = {
    databaseFile,
    ...(damage === undefined ? {} : { damage }),
    movedAside,
    ...built,
    ms: Math.round(performance.now() - started),
  };
  if (movedAside.length > 0) log(`repair: the old file is now ${movedAside.join(' and ')}`);
  log(
    `repair: rebuilt ${databaseFile} in ${(report.ms / 1000).toFixed(1)} s: ${report.rows} timeseries rows, ` +
      `${report.devices} devices (alerts: ${report.alerts.raised} raised, ${report.alerts.pending} pending; none sent again), ` +
      `${report.claims} claims of the last two days' resends`,
  );
  return report;
}

/** What is damaged in the file, or undefined; a StartupError when a runtime holds it. */
async function inspect(file: string): Promise<string | undefined> {
  const blocks = verifyBlocks(file);
  let database: DuckDBInstance;
  try {
    database = await DuckDBInstance.create(file, { access_mode: 'READ_ONLY' });
  } catch (error) {
    const message = firstLine(error);
    if (isLockError(message))
      throw new StartupError(
        `${file} is open in another process (a running \`npm start\`?): stop it, then repair`,
      );
    return message;
  }
  try {
    return await findDamage(database, blocks);
  } finally {
    database.closeSync();
  }
}

/** The file and its WAL renamed to `<file>.<why>-<time>` (and `.wal`); the new names. */
function moveAside(file: string, why: 'damaged' | 'replaced'): string[] {
  const aside = `${file}.${why}-${new Date().toISOString().replaceAll(':', '-')}`;
  const moved: string[] = [];
  for (const [from, to] of [
    [file, aside],
    [`${file}.wal`, `${aside}.wal`],
  ] as const) {
    if (!existsSync(from)) continue;
    renameSync(from, to);
    moved.push(to);
  }
  return moved;
}

function removeDatabase(file: string): void {
  rmSync(file, { force: true });
  rmSync(`${file}.wal`, { force: true });
}

/** A new DuckDB file at `file`, its tables made by the runtime's own adapters, filled from the lake. */
async function build(file: string, lakeDir: string, config: PipelineConfig) {
  const database = await DuckDBInstance.create(file);
  const connection = await database.connect();
  try {
    await duckdbTimeSeries(connection);
    const registry = await duckdbRegistry(connection);
    await duckdbClaims(connection);
    await createLakeViews(connection, lakeDir);
    const rows = await rebuildTimeSeries(connection);
    const resends = await decodeResends(connection, config);
    const estate = await rebuildRegistry(connection, registry, config.alertRules, resends.lastSeq);
    const claims = await writeClaims(connection, resends.claims);
    await connection.run('CHECKPOINT');
    return { rows, ...estate, claims };
  } finally {
    connection.closeSync();
    database.closeSync();
  }
}

/** `timeseries` from `readings`: per device, time and metric, the row that arrived first. */
async function rebuildTimeSeries(connection: DuckDBConnection): Promise<number> {
  const inserted = await connection.run(
    `INSERT INTO ${TIME_SERIES_TABLE}
     SELECT device_id, device_type, source, time, metric, value, value_str, value_bool FROM readings
     QUALIFY row_number() OVER (PARTITION BY device_id, time, metric ORDER BY received_at, message_id) = 1`,
  );
  return inserted.rowsChanged;
}

/** Devices written per registry round. */
const PUT_BATCH = 1000;

/** Each device's record from its readings in time order, as the estate builds it. */
async function rebuildRegistry(
  connection: DuckDBConnection,
  registry: DeviceRegistry,
  rules: readonly AlertRule[],
  lastSeq: ReadonlyMap<string, number>,
): Promise<{ devices: number; alerts: { raised: number; pending: number } }> {
  const records = (await deviceRecords(connection, rules)).map((record) => {
    const seq = lastSeq.get(record.deviceId);
    return seq === undefined ? record : { ...record, lastSeq: seq };
  });
  const alerts = { raised: 0, pending: 0 };
  for (const record of records) for (const state of Object.values(record.alerts)) alerts[state.state]++;
  for (let i = 0; i < records.length; i += PUT_BATCH) {
    const batch = records.slice(i, i + PUT_BATCH);
    const stored = await Promise.all(batch.map((record) => registry.put({ ...record, version: 1 }, 0)));
    if (stored.includes(false)) throw new Error('the new registry table already had one of the devices');
  }
  return { devices: records.length, alerts };
}

/**
 * The records `applyReadings` makes of each device's rows of `timeseries`, one reading
 * per time. DuckDB hands each device's readings over as one JSON document (metrics as
 * objects, numbers in their shortest exact form): two and a half times faster than
 * converting row by row.
 */
async function deviceRecords(
  connection: DuckDBConnection,
  rules: readonly AlertRule[],
): Promise<DeviceRecord[]> {
  const result = await connection.stream(
    `WITH readings AS (
       SELECT device_id, epoch_ms(time) AS t, any_value(device_type) AS type, any_value(source) AS source,
         json_group_object(metric, coalesce(to_json(value), to_json(value_str), to_json(value_bool))) AS m
       FROM ${TIME_SERIES_TABLE} GROUP BY device_id, time)
     SELECT device_id, to_json(list(json_object('t', t, 'type', type, 'source', source, 'm', m) ORDER BY t))::VARCHAR
     FROM readings GROUP BY device_id ORDER BY device_id`,
  );
  const records: DeviceRecord[] = [];
  for await (const chunk of result.yieldRowsJs()) {
    for (const [deviceId, json] of chunk) {
      // JSON.parse keeps a metric named `__proto__` a plain name, as ingest does.
      const rows = JSON.parse(String(json)) as {
        t: number;
        type: string;
        source: Source;
        m: Record<string, MetricValue>;
      }[];
      const readings: Reading[] = rows.map((r) => ({
        deviceId: String(deviceId),
        deviceType: r.type,
        time: r.t,
        receivedAt: r.t,
        source: r.source,
        messageId: '',
        metrics: r.m,
        key: `ts:${r.t}`,
      }));
      records.push(applyReadings(undefined, readings, rules).record);
    }
  }
  return records;
}

/** A claim as the claims table keeps it. */
interface Claim {
  readonly messageId: string;
  readonly expiresAt: number;
}

/**
 * The last two days of the raw archive of the networks that resend, decoded again: the
 * claims (the first message of each reading its owner, as at ingest) and each device's
 * last sequence number (of its latest reading), which the readings table does not keep.
 */
async function decodeResends(
  connection: DuckDBConnection,
  config: PipelineConfig,
): Promise<{ claims: Map<string, Claim>; lastSeq: Map<string, number> }> {
  const since = Date.now() - CLAIM_TTL_MS;
  const sources = FORMATS.filter((f) => f.resends).map((f) => `'${f.source}'`);
  const result = await connection.stream(
    `SELECT message_id, epoch_ms(received_at) AS received_at, topic, client_id, payload, source FROM raw
     WHERE source IN (${sources.join(', ')}) AND dt >= '${new Date(since).toISOString().slice(0, 10)}'
       AND received_at >= make_timestamp(${since * 1000}::BIGINT)
     ORDER BY received_at, message_id`,
  );
  const claims = new Map<string, Claim>();
  const latest = new Map<string, { time: number; seq: number }>();
  let decoders: ReturnType<typeof buildDecoders> | undefined;
  try {
    for await (const chunk of result.yieldRowsJs()) {
      decoders ??= buildDecoders(config.deviceTypes);
      // As redecode does: the envelope the message came in, from its raw record.
      const messages: QueueMessage[] = chunk.map(
        ([messageId, receivedAt, topic, clientId, payload, source]) => ({
          messageId: String(messageId),
          body: JSON.stringify({
            source,
            payload,
            topic,
            receivedAt: Number(receivedAt),
            ...(clientId === null ? {} : { clientId }),
          }),
        }),
      );
      // In arrival order: the first message of a reading owns its claim.
      for (const outcome of await decodeMessages(messages, { config, decoders })) {
        for (const reading of outcome.readings) {
          if (!claimable(reading) || reading.seq === undefined) continue;
          const key = claimKey(reading);
          if (!claims.has(key))
            claims.set(key, { messageId: reading.messageId, expiresAt: reading.receivedAt + CLAIM_TTL_MS });
          const last = latest.get(reading.deviceId);
          if (!last || reading.time >= last.time)
            latest.set(reading.deviceId, { time: reading.time, seq: reading.seq });
        }
      }
    }
  } finally {
    await decoders?.close();
  }
  return { claims, lastSeq: new Map([...latest].map(([deviceId, { seq }]) => [deviceId, seq])) };
}

/** The claims not yet expired, into the claims table. */
async function writeClaims(
  connection: DuckDBConnection,
  claims: ReadonlyMap<string, Claim>,
): Promise<number> {
  const now = Date.now();
  const appender = await connection.createAppender(CLAIMS_TABLE);
  let written = 0;
  for (const [key, { messageId, expiresAt }] of claims) {
    if (expiresAt < now) continue;
    appender.appendVarchar(key);
    appender.appendVarchar(messageId);
    appender.appendBigInt(BigInt(expiresAt));
    appender.endRow();
    written++;
  }
  appender.closeSync();
  return written;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
