import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { TimestreamWriteClient } from '@aws-sdk/client-timestream-write';
import { onFirstUse } from '../adapters/aws/clients.ts';
import { awsIngestDeps, type IngestClients, sqsIngestHandler } from '../adapters/aws/ingest-lambda.ts';
import { ingestMetricDimensions } from '../adapters/aws/metrics.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';
import { clientTracer } from '../adapters/aws/tracing.ts';

// Built once per container, outside the handler.
const logger = new Logger();
// Dimensioned by the function's name: the estate's traffic figures read this stage's own.
const metrics = new Metrics({
  defaultDimensions: ingestMetricDimensions(process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'ingest'),
});
const trace = await clientTracer();
// Each SDK call an X-Ray subsegment; Timestream's client is made only if the stack has Timestream.
const clients = onFirstUse<IngestClients>({
  s3: () => trace(new S3Client({})),
  dynamodb: () => trace(new DynamoDBClient({})),
  timestream: () => trace(new TimestreamWriteClient({})),
  sqs: () => trace(new SQSClient({})),
});

export const handler = sqsIngestHandler(
  awsIngestDeps(loadRuntimeConfig(), clients, process.env, logger, metrics),
  logger,
  metrics,
);
