import { Arn, ArnFormat, Stack } from 'aws-cdk-lib';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';

export interface DevicesProps {
  readonly stage: string;
  /** The telemetry rule's name: devices may publish through Basic Ingest to it. */
  readonly ruleName: string;
  /** Device types, each a thing type, with up to three searchable attributes. */
  readonly deviceTypes: Readonly<
    Record<string, { readonly description?: string; readonly searchableAttributes?: readonly string[] }>
  >;
}

/** Policy variables: the thing the connection authenticated as, and its type. */
const THING = '${iot:Connection.Thing.ThingName}';
const TYPE = '${iot:Connection.Thing.ThingTypeName}';

/**
 * Devices on IoT Core: one policy for every device certificate, written with policy
 * variables so that each device can connect only with client id = its thing name,
 * publish only to its own telemetry topic (`dt/<type>/<thing>`, directly or through
 * Basic Ingest) and subscribe only to its own command topic (`cmd/<type>/<thing>`).
 * No `iot:*`, no `*` resource. A thing type per device type, with searchable attributes.
 */
export class Devices extends Construct {
  readonly policyName: string;
  readonly policy: iot.CfnPolicy;

  constructor(scope: Construct, id: string, props: DevicesProps) {
    super(scope, id);
    this.policyName = `iot_pipeline_${props.stage}_device`;
    this.policy = new iot.CfnPolicy(this, 'Policy', {
      policyName: this.policyName,
      policyDocument: devicePolicyDocument(Stack.of(this), props.ruleName),
    });
    for (const [name, type] of Object.entries(props.deviceTypes)) {
      new iot.CfnThingType(this, `Type${name.replace(/[^A-Za-z0-9]/g, '')}`, {
        thingTypeName: name,
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
export function devicePolicyDocument(stack: Stack, ruleName: string) {
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
        // The certificate must be attached to the thing it claims to be.
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      },
      {
        Sid: 'PublishItsTelemetry',
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: [
          arn('topic', `dt/${TYPE}/${THING}`),
          arn('topic', `$aws/rules/${ruleName}/dt/${TYPE}/${THING}`),
        ],
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
