import { Logger } from '@aws-lambda-powertools/logger';
import { S3Client } from '@aws-sdk/client-s3';
import { s3Store } from '../adapters/aws/s3-store.ts';
import { clientTracer } from '../adapters/aws/tracing.ts';
import { checkDay } from '../core/analytics/daily.ts';
import { compactionDays, compactLake } from '../core/lake/compaction.ts';
import { ENV, requireEnv } from '../env.ts';

// Built once per container, outside the handler; each SDK call an X-Ray subsegment.
const logger = new Logger();
const trace = await clientTracer();
const lake = s3Store(trace(new S3Client({})), requireEnv(ENV.lakeBucket));

/**
 * EventBridge every few minutes: merge today's (and, after midnight, yesterday's) small
 * `readings/` and `raw/` objects, hour by hour. Invoke it with `{"days": ["2026-11-20"]}`
 * to compact other days (the daily job dedupes the same way, so it may run before or after).
 */
export const handler = async (event: { days?: string[] } = {}) => {
  const now = Date.now();
  const days = event.days === undefined ? compactionDays(now) : event.days.map(checkDay);
  const result = await compactLake(
    lake,
    { days, now },
    { skipped: (key, reason) => logger.error('object left in place: it could not be read', { key, reason }) },
  );
  logger.info('compaction done', { days, ...result });
  return result;
};
