import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { TimestreamWriteClient } from '@aws-sdk/client-timestream-write';
import { awsIngestDeps, ingestResourcesFromEnv, sqsIngestHandler } from '../adapters/aws/ingest-lambda.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';

// Built once per container, outside the handler.
const logger = new Logger();
const metrics = new Metrics();
const resources = ingestResourcesFromEnv();
const clients = {
  s3: new S3Client({}),
  dynamodb: new DynamoDBClient({}),
  sns: new SNSClient({}),
  ...(resources.timestream ? { timestream: new TimestreamWriteClient({}) } : {}),
};

export const handler = sqsIngestHandler(
  awsIngestDeps(loadRuntimeConfig(), clients, resources, logger, metrics),
  logger,
  metrics,
);
