import { Logger } from '@aws-lambda-powertools/logger';
import { AthenaClient } from '@aws-sdk/client-athena';
import { S3Client } from '@aws-sdk/client-s3';
import { athenaEngine } from '../adapters/aws/athena.ts';
import { loadRuntimeConfig } from '../adapters/aws/runtime-config.ts';
import { s3Store } from '../adapters/aws/s3-store.ts';
import { clientTracer } from '../adapters/aws/tracing.ts';
import { checkDay, runDailyJob, yesterday } from '../core/analytics/daily.ts';
import { ENV, requireEnv } from '../env.ts';

// Built once per container, outside the handler; each SDK call an X-Ray subsegment.
const logger = new Logger();
const trace = await clientTracer();
const bucket = requireEnv(ENV.lakeBucket);
const engine = athenaEngine(trace(new AthenaClient({})), {
  workGroup: requireEnv(ENV.athenaWorkGroup),
  database: requireEnv(ENV.glueDatabase),
  bucket,
});
const lake = s3Store(trace(new S3Client({})), bucket);
// The offline timeouts per device type, which the uptime is measured by.
const config = loadRuntimeConfig();

/**
 * The daily job: EventBridge calls it after midnight UTC for yesterday; invoke it with
 * `{"day": "2026-11-20"}` to (re)build another day, e.g. after late data.
 */
export const handler = async (event: { day?: string } = {}) => {
  const day = event.day === undefined ? yesterday(Date.now()) : checkDay(event.day);
  const report = await runDailyJob(day, { engine, lake, bucket, config, log: (line) => logger.info(line) });
  logger.info('daily job done', { ...report });
  return report;
};
