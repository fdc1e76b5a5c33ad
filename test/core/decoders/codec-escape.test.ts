/**
 * The escape suite through the `decode` CLI, a child process as a user runs it: every
 * hostile codec of `test/fixtures/hostile-codecs.ts` decodes one message, and every
 * unloadable one is refused with its reason. The child holds a secret in its
 * environment; an escape would print it or write the escape file.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTILE_CODECS, harness, UNLOADABLE_CODECS } from '../../fixtures/hostile-codecs.ts';

const run = promisify(execFile);
const SECRET = 'marker-7f3a9c-not-for-codecs';

let dir: string;
let escapeFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'iot-escape-cli-'));
  escapeFile = join(dir, 'ESCAPED');
});

afterAll(() => {
  expect(existsSync(escapeFile)).toBe(false);
});

async function decode(name: string, body: string, timeoutMs?: number) {
  const file = join(dir, name);
  await writeFile(file, harness(escapeFile) + body);
  const started = performance.now();
  const result = await run(
    process.execPath,
    [
      '--import',
      'tsx',
      'cli/main.ts',
      'decode',
      '--codec',
      file,
      '--fport',
      '1',
      '--hex',
      '01',
      '--json',
      ...(timeoutMs === undefined ? [] : ['--timeout-ms', String(timeoutMs)]),
    ],
    { env: { ...process.env, IOT_PIPELINE_API_KEY: SECRET }, timeout: 60_000 },
  ).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
  return { ...result, ms: performance.now() - started, file };
}

describe('hostile codecs through `iot-pipeline decode`', () => {
  it('has at least 25 of them', () => {
    expect(HOSTILE_CODECS.length + UNLOADABLE_CODECS.length).toBeGreaterThanOrEqual(25);
  });

  for (const codec of HOSTILE_CODECS) {
    it.concurrent(`${codec.name}: ${codec.what}`, async () => {
      const { code, stdout, stderr } = await decode(codec.name, codec.body, codec.timeoutMs);
      expect(`${stdout}${stderr}`).not.toContain(SECRET);
      expect(existsSync(escapeFile)).toBe(false);
      if ('data' in codec.expect) {
        expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
        expect(JSON.parse(stdout)).toEqual(codec.expect.data);
      } else {
        expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
        const file = join(dir, codec.name);
        expect(stderr).toBe(`iot-pipeline: cannot decode: codec ${file} ${codec.expect.reason}\n`);
      }
    });
  }

  for (const codec of UNLOADABLE_CODECS) {
    it.concurrent(`${codec.name} is refused with the reason, exit code 2`, async () => {
      const { code, stdout, stderr, file } = await decode(codec.name, codec.body);
      expect(`${stdout}${stderr}`).not.toContain(SECRET);
      expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
      expect(stderr).toMatch(new RegExp(`^iot-pipeline: codec ${file} .*\\n$`));
      expect(stderr).toContain(codec.reason);
    });
  }
});
