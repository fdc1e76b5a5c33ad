/**
 * `devices` and `query` read the runtime's own tables (`timeseries`, `devices`, `claims`)
 * whether or not it runs: from the DuckDB file, read only, when it is stopped; from its
 * snapshot while it holds the file (DuckDB lets no other process open it, even read only).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { type LocalRuntime, startLocalRuntime } from '../../local/runtime.ts';

const run = promisify(execFile);
const cli = (...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
    env: { ...process.env, IOT_PIPELINE_API_KEY: 'k' },
  });
const WAIT = { timeout: 15_000, interval: 50 };
/** A port nothing answers on: the CLI falls back to the data folder. */
const NO_RUNTIME = ['--http-port', '9'];

const start = (dataDir: string) =>
  startLocalRuntime({
    dataDir,
    mqttPort: 0,
    httpPort: 0,
    apiKey: 'k',
    snapshotEveryMs: 100,
    queue: { batchWindowMs: 20, retryDelayMs: 20 },
  });

async function post(rt: LocalRuntime, readings: object[]) {
  const response = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/telemetry`, {
    method: 'POST',
    headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
    body: JSON.stringify(readings),
  });
  expect(response.status).toBe(202);
}

const readings = (device: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({
    $id: device,
    $ts: Date.now() - 60_000 + i,
    temp: 20 + i,
    ok: true,
  }));

describe('devices and query on the local data folder', () => {
  it('read the DuckDB file, every table, when the runtime is stopped, and change nothing in it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-tables-'));
    const rt = await start(dataDir);
    try {
      await post(rt, readings('pump-1', 3));
      await post(rt, readings('pump-2', 2));
      await vi.waitFor(() => expect(rt.queue.stats()).toMatchObject({ done: 2, pending: 0 }), WAIT);
    } finally {
      await rt.close();
    }
    const file = join(dataDir, 'pipeline.duckdb');
    const { size, mtimeMs } = statSync(file);

    const devices = await cli('devices', '--data', dataDir, ...NO_RUNTIME, '--json');
    expect(JSON.parse(devices.stdout).map((d: { deviceId: string }) => d.deviceId)).toEqual([
      'pump-1',
      'pump-2',
    ]);
    expect(devices.stderr).toBe('');
    const sql =
      'SELECT (SELECT count(*) FROM timeseries)::INT AS rows, (SELECT count(*) FROM devices)::INT AS devices, (SELECT count(*) FROM claims)::INT AS claims';
    const query = await cli('query', '--data', dataDir, '--json', sql);
    expect(JSON.parse(query.stdout)).toEqual([{ rows: 10, devices: 2, claims: 0 }]);
    expect(query.stderr).not.toContain('snapshot');
    const record = await cli(
      'query',
      '--data',
      dataDir,
      '--json',
      "SELECT record->>'$.lastValues.temp' AS temp FROM devices WHERE device_id = 'pump-1'",
    );
    expect(JSON.parse(record.stdout)).toEqual([{ temp: '22' }]);

    // Read only: nothing created, nothing written.
    expect(statSync(file)).toMatchObject({ size, mtimeMs });
    expect(existsSync(`${file}.wal`)).toBe(false);
  }, 60_000);

  it('read the running runtime’s snapshot, every table, refreshed as readings arrive; devices says so', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-tables-'));
    const rt = await start(dataDir);
    try {
      await post(rt, readings('pump-1', 4));
      await vi.waitFor(() => expect(rt.queue.stats()).toMatchObject({ done: 1, pending: 0 }), WAIT);
      const info = () => JSON.parse(readFileSync(join(dataDir, 'snapshot', 'snapshot.json'), 'utf8'));
      await vi.waitFor(() => expect(info().rows).toEqual({ timeseries: 8, devices: 1, claims: 0 }), WAIT);

      // The runtime holds the file: no other process may open it, so query reads the snapshot.
      const count = await cli('query', '--data', dataDir, '--csv', 'SELECT count(*) AS n FROM timeseries');
      expect(count.stdout).toBe('n\r\n8\r\n');
      expect(count.stderr).toMatch(
        /^\(timeseries, devices, claims: the running runtime's snapshot, current as of \d{4}-\d\d-\d\dT[\d:.]+Z \(\d+ s ago; checked every 0\.1 s\)\)\n/,
      );
      const lake = await cli('query', '--data', dataDir, '--csv', 'SELECT count(*) AS n FROM readings');
      expect(lake.stdout).toBe('n\r\n8\r\n');
      expect(lake.stderr).not.toContain('snapshot');

      // New readings reach the snapshot within its interval.
      await post(rt, readings('pump-2', 1));
      await vi.waitFor(async () => {
        const tables = await cli(
          'query',
          '--data',
          dataDir,
          '--json',
          'SELECT (SELECT count(*) FROM timeseries)::INT AS rows, (SELECT count(*) FROM devices)::INT AS devices, (SELECT count(*) FROM claims)::INT AS claims',
        );
        expect(JSON.parse(tables.stdout)).toEqual([{ rows: 10, devices: 2, claims: 0 }]);
      }, WAIT);

      // devices: live from the HTTP API; from the snapshot, with a note, when its port is not given.
      const live = await cli('devices', '--data', dataDir, '--http-port', String(rt.httpPort), '--json');
      expect(JSON.parse(live.stdout).map((d: { deviceId: string }) => d.deviceId)).toEqual([
        'pump-1',
        'pump-2',
      ]);
      const snapshot = await cli('devices', '--data', dataDir, ...NO_RUNTIME, '--json');
      expect(JSON.parse(snapshot.stdout)).toEqual(JSON.parse(live.stdout));
      expect(snapshot.stderr).toMatch(
        /^devices: http:\/\/127\.0\.0\.1:9 did not answer \(.+\), but a runtime holds .*pipeline\.duckdb: listing its snapshot, current as of .+ \(\d+ s ago\); pass its --http-port for the live list\n$/,
      );
    } finally {
      await rt.close();
    }
    // Stopped: the file again, as the snapshot left it.
    const after = await cli('query', '--data', dataDir, '--csv', 'SELECT count(*) AS n FROM timeseries');
    expect(after.stdout).toBe('n\r\n10\r\n');
    expect(after.stderr).not.toContain('snapshot');
  }, 60_000);

  it('say why the runtime’s tables cannot be read', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-tables-'));
    await expect(cli('query', '--data', dataDir, 'SELECT count(*) FROM timeseries')).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(
        /Table with name timeseries does not exist.* \(timeseries: .*pipeline\.duckdb does not exist yet: iot-pipeline start makes it\)/s,
      ),
    });
  }, 30_000);
});
