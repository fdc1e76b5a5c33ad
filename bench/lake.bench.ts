/**
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
import { runDailyJob } from '../lambdas/core/analytics/daily.ts';
import { readingsKey } from '../lambdas/core/lake/layout.ts';
import { type Reading, toNdjsonRows } from '../lambdas/core/reading.ts';
import { duckdbEngine } from '../local/adapters/duckdb.ts';
import { folderStore } from '../local/adapters/folder-store.ts';
import { PRICES_FILE } from '../tools/cost/report.ts';
import type { BenchResult } from './types.ts';

const DEVICES = 1000;
const DAY = '2026-11-24';
const prices = JSON.parse(readFileSync(PRICES_FILE, 'utf8')) as {
  athena: { perTbScanned: number; minimumBytesPerQuery: number };
};

export async function run(): Promise<BenchResult[]> {
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
