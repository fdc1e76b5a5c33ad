import { Logger } from '@aws-lambda-powertools/logger';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { httpRequestOf } from '../adapters/aws/api-gateway.ts';
import { sqsEnqueue } from '../adapters/aws/queue.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';
import { cachedSecret } from '../adapters/aws/secret.ts';
import { clientTracer } from '../adapters/aws/tracing.ts';
import { handleIngress } from '../core/api/ingress.ts';
import { ENV, requireEnv } from '../env.ts';

// Built once per container, outside the handler; each SDK call an X-Ray subsegment.
const logger = new Logger();
const trace = await clientTracer();
const config = loadRuntimeConfig();
const enqueue = sqsEnqueue(trace(new SQSClient({})), requireEnv(ENV.ingestQueueUrl));
const apiKey = cachedSecret(trace(new SecretsManagerClient({})), requireEnv(ENV.apiKeySecretArn));

export const handler = async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
  const request = httpRequestOf(event);
  const response = await handleIngress(request, {
    apiKey: await apiKey(),
    enqueue,
    maxBodyBytes: config.validation.maxPayloadBytes,
    config,
    onEnqueueError: (error) => logger.error('could not enqueue', { error }),
  });
  logger.info('request', { path: event.rawPath, status: response.statusCode, bytes: request.body.length });
  return response;
};
