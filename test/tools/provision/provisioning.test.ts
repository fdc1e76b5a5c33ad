import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
  IoTClient,
  ListAttachedPoliciesCommand,
  ListThingPrincipalsCommand,
  ResourceNotFoundException,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deprovision, provision, writeDeviceFiles } from '../../../tools/provision/provisioning.ts';

const iot = mockClient(IoTClient);
const CERT_ARN = 'arn:aws:iot:us-east-1:123456789012:cert/abc123';
const request = {
  thingName: 'thermo-1',
  deviceType: 'thermo',
  attributes: { site: 'north' },
  policyName: 'iot_pipeline_dev_device',
  stage: 'dev',
};
const notFound = () => new ResourceNotFoundException({ message: 'not found', $metadata: {} });
const names = () => iot.calls().map((c) => c.args[0].constructor.name.replace('Command', ''));

beforeEach(() => {
  iot.on(DescribeThingCommand).rejects(notFound());
  iot.on(CreateThingCommand).resolves({ thingArn: 'arn:thing/thermo-1' });
  iot.on(CreateKeysAndCertificateCommand).resolves({
    certificateArn: CERT_ARN,
    certificateId: 'abc123',
    certificatePem: '-----BEGIN CERTIFICATE-----',
    keyPair: { PrivateKey: '-----BEGIN RSA PRIVATE KEY-----' },
  });
  iot.on(AttachPolicyCommand).resolves({});
  iot.on(AttachThingPrincipalCommand).resolves({});
  iot.on(DescribeEndpointCommand).resolves({ endpointAddress: 'a1b2c3-ats.iot.us-east-1.amazonaws.com' });
});
afterEach(() => iot.reset());

describe('provision', () => {
  it("creates the thing of its stage's type with attributes and its device type, a certificate with the device policy, and finds the ATS endpoint", async () => {
    const result = await provision(new IoTClient({}), request);
    expect(names()).toEqual([
      'DescribeThing',
      'CreateThing',
      'CreateKeysAndCertificate',
      'AttachPolicy',
      'AttachThingPrincipal',
      'DescribeEndpoint',
    ]);
    expect(iot.commandCalls(CreateThingCommand)[0]?.args[0].input).toEqual({
      thingName: 'thermo-1',
      thingTypeName: 'iot_pipeline_dev_thermo',
      attributePayload: { attributes: { site: 'north', deviceType: 'thermo' } },
    });
    expect(iot.commandCalls(AttachPolicyCommand)[0]?.args[0].input).toEqual({
      policyName: 'iot_pipeline_dev_device',
      target: CERT_ARN,
    });
    expect(iot.commandCalls(DescribeEndpointCommand)[0]?.args[0].input).toEqual({
      endpointType: 'iot:Data-ATS',
    });
    expect(result).toMatchObject({
      certificateId: 'abc123',
      endpoint: 'a1b2c3-ats.iot.us-east-1.amazonaws.com',
      reusedThing: false,
    });
  });

  it('rolls back everything it did when a step fails halfway', async () => {
    iot.on(AttachThingPrincipalCommand).rejects(new Error('ThrottlingException: Rate exceeded'));
    iot.on(DetachPolicyCommand).resolves({});
    iot.on(UpdateCertificateCommand).resolves({});
    iot.on(DeleteCertificateCommand).resolves({});
    iot.on(DeleteThingCommand).resolves({});
    await expect(provision(new IoTClient({}), request)).rejects.toThrow(
      'could not attach the certificate to the thing: ThrottlingException: Rate exceeded; rolled back (3 steps undone)',
    );
    expect(names().slice(-4)).toEqual([
      'DetachPolicy',
      'UpdateCertificate',
      'DeleteCertificate',
      'DeleteThing',
    ]);
    expect(iot.commandCalls(UpdateCertificateCommand)[0]?.args[0].input).toEqual({
      certificateId: 'abc123',
      newStatus: 'INACTIVE',
    });
  });

  it('says what is left to do by hand when the rollback itself fails', async () => {
    iot.on(AttachPolicyCommand).rejects(new Error('policy not found'));
    iot.on(UpdateCertificateCommand).rejects(new Error('AccessDenied'));
    iot.on(DeleteThingCommand).resolves({});
    await expect(provision(new IoTClient({}), request)).rejects.toThrow(
      'could not attach policy iot_pipeline_dev_device: policy not found; rollback left work to do by hand: deactivate and delete the certificate: AccessDenied',
    );
  });

  it('keeps an existing thing without a certificate (giving it its deviceType attribute), and refuses one that has one', async () => {
    iot.on(DescribeThingCommand).resolves({
      thingArn: 'arn:thing/thermo-1',
      thingTypeName: 'iot_pipeline_dev_thermo',
    });
    iot.on(ListThingPrincipalsCommand).resolves({ principals: [] });
    iot.on(UpdateThingCommand).resolves({});
    const reused = await provision(new IoTClient({}), request);
    expect(reused.reusedThing).toBe(true);
    expect(iot.commandCalls(CreateThingCommand)).toHaveLength(0);
    expect(iot.commandCalls(UpdateThingCommand)[0]?.args[0].input).toEqual({
      thingName: 'thermo-1',
      attributePayload: { attributes: { deviceType: 'thermo' }, merge: true },
    });
    iot.on(ListThingPrincipalsCommand).resolves({ principals: [CERT_ARN] });
    await expect(provision(new IoTClient({}), request)).rejects.toThrow(
      'already provisioned (it has a certificate): deprovision it first',
    );
    iot.on(DescribeThingCommand).resolves({ thingTypeName: 'iot_pipeline_prod_thermo' });
    await expect(provision(new IoTClient({}), request)).rejects.toThrow(
      'exists with type iot_pipeline_prod_thermo, not iot_pipeline_dev_thermo',
    );
  });

  it('refuses a thing name that is not a device id before calling AWS', async () => {
    await expect(provision(new IoTClient({}), { ...request, thingName: '../x' })).rejects.toThrow(
      'must match',
    );
    expect(iot.calls()).toHaveLength(0);
  });
});

describe('deprovision', () => {
  it('detaches policies and the certificate, deactivates and deletes it, then deletes the thing, waiting out eventual consistency', async () => {
    iot.on(ListThingPrincipalsCommand).resolves({ principals: [CERT_ARN] });
    iot.on(ListAttachedPoliciesCommand).resolves({ policies: [{ policyName: 'iot_pipeline_dev_device' }] });
    iot.on(DetachPolicyCommand).resolves({});
    iot.on(DetachThingPrincipalCommand).resolves({});
    iot.on(UpdateCertificateCommand).resolves({});
    iot
      .on(DeleteCertificateCommand)
      .rejectsOnce(new DeleteConflictException({ message: 'still attached', $metadata: {} }))
      .resolves({});
    iot.on(DeleteThingCommand).resolves({});
    const result = await deprovision(new IoTClient({}), 'thermo-1', async () => undefined);
    expect(result).toEqual({ certificates: 1 });
    expect(names()).toEqual([
      'ListThingPrincipals',
      'ListAttachedPolicies',
      'DetachPolicy',
      'DetachThingPrincipal',
      'UpdateCertificate',
      'DeleteCertificate',
      'DeleteCertificate',
      'DeleteThing',
    ]);
  });

  it('says so when there is no such thing', async () => {
    iot.on(ListThingPrincipalsCommand).rejects(notFound());
    await expect(deprovision(new IoTClient({}), 'ghost')).rejects.toThrow('no thing ghost');
  });
});

describe('writeDeviceFiles', () => {
  it('writes the certificate, the private key readable by its owner only, and a connect script', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'certs-'));
    const base = await writeDeviceFiles(
      dir,
      { thingName: 'thermo-1', deviceType: 'thermo' },
      { certificatePem: 'CERT', privateKey: 'KEY', endpoint: 'a1-ats.iot.us-east-1.amazonaws.com' },
    );
    expect((await stat(`${base}.private.key`)).mode & 0o777).toBe(0o600);
    expect(await readFile(`${base}.cert.pem`, 'utf8')).toBe('CERT');
    const script = await readFile(`${base}.connect.sh`, 'utf8');
    expect(script).toContain('--endpoint a1-ats.iot.us-east-1.amazonaws.com');
    expect(script).toContain('--id thermo-1 --type thermo');
    expect(script).toContain('AmazonRootCA1.pem');
  });
});
