/**
 * A damaged DuckDB file stops the start with what is wrong and what to do; `start
 * --repair` (repairDatabase) rebuilds it from the lake: the same timeseries rows, the same
 * device records, the claims of the network resends; then the runtime starts and ingests.
 */
import { execFile } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import type { DeviceRecord } from '../../lambdas/core/estate/alerts.ts';
import { type PipelineConfig, validateConfig } from '../../lib/config.ts';
import { verifyBlocks } from '../../local/database-check.ts';
import { StartupError } from '../../local/listen.ts';
import { repairDatabase } from '../../local/repair.ts';
import { type LocalRuntime, startLocalRuntime } from '../../local/runtime.ts';

const API_KEY = 'test-key-0123456789';
const WAIT = { timeout: 15_000, interval: 50 };
const BLOCK_START = 3 * 4096;
const BLOCK_SIZE = 262_144;

const config: PipelineConfig = validateConfig({
  deviceTypes: { tracker: { decoder: { sigfox: 'temp::int:16*0.01 battery::uint:8*0.02 moving::bool:7' } } },
  alertRules: [
    { name: 'hot', metric: 'temp', comparison: '>', threshold: 30, hysteresis: 1, severity: 'critical' },
    { name: 'warm', metric: 'temp', comparison: '>', threshold: 25, for: '1h', severity: 'info' },
  ],
});

const start = (dataDir: string) =>
  startLocalRuntime({
    dataDir,
    mqttPort: 0,
    httpPort: 0,
    apiKey: API_KEY,
    config,
    queue: { batchWindowMs: 20, retryDelayMs: 20 },
  });

const send = (rt: LocalRuntime, path: string, body: unknown) =>
  fetch(`http://127.0.0.1:${rt.httpPort}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

/** What the file holds, to compare after the repair: rows in key order, records without their write count. */
async function contents(rt: LocalRuntime) {
  const series = await rt.query(
    'SELECT device_id, device_type, source, epoch_ms(time) AS t, metric, value, value_str, value_bool FROM timeseries ORDER BY device_id, time, metric',
  );
  const claims = await rt.query('SELECT pk, message_id FROM claims ORDER BY pk');
  const devices = (await rt.registry.list()).map(({ version, ...record }: DeviceRecord) => record);
  return { series: series.rows, claims: claims.rows, devices };
}

/** A data folder with readings of HTTP devices (alerts raised and pending) and Sigfox frames sent twice. */
async function filledDataFolder() {
  const dataDir = await mkdtemp(join(tmpdir(), 'iot-repair-'));
  const rt = await start(dataDir);
  try {
    const t0 = Date.now() - 600_000;
    let sent = 0;
    for (let d = 0; d < 6; d++) {
      // 50 messages of 10 readings per device: 3,000 readings, 9,000 rows.
      for (let m = 0; m < 50; m++) {
        const readings = Array.from({ length: 10 }, (_, i) => {
          const n = m * 10 + i;
          return {
            $id: `pump-${d}`,
            $ts: t0 + n * 100 + d,
            temp: 20 + d * 2 + (n % 7) / 10,
            state: n % 2 === 0 ? 'on' : 'off',
            door: n % 3 === 0,
          };
        });
        expect((await send(rt, '/v1/telemetry', readings)).status).toBe(202);
        sent++;
      }
    }
    // Sigfox frames, each resent by the network: claimed once.
    const uplink = JSON.parse(
      readFileSync(new URL('../fixtures/sigfox-uplink.json', import.meta.url), 'utf8'),
    );
    const time = Math.floor(Date.now() / 1000) - 60;
    for (const seqNumber of [10, 11, 12]) {
      const frame = { ...uplink, time: time + seqNumber, seqNumber };
      for (const duplicate of [false, true]) {
        expect((await send(rt, '/v1/sigfox?type=tracker', { ...frame, duplicate })).status).toBe(204);
        sent++;
      }
    }
    await vi.waitFor(() => expect(rt.queue.stats()).toMatchObject({ done: sent, pending: 0 }), WAIT);
    return { dataDir, before: await contents(rt) };
  } finally {
    await rt.close();
  }
}

/** Overwrites `length` bytes at `at` with garbage that is not zeros. */
function scribble(file: string, at: number, length = 4096): void {
  const fd = openSync(file, 'r+');
  try {
    const garbage = Buffer.alloc(length);
    for (let i = 0; i < length; i++) garbage[i] = (i * 7919 + 13) % 251 || 1;
    writeSync(fd, garbage, 0, length, at);
  } finally {
    closeSync(fd);
  }
}

/** `iot-pipeline start` in a child process, on free ports. */
function startChild(dataDir: string, ...args: string[]) {
  const child = execFile(
    process.execPath,
    [
      '--import',
      'tsx',
      'cli/main.ts',
      'start',
      '--data',
      dataDir,
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      ...args,
    ],
    { env: { ...process.env, IOT_PIPELINE_API_KEY: API_KEY } },
  );
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk) => {
    out += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    err += chunk;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    out: () => out,
    /** What it printed on both streams, and how it exited: what a failed expectation shows. */
    all: async () => `${out}\n--- stderr ---\n${err}\n--- exit ---\n${JSON.stringify(await exited)}`,
    async stop() {
      child.kill('SIGINT');
      await exited;
    },
  };
}

const DAMAGED = (file: string) =>
  new RegExp(
    `^the DuckDB file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged \\(.+\\): run iot-pipeline start --repair to rebuild it from the lake \\(the lake is the source of truth\\)$`,
  );

describe('a damaged DuckDB file', () => {
  it('stops the start, whichever block is damaged; --repair rebuilds it as it was; the next start ingests', async () => {
    const { dataDir, before } = await filledDataFolder();
    const file = join(dataDir, 'pipeline.duckdb');
    expect(before.series.length).toBeGreaterThan(9000);
    expect(before.claims).toHaveLength(3);
    expect(before.devices.map((d) => [d.deviceId, Object.keys(d.alerts).sort()])).toEqual([
      ['1A2B3C', []],
      ['pump-0', []],
      ['pump-1', []],
      ['pump-2', []],
      ['pump-3', ['warm']],
      ['pump-4', ['warm']],
      ['pump-5', ['hot', 'warm']],
    ]);
    const whole = join(dataDir, 'whole.duckdb');
    copyFileSync(file, whole);

    // Garbage in any block (data, index or metadata) stops the start, with DuckDB's words or the checksum's.
    const blocks = (statSync(whole).size - BLOCK_START) / BLOCK_SIZE;
    expect(blocks).toBeGreaterThan(2);
    for (let block = 0; block < blocks; block++) {
      copyFileSync(whole, file);
      scribble(file, BLOCK_START + block * BLOCK_SIZE + 100_000);
      const failed = await start(dataDir).then(
        async (rt) => {
          await rt.close();
          return undefined;
        },
        (error: Error) => error,
      );
      expect(failed, `garbage in block ${block}`).toBeInstanceOf(StartupError);
      expect(failed?.message).toMatch(DAMAGED(file));
    }
    // A file cut short, mid-block or at a block's end.
    for (const size of [BLOCK_START + 1.5 * BLOCK_SIZE, BLOCK_START + (blocks - 1) * BLOCK_SIZE]) {
      copyFileSync(whole, file);
      truncateSync(file, size);
      await expect(start(dataDir)).rejects.toThrow(DAMAGED(file));
    }

    const lines: string[] = [];
    const report = await repairDatabase(dataDir, config, (line) => lines.push(line));
    expect(report).toMatchObject({
      databaseFile: file,
      damage: expect.stringMatching(/could not read enough bytes|cut short/i),
      movedAside: [expect.stringMatching(/pipeline\.duckdb\.damaged-\d{4}-\d\d-\d\dT[\d-]+\.\d{3}Z$/)],
      rows: before.series.length,
      devices: before.devices.length,
      alerts: { raised: 1, pending: 3 },
      claims: 3,
    });
    expect(existsSync(report.movedAside[0] as string)).toBe(true);
    expect(lines.join('\n')).toMatch(
      new RegExp(
        `repair: rebuilt .*pipeline\\.duckdb in \\d+\\.\\d s: ${before.series.length} timeseries rows, 7 devices \\(alerts: 1 raised, 3 pending; none sent again\\), 3 claims`,
      ),
    );
    expect(verifyBlocks(file)).toEqual({ zeroBlocks: 0 });

    // A second start is healthy: what was there before, and new readings go in.
    const rt = await start(dataDir);
    try {
      const after = await contents(rt);
      expect(after.series).toEqual(before.series);
      expect(after.devices).toEqual(before.devices);
      expect(after.claims).toEqual(before.claims);
      expect((await send(rt, '/v1/telemetry', [{ $id: 'pump-0', temp: 31 }])).status).toBe(202);
      await vi.waitFor(() => expect(rt.queue.stats()).toMatchObject({ done: 1, pending: 0 }), WAIT);
      expect(rt.queue.stats().deadLettered).toBe(0);
      const pump = (await rt.registry.get(['pump-0'])).get('pump-0');
      expect(pump?.alerts.hot?.state).toBe('raised');
      expect(pump?.version).toBe(2);
    } finally {
      await rt.close();
    }
  }, 120_000);

  it('rebuilds a whole file too (after an edit of the lake), keeping the old one aside; refuses while a runtime holds it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-repair-'));
    const rt = await start(dataDir);
    try {
      expect((await send(rt, '/v1/telemetry', [{ $id: 'pump-9', temp: 1 }])).status).toBe(202);
      await vi.waitFor(() => expect(rt.queue.stats()).toMatchObject({ done: 1 }), WAIT);
    } finally {
      await rt.close();
    }
    // A runtime in another process (DuckDB's lock is per process): the repair leaves it alone.
    const child = startChild(dataDir);
    try {
      await vi.waitFor(() => expect(child.out()).toContain('Ctrl-C stores what is queued'), {
        timeout: 30_000,
      });
      await expect(repairDatabase(dataDir, config, () => undefined)).rejects.toThrow(
        /pipeline\.duckdb is open in another process \(a running `npm start`\?\): stop it, then repair/,
      );
    } finally {
      await child.stop();
    }
    const lines: string[] = [];
    const report = await repairDatabase(dataDir, config, (line) => lines.push(line));
    expect(report.damage).toBeUndefined();
    expect(report.movedAside).toEqual([expect.stringMatching(/pipeline\.duckdb\.replaced-/)]);
    expect(report).toMatchObject({ rows: 1, devices: 1, claims: 0 });
    expect(lines[0]).toMatch(/pipeline\.duckdb is whole: rebuilding it from .*lake all the same$/);
    expect(readdirSync(dataDir).filter((f) => f.startsWith('pipeline.duckdb'))).toHaveLength(2);
  }, 60_000);

  it('is repaired by iot-pipeline start --repair, which then starts', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-repair-cli-'));
    const rt = await start(dataDir);
    try {
      expect((await send(rt, '/v1/telemetry', [{ $id: 'pump-1', temp: 1 }])).status).toBe(202);
      await vi.waitFor(() => expect(rt.queue.stats()).toMatchObject({ done: 1 }), WAIT);
    } finally {
      await rt.close();
    }
    const file = join(dataDir, 'pipeline.duckdb');
    truncateSync(file, statSync(file).size - BLOCK_SIZE / 2);
    const cli = (...args: string[]) =>
      promisify(execFile)(
        process.execPath,
        [
          '--import',
          'tsx',
          'cli/main.ts',
          'start',
          '--data',
          dataDir,
          '--mqtt-port',
          '0',
          '--http-port',
          '0',
          ...args,
        ],
        { env: { ...process.env, IOT_PIPELINE_API_KEY: API_KEY } },
      );
    await expect(cli()).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(
        /^iot-pipeline: the DuckDB file .* is damaged \(.*\): run iot-pipeline start --repair/,
      ),
    });
    // With --repair it rebuilds, then runs until stopped.
    const child = startChild(dataDir, '--repair');
    try {
      await vi.waitFor(() => expect(child.out()).toContain('Ctrl-C stores what is queued'), {
        timeout: 30_000,
      });
    } finally {
      await child.stop();
    }
    const out = child.out();
    expect(out).toMatch(/repair: .*pipeline\.duckdb is damaged \(/);
    expect(out).toMatch(/repair: rebuilt .* 1 timeseries rows, 1 devices/);
    // What the CLI printed, should the snapshot be missing.
    const info = join(dataDir, 'snapshot', 'snapshot.json');
    expect(existsSync(info), await child.all()).toBe(true);
    expect(readFileSync(info, 'utf8')).toMatch(/"timeseries":1\b/);
  }, 60_000);
});
