/** `iot-pipeline provision`: a device (or a CSV of them) on AWS IoT Core, with its certificate. */
import { stageOfDevicePolicy } from '../../lambdas/core/iot-names.ts';
import { type DeviceLine, parseAttributes, readDeviceCsv } from '../../tools/provision/csv.ts';
import {
  AMAZON_ROOT_CA_URL,
  ProvisionError,
  provision,
  writeDeviceFiles,
} from '../../tools/provision/provisioning.ts';
import { parse, UsageError } from '../args.ts';
import { iotClient, REGION_OPTION, REGION_USAGE } from '../aws.ts';
import { awsProblem } from '../errors.ts';

export const options = {
  type: { type: 'string' },
  attr: { type: 'string', multiple: true, default: [] as string[] },
  policy: { type: 'string' },
  stage: { type: 'string' },
  out: { type: 'string' },
  csv: { type: 'string' },
  ...REGION_OPTION,
  json: { type: 'boolean', default: false },
} as const;

export const usage = `Usage: iot-pipeline provision <thingName> --type <deviceType> --policy <DevicePolicyName> --out <dir> [options]
       iot-pipeline provision --csv <file> --policy <DevicePolicyName> --out <dir> [options]

Create a device on AWS IoT Core: the thing (of the stage's thing type), an active certificate
with the device policy attached, and in --out its certificate, private key (mode 0600) and a
connect script. Exit code 1 when a device failed.

Options:
  --type <deviceType>      the device's type (its topics are dt/<deviceType>/<thingName>)
  --attr <key=value>       a thing attribute (repeatable)
  --policy <name>          the DevicePolicyName stack output (iot_pipeline_<stage>_device)
  --stage <stage>          the stage, when the policy's name does not tell it
  --out <dir>              where the certificate and key are written
  --csv <file>             many devices: thingName,deviceType[,key=value ...] per line
${REGION_USAGE}
  --json                   print what was provisioned and what failed as one JSON document on stdout
  -h, --help               show this help

Examples:
  iot-pipeline provision th-1 --type thermo --attr site=north --policy iot_pipeline_dev_device --out ./devices
  iot-pipeline provision --csv fleet.csv --policy iot_pipeline_dev_device --out ./devices --json`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse({ args, allowPositionals: true, options });
  if (!values.policy) throw new UsageError('--policy <DevicePolicyName> is needed (a stack output)');
  const stage = values.stage ?? stageOfDevicePolicy(values.policy);
  if (!stage) {
    throw new UsageError(
      `--policy ${values.policy} is not a pipeline device policy (iot_pipeline_<stage>_device): give --stage <stage> too`,
    );
  }
  if (!values.out) throw new UsageError('--out <dir> is needed: the certificate and key are written there');
  const requests = devicesToProvision(values.csv, positionals[0], values.type, values.attr);
  const client = await iotClient(values.region);
  const done: { thingName: string; certificateId: string; endpoint: string }[] = [];
  const failed: string[] = [];
  for (const [i, request] of requests.entries()) {
    try {
      const result = await provision(client, { ...request, policyName: values.policy, stage });
      const base = await writeDeviceFiles(values.out, request, result);
      done.push({
        thingName: request.thingName,
        certificateId: result.certificateId,
        endpoint: result.endpoint,
      });
      if (requests.length === 1) {
        process.stderr.write(
          [
            `provisioned ${request.thingName}${result.reusedThing ? ' (existing thing kept)' : ''}: certificate ${result.certificateId}`,
            `  ${base}.cert.pem, ${base}.private.key (mode 0600), ${base}.connect.sh`,
            `  endpoint: ${result.endpoint}`,
            `  root CA: ${AMAZON_ROOT_CA_URL}`,
            '',
          ].join('\n'),
        );
      }
    } catch (error) {
      failed.push(`${request.thingName}: ${awsProblem(error) ?? (error as Error).message}`);
    }
    if (requests.length > 1) {
      const width = 30;
      const filled = Math.round(((i + 1) / requests.length) * width);
      process.stderr.write(
        `\rprovision [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${i + 1}/${requests.length}, ${failed.length} failed`,
      );
    }
  }
  if (requests.length > 1) process.stderr.write('\n');
  for (const failure of failed) process.stderr.write(`iot-pipeline: ${failure}\n`);
  if (values.json) process.stdout.write(`${JSON.stringify({ provisioned: done, failed })}\n`);
  return failed.length > 0 ? 1 : 0;
}

/** The devices from --csv, else the one named on the command line; a malformed one is a UsageError. */
function devicesToProvision(
  csv: string | undefined,
  thingName: string | undefined,
  type: string | undefined,
  attr: readonly string[],
): DeviceLine[] {
  try {
    if (csv) return readDeviceCsv(csv);
    if (!thingName || !type)
      throw new UsageError('Give the thing name and type: provision <thingName> --type <deviceType>');
    return [{ thingName, deviceType: type, attributes: parseAttributes(attr) }];
  } catch (error) {
    if (error instanceof ProvisionError) throw new UsageError(error.message);
    throw error;
  }
}
