/**
 * `lake.compaction_*`: a day of 1,000 devices at one message a minute written as the
 * ingest path writes it at a 20 s batching window (180 `readings/` objects an hour),
 * then a count per metric of that day in DuckDB, before and after the intraday compaction
 * (`lambdas/core/lake/compaction.ts`): objects opened, bytes read, time, and what Athena
 * would bill for the bytes (10 MB minimum); and the compaction's own time per stored MB.
 *
 * `lake.parquet_vs_raw`: bytes an Athena scan of one day's daily-aggregate query reads
 * from the curated Parquet (the columns it uses, from the files the daily job writes
 * with DuckDB) versus the readings NDJSON.gz of the same day (gzip is read whole), for
 * 1,000 devices at one reading a minute (temperature and battery). `lake.query_cost`:
 * what that query costs at Athena's price on each. Target: Parquet under a fifth of raw.
 */
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DuckDBInstance } from '@duckdb/node-api';
import { athenaCost, runDailyJob } from '../lambdas/core/analytics/daily.ts';
import { compactLake } from '../lambdas/core/lake/compaction.ts';
import { readingsKey } from '../lambdas/core/lake/layout.ts';
import { type Reading, toNdjsonRows } from '../lambdas/core/reading.ts';
import { createLakeViews, duckdbEngine } from '../local/adapters/duckdb.ts';
import { folderStore } from '../local/adapters/folder-store.ts';
import { PRICES_FILE } from '../tools/cost/report.ts';
import { type BenchResult, figure } from './types.ts';

const DEVICES = 1000;
const DAY = '2026-11-24';
const prices = JSON.parse(readFileSync(PRICES_FILE, 'utf8')) as {
  athena: { perTbScanned: number; minimumBytesPerQuery: number };
};

export async function run(): Promise<BenchResult[]> {
  return [...(await compaction()), ...(await parquetVsRaw())];
}

/** A reading of device `d` at minute `m` of the day, as the simulator sends them. */
function reading(start: number, d: number, minuteOfDay: number): Reading {
  const time = start + minuteOfDay * 60_000 + (d % 60) * 1000;
  return {
    deviceId: `dev-${String(d).padStart(4, '0')}`,
    deviceType: 'thermo',
    time,
    receivedAt: time + 250,
    source: 'mqtt',
    messageId: `${d}-${minuteOfDay}-0b7c6a1e-9f2d-4d6e-8a8b-3c5e2f1a9d${String(d % 100).padStart(2, '0')}`,
    metrics: {
      temp: Math.round((20 + 5 * Math.sin(minuteOfDay / 229 + d)) * 100) / 100,
      battery: Math.round((3.6 - minuteOfDay * 0.00002 - d * 0.0001) * 1000) / 1000,
    },
    key: `ts:${time}`,
  };
}

async function compaction(): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-compaction-'));
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const lakeDir = join(dir, 'lake');
    const lake = folderStore(lakeDir);
    const start = Date.parse(`${DAY}T00:00:00Z`);
    // A 20 s window: each batch holds the devices whose minute's message falls in it.
    const windowSeconds = 20;
    let batch = 0;
    for (let minute = 0; minute < 24 * 60; minute++) {
      for (let w = 0; w < 60 / windowSeconds; w++) {
        const lines: string[] = [];
        for (let d = 0; d < DEVICES; d++) {
          if (Math.floor((d % 60) / windowSeconds) !== w) continue;
          lines.push(...toNdjsonRows(reading(start, d, minute)));
        }
        const body = gzipSync(`${lines.join('\n')}\n`);
        await lake.put(
          readingsKey(start + minute * 60_000, `b${batch++}`),
          body,
          'application/x-ndjson',
          'gzip',
        );
      }
    }
    await createLakeViews(connection, lakeDir);
    const measure = async () => {
      const objects = await lake.listObjects(`readings/dt=${DAY}/`);
      const times: number[] = [];
      let counts = '';
      for (let i = 0; i < 3; i++) {
        const began = performance.now();
        const reader = await connection.runAndReadAll(
          `SELECT metric, count(*)::INTEGER AS n FROM readings WHERE dt = '${DAY}' GROUP BY metric ORDER BY metric`,
        );
        times.push(performance.now() - began);
        counts = JSON.stringify(reader.getRowObjectsJson());
      }
      // gzip NDJSON is read whole: Athena scans every byte of every object it opens.
      const bytes = objects.reduce((sum, o) => sum + o.size, 0);
      return { objects: objects.length, bytes, ms: times.sort((a, b) => a - b)[1] ?? 0, counts };
    };
    const before = await measure();
    const began = performance.now();
    const result = await compactLake(lake, { days: [DAY], now: Date.now(), limits: { minAgeMs: 0 } });
    const compactMs = performance.now() - began;
    const after = await measure();
    if (after.counts !== before.counts)
      throw new Error(`compaction changed the counts: ${before.counts} -> ${after.counts}`);
    const msPerMb = compactMs / (result.bytesRead / 1024 ** 2);
    console.log(
      `lake.compaction: ${before.objects} -> ${after.objects} objects, ${result.rowsRead} rows, ${(result.bytesRead / 1024 ** 2).toFixed(1)} MB read in ${Math.round(compactMs)} ms (${msPerMb.toFixed(0)} ms per stored MB)`,
    );
    return [
      figure(
        'lake.compaction_objects',
        after.objects,
        "objects in a day's readings/",
        before.objects,
        '<= 100 objects',
        after.objects <= 100,
      ),
      figure(
        'lake.compaction_bytes',
        after.bytes,
        'bytes scanned (count per metric of the day)',
        before.bytes,
        'none (about the same bytes)',
        true,
      ),
      figure(
        'lake.compaction_query_ms',
        after.ms,
        'ms, DuckDB count per metric of the day',
        before.ms,
        '< 1',
        after.ms < before.ms,
      ),
      figure(
        'lake.compaction_athena_cost',
        athenaCost(after.bytes),
        '$ per query of the day (Athena, 10 MB minimum)',
        athenaCost(before.bytes),
        'none (from the bytes)',
        true,
      ),
      figure(
        'lake.compaction_run_ms_per_mb',
        msPerMb,
        'ms per stored MB merged (one core)',
        1,
        'none (feeds COMPACTION_MS_PER_STORED_MB)',
        true,
      ),
    ];
  } finally {
    connection.closeSync();
    instance.closeSync();
    await rm(dir, { recursive: true, force: true });
  }
}

async function parquetVsRaw(): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-lake-'));
  try {
    const lakeDir = join(dir, 'lake');
    const lake = folderStore(lakeDir);
    const start = Date.parse(`${DAY}T00:00:00Z`);
    let rawBytes = 0;
    // As the ingest path writes them: per hour, gzip NDJSON objects of about 100 messages' readings.
    for (let hour = 0; hour < 24; hour++) {
      let lines: string[] = [];
      let part = 0;
      const flush = async () => {
        const body = gzipSync(`${lines.join('\n')}\n`);
        rawBytes += body.length;
        await lake.put(
          readingsKey(start + hour * 3_600_000, `h${hour}-p${part++}`),
          body,
          'application/x-ndjson',
          'gzip',
        );
        lines = [];
      };
      for (let minute = 0; minute < 60; minute++) {
        const time = start + hour * 3_600_000 + minute * 60_000;
        for (let d = 0; d < DEVICES; d++) {
          const reading: Reading = {
            deviceId: `dev-${String(d).padStart(4, '0')}`,
            deviceType: 'thermo',
            time: time + (d % 60) * 1000,
            receivedAt: time + (d % 60) * 1000 + 250,
            source: 'mqtt',
            messageId: `${d}-${hour}-${minute}-0b7c6a1e-9f2d-4d6e-8a8b-3c5e2f1a9d${String(d % 100).padStart(2, '0')}`,
            metrics: {
              temp: Math.round((20 + 5 * Math.sin((hour * 60 + minute) / 229 + d)) * 100) / 100,
              battery: Math.round((3.6 - (hour * 60 + minute) * 0.00002 - d * 0.0001) * 1000) / 1000,
            },
            key: `ts:${time}`,
          };
          lines.push(...toNdjsonRows(reading));
        }
        if (lines.length >= 2 * 100 * 60) await flush();
      }
      if (lines.length > 0) await flush();
    }
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      await runDailyJob(DAY, {
        engine: await duckdbEngine(connection, lakeDir),
        lake,
        bucket: 'lake',
      });
      const file = join(lakeDir, 'curated', 'readings', `dt=${DAY}`, 'data.parquet');
      // Athena reads only the column chunks a query needs: the aggregate uses these four.
      const reader = await connection.runAndReadAll(
        `SELECT sum(total_compressed_size)::BIGINT AS bytes FROM parquet_metadata('${file}') WHERE path_in_schema IN ('device_id', 'metric', 'value', 'time')`,
      );
      const parquetBytes = Number(reader.getRowObjectsJson()[0]?.bytes ?? statSync(file).size);
      const cost = (bytes: number) =>
        (Math.max(bytes, prices.athena.minimumBytesPerQuery) / 1024 ** 4) * prices.athena.perTbScanned;
      const ratio = parquetBytes / rawBytes;
      return [
        {
          name: 'lake.parquet_vs_raw',
          value: parquetBytes,
          unit: 'bytes scanned',
          baseline: rawBytes,
          ratio,
          target: '<= 0.2',
          met: ratio <= 0.2,
        },
        {
          name: 'lake.query_cost',
          value: cost(parquetBytes),
          unit: '$ per daily-aggregate query',
          baseline: cost(rawBytes),
          ratio: cost(parquetBytes) / cost(rawBytes),
          target: 'none (from the figure above)',
          met: true,
        },
      ];
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
