import { Logger } from '@aws-lambda-powertools/logger';
import { AthenaClient } from '@aws-sdk/client-athena';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { TimestreamQueryClient } from '@aws-sdk/client-timestream-query';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { athenaPagedQueries } from '../adapters/aws/athena.ts';
import { dynamodbRegistry } from '../adapters/aws/dynamodb-registry.ts';
import { cachedSecret } from '../adapters/aws/secret.ts';
import { timestreamRecentReadings } from '../adapters/aws/timestream-query.ts';
import { DEVICES_PATH, handleDevicesRequest } from '../core/api/devices.ts';
import type { HttpRequest } from '../core/api/ingress.ts';
import { handleQueryRequest } from '../core/api/query.ts';
import { ENV, requireEnv } from '../env.ts';

const logger = new Logger();
// Built once per container, outside the handler.
const apiKey = cachedSecret(new SecretsManagerClient({}), requireEnv(ENV.apiKeySecretArn));
const registry = dynamodbRegistry(new DynamoDBClient({}), requireEnv(ENV.registryTable));
const timestreamDatabase = process.env[ENV.timestreamDatabase];
const timestreamTable = process.env[ENV.timestreamTable];
const recent =
  timestreamDatabase && timestreamTable
    ? timestreamRecentReadings(new TimestreamQueryClient({}), {
        database: timestreamDatabase,
        table: timestreamTable,
        windowMs: Number(requireEnv(ENV.timestreamWindowHours)) * 3_600_000,
      })
    : undefined;
const engine = athenaPagedQueries(new AthenaClient({}), {
  workGroup: requireEnv(ENV.athenaWorkGroup),
  database: requireEnv(ENV.glueDatabase),
});

/** GET /v1/devices and GET /v1/devices/{id}/readings|daily: reads only, never ingest. */
export const handler = async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
  const request: HttpRequest = {
    method: event.requestContext.http.method,
    path: event.rawPath,
    query: event.rawQueryString,
    headers: event.headers,
    body: Buffer.alloc(0),
    requestId: event.requestContext.requestId,
    receivedAt: event.requestContext.timeEpoch,
  };
  const key = await apiKey();
  const response =
    event.rawPath === DEVICES_PATH
      ? await handleDevicesRequest(request, { apiKey: key, registry })
      : // API Gateway gives an integration 30 s: wait 20, then hand back a token.
        await handleQueryRequest(request, { apiKey: key, engine, recent, waitMs: 20_000 });
  logger.info('query', { path: event.rawPath, status: response.statusCode });
  return response;
};
