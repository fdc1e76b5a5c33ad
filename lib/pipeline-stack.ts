import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { LAKE_PREFIXES } from '../lambdas/core/lake/layout.ts';
import { ENV } from '../lambdas/env.ts';
import { type PipelineConfig, runtimeConfigJson, usesCodecs } from './config.ts';
import { Alerts } from './constructs/alerts.ts';
import { Analytics } from './constructs/analytics.ts';
import { ReadingClaimsTable } from './constructs/claims.ts';
import { DailyJob } from './constructs/daily-job.ts';
import { Devices } from './constructs/devices.ts';
import { HttpApi } from './constructs/http-api.ts';
import { Ingest } from './constructs/ingest.ts';
import { Lake } from './constructs/lake.ts';
import { Monitoring } from './constructs/monitoring.ts';
import { QuickSightReports } from './constructs/quicksight.ts';
import { Registry } from './constructs/registry.ts';
import { TimeSeries } from './constructs/timeseries.ts';
import { acknowledgeStackFindings } from './nag.ts';

export interface PipelineStackProps extends StackProps {
  /** The validated configuration (see `lib/config.ts`). */
  readonly config: PipelineConfig;
}

/**
 * The whole pipeline, composed from one construct per concern. It defines no resource
 * of its own: reading it top to bottom shows how data flows.
 */
export class PipelineStack extends Stack {
  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    const { config } = props;
    super(scope, id, {
      description: `Serverless IoT data pipeline: IoT Core + HTTP -> SQS -> Lambda -> ${
        config.timestream.enabled ? 'Timestream + ' : ''
      }S3 lake, Athena, SNS`,
      ...props,
    });
    // S3 server access logs delivered by bucket policy, not the legacy log-delivery ACL.
    this.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);

    const lake = new Lake(this, 'Lake', config.lake);

    const timeseries = config.timestream.enabled
      ? new TimeSeries(this, 'TimeSeries', {
          memoryRetentionHours: config.timestream.memoryRetentionHours,
          magneticRetentionDays: config.timestream.magneticRetentionDays,
          rejectedDataBucket: lake.bucket,
        })
      : undefined;

    const analytics = new Analytics(this, 'Analytics', {
      lakeBucket: lake.bucket,
      accessLogsBucket: lake.accessLogs,
      databaseName: `iot_pipeline_${config.stage}`,
      workGroupName: `iot-pipeline-${config.stage}`,
      bytesScannedCutoffPerQuery: config.athena.bytesScannedCutoffPerQuery,
      resultsExpirationDays: config.athena.resultsExpirationDays,
    });

    const daily = new DailyJob(this, 'Daily', { lake, analytics });
    if (config.quicksight.principalArn) {
      new QuickSightReports(this, 'QuickSight', {
        analytics,
        principalArn: config.quicksight.principalArn,
        stage: config.stage,
      });
    }

    const alerts = new Alerts(this, 'Alerts', {
      email: config.alerts.email,
      emailSeverities: config.alerts.emailSeverities,
      webhookUrl: config.alerts.webhookUrl,
    });
    const registry = new Registry(this, 'Registry', {
      alerts,
      runtimeConfig: runtimeConfigJson(config, { decoders: false }),
    });

    const claims = new ReadingClaimsTable(this, 'Claims');

    const ingest = new Ingest(this, 'Ingest', {
      stage: config.stage,
      lake,
      batchSize: config.ingest.batchSize,
      maxBatchingWindowSeconds: config.ingest.maxBatchingWindowSeconds,
      maxReceiveCount: config.ingest.maxReceiveCount,
      maxConcurrency: config.ingest.maxConcurrency,
      memorySizeMb: config.ingest.memorySizeMb,
      timeoutSeconds: config.ingest.timeoutSeconds,
      runtimeConfig: runtimeConfigJson(config, { decoders: true }),
      codecSandbox: usesCodecs(config),
      environment: {
        [ENV.lakeBucket]: lake.bucket.bucketName,
        [ENV.claimsTable]: claims.table.tableName,
        [ENV.registryTable]: registry.table.tableName,
        [ENV.alertTopicArn]: alerts.topic.topicArn,
        ...(timeseries && {
          [ENV.timestreamDatabase]: timeseries.databaseName,
          [ENV.timestreamTable]: timeseries.tableName,
        }),
      },
    });
    const devices = new Devices(this, 'Devices', {
      stage: config.stage,
      ruleName: ingest.ruleName,
      deviceTypes: config.deviceTypes,
    });
    lake.grantWritePrefixes(ingest.function, [
      LAKE_PREFIXES.raw,
      LAKE_PREFIXES.readings,
      LAKE_PREFIXES.quarantine,
    ]);
    timeseries?.grantWrite(ingest.function);
    claims.grantClaim(ingest.function);
    registry.grantUpdate(ingest.function);
    alerts.grantPublish(ingest.function);

    const http = new HttpApi(this, 'Http', {
      ingestQueue: ingest.queue,
      query: {
        registryTable: registry.table,
        analytics,
        lakeBucket: lake.bucket,
        timeseries,
        timeseriesWindowHours: config.timestream.memoryRetentionHours,
      },
      runtimeConfig: runtimeConfigJson(config, { decoders: false }),
      throttleRateLimit: config.http.throttleRateLimit,
      throttleBurstLimit: config.http.throttleBurstLimit,
    });

    new Monitoring(this, 'Monitoring', {
      topic: alerts.topic,
      deadLetterQueues: { Ingest: ingest.deadLetterQueue },
      functions: {
        Ingest: ingest.function,
        Http: http.function,
        Offline: registry.offlineFunction,
        Daily: daily.function,
        ...(http.queryFunction && { Query: http.queryFunction }),
      },
      topicRuleNames: [ingest.ruleName],
    });

    acknowledgeStackFindings(this);

    new CfnOutput(this, 'HttpApiUrl', {
      value: http.url,
      description: 'POST /v1/telemetry, /v1/sigfox and /v1/ttn here',
    });
    new CfnOutput(this, 'ApiKeySecretArn', {
      value: http.apiKey.secretArn,
      description: 'aws secretsmanager get-secret-value --secret-id <this> --query SecretString',
    });
    new CfnOutput(this, 'TelemetryRuleName', {
      value: ingest.ruleName,
      description:
        'Publish to dt/<type>/<id>, or $aws/rules/<this>/dt/<type>/<id> to skip the messaging charge',
    });
    new CfnOutput(this, 'DevicePolicyName', {
      value: devices.policyName,
      description: 'npm run cli -- provision <thing> --type <type> --policy <this>',
    });
    new CfnOutput(this, 'LakeBucketName', { value: lake.bucket.bucketName });
    new CfnOutput(this, 'GlueDatabaseName', { value: analytics.databaseName });
    new CfnOutput(this, 'AthenaWorkGroup', { value: analytics.workGroupName });
    new CfnOutput(this, 'AlertTopicArn', { value: alerts.topic.topicArn });
    new CfnOutput(this, 'RegistryTableName', { value: registry.table.tableName });
    new CfnOutput(this, 'IngestDeadLetterQueueUrl', { value: ingest.deadLetterQueue.queueUrl });
    if (timeseries) {
      new CfnOutput(this, 'TimestreamDatabase', { value: timeseries.databaseName });
      new CfnOutput(this, 'TimestreamTable', { value: timeseries.tableName });
    }
  }
}
