import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  PutItemCommand,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import type { DeviceRecord } from '../../core/estate/alerts.ts';
import type { DeviceRegistry } from '../../core/estate/update.ts';

/**
 * The device registry in DynamoDB: key `deviceId`, the record as JSON, its `version`
 * for conditional writes, and `deviceType`/`lastSeen` as plain attributes for the
 * console. One BatchGetItem per 100 devices, one conditional PutItem per device.
 */
export function dynamodbRegistry(client: DynamoDBClient, table: string): DeviceRegistry {
  const parse = (item: Record<string, { S?: string }> | undefined) =>
    item?.record?.S ? (JSON.parse(item.record.S) as DeviceRecord) : undefined;
  return {
    async get(deviceIds) {
      const records = new Map<string, DeviceRecord>();
      for (let i = 0; i < deviceIds.length; i += 100) {
        let keys: { deviceId: { S: string } }[] | undefined = deviceIds
          .slice(i, i + 100)
          .map((id) => ({ deviceId: { S: id } }));
        for (let attempt = 0; keys && keys.length > 0; attempt++) {
          if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
          if (attempt === 6) throw new Error(`DynamoDB left ${keys.length} registry keys unprocessed`);
          const result = await client.send(
            new BatchGetItemCommand({ RequestItems: { [table]: { Keys: keys, ConsistentRead: true } } }),
          );
          for (const item of result.Responses?.[table] ?? []) {
            const record = parse(item as Record<string, { S?: string }>);
            if (record) records.set(record.deviceId, record);
          }
          keys = result.UnprocessedKeys?.[table]?.Keys as typeof keys;
        }
      }
      return records;
    },
    async put(record, expectedVersion) {
      try {
        await client.send(
          new PutItemCommand({
            TableName: table,
            Item: {
              deviceId: { S: record.deviceId },
              deviceType: { S: record.deviceType },
              lastSeen: { N: String(record.lastSeen) },
              version: { N: String(record.version) },
              record: { S: JSON.stringify(record) },
            },
            ConditionExpression:
              expectedVersion === 0 ? 'attribute_not_exists(deviceId)' : 'version = :expected',
            ...(expectedVersion === 0
              ? {}
              : { ExpressionAttributeValues: { ':expected': { N: String(expectedVersion) } } }),
          }),
        );
        return true;
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return false;
        throw error;
      }
    },
    async list() {
      const records: DeviceRecord[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        const page = await client.send(
          new ScanCommand({
            TableName: table,
            ProjectionExpression: '#r',
            ExpressionAttributeNames: { '#r': 'record' },
            ExclusiveStartKey: start as never,
          }),
        );
        for (const item of page.Items ?? []) {
          const record = parse(item as Record<string, { S?: string }>);
          if (record) records.push(record);
        }
        start = page.LastEvaluatedKey;
      } while (start);
      return records;
    },
  };
}
