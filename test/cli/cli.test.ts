/**
 * The README quickstart as a user types it, minus the fixed ports: `start` (here in
 * process, on free ports), `simulate` and `query` as child processes of the real CLI.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { startLocalRuntime } from '../../local/runtime.ts';

const run = promisify(execFile);
const cli = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
    env: { ...process.env, IOT_PIPELINE_API_KEY: 'k' },
  });

describe('iot-pipeline CLI', () => {
  it('starts the runtime, prints its ingest and read keys as export lines kept for the other commands, and stops cleanly on Ctrl-C', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-start-'));
    const env = { ...process.env };
    delete env.IOT_PIPELINE_API_KEY;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'cli/main.ts', 'start', '--data', dataDir, '--mqtt-port', '0', '--http-port', '0'],
      {
        env,
      },
    );
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    await vi.waitFor(() => expect(out).toContain('Ctrl-C stores what is queued and stops.'), {
      timeout: 20_000,
    });
    const httpPort = /HTTP\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1];
    expect(out).toMatch(/keys {5}made ingest and read, kept in .*local-keys\.env/);
    expect(out).toMatch(/^export IOT_PIPELINE_INGEST_KEY=iotp_[0-9a-f]{16}_\S{43}$/m);
    expect(out).toMatch(/^export IOT_PIPELINE_READ_KEY=iotp_[0-9a-f]{16}_\S{43}$/m);
    expect((await stat(join(dataDir, 'local-keys.env'))).mode & 0o777).toBe(0o600);
    const listed = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'cli/main.ts',
        'devices',
        '--data',
        dataDir,
        '--http-port',
        String(httpPort),
        '--json',
      ],
      { env },
    );
    expect(JSON.parse(listed.stdout)).toEqual([]);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    expect(out).toContain('iot-pipeline: stopped. 0 messages done, 0 dead-lettered.');
  });

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
    // The daily job on the local lake, then its aggregates.
    const today = new Date().toISOString().slice(0, 10);
    const job = await cli(['daily', '--day', today, '--data', dataDir]);
    expect(job.stderr).toContain(`daily: ${today} done`);
    const metrics = await cli([
      'query',
      '--data',
      dataDir,
      '--json',
      "SELECT count(*)::INT AS n FROM daily_metrics WHERE metric = 'temp'",
    ]);
    expect(JSON.parse(metrics.stdout)).toEqual([{ n: 3 }]);
    // The time-series table is readable once the runtime has stopped.
    const series = await cli(['query', '--data', dataDir, '--csv', 'SELECT count(*) AS n FROM timeseries']);
    expect(series.stdout).toBe('n\r\n36\r\n');
  });

  it('simulates Sigfox callbacks and The Things Stack uplinks over HTTP', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-cli-'));
    const rt = await startLocalRuntime({ dataDir, mqttPort: 0, httpPort: 0, apiKey: 'k' });
    try {
      const common = [
        '--devices',
        '2',
        '--count',
        '6',
        '--rate',
        '50/s',
        '--silent',
        '0',
        '--http-url',
        `http://127.0.0.1:${rt.httpPort}`,
        '--json',
      ];
      const sigfox = await cli(['simulate', '--format', 'sigfox', '--type', 'sim-sigfox', ...common]);
      expect(JSON.parse(sigfox.stdout)).toMatchObject({ sent: 6, failed: 0 });
      const ttn = await cli(['simulate', '--format', 'ttn', '--type', 'sim-ttn', ...common]);
      expect(JSON.parse(ttn.stdout)).toMatchObject({ sent: 6, failed: 0 });
      await vi.waitFor(
        async () => {
          const { rows } = await rt.query(
            "SELECT source, device_type, count(*)::INT AS n FROM readings WHERE metric IN ('temp', 'temperature') GROUP BY ALL ORDER BY 1",
          );
          expect(rows).toEqual([
            { source: 'sigfox', device_type: 'sim-sigfox', n: 6 },
            { source: 'ttn', device_type: 'sim-ttn', n: 6 },
          ]);
        },
        { timeout: 10_000 },
      );
    } finally {
      await rt.close();
    }
  });

  it('decodes a payload with an inline grammar, a codec file or a configured device type', async () => {
    const sigfox = await cli([
      'decode',
      '--sigfox',
      'temp::int:16*0.01 hum::uint:8*0.5',
      '--hex',
      '09927b',
      '--json',
    ]);
    expect(sigfox.stdout).toBe('{"temp":24.5,"hum":61.5}\n');
    const codec = await cli([
      'decode',
      '--codec',
      'codecs/lht65.js',
      '--fport',
      '2',
      '--base64',
      'y/YJkgJlAf6/f/8=',
      '--json',
    ]);
    expect(JSON.parse(codec.stdout)).toEqual({
      battery: 3.062,
      temperature: 24.5,
      humidity: 61.3,
      batteryStatus: 'good',
      externalTemperature: -3.21,
    });
    const dir = await mkdtemp(join(tmpdir(), 'iot-cfg-'));
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ deviceTypes: { tracker: { decoder: { sigfox: 'n::uint:64' } } } }),
    );
    const typed = await cli([
      'decode',
      '--type',
      'tracker',
      '--config',
      join(dir, 'config.json'),
      '--hex',
      'ffffffffffffffff',
      '--json',
    ]);
    expect(typed.stdout).toBe('{"n":"18446744073709551615"}\n');
    expect(typed.stderr).toContain('kept as a decimal string');
  });

  it('hands a codec the --recv-time, and prints {} for a codec that found nothing to report', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'iot-codec-'));
    const file = join(dir, 'vendor.js');
    await writeFile(
      file,
      'function decodeUplink(input) { return input.bytes[0] === 0 ? { data: {} } : { data: { at: input.recvTime.toISOString() } }; }',
    );
    const decode = (hex: string, ...more: string[]) =>
      cli(['decode', '--codec', file, '--fport', '1', '--hex', hex, '--json', ...more]);
    expect((await decode('00')).stdout).toBe('{}\n');
    expect((await decode('01', '--recv-time', '2026-11-25T06:00:00Z')).stdout).toBe(
      '{"at":"2026-11-25T06:00:00.000Z"}\n',
    );
    await expect(decode('01', '--recv-time', 'yesterday')).rejects.toMatchObject({
      code: 2,
      stderr: 'iot-pipeline: --recv-time: "yesterday" is not an ISO-8601 time (2026-11-25T06:00:00Z)\n',
    });
  });

  it('says why a payload cannot be decoded, with exit code 1', async () => {
    await expect(cli(['decode', '--sigfox', 'a::uint:16', '--hex', '01'])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('frame has 1 bytes; the grammar reads 2 (truncated)'),
    });
    await expect(
      cli(['decode', '--codec', 'codecs/lht65.js', '--fport', '9', '--hex', '00']),
    ).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('unknown fPort 9'),
    });
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
    await expect(cli(['decode', '--sigfox', 'a::uint:8', '--hex', '0g'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('"g" at position 2 is not a hex digit'),
    });
    await expect(cli(['decode', '--sigfox', 'a::flt:8', '--hex', '00'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('column 4: found "flt", expected a type'),
    });
    await expect(cli(['query', '--workgroup', 'wg', 'SELECT 1'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--workgroup needs --database'),
    });
    await expect(
      cli(['provision', 'th-1', '--type', 'thermo', '--policy', 'my-policy', '--out', '/tmp/x']),
    ).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        'is not a pipeline device policy (iot_pipeline_<stage>_device): give --stage',
      ),
    });
    await expect(cli(['daily', '--day', '2026-13-01'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('is not a day'),
    });
    await expect(cli(['launch'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('Unknown command "launch"'),
    });
    await expect(
      cli(['decode', '--codec', 'codecs/lht65.js', '--fport', '300', '--hex', '00']),
    ).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--fport "300" must be a whole number from 0 to 255'),
    });
    await expect(cli(['simulate', '--devices', '2.5'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--devices "2.5" must be a whole number of at least 1'),
    });
  });
});
