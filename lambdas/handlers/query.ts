import { Logger } from '@aws-lambda-powertools/logger';
import { AthenaClient } from '@aws-sdk/client-athena';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { TimestreamQueryClient } from '@aws-sdk/client-timestream-query';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { httpRequestOf } from '../adapters/aws/api-gateway.ts';
import { athenaPagedQueries } from '../adapters/aws/athena.ts';
import { cloudwatchTraffic } from '../adapters/aws/cloudwatch-traffic.ts';
import { dynamodbRegistry } from '../adapters/aws/dynamodb-registry.ts';
import { dynamodbGate } from '../adapters/aws/gate.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';
import { s3Store } from '../adapters/aws/s3-store.ts';
import { timestreamRecentReadings } from '../adapters/aws/timestream-query.ts';
import { clientTracer } from '../adapters/aws/tracing.ts';
import { ALERTS_PATH, handleAlertsRequest } from '../core/api/alerts.ts';
import { DEVICES_PATH, handleDevicesRequest } from '../core/api/devices.ts';
import { cachedFirstPages, cachedTraffic, ESTATE_PATH, handleEstateRequest } from '../core/api/estate.ts';
import { handleQuarantineRequest, QUARANTINE_PATH } from '../core/api/quarantine.ts';
import { handleQueryRequest } from '../core/api/query.ts';
import { handleRawRequest, isRawPath } from '../core/api/raw.ts';
import { curatedDaysOf, handleSeriesRequest, isSeriesPath } from '../core/api/series.ts';
import { offlineTimeouts } from '../core/estate/registry-query.ts';
import { ENV, requireEnv } from '../env.ts';

// Built once per container, outside the handler; each SDK call an X-Ray subsegment.
const logger = new Logger();
const trace = await clientTracer();
const dynamodb = trace(new DynamoDBClient({}));
const gate = dynamodbGate(dynamodb, (error) => logger.warn('could not note key use', { error }));
// What each request's registry reads cost, for its log line.
let readUnits = 0;
const registry = dynamodbRegistry(dynamodb, requireEnv(ENV.registryTable), {
  onReadUnits: (units) => {
    readUnits += units;
  },
});
// The rules name an open alert's severity, metric and threshold (GET /v1/alerts); the
// offline timeouts measure each device's status (GET /v1/devices, GET /v1/estate).
const config = loadRuntimeConfig();
const { alertRules } = config;
// ... each plus how far the registry's last seen may be behind arrival (the ingest and estate windows).
const timeouts = offlineTimeouts(config, Number(process.env[ENV.registryLagSeconds] ?? 0) * 1000);
// The ingest function's message counts, read at most once a minute per container.
const traffic = cachedTraffic(
  cloudwatchTraffic(trace(new CloudWatchClient({})), {
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'IotPipeline',
    ingestFunctionName: requireEnv(ENV.ingestFunctionName),
  }),
);
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
// Which days the daily job has compacted: the series route reads those from the Parquet.
const curatedDays = curatedDaysOf(s3Store(trace(new S3Client({})), requireEnv(ENV.lakeBucket)));
const engine = athenaPagedQueries(trace(new AthenaClient({})), {
  workGroup: requireEnv(ENV.athenaWorkGroup),
  database: requireEnv(ENV.glueDatabase),
});
// The estate's uptime (daily_uptime changes once a day): Athena at most once per 10 minutes.
const uptimeEngine = cachedFirstPages(engine);

/** GET /v1/devices and GET /v1/devices/{id}/readings|daily|series|raw: reads only, never ingest. */
export const handler = async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
  const request = httpRequestOf(event);
  readUnits = 0;
  const response =
    event.rawPath === DEVICES_PATH
      ? await handleDevicesRequest(request, { gate, registry, timeouts })
      : event.rawPath === ESTATE_PATH
        ? await handleEstateRequest(request, {
            gate,
            registry,
            timeouts,
            rules: alertRules,
            offlineSeverity: config.offline.severity,
            traffic,
            engine: uptimeEngine,
            waitMs: 10_000,
          })
        : event.rawPath === ALERTS_PATH
          ? await handleAlertsRequest(request, { gate, registry, engine, rules: alertRules, waitMs: 20_000 })
          : event.rawPath === QUARANTINE_PATH
            ? await handleQuarantineRequest(request, { gate, engine, waitMs: 20_000 })
            : isSeriesPath(event.rawPath)
              ? await handleSeriesRequest(request, { gate, engine, curatedDays, waitMs: 20_000 })
              : isRawPath(event.rawPath)
                ? await handleRawRequest(request, { gate, engine, waitMs: 20_000 })
                : // API Gateway gives an integration 30 s: wait 20, then hand back a token.
                  await handleQueryRequest(request, { gate, engine, recent, waitMs: 20_000 });
  logger.info('query', { path: event.rawPath, status: response.statusCode, registryReadUnits: readUnits });
  return response;
};
