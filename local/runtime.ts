/**
 * The whole pipeline on one machine, no AWS account: an MQTT broker and an HTTP
 * server feeding an in-process queue, consumed by the same ingest core as the Lambda,
 * writing to a lake folder (same keys as the S3 bucket) and to DuckDB (in place of
 * Timestream). `npm start` runs it; the end-to-end tests start it on free ports.
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { createGate, usageRecorder } from '../lambdas/core/api/gate.ts';
import { curatedDaysOf } from '../lambdas/core/api/series.ts';
import { buildDecoders } from '../lambdas/core/decoders/registry.ts';
import { withAlertHistory } from '../lambdas/core/estate/alert-history.ts';
import { applyNow } from '../lambdas/core/estate/delta.ts';
import { registrySources } from '../lambdas/core/estate/sources.ts';
import { type DeviceRegistry, detectOffline, type EstateDeps } from '../lambdas/core/estate/update.ts';
import { ingestBatch } from '../lambdas/core/ingest/batch.ts';
import type { IngestLog, ObjectStore, TimeSeriesSink } from '../lambdas/core/ingest/ports.ts';
import type { IngestDeps } from '../lambdas/core/ingest/write.ts';
import { compactionDays, compactLake, MIN_AGE_MS } from '../lambdas/core/lake/compaction.ts';
import { DEFAULT_CONFIG, type PipelineConfig } from '../lib/config.ts';
import { localAlerts } from './adapters/alerts.ts';
import {
  createLakeViews,
  duckdbClaims,
  duckdbPagedQueries,
  duckdbRegistry,
  duckdbRegistryReads,
  duckdbTimeSeries,
  type QueryResult,
  runQuery,
  TIME_SERIES_TABLE,
} from './adapters/duckdb.ts';
import { folderStore } from './adapters/folder-store.ts';
import { fileKeyStore } from './adapters/key-file.ts';
import { LocalQueue, type LocalQueueOptions } from './adapters/queue.ts';
import { type LocalBroker, type MqttLimits, startBroker } from './broker.ts';
import { localConsole } from './console.ts';
import { dataPaths } from './data-dir.ts';
import { checkDatabase, isLockError, openFailure, verifyBlocks } from './database-check.ts';
import { deviceCredentialsFile } from './device-credentials.ts';
import { createEventHub, type EventStreamLimits } from './events.ts';
import { type Health, readHealth } from './health.ts';
import { LOCAL_HOST } from './host.ts';
import { type HttpLimits, type LocalHttpServer, startHttpServer } from './http-server.ts';
import { ensureLocalKeys, type LocalKeys } from './keys.ts';
import { StartupError } from './listen.ts';
import { startSnapshots } from './snapshot.ts';

export interface LocalRuntimeOptions {
  /** Folder for the lake, the DuckDB file and the dead-letter file. */
  readonly dataDir: string;
  /** 0 picks a free port. */
  readonly mqttPort: number;
  readonly httpPort: number;
  /**
   * One more key with every scope, stored nowhere (`IOT_PIPELINE_API_KEY`, for scripts).
   * The keys of `<data>/keys.json` work besides, the local ingest and read keys among them.
   */
  readonly apiKey?: string;
  readonly config?: PipelineConfig;
  /** Overrides of the queue's SQS-like behaviour (batching, retries); the rest comes from `config.ingest`. */
  readonly queue?: Partial<Omit<LocalQueueOptions, 'deadLetterFile'>>;
  /** Wraps the lake store: fault injection for tests and benchmarks. */
  readonly wrapLake?: (store: ObjectStore) => ObjectStore;
  /** Wraps the time-series sink: fault injection for tests and benchmarks. */
  readonly wrapTimeSeries?: (sink: TimeSeriesSink) => TimeSeriesSink;
  /** POST each alert here as JSON, besides printing it. */
  readonly alertWebhookUrl?: string;
  /** How often devices are checked for silence (the offline alert); default every 30 s. */
  readonly offlineCheckMs?: number;
  /** Clock for offline checks (tests). */
  readonly now?: () => number;
  /**
   * Intraday compaction of the lake (`lambdas/core/lake/compaction.ts`), as the stack's
   * schedule runs it: every `everyMs` (default 10 minutes), objects older than `minAgeMs`
   * (default 2 minutes; tests).
   */
  readonly compaction?: { readonly everyMs?: number; readonly minAgeMs?: number };
  /** How often the tables' snapshot for the CLI (`<dataDir>/snapshot/`) is refreshed while they change; default every 5 s. */
  readonly snapshotEveryMs?: number;
  /** Where messages for the operator go (quarantines, retries, alerts); silent when absent. */
  readonly log?: (line: string) => void;
  /**
   * MQTT devices must connect as themselves (client id = username = device id, with the
   * password from `devices add`, kept in `<dataDir>/device-credentials.json`) and keep to
   * their own topics. Off by default: any local process may publish as any device and
   * read all telemetry.
   */
  readonly mqttAuth?: boolean;
  /** Overrides of the servers' connection limits and timeouts (tests); MQTT's payload limit is `validation.maxPayloadBytes`. */
  readonly limits?: {
    readonly http?: Partial<HttpLimits>;
    readonly mqtt?: Partial<Omit<MqttLimits, 'maxPayloadBytes'>>;
    /** `GET /v1/events`: open streams, each stream's buffer (tests). */
    readonly events?: Partial<EventStreamLimits>;
  };
}

export interface LocalRuntime {
  readonly mqttPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  readonly lakeDir: string;
  readonly databaseFile: string;
  readonly deadLetterFile: string;
  /** The local ingest and read keys (made on the first start, reused after). */
  readonly keys: LocalKeys;
  /** Where they are kept, as `export` lines. */
  readonly keysFile: string;
  readonly queue: LocalQueue;
  /** The registry's reads, each on a connection of its own (ingest owns the other). */
  readonly registry: Pick<DeviceRegistry, 'get' | 'list' | 'query' | 'tally'>;
  /** Runs an offline check now (it also runs every `offlineCheckMs`). */
  checkOffline(): Promise<void>;
  /** The figures `GET /healthz` answers and `start` prints: queued, stored, quarantined, disk free, ok. */
  health(): Promise<Health>;
  /** Runs SQL over the lake views (`readings`, `raw`, `quarantine`, ...) and the `timeseries` table. */
  query(sql: string): Promise<QueryResult>;
  /** Stops taking messages, stores what is queued (retries included), and closes everything. */
  close(): Promise<void>;
}

/** Messages the local consumer takes at most per batch (or `ingest.batchSize` when larger). */
const LOCAL_BATCH_SIZE = 2000;

/** Listening address: local only, never another interface. */
export { LOCAL_HOST };

export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const config = options.config ?? DEFAULT_CONFIG;
  // Grammars parsed and codecs loaded in their sandboxes first: a bad one stops the start before anything opens.
  const decoders = buildDecoders(config.deviceTypes);
  const dataDir = resolve(options.dataDir);
  const {
    lakeDir,
    databaseFile,
    deadLetterFile,
    journalDir,
    keysFile,
    keyUsageFile,
    localKeysFile,
    snapshotDir,
  } = dataPaths(dataDir);
  await mkdir(lakeDir, { recursive: true });
  const keyStore = fileKeyStore(keysFile, keyUsageFile);
  const keys = await ensureLocalKeys(keyStore, localKeysFile);

  const database = await openDatabase(databaseFile);
  const connection = await database.connect();
  const log = options.log;
  let quarantined = 0;
  const ingestLog: IngestLog = {
    quarantined: (q) => {
      quarantined++;
      log?.(
        `quarantined ${q.message_id} (${q.source}, device ${q.device_id ?? '?'}): ${q.reason_code}: ${q.reason}`,
      );
    },
    retrying: (messageId, error) => log?.(`will retry ${messageId}: ${error.message}`),
  };
  // The live view (GET /v1/events) hears of readings and alerts as the lake stores them.
  const events = createEventHub(options.limits?.events, log);
  const lake = events.tap(folderStore(lakeDir));
  const lakeStore = options.wrapLake ? options.wrapLake(lake) : lake;
  const registry = await duckdbRegistry(connection);
  // Requests read the registry beside ingest, which holds `connection` between statements.
  const reads = duckdbRegistryReads(() => database.connect());
  const estate: EstateDeps = {
    registry,
    config,
    // Every alert also kept in the lake (`alerts/`), through the same wrapped store as ingest.
    publisher: withAlertHistory(
      localAlerts({
        log: (line) => (log ?? console.log)(line),
        webhookUrl: options.alertWebhookUrl,
      }),
      lakeStore,
    ),
  };
  // One DuckDB connection serves ingest and offline checks: they take turns.
  let turn: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const run = turn.then(work);
    turn = run.catch(() => undefined);
    return run;
  };
  const deps: IngestDeps = {
    config,
    decoders,
    // Decoded before taking the connection: codecs run on their own threads meanwhile.
    writeTurn: exclusive,
    lake: lakeStore,
    timeseries: options.wrapTimeSeries
      ? options.wrapTimeSeries(await duckdbTimeSeries(connection))
      : await duckdbTimeSeries(connection),
    claims: await duckdbClaims(connection),
    // Here the registry is a DuckDB table: updated in the batch's turn, alerts at once.
    estate: applyNow(estate),
    log: ingestLog,
  };
  // Durable: a message is journalled before it is acknowledged; what was not settled at the last stop comes first.
  const queue = await LocalQueue.open({
    // On AWS up to maxConcurrency Lambdas take a batch each; here one consumer owns the
    // DuckDB connection and does their work, and a DuckDB round costs about 30 ms however
    // small the batch: when messages wait, it takes up to LOCAL_BATCH_SIZE at once.
    batchSize: Math.min(10_000, Math.max(config.ingest.batchSize, LOCAL_BATCH_SIZE)),
    // SQS waits up to maxBatchingWindowSeconds; a laptop wants its readings sooner.
    batchWindowMs: 100,
    maxReceiveCount: config.ingest.maxReceiveCount,
    retryDelayMs: 1000,
    maxConcurrency: 1,
    durable: true,
    journalDir,
    log,
    ...options.queue,
    deadLetterFile,
  }).catch((error: Error) => {
    connection.closeSync();
    database.closeSync();
    throw error;
  });
  // The ingest Lambda's own function, batch by batch.
  queue.consume((batch) => ingestBatch(batch, deps));
  const enqueue = (envelope: object) => queue.send(JSON.stringify(envelope));
  const health = () => readHealth(queue.stats(), quarantined, dataDir);

  let broker: LocalBroker | undefined;
  let http: LocalHttpServer | undefined;
  try {
    broker = await startBroker({
      host: LOCAL_HOST,
      port: options.mqttPort,
      enqueue,
      // The LoRaWAN rule is the stage's, as on AWS: `$aws/rules/iot_pipeline_<stage>_lorawan`.
      stage: config.stage,
      auth: options.mqttAuth ? { credentialsFile: deviceCredentialsFile(dataDir) } : undefined,
      limits: { ...options.limits?.mqtt, maxPayloadBytes: config.validation.maxPayloadBytes },
      log,
    });
    http = await startHttpServer({
      host: LOCAL_HOST,
      port: options.httpPort,
      ingress: {
        gate: createGate({
          // The file is read again when `keys create` or `keys revoke` changes it: no cache.
          find: (id) => keyStore.find(id),
          masterKey: options.apiKey,
          limits: config.http,
          onUse: usageRecorder(
            (used) => keyStore.touch(used),
            (error) => log?.(`could not note key use: ${error.message}`),
          ),
        }),
        sources: registrySources(reads, { knownTtlMs: 60_000, unknownTtlMs: 0 }),
        enqueue,
        maxBodyBytes: config.validation.maxPayloadBytes,
        config,
      },
      registry: reads,
      estate: config,
      queries: duckdbPagedQueries(() => database.connect(), lakeDir),
      curatedDays: curatedDaysOf(folderStore(lakeDir)),
      alertRules: config.alertRules,
      events,
      health,
      // The page gets the read key only: nothing it holds can write.
      console: localConsole({ readKey: keys.read, port: () => http?.port ?? options.httpPort }),
      limits: options.limits?.http,
      log,
      onRequest: (r) => {
        if (r.status >= 400) log?.(`HTTP ${r.method} ${r.path} -> ${r.status}`);
      },
    });
  } catch (error) {
    await broker?.close();
    await queue.close();
    connection.closeSync();
    database.closeSync();
    throw error;
  }
  const started = { broker, http };
  const now = options.now ?? Date.now;
  // Offline checks share the connection with ingest: one at a time, never overlapping.
  let checking = Promise.resolve();
  const checkOffline = () => {
    checking = exclusive(() => detectOffline(estate, now()))
      .then(() => undefined)
      .catch((error: Error) => log?.(`offline check failed: ${error.message}`));
    return checking;
  };
  const offlineTimer = setInterval(checkOffline, options.offlineCheckMs ?? 30_000);
  offlineTimer.unref();
  // Today's small lake objects merged, in the writes' turn as the ingest writes are, on the
  // folder itself (not the tapped store: the live view has heard of these rows already).
  const compactionStore = folderStore(lakeDir);
  let compacting = Promise.resolve();
  const compact = () => {
    compacting = exclusive(() =>
      compactLake(
        compactionStore,
        {
          days: compactionDays(Date.now()),
          now: Date.now(),
          limits: { minAgeMs: options.compaction?.minAgeMs ?? MIN_AGE_MS },
        },
        { skipped: (key, reason) => log?.(`compaction left ${key} in place: ${reason}`) },
      ),
    )
      .then(() => undefined)
      .catch((error: Error) => log?.(`compaction failed: ${error.message}`));
  };
  const compactionTimer = setInterval(compact, options.compaction?.everyMs ?? 10 * 60_000);
  compactionTimer.unref();
  // The tables as Parquet for the CLI, which cannot open the file while this holds it.
  const snapshots = startSnapshots({
    connect: () => database.connect(),
    dir: snapshotDir,
    everyMs: options.snapshotEveryMs ?? 5000,
    log,
  });
  let closing: Promise<void> | undefined;
  return {
    mqttPort: broker.port,
    httpPort: http.port,
    dataDir,
    lakeDir,
    databaseFile,
    deadLetterFile,
    keys,
    keysFile: localKeysFile,
    queue,
    registry: reads,
    checkOffline,
    health,
    async query(sql) {
      // Its own connection: ingest writes go on while a query runs.
      const reader = await database.connect();
      try {
        await createLakeViews(reader, lakeDir);
        return await runQuery(reader, sql);
      } finally {
        reader.closeSync();
      }
    },
    close() {
      closing ??= (async () => {
        clearInterval(offlineTimer);
        clearInterval(compactionTimer);
        events.close();
        await Promise.all([started.broker.close(), started.http.close()]);
        await checking;
        await compacting;
        await queue.drain();
        await queue.close();
        await snapshots.close();
        connection.closeSync();
        database.closeSync();
        await decoders.close();
      })();
      return closing;
    },
  };
}

async function openDatabase(file: string): Promise<DuckDBInstance> {
  // Its blocks read before DuckDB locks the file (see verifyBlocks), checked once it is open.
  const blocks = verifyBlocks(file);
  let database: DuckDBInstance;
  try {
    database = await DuckDBInstance.create(file);
  } catch (error) {
    const message = (error as Error).message;
    // Not /lock/: DuckDB's words for a damaged block say "block".
    if (isLockError(message)) {
      throw new StartupError(
        `${file} is open in another process (an earlier \`npm start\`?). Stop it, or pass --data <dir> to use another folder.`,
      );
    }
    throw openFailure(file, error);
  }
  // A damaged file stops the start, rather than failing batch after batch.
  await checkDatabase(database, file, blocks);
  return database;
}

export { TIME_SERIES_TABLE };
