/**
 * The README quickstart as a user types it, minus the fixed ports: `start` (here in
 * process, on free ports), `simulate` and `query` as child processes of the real CLI.
 */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { startLocalRuntime } from '../../local/runtime.ts';

const run = promisify(execFile);
const cli = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'bin/cli.ts', ...args], {
    env: { ...process.env, IOT_PIPELINE_API_KEY: 'k' },
  });

describe('iot-pipeline CLI', () => {
  it('simulates a fleet into the local runtime, then queries what it stored', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-cli-'));
    const rt = await startLocalRuntime({ dataDir, mqttPort: 0, httpPort: 0, apiKey: 'k' });
    try {
      const sim = await cli([
        'simulate',
        '--devices',
        '3',
        '--count',
        '12',
        '--rate',
        '100/s',
        '--silent',
        '0',
        '--mqtt-url',
        `mqtt://127.0.0.1:${rt.mqttPort}`,
        '--json',
      ]);
      expect(JSON.parse(sim.stdout)).toMatchObject({ sent: 12, failed: 0, devices: 3 });
      expect(sim.stderr).toMatch(/simulate: 12 sent, 0 failed/);
      await vi.waitFor(() => expect(rt.queue.stats()).toMatchObject({ done: 12, pending: 0 }), {
        timeout: 10_000,
      });
    } finally {
      await rt.close();
    }
    const sql =
      "SELECT device_id, count(DISTINCT time) AS readings FROM readings WHERE metric = 'temp' GROUP BY ALL ORDER BY 1";
    const json = await cli(['query', '--data', dataDir, '--json', sql]);
    expect(JSON.parse(json.stdout)).toEqual([
      { device_id: 'sim-0001', readings: '4' },
      { device_id: 'sim-0002', readings: '4' },
      { device_id: 'sim-0003', readings: '4' },
    ]);
    const table = await cli(['query', '--data', dataDir, sql]);
    expect(table.stdout.split('\n').slice(0, 3)).toEqual([
      'device_id | readings',
      '----------+---------',
      'sim-0001  | 4',
    ]);
    // The time-series table is readable once the runtime has stopped.
    const series = await cli(['query', '--data', dataDir, '--csv', 'SELECT count(*) AS n FROM timeseries']);
    expect(series.stdout).toBe('n\r\n36\r\n');
  });

  it('says what to fix, with exit code 2, for a bad call', async () => {
    await expect(cli(['simulate', '--rate', 'fast'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--rate "fast" is not a rate; write e.g. 10/s'),
    });
    await expect(cli(['query', '--data', '/nonexistent', 'SELEC 1'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('The query failed'),
    });
    await expect(cli(['launch'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('Unknown command "launch"'),
    });
  });
});
