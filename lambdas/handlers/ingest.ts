import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { TimestreamWriteClient } from '@aws-sdk/client-timestream-write';
import { onFirstUse } from '../adapters/aws/clients.ts';
import { awsIngestDeps, type IngestClients, sqsIngestHandler } from '../adapters/aws/ingest-lambda.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';

// Built once per container, outside the handler.
const logger = new Logger();
const metrics = new Metrics();
const tracer = new Tracer();
// Each SDK call an X-Ray subsegment; Timestream's client is made only if the stack has Timestream.
const clients = onFirstUse<IngestClients>({
  s3: () => tracer.captureAWSv3Client(new S3Client({})),
  dynamodb: () => tracer.captureAWSv3Client(new DynamoDBClient({})),
  sns: () => tracer.captureAWSv3Client(new SNSClient({})),
  timestream: () => tracer.captureAWSv3Client(new TimestreamWriteClient({})),
});

export const handler = sqsIngestHandler(
  awsIngestDeps(loadRuntimeConfig(), clients, process.env, logger, metrics),
  logger,
  metrics,
);
