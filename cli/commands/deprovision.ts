/** `iot-pipeline deprovision`: a device off AWS IoT Core, its certificates deactivated and deleted. */
import { deprovision, ProvisionError } from '../../tools/provision/provisioning.ts';
import { parse, UsageError } from '../args.ts';
import { iotClient, REGION_OPTION, REGION_USAGE } from '../aws.ts';

export const options = { ...REGION_OPTION } as const;

export const usage = `Usage: iot-pipeline deprovision <thingName> [options]

Detach the thing's certificates and the device policy, deactivate and delete the
certificates, then delete the thing.

Options:
${REGION_USAGE}
  -h, --help               show this help

Example:
  iot-pipeline deprovision th-1 --region eu-west-1`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse({ args, allowPositionals: true, options });
  const [thingName] = positionals;
  if (!thingName) throw new UsageError('Give the thing name: deprovision <thingName>');
  try {
    const { certificates } = await deprovision(await iotClient(values.region), thingName);
    process.stderr.write(
      `deprovisioned ${thingName}: ${certificates} certificate(s) deactivated and deleted, thing deleted\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof ProvisionError) throw new UsageError(error.message);
    throw error;
  }
}
