/**
 * `iot-pipeline keys create|list|revoke --data` as a user types them, against a running
 * local runtime: the key printed once and never stored, scopes and devices enforced at
 * once, a revoked key refused on its next request, mistakes answered with one line.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalRuntime, startLocalRuntime } from '../../local/runtime.ts';

const run = promisify(execFile);
const env = { ...process.env };
delete env.IOT_PIPELINE_API_KEY;
const cli = (...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { env });
const fails = (...args: string[]) =>
  cli(...args).then(
    () => {
      throw new Error(`${args.join(' ')} succeeded`);
    },
    (error: { code: number; stdout: string; stderr: string }) => error,
  );

describe('iot-pipeline keys', () => {
  let dataDir: string;
  let rt: LocalRuntime;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'iot-keys-cli-'));
    rt = await startLocalRuntime({ dataDir, mqttPort: 0, httpPort: 0 });
  }, 60_000);
  afterAll(() => rt?.close());
  const post = (key: string, body: object) =>
    fetch(`http://127.0.0.1:${rt.httpPort}/v1/telemetry`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('creates a key printed once (stdout only), lists it without the key, and revokes it: the next request is refused', async () => {
    const made = await cli(
      'keys',
      'create',
      '--name',
      'site-north',
      '--scope',
      'ingest:telemetry',
      '--devices',
      'north-*',
      '--data',
      dataDir,
    );
    const key = made.stdout.trim();
    expect(key).toMatch(/^iotp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(made.stderr).toContain('shown this once');
    expect(made.stderr).not.toContain(key);
    const file = join(dataDir, 'keys.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).not.toContain(key);

    expect((await post(key, { $id: 'north-1', t: 1 })).status).toBe(202);
    const other = await post(key, { $id: 'south-1', t: 1 });
    expect(other.status).toBe(403);

    const listed = JSON.parse((await cli('keys', 'list', '--json', '--data', dataDir)).stdout) as {
      keys: { name: string; scopes: string[]; devices?: string[]; lastUsed: string | null }[];
    };
    expect(JSON.stringify(listed)).not.toContain(key);
    expect(listed.keys.map((k) => k.name).sort()).toEqual(['local-ingest', 'local-read', 'site-north']);
    const north = listed.keys.find((k) => k.name === 'site-north');
    expect(north).toMatchObject({
      scopes: ['ingest:telemetry'],
      devices: ['north-*'],
      lastUsed: expect.any(String),
    });
    const table = (await cli('keys', 'list', '--data', dataDir)).stdout;
    expect(table).toMatch(/site-north\s*\|\s*ingest:telemetry\s*\|\s*north-\*/);

    await cli('keys', 'revoke', 'site-north', '--data', dataDir);
    const refused = await post(key, { $id: 'north-1', t: 2 });
    expect(refused.status).toBe(401);
  }, 60_000);

  it('prints {"name","scopes","key"} with --json, and a made key works at once', async () => {
    const made = JSON.parse(
      (await cli('keys', 'create', '--name', 'script', '--scope', 'read,ingest', '--json', '--data', dataDir))
        .stdout,
    ) as { name: string; scopes: string[]; key: string };
    expect(Object.keys(made)).toEqual(['name', 'scopes', 'key']);
    expect(made).toMatchObject({ name: 'script', scopes: ['read', 'ingest'] });
    const devices = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/devices`, {
      headers: { 'x-api-key': made.key },
    });
    expect(devices.status).toBe(200);
  }, 60_000);

  it.each([
    [
      ['keys', 'create', '--name', 'x', '--scope', 'write'],
      /unknown scope "write": use read, ingest, ingest:telemetry, ingest:sigfox, ingest:ttn/,
    ],
    [['keys', 'create', '--name', 'bad name', '--scope', 'read'], /name "bad name" must match/],
    [['keys', 'create', '--scope', 'read'], /create needs --name/],
    [['keys', 'create', '--name', 'x', '--scope', 'read', '--devices', "a'b"], /device "a'b" must be an id/],
    [
      ['keys', 'create', '--name', 'local-read', '--scope', 'read'],
      /a key named "local-read" exists: revoke it first/,
    ],
    [['keys', 'revoke', 'nobody'], /no live key named "nobody"/],
    [['keys', 'rotate'], /unknown action "rotate"/],
  ])(
    '%j: one line that says what to fix',
    async (args, message) => {
      const failed = await fails(...args, '--data', dataDir);
      expect(failed.code).toBeGreaterThan(0);
      expect(failed.stderr).toMatch(message);
      expect(failed.stderr).not.toMatch(/\n\s+at /);
    },
    30_000,
  );
});
