import { ConditionalCheckFailedException, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { dynamodbClaims } from '../../lambdas/adapters/aws/dynamodb-claims.ts';

const ddb = mockClient(DynamoDBClient);
const NOW = Date.parse('2026-11-25T06:00:00Z');

describe('dynamodbClaims', () => {
  afterEach(() => ddb.reset());

  it('claims each key with a conditional put that lets the same message claim again, expiring in two days', async () => {
    ddb.on(PutItemCommand).resolves({});
    const taken = await dynamodbClaims(new DynamoDBClient({}), 'claims', () => NOW).claim([
      { key: 'sigfox#1A2B3C#seq:1@1', messageId: 'm1' },
    ]);
    expect(taken).toEqual(new Set());
    expect(ddb.commandCalls(PutItemCommand)[0]?.args[0].input).toEqual({
      TableName: 'claims',
      Item: {
        pk: { S: 'sigfox#1A2B3C#seq:1@1' },
        messageId: { S: 'm1' },
        expiresAt: { N: String(NOW / 1000 + 2 * 86_400) },
      },
      ConditionExpression: 'attribute_not_exists(pk) OR messageId = :m',
      ExpressionAttributeValues: { ':m': { S: 'm1' } },
    });
  });

  it('reports the keys another message owns as duplicates', async () => {
    ddb
      .on(PutItemCommand, {
        Item: { pk: { S: 'dup' }, messageId: { S: 'm2' }, expiresAt: { N: String(NOW / 1000 + 172_800) } },
      })
      .rejects(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      )
      .on(PutItemCommand, {
        Item: { pk: { S: 'new' }, messageId: { S: 'm2' }, expiresAt: { N: String(NOW / 1000 + 172_800) } },
      })
      .resolves({});
    const taken = await dynamodbClaims(new DynamoDBClient({}), 'claims', () => NOW).claim([
      { key: 'dup', messageId: 'm2' },
      { key: 'new', messageId: 'm2' },
    ]);
    expect(taken).toEqual(new Set(['dup']));
  });

  it('throws on any other error, so the messages are retried', async () => {
    ddb.on(PutItemCommand).rejects(new Error('ProvisionedThroughputExceededException'));
    await expect(
      dynamodbClaims(new DynamoDBClient({}), 'claims').claim([{ key: 'k', messageId: 'm' }]),
    ).rejects.toThrow('ProvisionedThroughputExceededException');
  });
});
