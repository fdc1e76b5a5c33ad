/**
 * `iot-pipeline devices add <id>` and `devices remove <id>` as a user types them: the
 * password printed once and never stored, the file readable by its owner only.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args]);
const fails = (...args: string[]) =>
  cli(...args).then(
    () => {
      throw new Error(`${args.join(' ')} succeeded`);
    },
    (error: { code: number; stdout: string; stderr: string }) => error,
  );

describe('iot-pipeline devices add / remove', () => {
  it('prints a new password once, keeps only its hash in a 0600 file, and removes it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-creds-'));
    const file = join(dataDir, 'device-credentials.json');
    const added = await cli('devices', 'add', 'dev-1', '--data', dataDir);
    const lines = added.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    const password = lines[0] ?? '';
    expect(password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(added.stderr).toContain('shown this once');
    expect(added.stderr).toContain('-i dev-1 -u dev-1 -P <password>');
    expect(added.stderr).not.toContain(password);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const stored = await readFile(file, 'utf8');
    expect(stored).not.toContain(password);
    expect(JSON.parse(stored)).toMatchObject({
      version: 1,
      devices: { 'dev-1': { hash: `sha256:${createHash('sha256').update(password).digest('base64url')}` } },
    });

    const json = await cli('devices', 'add', 'dev-2', '--data', dataDir, '--json');
    const document = JSON.parse(json.stdout) as { deviceId: string; password: string };
    expect(Object.keys(document)).toEqual(['deviceId', 'password']);
    expect(document.deviceId).toBe('dev-2');
    expect(document.password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(document.password).not.toBe(password);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const again = await fails('devices', 'add', 'dev-1', '--data', dataDir);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toContain('remove them first with iot-pipeline devices remove dev-1');

    const removed = await cli('devices', 'remove', 'dev-1', '--data', dataDir);
    expect(removed.stderr).toContain('removed dev-1');
    const left = JSON.parse(await readFile(file, 'utf8')) as { devices: Record<string, unknown> };
    expect(Object.keys(left.devices)).toEqual(['dev-2']);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    // Written through a temporary file and renamed: none is left behind.
    expect(await readdir(dataDir)).toEqual(['device-credentials.json']);

    const gone = await fails('devices', 'remove', 'dev-1', '--data', dataDir);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('dev-1 has no credentials');
  });

  it('refuses an id that is no device id, and a missing one, as usage mistakes (exit 2)', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-creds-'));
    const bad = await fails('devices', 'add', 'dev/1', '--data', dataDir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('device id "dev/1" must match');
    const missing = await fails('devices', 'remove', '--data', dataDir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('devices remove needs a device id');
    expect(await readdir(dataDir)).toEqual([]);
  });
});
