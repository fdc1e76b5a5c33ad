/**
 * Provisioning devices on IoT Core (the CLI's `provision`/`deprovision`): a thing of
 * the stage's thing type for the device type (with the type in its `deviceType`
 * attribute, which the device policy reads), a key pair and certificate made by IoT
 * Core, the stack's device policy on the certificate, the certificate on the thing. Each step that succeeded is undone,
 * in reverse, when a later one fails: no half-provisioned device stays behind.
 */

import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  DeleteCertificateCommand,
  DeleteConflictException,
  DeleteThingCommand,
  DescribeEndpointCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  InvalidRequestException,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListThingPrincipalsCommand,
  ResourceNotFoundException,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { DEVICE_TYPE_PATTERN } from '../../lambdas/core/ids.ts';
import { DEVICE_TYPE_ATTRIBUTE, deviceThingTypeName } from '../../lambdas/core/iot-names.ts';

/** Thing names are the device ids: the pipeline's pattern, within IoT Core's own. */
export const THING_NAME_PATTERN = /^[A-Za-z0-9_:-]{1,128}$/;

export interface ProvisionRequest {
  readonly thingName: string;
  readonly deviceType: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly policyName: string;
  /** The stage the device joins: its thing type is the stage's (`iot_pipeline_<stage>_<type>`). */
  readonly stage: string;
}

export interface Provisioned {
  readonly thingName: string;
  readonly thingArn: string;
  readonly certificateArn: string;
  readonly certificateId: string;
  readonly certificatePem: string;
  readonly privateKey: string;
  /** `<prefix>-ats.iot.<region>.amazonaws.com`. */
  readonly endpoint: string;
  /** The thing existed (without a certificate) and was kept. */
  readonly reusedThing: boolean;
}

export class ProvisionError extends Error {}

export async function provision(client: IoTClient, request: ProvisionRequest): Promise<Provisioned> {
  if (!THING_NAME_PATTERN.test(request.thingName)) {
    throw new ProvisionError(
      `thing name "${request.thingName}" must match ${THING_NAME_PATTERN} (it is the device id)`,
    );
  }
  if (!DEVICE_TYPE_PATTERN.test(request.deviceType)) {
    throw new ProvisionError(`device type "${request.deviceType}" must match ${DEVICE_TYPE_PATTERN}`);
  }
  if (DEVICE_TYPE_ATTRIBUTE in request.attributes) {
    throw new ProvisionError(`attribute "${DEVICE_TYPE_ATTRIBUTE}" is the device type: give it with --type`);
  }
  const thingTypeName = deviceThingTypeName(request.stage, request.deviceType);
  // The device policy builds the device's topics from this attribute.
  const attributes = { ...request.attributes, [DEVICE_TYPE_ATTRIBUTE]: request.deviceType };
  const undo: { step: string; run: () => Promise<unknown> }[] = [];
  let step = 'describe the thing';
  try {
    let existing:
      | { thingArn?: string; thingTypeName?: string; attributes?: Record<string, string> }
      | undefined;
    try {
      existing = await client.send(new DescribeThingCommand({ thingName: request.thingName }));
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw error;
    }
    let thingArn: string;
    if (existing) {
      if (existing.thingTypeName !== thingTypeName) {
        throw new ProvisionError(
          `thing ${request.thingName} exists with type ${existing.thingTypeName ?? '(none)'}, not ${thingTypeName}: deprovision it first`,
        );
      }
      const principals = await client.send(new ListThingPrincipalsCommand({ thingName: request.thingName }));
      if ((principals.principals ?? []).length > 0) {
        throw new ProvisionError(
          `thing ${request.thingName} is already provisioned (it has a certificate): deprovision it first to issue a new one`,
        );
      }
      thingArn = existing.thingArn ?? '';
      if (existing.attributes?.[DEVICE_TYPE_ATTRIBUTE] !== request.deviceType) {
        step = `set the thing's ${DEVICE_TYPE_ATTRIBUTE} attribute`;
        await client.send(
          new UpdateThingCommand({
            thingName: request.thingName,
            attributePayload: { attributes: { [DEVICE_TYPE_ATTRIBUTE]: request.deviceType }, merge: true },
          }),
        );
      }
    } else {
      step = 'create the thing';
      const thing = await client.send(
        new CreateThingCommand({
          thingName: request.thingName,
          thingTypeName,
          attributePayload: { attributes },
        }),
      );
      thingArn = thing.thingArn ?? '';
      undo.push({
        step: 'delete the thing',
        run: () => client.send(new DeleteThingCommand({ thingName: request.thingName })),
      });
    }
    step = 'create the key pair and certificate';
    const cert = await client.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    const certificateArn = cert.certificateArn ?? '';
    const certificateId = cert.certificateId ?? '';
    undo.push({
      step: 'deactivate and delete the certificate',
      run: async () => {
        await client.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
        await client.send(new DeleteCertificateCommand({ certificateId }));
      },
    });
    step = `attach policy ${request.policyName}`;
    await client.send(new AttachPolicyCommand({ policyName: request.policyName, target: certificateArn }));
    undo.push({
      step: 'detach the policy',
      run: () =>
        client.send(new DetachPolicyCommand({ policyName: request.policyName, target: certificateArn })),
    });
    step = 'attach the certificate to the thing';
    await client.send(
      new AttachThingPrincipalCommand({ thingName: request.thingName, principal: certificateArn }),
    );
    undo.push({
      step: 'detach the certificate from the thing',
      run: () =>
        client.send(
          new DetachThingPrincipalCommand({ thingName: request.thingName, principal: certificateArn }),
        ),
    });
    step = 'look up the data endpoint';
    const endpoint = await client.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }));
    return {
      thingName: request.thingName,
      thingArn,
      certificateArn,
      certificateId,
      certificatePem: cert.certificatePem ?? '',
      privateKey: cert.keyPair?.PrivateKey ?? '',
      endpoint: endpoint.endpointAddress ?? '',
      reusedThing: existing !== undefined,
    };
  } catch (error) {
    const failures: string[] = [];
    for (const { step: undoStep, run } of undo.reverse()) {
      try {
        await run();
      } catch (undoError) {
        failures.push(`${undoStep}: ${(undoError as Error).message}`);
      }
    }
    const message =
      error instanceof ProvisionError ? error.message : `could not ${step}: ${(error as Error).message}`;
    throw new ProvisionError(
      undo.length === 0
        ? message
        : failures.length === 0
          ? `${message}; rolled back (${undo.length} step${undo.length === 1 ? '' : 's'} undone)`
          : `${message}; rollback left work to do by hand: ${failures.join('; ')}`,
    );
  }
}

/** Detaches the thing's certificates (and their policies), deactivates and deletes them, then deletes the thing. */
export async function deprovision(
  client: IoTClient,
  thingName: string,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<{ certificates: number }> {
  // Detaching is eventually consistent: a delete right after it may still see the attachment.
  const settled = async (run: () => Promise<unknown>) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        if (
          !(error instanceof DeleteConflictException || error instanceof InvalidRequestException) ||
          attempt === 6
        )
          throw error;
        await sleep(500 * attempt);
      }
    }
  };
  let principals: string[];
  try {
    principals = (await client.send(new ListThingPrincipalsCommand({ thingName }))).principals ?? [];
  } catch (error) {
    if (error instanceof ResourceNotFoundException) throw new ProvisionError(`no thing ${thingName}`);
    throw error;
  }
  for (const principal of principals) {
    const policies =
      (await client.send(new ListAttachedPoliciesCommand({ target: principal }))).policies ?? [];
    for (const policy of policies) {
      if (policy.policyName)
        await client.send(new DetachPolicyCommand({ policyName: policy.policyName, target: principal }));
    }
    await client.send(new DetachThingPrincipalCommand({ thingName, principal }));
    const certificateId = principal.split('/').pop() ?? '';
    if (principal.includes(':cert/')) {
      await client.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
      await settled(() => client.send(new DeleteCertificateCommand({ certificateId })));
    }
  }
  await settled(() => client.send(new DeleteThingCommand({ thingName })));
  return { certificates: principals.length };
}

/**
 * Writes what a device needs next to each other: its certificate, its private key (mode
 * 0600: only the owner reads it) and a script that connects as it with the simulator.
 * Returns the path prefix of the files.
 */
export async function writeDeviceFiles(
  dir: string,
  request: Pick<ProvisionRequest, 'thingName' | 'deviceType'>,
  result: Pick<Provisioned, 'certificatePem' | 'privateKey' | 'endpoint'>,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const base = join(dir, request.thingName);
  await writeFile(`${base}.cert.pem`, result.certificatePem, { mode: 0o644 });
  await writeFile(`${base}.private.key`, result.privateKey, { mode: 0o600 });
  // writeFile's mode applies only to a new file: tighten an old one too.
  await chmod(`${base}.private.key`, 0o600);
  await writeFile(
    `${base}.connect.sh`,
    [
      '#!/bin/sh',
      `# Connects as ${request.thingName} (${request.deviceType}) and publishes simulated readings to AWS IoT Core.`,
      `# Amazon's root CA: curl -o AmazonRootCA1.pem ${AMAZON_ROOT_CA_URL}`,
      `npm run simulate -- --endpoint ${result.endpoint} --cert ${base}.cert.pem --key ${base}.private.key --ca AmazonRootCA1.pem \\`,
      `  --id ${request.thingName} --type ${request.deviceType} --rate 1/m`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return base;
}

/** Amazon's root CA for the ATS endpoint: devices need it to trust IoT Core. */
export const AMAZON_ROOT_CA_URL = 'https://www.amazontrust.com/repository/AmazonRootCA1.pem';
