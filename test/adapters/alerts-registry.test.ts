import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DynamoDBClient,
  PutItemCommand,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import { PublishBatchCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { dynamodbRegistry } from '../../lambdas/adapters/aws/dynamodb-registry.ts';
import { snsAlerts } from '../../lambdas/adapters/aws/sns-alerts.ts';
import type { AlertEvent, DeviceRecord } from '../../lambdas/core/estate/alerts.ts';

const sns = mockClient(SNSClient);
const ddb = mockClient(DynamoDBClient);
afterEach(() => {
  sns.reset();
  ddb.reset();
});

const raised: AlertEvent = {
  deviceId: 'dev-1',
  deviceType: 'thermo',
  rule: 'hot',
  severity: 'critical',
  state: 'raised',
  metric: 'temp',
  value: 31.5,
  comparison: '>',
  threshold: 30,
  time: Date.parse('2026-11-25T06:00:00Z'),
};

describe('snsAlerts', () => {
  it('publishes a subject line, a JSON body and attributes subscribers filter on', async () => {
    sns.on(PublishBatchCommand).resolves({ Successful: [{ Id: '0' }], Failed: [] });
    await snsAlerts(new SNSClient({}), 'arn:topic').publish([raised]);
    const entry = sns.commandCalls(PublishBatchCommand)[0]?.args[0].input.PublishBatchRequestEntries?.[0];
    expect(entry?.Subject).toBe('[critical] RAISED: hot: dev-1 temp 31.5 (> 30)');
    expect(JSON.parse(entry?.Message ?? '')).toEqual({
      deviceId: 'dev-1',
      deviceType: 'thermo',
      rule: 'hot',
      state: 'raised',
      severity: 'critical',
      time: '2026-11-25T06:00:00.000Z',
      metric: 'temp',
      value: 31.5,
      comparison: '>',
      threshold: 30,
    });
    expect(entry?.MessageAttributes).toEqual({
      severity: { DataType: 'String', StringValue: 'critical' },
      rule: { DataType: 'String', StringValue: 'hot' },
      deviceType: { DataType: 'String', StringValue: 'thermo' },
      state: { DataType: 'String', StringValue: 'raised' },
    });
  });

  it('publishes ten a call and fails when SNS refuses an entry', async () => {
    sns.on(PublishBatchCommand).resolves({ Failed: [] });
    await snsAlerts(new SNSClient({}), 'arn:topic').publish(Array(23).fill(raised));
    expect(
      sns.commandCalls(PublishBatchCommand).map((c) => c.args[0].input.PublishBatchRequestEntries?.length),
    ).toEqual([10, 10, 3]);
    sns
      .on(PublishBatchCommand)
      .resolves({ Failed: [{ Id: '0', Code: 'KMSThrottling', SenderFault: false }] });
    await expect(snsAlerts(new SNSClient({}), 'arn:topic').publish([raised])).rejects.toThrow(
      'SNS refused 1 alert(s): KMSThrottling',
    );
  });
});

const record: DeviceRecord = {
  deviceId: 'dev-1',
  deviceType: 'thermo',
  attributes: { site: 'north' },
  firstSeen: 1,
  lastSeen: 2,
  lastValues: { temp: 20 },
  lostMessages: 0,
  alerts: {},
  version: 3,
};

describe('dynamodbRegistry', () => {
  it('writes a record only if nobody wrote since it was read', async () => {
    ddb.on(PutItemCommand).resolves({});
    expect(await dynamodbRegistry(new DynamoDBClient({}), 'registry').put(record, 2)).toBe(true);
    expect(ddb.commandCalls(PutItemCommand)[0]?.args[0].input).toMatchObject({
      TableName: 'registry',
      Item: { deviceId: { S: 'dev-1' }, version: { N: '3' }, record: { S: JSON.stringify(record) } },
      ConditionExpression: 'version = :expected',
      ExpressionAttributeValues: { ':expected': { N: '2' } },
    });
    await dynamodbRegistry(new DynamoDBClient({}), 'registry').put({ ...record, version: 1 }, 0);
    expect(ddb.commandCalls(PutItemCommand)[1]?.args[0].input.ConditionExpression).toBe(
      'attribute_not_exists(deviceId)',
    );
    ddb
      .on(PutItemCommand)
      .rejects(new ConditionalCheckFailedException({ message: 'conflict', $metadata: {} }));
    expect(await dynamodbRegistry(new DynamoDBClient({}), 'registry').put(record, 2)).toBe(false);
  });

  it('reads records in batches of 100 and asks again for unprocessed keys', async () => {
    const ids = Array.from({ length: 150 }, (_, i) => `d-${i}`);
    const item = (id: string) => ({
      deviceId: { S: id },
      record: { S: JSON.stringify({ ...record, deviceId: id }) },
    });
    let first = true;
    ddb.on(BatchGetItemCommand).callsFake((input) => {
      const keys = input.RequestItems.registry.Keys as { deviceId: { S: string } }[];
      if (first) {
        first = false;
        return {
          Responses: { registry: keys.slice(1).map((k) => item(k.deviceId.S)) },
          UnprocessedKeys: { registry: { Keys: keys.slice(0, 1) } },
        };
      }
      return { Responses: { registry: keys.map((k) => item(k.deviceId.S)) } };
    });
    const records = await dynamodbRegistry(new DynamoDBClient({}), 'registry').get(ids);
    expect(records.size).toBe(150);
    expect(
      ddb.commandCalls(BatchGetItemCommand).map((c) => c.args[0].input.RequestItems?.registry?.Keys?.length),
    ).toEqual([100, 1, 50]);
  });

  it('lists every record across scan pages', async () => {
    ddb
      .on(ScanCommand, { ExclusiveStartKey: undefined })
      .resolves({
        Items: [{ record: { S: JSON.stringify(record) } }],
        LastEvaluatedKey: { deviceId: { S: 'dev-1' } },
      })
      .on(ScanCommand, { ExclusiveStartKey: { deviceId: { S: 'dev-1' } } })
      .resolves({ Items: [{ record: { S: JSON.stringify({ ...record, deviceId: 'dev-2' }) } }] });
    const all = await dynamodbRegistry(new DynamoDBClient({}), 'registry').list();
    expect(all.map((r) => r.deviceId)).toEqual(['dev-1', 'dev-2']);
  });
});
