/**
 * The names of a stage's IoT Core resources, shared by the CDK constructs that make
 * them and the provisioning that attaches devices to them. Thing types and policies
 * are account-wide, so each name carries its stage.
 */

/** The IoT rule name for a stage; rule names allow only letters, digits and underscores. */
export function telemetryRuleName(stage: string): string {
  return `iot_pipeline_${stage}_telemetry`;
}

/**
 * The IoT rule an AWS IoT Core for LoRaWAN destination names (`--expression-type
 * RuleName`): its uplinks go through it into the ingest queue.
 */
export function lorawanRuleName(stage: string): string {
  return `iot_pipeline_${stage}_lorawan`;
}

/** The stage's device policy, attached to every device certificate. */
export function devicePolicyName(stage: string): string {
  return `iot_pipeline_${stage}_device`;
}

/** The stage a device policy name belongs to, or undefined for a name this project did not make. */
export function stageOfDevicePolicy(policyName: string): string | undefined {
  return /^iot_pipeline_([a-z][a-z0-9]{0,15})_device$/.exec(policyName)?.[1];
}

/**
 * The thing type of a device type in a stage: thing types are account-wide, so two
 * stages in one account and region each have their own (and destroying one leaves the
 * other's alone).
 */
export function deviceThingTypeName(stage: string, deviceType: string): string {
  return `iot_pipeline_${stage}_${deviceType}`;
}

/**
 * The thing attribute holding a device's type: the device policy builds the topics a
 * device may use from it (`dt/<deviceType>/<thing>`), the thing type being stage-scoped.
 */
export const DEVICE_TYPE_ATTRIBUTE = 'deviceType';
