/**
 * The CLI's AWS commands as a user runs them (child processes), against moto's IoT
 * Core: `provision`, bulk `provision --csv`, `deprovision`; and `keys` against a stage's
 * keys table, found from its stack's outputs in moto's CloudFormation. Each child checks its own
 * requests against AWS's models (`test/support/child-aws-checks.ts`) and leaves what it
 * found in a file the test reads.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CloudFormationClient, CreateStackCommand } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { IoTClient, ListThingsCommand } from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamodbGate } from '../../lambdas/adapters/aws/gate.ts';
import { isResponse } from '../../lambdas/core/api/gate.ts';
import { skipWithout } from '../support/aws-tools.ts';
import { createIotStage, type Moto, startMoto } from '../support/moto.ts';

const run = promisify(execFile);

describe.skipIf(skipWithout('moto_server', 'botocore'))(
  'iot-pipeline provision and deprovision against moto',
  () => {
    let moto: Moto;
    let dir: string;
    let violations: string;
    const cli = (...args: string[]) =>
      run(
        process.execPath,
        ['--import', 'tsx', '--import', './test/support/child-aws-checks.ts', 'cli/main.ts', ...args],
        { env: { ...process.env, ...moto.env, IOT_PIPELINE_AWS_VIOLATIONS: violations }, timeout: 60_000 },
      );

    beforeAll(async () => {
      moto = await startMoto();
      dir = await mkdtemp(join(tmpdir(), 'iot-provision-'));
      violations = join(dir, 'violations.txt');
      await createIotStage(new IoTClient(moto.clientConfig), 'dev', ['thermo', 'tracker']);
    }, 60_000);
    afterAll(() => moto?.stop());

    it('provisions one device and a CSV of them, writes their files, and deprovisions one', async () => {
      const out = join(dir, 'devices');
      const one = await cli(
        'provision',
        'th-1',
        '--type',
        'thermo',
        '--attr',
        'site=north',
        '--policy',
        'iot_pipeline_dev_device',
        '--out',
        out,
      );
      expect(one.stderr).toContain('provisioned th-1: certificate');
      expect(existsSync(join(out, 'th-1.private.key'))).toBe(true);
      const csv = join(dir, 'fleet.csv');
      await writeFile(csv, 'thingName,deviceType\ntr-1,tracker,owner=ops\ntr-2,tracker\n');
      const bulk = await cli(
        'provision',
        '--csv',
        csv,
        '--policy',
        'iot_pipeline_dev_device',
        '--out',
        out,
        '--json',
      );
      expect(JSON.parse(bulk.stdout)).toMatchObject({
        provisioned: [{ thingName: 'tr-1' }, { thingName: 'tr-2' }],
      });
      const things = await new IoTClient(moto.clientConfig).send(new ListThingsCommand({}));
      expect(
        things.things?.map((t) => [t.thingName, t.thingTypeName, t.attributes?.deviceType]).sort(),
      ).toEqual([
        ['th-1', 'iot_pipeline_dev_thermo', 'thermo'],
        ['tr-1', 'iot_pipeline_dev_tracker', 'tracker'],
        ['tr-2', 'iot_pipeline_dev_tracker', 'tracker'],
      ]);
      const gone = await cli('deprovision', 'tr-2');
      expect(gone.stderr).toContain('tr-2');
      expect((await new IoTClient(moto.clientConfig).send(new ListThingsCommand({}))).things).toHaveLength(2);
      expect(existsSync(violations) ? readFileSync(violations, 'utf8') : '').toBe('');
    });

    it('keys --stage: creates, lists and revokes keys in the table its stack names, and the gate honours them', async () => {
      // A stack as `cdk deploy` leaves it, as far as `keys` reads it: the keys table and its output.
      await new CloudFormationClient(moto.clientConfig).send(
        new CreateStackCommand({
          StackName: 'IotPipeline-qa',
          TemplateBody: JSON.stringify({
            Resources: {
              KeysTable: {
                Type: 'AWS::DynamoDB::Table',
                Properties: {
                  KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
                  AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
                  BillingMode: 'PAY_PER_REQUEST',
                },
              },
            },
            Outputs: { KeysTableName: { Value: { Ref: 'KeysTable' } } },
          }),
        }),
      );
      const made = JSON.parse(
        (
          await cli(
            'keys',
            'create',
            '--stage',
            'qa',
            '--name',
            'sigfox',
            '--scope',
            'ingest:sigfox',
            '--json',
          )
        ).stdout,
      ) as { name: string; key: string };
      expect(made.name).toBe('sigfox');
      const listed = JSON.parse((await cli('keys', 'list', '--stage', 'qa', '--json')).stdout) as {
        keys: { name: string; scopes: string[] }[];
      };
      expect(listed.keys).toEqual([expect.objectContaining({ name: 'sigfox', scopes: ['ingest:sigfox'] })]);
      expect(JSON.stringify(listed)).not.toContain(made.key);
      const dynamodb = new DynamoDBClient(moto.clientConfig);
      const [table] = (await dynamodb.send(new ListTablesCommand({}))).TableNames ?? [];
      const admit = () =>
        dynamodbGate(dynamodb, () => undefined, { KEYS_TABLE: String(table) }).admit(
          { headers: { authorization: made.key } },
          'ingest:sigfox',
        );
      expect(isResponse(await admit())).toBe(false);
      await cli('keys', 'revoke', 'sigfox', '--stage', 'qa');
      const refused = await admit();
      expect(isResponse(refused) && refused.statusCode).toBe(401);
      const missing = await cli('keys', 'list', '--stage', 'nope').catch((e: { stderr: string }) => e);
      expect(missing.stderr).toMatch(/cannot read stack IotPipeline-nope: .*check --stage and --region/);
      expect(existsSync(violations) ? readFileSync(violations, 'utf8') : '').toBe('');
    }, 120_000);
  },
);
