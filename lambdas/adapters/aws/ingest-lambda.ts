/**
 * The ingest Lambda and the estate Lambda put together: the AWS adapters over injected
 * SDK clients, and their SQS batch handlers with partial batch responses. `lambdas/handlers/ingest.ts` builds
 * it with real (traced) clients; the cost model (`tools/cost/measure.ts`) builds the same
 * thing over metered clients, so what it counts is what the Lambda sends.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { TimestreamWriteClient } from '@aws-sdk/client-timestream-write';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { RuntimeConfig } from '../../core/config.ts';
import type { Decoders } from '../../core/decoders/decoder.ts';
import { buildDecoders } from '../../core/decoders/registry.ts';
import { withAlertHistory } from '../../core/estate/alert-history.ts';
import { applyDeltas, queueDeltas } from '../../core/estate/delta.ts';
import type { EstateDeps } from '../../core/estate/update.ts';
import { ingestBatch } from '../../core/ingest/batch.ts';
import type { IngestDeps } from '../../core/ingest/write.ts';
import { ENV, requireEnv } from '../../env.ts';
import { dynamodbClaims } from './dynamodb-claims.ts';
import { dynamodbRegistry } from './dynamodb-registry.ts';
import { sqsDeltaQueue } from './estate-queue.ts';
import { emfMetrics } from './metrics.ts';
import { s3Store } from './s3-store.ts';
import { snsAlerts } from './sns-alerts.ts';
import { timestreamSink } from './timestream-sink.ts';

/**
 * The SDK clients of the ingest function's adapters, one per service. The handler makes
 * them on first use (`onFirstUse`, `clients.ts`), so `timestream` is never made when the stack
 * has no Timestream; the cost model passes its metered clients.
 */
export interface IngestClients {
  readonly s3: S3Client;
  readonly dynamodb: DynamoDBClient;
  readonly timestream: TimestreamWriteClient;
  /** The estate queue's (the registry updates the estate function applies). */
  readonly sqs: SQSClient;
}

/**
 * The resources the stack made for the ingest function, under the variable names of
 * `lambdas/env.ts`: the function's environment (`process.env`), which each resource's
 * construct sets when it grants the function access (`lake.grantWrite(fn, ...)` sets
 * `LAKE_BUCKET`). The cost model and the tests pass the same names.
 */
export type IngestResources = Readonly<Record<string, string | undefined>>;

/**
 * The ingest core's ports on AWS: S3, Timestream, DynamoDB (claims), SQS (the estate queue). One
 * line per resource: its adapter over its client, named by its environment variable
 * (a missing one fails the cold start with its name). A new resource is one more line.
 */
export function awsIngestDeps(
  config: RuntimeConfig,
  clients: IngestClients,
  resources: IngestResources,
  logger: Logger,
  metrics?: Metrics,
  // Grammars parsed and codecs loaded once, at cold start.
  decoders: Decoders = buildDecoders(config.deviceTypes),
): IngestDeps {
  const name = (variable: string) => requireEnv(variable, resources);
  // Timestream is optional: the stack sets both names, or neither when it is switched off.
  const database = resources[ENV.timestreamDatabase];
  const table = resources[ENV.timestreamTable];
  const lake = s3Store(clients.s3, name(ENV.lakeBucket));
  return {
    config,
    decoders,
    lake,
    timeseries: database && table ? timestreamSink(clients.timestream, database, table) : undefined,
    claims: dynamodbClaims(clients.dynamodb, name(ENV.claimsTable)),
    // The registry and alerts are the estate function's: each batch's readings go to its queue.
    estate: queueDeltas(sqsDeltaQueue(clients.sqs, name(ENV.estateQueueUrls).split(','))),
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

/** The SDK clients of the estate function: the registry's, the alert topic's and the lake's (alert history). */
export interface EstateClients {
  readonly s3: S3Client;
  readonly dynamodb: DynamoDBClient;
  readonly sns: SNSClient;
}

/** The estate function's ports on AWS: the registry (DynamoDB), alerts (SNS) and their history (S3). */
export function awsEstateDeps(
  config: RuntimeConfig,
  clients: EstateClients,
  resources: IngestResources,
): EstateDeps {
  const name = (variable: string) => requireEnv(variable, resources);
  return {
    config,
    registry: dynamodbRegistry(clients.dynamodb, name(ENV.registryTable)),
    // Each alert is also kept in the lake (`alerts/`): both are tried, a failure of either retries.
    publisher: withAlertHistory(
      snsAlerts(clients.sns, name(ENV.alertTopicArn)),
      s3Store(clients.s3, name(ENV.lakeBucket)),
    ),
  };
}

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

/** The SQS event handler: each record submitted to one {@link IngestBatch}, failures reported per message. */
export function sqsIngestHandler(deps: IngestDeps, logger: Logger, metrics?: Metrics): SqsHandler {
  return sqsBatchHandler((messages) => ingestBatch(messages, deps), logger, metrics);
}

/** The estate function's SQS handler: a window of deltas applied at once ({@link applyDeltas}). */
export function sqsEstateHandler(deps: EstateDeps, logger: Logger): SqsHandler {
  return sqsBatchHandler(async (messages) => {
    const failures = await applyDeltas(messages, deps);
    for (const [messageId, error] of failures)
      logger.warn('estate update will be retried', { messageId, error: error.message });
    logger.info('estate updated', { deltas: messages.length, failed: failures.size });
    return failures;
  }, logger);
}

/**
 * An SQS batch handler over a batch-first core: the failures it returns are SQS's
 * partial batch response.
 */
function sqsBatchHandler(
  handle: (messages: { messageId: string; body: string }[]) => Promise<Map<string, Error>>,
  logger: Logger,
  metrics?: Metrics,
): SqsHandler {
  return async (event, context) => {
    logger.addContext(context);
    try {
      const failures = await handle(
        event.Records.map((record) => ({ messageId: record.messageId, body: record.body })),
      );
      if (failures.size > 0 && failures.size === event.Records.length) {
        // As Powertools' processor does: a batch that failed whole fails the invocation,
        // so the Lambda's Errors metric (and its alarm) sees it; SQS retries every message.
        const [first] = failures.values();
        throw new Error(`All records failed processing: ${first?.message}`, { cause: first });
      }
      return { batchItemFailures: [...failures.keys()].map((itemIdentifier) => ({ itemIdentifier })) };
    } finally {
      metrics?.publishStoredMetrics();
    }
  };
}
