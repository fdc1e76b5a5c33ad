import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { type KeyRecord, KeySpecError, type KeyStore, readKeyRecord } from '../../core/access/keys.ts';

type Item = Record<string, { S?: string; N?: string }>;

/** A new key's item: its id, name and the record as JSON (use and revocation are added later, as attributes). */
export function keyItem(record: KeyRecord): Record<string, { S: string }> {
  const { lastUsedAt: _used, revokedAt: _revoked, ...stored } = record;
  return { id: { S: record.id }, name: { S: record.name }, record: { S: JSON.stringify(stored) } };
}

/**
 * The API keys in DynamoDB: key `id` (the public part of a key), the record as JSON,
 * `name` for `keys revoke`, and `lastUsedAt`/`revokedAt` as their own attributes so that
 * noting a use or a revocation never rewrites the record. The functions read one item
 * per key id (behind a short cache); `keys list`, `create` and `revoke` scan the table,
 * which holds one small item per key.
 */
export function dynamodbKeyStore(client: DynamoDBClient, table: string): KeyStore {
  const parse = (item: Item | undefined): KeyRecord | undefined => {
    if (!item?.record?.S) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(item.record.S);
    } catch {
      return undefined;
    }
    const record = readKeyRecord(value);
    if (!record || record.id !== item.id?.S) return undefined;
    const lastUsedAt = item.lastUsedAt?.N === undefined ? undefined : Number(item.lastUsedAt.N);
    const revokedAt = item.revokedAt?.N === undefined ? undefined : Number(item.revokedAt.N);
    return {
      ...record,
      ...(lastUsedAt === undefined ? {} : { lastUsedAt }),
      ...(revokedAt === undefined ? {} : { revokedAt }),
    };
  };
  const list = async (): Promise<KeyRecord[]> => {
    const records: KeyRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await client.send(
        new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: start as never }),
      );
      for (const item of page.Items ?? []) {
        const record = parse(item as Item);
        if (record) records.push(record);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return records.sort((a, b) => a.createdAt - b.createdAt);
  };
  return {
    async find(id) {
      const { Item: item } = await client.send(
        new GetItemCommand({ TableName: table, Key: { id: { S: id } } }),
      );
      return parse(item as Item | undefined);
    },
    list,
    async add(record) {
      if ((await list()).some((k) => k.name === record.name && k.revokedAt === undefined))
        throw new KeySpecError(`a key named "${record.name}" exists: revoke it first, or pick another name`);
      await client.send(
        new PutItemCommand({
          TableName: table,
          Item: keyItem(record),
          ConditionExpression: 'attribute_not_exists(id)',
        }),
      );
    },
    async revoke(name, at) {
      const live = (await list()).filter((k) => k.name === name && k.revokedAt === undefined);
      for (const key of live) {
        try {
          await client.send(
            new UpdateItemCommand({
              TableName: table,
              Key: { id: { S: key.id } },
              UpdateExpression: 'SET revokedAt = :at',
              ConditionExpression: 'attribute_exists(id) AND attribute_not_exists(revokedAt)',
              ExpressionAttributeValues: { ':at': { N: String(at) } },
            }),
          );
        } catch (error) {
          if (!(error instanceof ConditionalCheckFailedException)) throw error;
        }
      }
      return live.length > 0;
    },
    async touch(used) {
      for (const [id, at] of used) {
        try {
          await client.send(
            new UpdateItemCommand({
              TableName: table,
              Key: { id: { S: id } },
              UpdateExpression: 'SET lastUsedAt = :at',
              // Never creates an item: a key deleted meanwhile stays deleted.
              ConditionExpression: 'attribute_exists(id)',
              ExpressionAttributeValues: { ':at': { N: String(at) } },
            }),
          );
        } catch (error) {
          if (!(error instanceof ConditionalCheckFailedException)) throw error;
        }
      }
    },
  };
}
