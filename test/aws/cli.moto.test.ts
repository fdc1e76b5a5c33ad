/**
 * The CLI's AWS commands as a user runs them (child processes), against moto's IoT
 * Core: `provision`, bulk `provision --csv`, `deprovision`. Each child checks its own
 * requests against AWS's models (`test/support/child-aws-checks.ts`) and leaves what it
 * found in a file the test reads.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { IoTClient, ListThingsCommand } from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  },
);
