/**
 * The ingest Lambda put together: the AWS adapters over injected SDK clients, and the
 * SQS batch handler with partial batch responses. `lambdas/handlers/ingest.ts` builds
 * it with real clients; the cost model (`local/cost.ts`) builds the same thing over
 * metered clients, so what it counts is what the Lambda sends.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { TimestreamWriteClient } from '@aws-sdk/client-timestream-write';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { RuntimeConfig } from '../../core/config.ts';
import { IngestBatch, type IngestDeps } from '../../core/ingest/ingest.ts';
import { ENV, requireEnv } from '../../env.ts';
import { dynamodbClaims } from './dynamodb-claims.ts';
import { dynamodbRegistry } from './dynamodb-registry.ts';
import { emfMetrics } from './metrics.ts';
import { s3Store } from './s3-store.ts';
import { snsAlerts } from './sns-alerts.ts';
import { timestreamSink } from './timestream-sink.ts';

export interface IngestClients {
  readonly s3: S3Client;
  readonly dynamodb: DynamoDBClient;
  readonly sns: SNSClient;
  /** Absent when Timestream is switched off. */
  readonly timestream?: TimestreamWriteClient;
}

/** The resources the stack created for the ingest function (its environment). */
export interface IngestResources {
  readonly lakeBucket: string;
  readonly claimsTable: string;
  readonly registryTable: string;
  readonly alertTopicArn: string;
  /** Absent when Timestream is switched off. */
  readonly timestream?: { readonly database: string; readonly table: string };
}

export function ingestResourcesFromEnv(env: NodeJS.ProcessEnv = process.env): IngestResources {
  const database = env[ENV.timestreamDatabase];
  const table = env[ENV.timestreamTable];
  return {
    lakeBucket: requireEnv(ENV.lakeBucket, env),
    claimsTable: requireEnv(ENV.claimsTable, env),
    registryTable: requireEnv(ENV.registryTable, env),
    alertTopicArn: requireEnv(ENV.alertTopicArn, env),
    ...(database && table ? { timestream: { database, table } } : {}),
  };
}

/** The ingest core's ports on AWS: S3, Timestream, DynamoDB (claims, registry), SNS. */
export function awsIngestDeps(
  config: RuntimeConfig,
  clients: IngestClients,
  resources: IngestResources,
  logger: Logger,
  metrics?: Metrics,
): IngestDeps {
  const { timestream } = resources;
  return {
    config,
    lake: s3Store(clients.s3, resources.lakeBucket),
    timeseries:
      timestream && clients.timestream
        ? timestreamSink(clients.timestream, timestream.database, timestream.table)
        : undefined,
    claims: dynamodbClaims(clients.dynamodb, resources.claimsTable),
    estate: {
      config,
      registry: dynamodbRegistry(clients.dynamodb, resources.registryTable),
      publisher: snsAlerts(clients.sns, resources.alertTopicArn),
    },
    ...(metrics ? { metrics: emfMetrics(metrics) } : {}),
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
}

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

/** The SQS event handler: each record submitted to one {@link IngestBatch}, failures reported per message. */
export function sqsIngestHandler(deps: IngestDeps, logger: Logger, metrics?: Metrics): SqsHandler {
  const processor = new BatchProcessor(EventType.SQS);
  return async (event, context) => {
    logger.addContext(context);
    const batch = new IngestBatch(event.Records.length, deps);
    try {
      return await processPartialResponse(event, (record: SQSRecord) => batch.submit(record), processor, {
        context,
        processInParallel: true,
      });
    } finally {
      metrics?.publishStoredMetrics();
    }
  };
}
