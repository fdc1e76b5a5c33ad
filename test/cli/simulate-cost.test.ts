/**
 * `simulate --format` and `cost --source` name every way in the simulator speaks, in
 * `--help` with an example each, and a name they do not know is a usage error (exit 2)
 * that lists the ones they do.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SIMULATED_FORMATS } from '../../tools/simulator/bodies.ts';

const run = promisify(execFile);
const cli = (...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
    env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' },
    timeout: 60_000,
  });

describe.concurrent('simulate --format and cost --source', () => {
  it('simulate --help lists every format, with an example of each network', async () => {
    const { stdout } = await cli('simulate', '--help');
    for (const format of ['json', ...SIMULATED_FORMATS])
      expect(stdout).toMatch(new RegExp(`^ +${format} +\\S`, 'm'));
    for (const format of ['sigfox-form', 'chirpstack', 'iot-lorawan'])
      expect(stdout).toContain(`iot-pipeline simulate --format ${format} `);
    expect(stdout).toContain('$aws/rules/iot_pipeline_<stage>_lorawan');
  });

  it('cost --help lists every source, with examples, and how to price the LoRaWAN uplinks', async () => {
    const { stdout } = await cli('cost', '--help');
    for (const source of ['mqtt', ...SIMULATED_FORMATS])
      expect(stdout).toMatch(new RegExp(`\\b${source}\\b`));
    for (const source of ['sigfox-form', 'chirpstack', 'iot-lorawan'])
      expect(stdout).toContain(`iot-pipeline cost --source ${source}`);
    expect(stdout).toContain('iotCoreLorawan.uplinkMessagesPerMillion');
  });

  it('refuses an unknown --format with the formats it knows (exit 2)', async () => {
    await expect(cli('simulate', '--format', 'lorawan')).rejects.toMatchObject({
      code: 2,
      stderr: `iot-pipeline: --format "lorawan" must be json (MQTT) or one of ${SIMULATED_FORMATS.join(', ')}\n`,
    });
  });

  it('refuses a --stage that is no stage name (exit 2)', async () => {
    await expect(cli('simulate', '--format', 'iot-lorawan', '--stage', 'Prod!')).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^iot-pipeline: --stage "Prod!" must be a stage name: lowercase letters/),
    });
  });

  it('refuses an unknown --source with the sources it knows, and --codec off a LoRaWAN source (exit 2)', async () => {
    await expect(cli('cost', '--source', 'lorawan')).rejects.toMatchObject({
      code: 2,
      stderr: `iot-pipeline: --source "lorawan" must be one of mqtt, ${SIMULATED_FORMATS.join(', ')}\n`,
    });
    await expect(cli('cost', '--source', 'sigfox-form', '--codec', 'codecs/lht65.js')).rejects.toMatchObject({
      code: 2,
      stderr:
        'iot-pipeline: --codec prices a codec on LoRaWAN uplinks: add --source ttn, --source chirpstack, --source iot-lorawan\n',
    });
  });

  it('cost --source iot-lorawan says which codec it used and that the uplink charge is not priced', async () => {
    const { stdout } = await cli('cost', '--source', 'iot-lorawan', '--devices', '20', '--messages', '60');
    expect(stdout).toContain('IoT Core for LoRaWAN uplinks (not priced)');
    expect(stdout).toMatch(/^Note: not priced: IoT Core for LoRaWAN uplinks .*--prices <file>/m);
    expect(stdout).toMatch(/^Note: decoded with the codec codecs\/lht65\.js \(the default for iot-lorawan/m);
    const json = JSON.parse(
      (await cli('cost', '--source', 'iot-lorawan', '--devices', '20', '--messages', '60', '--json')).stdout,
    );
    expect(json.pipeline.notPriced).toEqual([
      {
        line: 'IoT Core for LoRaWAN uplinks',
        units: expect.closeTo(1e6, 3),
        missing: 'iotCoreLorawan.uplinkMessagesPerMillion',
      },
    ]);
    expect(json.codec).toMatch(/^codecs\/lht65\.js/);
  });
});
