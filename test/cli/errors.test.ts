/**
 * Expected failures print one line that says what went wrong and what to do, with no
 * stack trace (`--debug` adds it): no AWS region or credentials, nothing listening at a
 * URL, a bad config at synth. Only 127.0.0.1 is ever dialled: "unreachable" is a closed
 * local port, and without credentials the AWS SDK sends nothing.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

/** A child's environment with no AWS region, no credentials and no metadata service to ask. */
let noAws: NodeJS.ProcessEnv;
/** A port on 127.0.0.1 that nothing listens on. */
let closedPort: number;

beforeAll(async () => {
  const empty = join(await mkdtemp(join(tmpdir(), 'iot-no-aws-')), 'empty');
  await writeFile(empty, '');
  noAws = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('AWS_')));
  Object.assign(noAws, {
    AWS_CONFIG_FILE: empty,
    AWS_SHARED_CREDENTIALS_FILE: empty,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  });
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closedPort = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
});

/** Runs the CLI (or another script) and resolves to its exit code and stderr, whatever the code. */
async function fails(args: string[], env: NodeJS.ProcessEnv = process.env, script = 'cli/main.ts') {
  try {
    await run(process.execPath, ['--import', 'tsx', script, ...args], { env, timeout: 30_000 });
  } catch (error) {
    const { code, stderr } = error as { code: number; stderr: string };
    return { code, stderr };
  }
  throw new Error(`${script} ${args.join(' ')} succeeded`);
}

function expectOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^iot-pipeline: /);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/^ {4}at /m);
}

describe.concurrent('one-line failures', () => {
  it('provision and deprovision with no AWS region say to set AWS_REGION or pass --region (exit 1)', async () => {
    const results = await Promise.all([
      fails(['deprovision', 'th-1'], noAws),
      fails(
        ['provision', 'th-1', '--type', 'thermo', '--policy', 'iot_pipeline_dev_device', '--out', 'x'],
        noAws,
      ),
    ]);
    for (const { code, stderr } of results) {
      expect(code).toBe(1);
      expectOneLine(stderr, /^iot-pipeline: no AWS region: set AWS_REGION or pass --region$/);
    }
  });

  it('deprovision --region with no credentials says how to give them (exit 1)', async () => {
    const { code, stderr } = await fails(['deprovision', 'th-1', '--region', 'us-east-1'], noAws);
    expect(code).toBe(1);
    expectOneLine(
      stderr,
      /no AWS credentials: set AWS_PROFILE .* or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
    );
  });

  it('redecode --bucket with no region, then with no credentials', async () => {
    const args = ['redecode', '--bucket', 'lake', '--from', '2026-11-01', '--to', '2026-11-02'];
    const [noRegion, noCredentials] = await Promise.all([
      fails(args, noAws),
      fails(args, { ...noAws, AWS_REGION: 'us-east-1' }),
    ]);
    expectOneLine(noRegion.stderr, /no AWS region: set AWS_REGION or pass --region/);
    expectOneLine(noCredentials.stderr, /no AWS credentials/);
    expect([noRegion.code, noCredentials.code]).toEqual([1, 1]);
  });

  it('devices --url with nothing listening names the URL and the flag (exit 1)', async () => {
    const url = `http://127.0.0.1:${closedPort}`;
    const { code, stderr } = await fails(['devices', '--url', url]);
    expect(code).toBe(1);
    expectOneLine(
      stderr,
      new RegExp(`cannot list devices from ${url}: connect ECONNREFUSED .*: check --url`),
    );
  });

  it('simulate with no broker listening says to start one or pass --mqtt-url (exit 1)', async () => {
    const url = `mqtt://127.0.0.1:${closedPort}`;
    const { code, stderr } = await fails(['simulate', '--count', '1', '--mqtt-url', url]);
    expect(code).toBe(1);
    expectOneLine(
      stderr,
      new RegExp(`Could not connect to ${url}: .*ECONNREFUSED.*: start the pipeline .*--mqtt-url`),
    );
  });

  it('prints the stack trace too with --debug', async () => {
    const { code, stderr } = await fails(['--debug', 'devices', '--url', `http://127.0.0.1:${closedPort}`]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^iot-pipeline: cannot list devices from /);
    expect(stderr).toMatch(/^ {4}at /m);
  });

  it('cdk synth with a bad config names the key and exits non-zero', async () => {
    const { code, stderr } = await fails(
      [],
      { ...process.env, CDK_CONTEXT_JSON: JSON.stringify({ stage: 'Prod!' }) },
      'bin/app.ts',
    );
    expect(code).not.toBe(0);
    expectOneLine(stderr, /Invalid config "stage": got "Prod!", expected lowercase letters/);
  });
});
