import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { dynamodbRegistry } from '../adapters/aws/dynamodb-registry.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';
import { s3Store } from '../adapters/aws/s3-store.ts';
import { snsAlerts } from '../adapters/aws/sns-alerts.ts';
import { clientTracer } from '../adapters/aws/tracing.ts';
import { withAlertHistory } from '../core/estate/alert-history.ts';
import { detectOffline, type EstateDeps } from '../core/estate/update.ts';
import { ENV, requireEnv } from '../env.ts';

// Built once per container, outside the handler; each SDK call an X-Ray subsegment.
const logger = new Logger();
const trace = await clientTracer();
const estate: EstateDeps = {
  config: loadRuntimeConfig(),
  registry: dynamodbRegistry(trace(new DynamoDBClient({})), requireEnv(ENV.registryTable)),
  // Each alert also kept in the lake (`alerts/`); a failure of either fails the check, and the next one raises it again.
  publisher: withAlertHistory(
    snsAlerts(trace(new SNSClient({})), requireEnv(ENV.alertTopicArn)),
    s3Store(trace(new S3Client({})), requireEnv(ENV.lakeBucket)),
  ),
};

/** EventBridge schedule: raise offline alerts for devices silent longer than their timeout. */
// The registry's last seen is up to the ingest and estate windows behind arrival.
const lagMs = Number(process.env[ENV.registryLagSeconds] ?? 0) * 1000;

export const handler = async (): Promise<{ raised: number }> => {
  const events = await detectOffline(estate, Date.now(), lagMs);
  for (const event of events)
    logger.warn('device offline', { deviceId: event.deviceId, deviceType: event.deviceType });
  logger.info('offline check', { raised: events.length });
  return { raised: events.length };
};
