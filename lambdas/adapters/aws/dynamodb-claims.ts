import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { ReadingClaims } from '../../core/ingest/ports.ts';

/** Days a claim is kept (DynamoDB TTL): far longer than any network keeps resending. */
export const CLAIM_DAYS = 2;

/**
 * Claims in a DynamoDB table (`pk` string key, `expiresAt` TTL): one conditional
 * PutItem per reading, which succeeds when nobody claimed the key or this same message
 * did (an SQS retry), and fails for a duplicate.
 */
export function dynamodbClaims(
  client: DynamoDBClient,
  table: string,
  now: () => number = Date.now,
): ReadingClaims {
  return {
    async claim(claims) {
      const expiresAt = String(Math.floor(now() / 1000) + CLAIM_DAYS * 86_400);
      const taken = new Set<string>();
      await Promise.all(
        claims.map(async ({ key, messageId }) => {
          try {
            await client.send(
              new PutItemCommand({
                TableName: table,
                Item: { pk: { S: key }, messageId: { S: messageId }, expiresAt: { N: expiresAt } },
                ConditionExpression: 'attribute_not_exists(pk) OR messageId = :m',
                ExpressionAttributeValues: { ':m': { S: messageId } },
              }),
            );
          } catch (error) {
            if (error instanceof ConditionalCheckFailedException) taken.add(key);
            else throw error;
          }
        }),
      );
      return taken;
    },
  };
}
