import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { httpRequestOf } from '../adapters/aws/api-gateway.ts';
import { dynamodbRegistry } from '../adapters/aws/dynamodb-registry.ts';
import { dynamodbGate } from '../adapters/aws/gate.ts';
import { sqsEnqueue } from '../adapters/aws/queue.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';
import { clientTracer } from '../adapters/aws/tracing.ts';
import { handleIngress } from '../core/api/ingress.ts';
import { registrySources } from '../core/estate/sources.ts';
import { ENV, requireEnv } from '../env.ts';

// Built once per container, outside the handler; each SDK call an X-Ray subsegment.
const logger = new Logger();
const trace = await clientTracer();
const config = loadRuntimeConfig();
const enqueue = sqsEnqueue(trace(new SQSClient({})), requireEnv(ENV.ingestQueueUrl));
const dynamodb = trace(new DynamoDBClient({}));
const gate = dynamodbGate(dynamodb, (error) => logger.warn('could not note key use', { error }));
const sources = registrySources(dynamodbRegistry(dynamodb, requireEnv(ENV.registryTable)));

export const handler = async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
  const request = httpRequestOf(event);
  const response = await handleIngress(request, {
    gate,
    sources,
    enqueue,
    maxBodyBytes: config.validation.maxPayloadBytes,
    config,
    onEnqueueError: (error) => logger.error('could not enqueue', { error }),
  });
  logger.info('request', { path: event.rawPath, status: response.statusCode, bytes: request.body.length });
  return response;
};
