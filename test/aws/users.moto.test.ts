/**
 * `iot-pipeline users` as a person runs it (child processes) against moto's Cognito: the
 * user pool found from the stage's stack outputs in moto's CloudFormation, as `keys --stage`
 * finds its table. Each child checks its own requests against AWS's models
 * (`test/support/child-aws-checks.ts`) and leaves what it found in a file the test reads.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CloudFormationClient, CreateStackCommand } from '@aws-sdk/client-cloudformation';
import {
  AdminGetUserCommand,
  CognitoIdentityProviderClient,
  CreateUserPoolCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithout } from '../support/aws-tools.ts';
import { type Moto, startMoto } from '../support/moto.ts';

const run = promisify(execFile);

describe.skipIf(skipWithout('moto_server', 'botocore'))('iot-pipeline users against moto', () => {
  let moto: Moto;
  let violations: string;
  let poolId: string;
  const cli = (...args: string[]) =>
    run(
      process.execPath,
      ['--import', 'tsx', '--import', './test/support/child-aws-checks.ts', 'cli/main.ts', ...args],
      { env: { ...process.env, ...moto.env, IOT_PIPELINE_AWS_VIOLATIONS: violations }, timeout: 60_000 },
    );
  /** The child's failure: its exit code and what it printed. */
  const fails = (...args: string[]) =>
    cli(...args).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );

  beforeAll(async () => {
    moto = await startMoto();
    violations = join(await mkdtemp(join(tmpdir(), 'iot-users-')), 'violations.txt');
    // A stage as `cdk deploy` leaves it with console.enabled, as far as `users` reads it:
    // a user pool like the stack's and the stack's UserPoolId output.
    const pool = await new CognitoIdentityProviderClient(moto.clientConfig).send(
      new CreateUserPoolCommand({
        PoolName: 'console-qa',
        UsernameAttributes: ['email'],
        AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
      }),
    );
    poolId = String(pool.UserPool?.Id);
    await new CloudFormationClient(moto.clientConfig).send(
      new CreateStackCommand({
        StackName: 'IotPipeline-qa',
        TemplateBody: JSON.stringify({
          Resources: { Marker: { Type: 'AWS::CloudFormation::WaitConditionHandle' } },
          Outputs: { UserPoolId: { Value: poolId } },
        }),
      }),
    );
  }, 60_000);
  afterAll(() => moto?.stop());

  it('adds, lists and removes a person in the pool its stack names', async () => {
    // Act
    const added = await cli('users', 'add', 'Alice@Example.com', '--stage', 'qa');
    const listed = JSON.parse((await cli('users', 'list', '--stage', 'qa', '--json')).stdout) as {
      users: { email: string; status: string; enabled: boolean }[];
    };
    const table = (await cli('users', 'list', '--stage', 'qa')).stdout;
    // Assert: invited with a temporary password to change (what AdminCreateUser's email carries)
    expect(added.stderr).toContain('Invited alice@example.com to the qa console');
    expect(listed.users).toEqual([
      expect.objectContaining({ email: 'alice@example.com', status: 'FORCE_CHANGE_PASSWORD', enabled: true }),
    ]);
    expect(table).toMatch(/alice@example\.com \| FORCE_CHANGE_PASSWORD \| yes/);
    const user = await new CognitoIdentityProviderClient(moto.clientConfig).send(
      new AdminGetUserCommand({ UserPoolId: poolId, Username: 'alice@example.com' }),
    );
    expect(user.UserAttributes).toEqual(
      expect.arrayContaining([
        { Name: 'email', Value: 'alice@example.com' },
        { Name: 'email_verified', Value: 'true' },
      ]),
    );

    // Again: one line, exit 1
    const twice = await fails('users', 'add', 'alice@example.com', '--stage', 'qa');
    expect(twice).toEqual({
      code: 1,
      stderr: expect.stringMatching(/alice@example\.com is already a user of stage qa/),
    });

    // Act + Assert: removed, and a second removal says so
    expect((await cli('users', 'remove', 'alice@example.com', '--stage', 'qa')).stderr).toContain(
      'Removed alice@example.com',
    );
    expect(JSON.parse((await cli('users', 'list', '--stage', 'qa', '--json')).stdout)).toEqual({ users: [] });
    const again = await fails('users', 'remove', 'alice@example.com', '--stage', 'qa');
    expect(again).toEqual({ code: 1, stderr: expect.stringMatching(/is not a user of stage qa/) });
    expect(existsSync(violations) ? readFileSync(violations, 'utf8') : '').toBe('');
  }, 120_000);

  it.each([
    [['users', 'add', 'not-an-email', '--stage', 'qa'], /"not-an-email" is not an email address/],
    [['users', 'add', 'bob@example.com'], /users needs --stage <stage>/],
    [['users', 'list'], /users needs --stage <stage>/],
    [['users', 'add', '--stage', 'qa'], /add needs the person's email/],
    [
      ['users', 'invite', 'bob@example.com', '--stage', 'qa'],
      /unknown action "invite": say add, list or remove/,
    ],
  ])('refuses %j with one line and exit 2', async (args, message) => {
    const { code, stderr } = await fails(...args);
    expect(code).toBe(2);
    expect(stderr.split('\n')[0]).toMatch(message);
  });

  it('says which stack is missing when the stage has no stack', async () => {
    const { code, stderr } = await fails('users', 'list', '--stage', 'nope');
    expect(code).toBe(1);
    expect(stderr).toMatch(/cannot read stack IotPipeline-nope: .*check --stage and --region/);
  });
});
