import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { awsEstateDeps, sqsEstateHandler } from '../adapters/aws/ingest-lambda.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';
import { clientTracer } from '../adapters/aws/tracing.ts';

// Built once per container, outside the handler; each SDK call an X-Ray subsegment.
const logger = new Logger();
const trace = await clientTracer();

/** The estate queue's window of deltas: the registry updated once per device, alerts raised. */
export const handler = sqsEstateHandler(
  awsEstateDeps(
    loadRuntimeConfig(),
    { s3: trace(new S3Client({})), dynamodb: trace(new DynamoDBClient({})), sns: trace(new SNSClient({})) },
    process.env,
  ),
  logger,
);
