import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { TimestreamWriteClient } from '@aws-sdk/client-timestream-write';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { dynamodbClaims } from '../adapters/aws/dynamodb-claims.ts';
import { dynamodbRegistry } from '../adapters/aws/dynamodb-registry.ts';
import { emfMetrics } from '../adapters/aws/metrics.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';
import { s3Store } from '../adapters/aws/s3-store.ts';
import { snsAlerts } from '../adapters/aws/sns-alerts.ts';
import { timestreamSink } from '../adapters/aws/timestream-sink.ts';
import { IngestBatch, type IngestDeps } from '../core/ingest.ts';
import { ENV, requireEnv } from '../env.ts';

const logger = new Logger();
const metrics = new Metrics();
const processor = new BatchProcessor(EventType.SQS);
const database = process.env[ENV.timestreamDatabase];
const table = process.env[ENV.timestreamTable];
// Built once per container, outside the handler.
const config = loadRuntimeConfig();
const dynamodb = new DynamoDBClient({});
const deps: IngestDeps = {
  config,
  lake: s3Store(new S3Client({}), requireEnv(ENV.lakeBucket)),
  timeseries: database && table ? timestreamSink(new TimestreamWriteClient({}), database, table) : undefined,
  claims: dynamodbClaims(dynamodb, requireEnv(ENV.claimsTable)),
  estate: {
    config,
    registry: dynamodbRegistry(dynamodb, requireEnv(ENV.registryTable)),
    publisher: snsAlerts(new SNSClient({}), requireEnv(ENV.alertTopicArn)),
  },
  metrics: emfMetrics(metrics),
  log: {
    quarantined: (q) =>
      logger.warn('message quarantined', {
        messageId: q.message_id,
        deviceId: q.device_id,
        deviceType: q.device_type,
        source: q.source,
        reasonCode: q.reason_code,
        reason: q.reason,
      }),
    retrying: (messageId, error) =>
      logger.warn('message will be retried', { messageId, error: error.message }),
  },
};

export const handler = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
  logger.addContext(context);
  const batch = new IngestBatch(event.Records.length, deps);
  try {
    return await processPartialResponse(event, (record: SQSRecord) => batch.submit(record), processor, {
      context,
      processInParallel: true,
    });
  } finally {
    metrics.publishStoredMetrics();
  }
};
