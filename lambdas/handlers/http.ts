import { Logger } from '@aws-lambda-powertools/logger';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { sqsEnqueue } from '../adapters/aws/queue.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';
import { cachedSecret } from '../adapters/aws/secret.ts';
import { handleIngress } from '../core/api/ingress.ts';
import { ENV, requireEnv } from '../env.ts';

const logger = new Logger();
const config = loadRuntimeConfig();
const enqueue = sqsEnqueue(new SQSClient({}), requireEnv(ENV.ingestQueueUrl));
const apiKey = cachedSecret(new SecretsManagerClient({}), requireEnv(ENV.apiKeySecretArn));

export const handler = async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
  const body = Buffer.from(event.body ?? '', event.isBase64Encoded ? 'base64' : 'utf8');
  const response = await handleIngress(
    {
      method: event.requestContext.http.method,
      path: event.rawPath,
      query: event.rawQueryString,
      headers: event.headers,
      body,
      requestId: event.requestContext.requestId,
      receivedAt: event.requestContext.timeEpoch,
    },
    {
      apiKey: await apiKey(),
      enqueue,
      maxBodyBytes: config.validation.maxPayloadBytes,
      config,
      onEnqueueError: (error) => logger.error('could not enqueue', { error }),
    },
  );
  logger.info('request', { path: event.rawPath, status: response.statusCode, bytes: body.length });
  return response;
};
