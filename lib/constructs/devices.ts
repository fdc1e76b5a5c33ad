import { Arn, ArnFormat, Stack } from 'aws-cdk-lib';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import {
  DEVICE_TYPE_ATTRIBUTE,
  devicePolicyName,
  deviceThingTypeName,
} from '../../lambdas/core/iot-names.ts';
import type { Ingest } from './ingest.ts';

export interface DevicesProps {
  /** Stage name: thing types and the policy are named for it, and devices must be of its thing types. */
  readonly stage: string;
  /** Where devices publish: its telemetry rule, directly or through Basic Ingest. */
  readonly ingest: Ingest;
  /** Device types, each a thing type, with up to three searchable attributes. */
  readonly deviceTypes: Readonly<
    Record<string, { readonly description?: string; readonly searchableAttributes?: readonly string[] }>
  >;
}

/** Policy variables: the thing the connection authenticated as, and its device type (an attribute). */
const THING = '${iot:Connection.Thing.ThingName}';
const TYPE = `\${iot:Connection.Thing.Attributes[${DEVICE_TYPE_ATTRIBUTE}]}`;

/**
 * Devices on IoT Core: one policy for every device certificate, written with policy
 * variables so that each device can connect only with client id = its thing name,
 * publish only to its own telemetry topic (`dt/<type>/<thing>`, or with a LoRaWAN port
 * `dt/<type>/<thing>/<fPort>`, directly or through Basic Ingest) and subscribe only to its own command topic (`cmd/<type>/<thing>`),
 * and only as a thing of one of this stage's thing types. No `iot:*`, no `*` resource.
 * A thing type per device type, named for the stage (`iot_pipeline_<stage>_<type>`),
 * with searchable attributes; the device type itself is the thing's `deviceType`
 * attribute, which `provision` sets.
 */
export class Devices extends Construct {
  readonly policyName: string;
  readonly policy: iot.CfnPolicy;

  constructor(scope: Construct, id: string, props: DevicesProps) {
    super(scope, id);
    if (!/^[a-z0-9]+$/.test(props.stage)) {
      throw new Error(`Devices: stage must be lowercase letters and digits, got "${props.stage}"`);
    }
    for (const [name, type] of Object.entries(props.deviceTypes)) {
      if ((type.searchableAttributes?.length ?? 0) > 3) {
        throw new Error(
          `Devices: deviceTypes.${name}.searchableAttributes may hold at most 3 (IoT Core's limit), got ${type.searchableAttributes?.length}`,
        );
      }
    }
    this.policyName = devicePolicyName(props.stage);
    this.policy = new iot.CfnPolicy(this, 'Policy', {
      policyName: this.policyName,
      policyDocument: devicePolicyDocument(Stack.of(this), props.ingest.ruleName, props.stage),
    });
    for (const [name, type] of Object.entries(props.deviceTypes)) {
      new iot.CfnThingType(this, `Type${name.replace(/[^A-Za-z0-9]/g, '')}`, {
        thingTypeName: deviceThingTypeName(props.stage, name),
        thingTypeProperties: {
          thingTypeDescription: type.description ?? `IoT pipeline device type ${name}`,
          ...(type.searchableAttributes?.length
            ? { searchableAttributes: [...type.searchableAttributes] }
            : {}),
        },
      });
    }
  }
}

/** The device policy: exactly these actions on exactly these ARNs. */
export function devicePolicyDocument(stack: Stack, ruleName: string, stage: string) {
  const arn = (resource: string, name: string) =>
    Arn.format(
      { service: 'iot', resource, resourceName: name, arnFormat: ArnFormat.SLASH_RESOURCE_NAME },
      stack,
    );
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'ConnectAsItsThing',
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: arn('client', THING),
        // The certificate must be attached to the thing it claims to be, a thing of this stage.
        Condition: {
          Bool: { 'iot:Connection.Thing.IsAttached': 'true' },
          StringLike: { 'iot:Connection.Thing.ThingTypeName': deviceThingTypeName(stage, '*') },
        },
      },
      {
        Sid: 'PublishItsTelemetry',
        Effect: 'Allow',
        Action: 'iot:Publish',
        // With a LoRaWAN port as a fourth level (`?` is one character: ports 0 to 255
        // have one to three digits; the topic parser refuses anything else with the reason).
        Resource: ['', '/?', '/??', '/???'].flatMap((port) => [
          arn('topic', `dt/${TYPE}/${THING}${port}`),
          arn('topic', `$aws/rules/${ruleName}/dt/${TYPE}/${THING}${port}`),
        ]),
      },
      {
        Sid: 'ReceiveItsCommands',
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: arn('topicfilter', `cmd/${TYPE}/${THING}`),
      },
      {
        Sid: 'ReceiveItsCommandMessages',
        Effect: 'Allow',
        Action: 'iot:Receive',
        Resource: arn('topic', `cmd/${TYPE}/${THING}`),
      },
    ],
  };
}
