import { Logger } from '@aws-lambda-powertools/logger';
import { AthenaClient } from '@aws-sdk/client-athena';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { TimestreamQueryClient } from '@aws-sdk/client-timestream-query';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { httpRequestOf } from '../adapters/aws/api-gateway.ts';
import { athenaPagedQueries } from '../adapters/aws/athena.ts';
import { dynamodbRegistry } from '../adapters/aws/dynamodb-registry.ts';
import { dynamodbGate } from '../adapters/aws/gate.ts';
import { timestreamRecentReadings } from '../adapters/aws/timestream-query.ts';
import { clientTracer } from '../adapters/aws/tracing.ts';
import { DEVICES_PATH, handleDevicesRequest } from '../core/api/devices.ts';
import { handleQueryRequest } from '../core/api/query.ts';
import { ENV, requireEnv } from '../env.ts';

// Built once per container, outside the handler; each SDK call an X-Ray subsegment.
const logger = new Logger();
const trace = await clientTracer();
const dynamodb = trace(new DynamoDBClient({}));
const gate = dynamodbGate(dynamodb, (error) => logger.warn('could not note key use', { error }));
const registry = dynamodbRegistry(dynamodb, requireEnv(ENV.registryTable));
// Set by the stack only when Timestream is on: recent readings come from it.
const database = process.env[ENV.timestreamDatabase];
const table = process.env[ENV.timestreamTable];
const recent =
  database && table
    ? timestreamRecentReadings(trace(new TimestreamQueryClient({})), {
        database,
        table,
        windowMs: Number(requireEnv(ENV.timestreamWindowHours)) * 3_600_000,
      })
    : undefined;
const engine = athenaPagedQueries(trace(new AthenaClient({})), {
  workGroup: requireEnv(ENV.athenaWorkGroup),
  database: requireEnv(ENV.glueDatabase),
});

/** GET /v1/devices and GET /v1/devices/{id}/readings|daily: reads only, never ingest. */
export const handler = async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
  const request = httpRequestOf(event);
  const response =
    event.rawPath === DEVICES_PATH
      ? await handleDevicesRequest(request, { gate, registry })
      : // API Gateway gives an integration 30 s: wait 20, then hand back a token.
        await handleQueryRequest(request, { gate, engine, recent, waitMs: 20_000 });
  logger.info('query', { path: event.rawPath, status: response.statusCode });
  return response;
};
