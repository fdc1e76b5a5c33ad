/**
 * Environment variable names shared by the CDK constructs (which set them) and the
 * Lambda handlers (which read them), so the two can never drift apart. The construct
 * that owns a resource sets its variable when it grants a function access to it
 * (`registry.grantUpdate(fn)` grants the table and sets `REGISTRY_TABLE`).
 */
export const ENV = {
  /** JSON of the run-time config (device types, decoders, validation limits), built into the bundle. */
  runtimeConfig: 'PIPELINE_RUNTIME_CONFIG',
  /** Name of the S3 lake bucket. */
  lakeBucket: 'LAKE_BUCKET',
  /** Timestream database name; unset when Timestream is switched off. */
  timestreamDatabase: 'TIMESTREAM_DATABASE',
  /** Timestream table name; unset when Timestream is switched off. */
  timestreamTable: 'TIMESTREAM_TABLE',
  /** Hours of the Timestream memory store: recent ranges the query API answers from it. */
  timestreamWindowHours: 'TIMESTREAM_WINDOW_HOURS',
  /** DynamoDB table of reading claims (duplicate suppression for Sigfox and The Things Stack). */
  claimsTable: 'CLAIMS_TABLE',
  /** DynamoDB table of the device registry. */
  registryTable: 'REGISTRY_TABLE',
  /** SNS topic for device alerts. */
  alertTopicArn: 'ALERT_TOPIC_ARN',
  /** Athena workgroup of the daily job and the query API. */
  athenaWorkGroup: 'ATHENA_WORKGROUP',
  /** Glue database of the lake tables. */
  glueDatabase: 'GLUE_DATABASE',
  /** URL of the SQS ingest queue the HTTP function enqueues to. */
  ingestQueueUrl: 'INGEST_QUEUE_URL',
  /** URLs of the SQS estate queues, one per shard, comma-separated: the ingest function sends each batch's readings there for the estate function. */
  estateQueueUrls: 'ESTATE_QUEUE_URLS',
  /**
   * Seconds the registry's last seen may be behind arrival (the ingest and estate
   * windows): added to every offline timeout by the offline check and the estate's reads.
   */
  registryLagSeconds: 'REGISTRY_LAG_SECONDS',
  /** Name of the ingest function, whose metrics (messages, quarantined) `GET /v1/estate` reads. */
  ingestFunctionName: 'INGEST_FUNCTION_NAME',
  /** DynamoDB table of the HTTP API's keys (hashes, scopes, devices). */
  keysTable: 'KEYS_TABLE',
  /** JSON of the per-key and keyless request limits (`GateLimits`). */
  gateLimits: 'GATE_LIMITS',
} as const;

/** Reads a required environment variable, failing the cold start with its name when it is missing. */
export function requireEnv(
  name: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  const value = env[name];
  if (value === undefined || value === '') throw new Error(`Missing environment variable ${name}`);
  return value;
}
