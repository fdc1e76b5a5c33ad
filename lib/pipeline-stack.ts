import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { HTTP_FORMATS } from '../lambdas/core/formats/index.ts';
import { LAKE_PREFIXES } from '../lambdas/core/lake/layout.ts';
import { type PipelineConfig, runtimeConfigJson, usesCodecs } from './config.ts';
import { Alerts } from './constructs/alerts.ts';
import { Analytics } from './constructs/analytics.ts';
import { ApiKeys } from './constructs/api-keys.ts';
import { ReadingClaimsTable } from './constructs/claims.ts';
import { LakeCompaction } from './constructs/compaction.ts';
import { Console } from './constructs/console.ts';
import { DailyJob } from './constructs/daily-job.ts';
import { Devices } from './constructs/devices.ts';
import { EstateUpdates } from './constructs/estate-updates.ts';
import { HttpApi } from './constructs/http-api.ts';
import { Ingest } from './constructs/ingest.ts';
import { Lake } from './constructs/lake.ts';
import { Monitoring } from './constructs/monitoring.ts';
import { TRACING_CONTEXT } from './constructs/pipeline-function.ts';
import { QuickSightReports } from './constructs/quicksight.ts';
import { Registry } from './constructs/registry.ts';
import { TimeSeries } from './constructs/timeseries.ts';
import { acknowledgeStackFindings } from './nag.ts';

export interface PipelineStackProps extends StackProps {
  /** The validated configuration (see `lib/config.ts`). */
  readonly config: PipelineConfig;
  /**
   * With `console.enabled`: the built console page (`npm run console:build`).
   *
   * @default `console/dist` under the working directory
   */
  readonly consoleAssetsPath?: string;
}

/**
 * The whole pipeline, composed from one construct per concern. It defines no resource
 * of its own and wires no permission: each construct takes the constructs it uses and
 * wires itself to them. Reading it top to bottom shows how data flows: where readings
 * land, how they arrive, how they are read, who hears of failures.
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
    // Every PipelineFunction below is traced, or not, from this one setting.
    this.node.setContext(TRACING_CONTEXT, config.tracing.enabled);

    // Where readings land. Each construct grants the functions given to it what they need
    // and names itself in their environment, so nothing below wires a permission by hand.
    const lake = new Lake(this, 'Lake', config.lake);
    const timeseries = config.timestream.enabled
      ? new TimeSeries(this, 'TimeSeries', {
          lake,
          memoryRetentionHours: config.timestream.memoryRetentionHours,
          magneticRetentionDays: config.timestream.magneticRetentionDays,
        })
      : undefined;
    const alerts = new Alerts(this, 'Alerts', config.alerts);
    const registry = new Registry(this, 'Registry', {
      alerts,
      runtimeConfig: runtimeConfigJson(config, { decoders: false }),
    });
    // The offline alerts it raises are kept in the alert history too.
    lake.grantWrite(registry.offlineFunction, [LAKE_PREFIXES.alerts]);
    const claims = new ReadingClaimsTable(this, 'Claims');
    // The registry and alerts move on from the ingest batches' readings, a window at a time.
    const estate = new EstateUpdates(this, 'Estate', {
      registry,
      alerts,
      lake,
      runtimeConfig: runtimeConfigJson(config, { decoders: false }),
      ...config.estate,
      ingestWindowSeconds: config.ingest.maxBatchingWindowSeconds,
    });
    // A device is offline only once silent past its timeout and the registry's lag.
    estate.tellLag(registry.offlineFunction);

    // How they arrive: devices over IoT Core into the ingest queue, and its function
    // decoding into the lake and Timestream, and on to the estate queue.
    const ingest = new Ingest(this, 'Ingest', {
      stage: config.stage,
      ...config.ingest,
      lake,
      timeseries,
      claims,
      estate,
      runtimeConfig: runtimeConfigJson(config, { decoders: true }),
      codecSandbox: usesCodecs(config),
    });
    const devices = new Devices(this, 'Devices', {
      stage: config.stage,
      ingest,
      deviceTypes: config.deviceTypes,
    });

    // How they are read: Athena over the lake, the daily job, QuickSight.
    const analytics = new Analytics(this, 'Analytics', {
      lake,
      databaseName: `iot_pipeline_${config.stage}`,
      workGroupName: `iot-pipeline-${config.stage}`,
      ...config.athena,
    });
    const daily = new DailyJob(this, 'Daily', {
      analytics,
      runtimeConfig: runtimeConfigJson(config, { decoders: false }),
    });
    // Today's small objects merged every few minutes, so Athena opens few of them.
    const compaction = new LakeCompaction(this, 'Compaction', { lake });
    if (config.quicksight.principalArn) {
      new QuickSightReports(this, 'QuickSight', {
        analytics,
        principalArn: config.quicksight.principalArn,
        stage: config.stage,
      });
    }

    // HTTP: the second way in (to the same queue) and the read API.
    // Who may call it: named, scoped keys, managed with `iot-pipeline keys`.
    const keys = new ApiKeys(this, 'Keys', { limits: config.http });
    const http = new HttpApi(this, 'Http', {
      ingest,
      keys,
      registry,
      query: { analytics, timeseries },
      runtimeConfig: runtimeConfigJson(config, { decoders: false }),
      ...config.http,
    });
    // GET /v1/devices and /v1/estate judge status by the same timeouts and lag.
    if (http.queryFunction) estate.tellLag(http.queryFunction);

    // Who reads it in a browser: people signed in with the user pool, the read routes only.
    const webConsole = config.console.enabled
      ? new Console(this, 'Console', {
          stage: config.stage,
          http,
          accessLogs: lake.accessLogs,
          ...(props.consoleAssetsPath !== undefined && { assetsPath: props.consoleAssetsPath }),
        })
      : undefined;

    // Who hears when something fails.
    new Monitoring(this, 'Monitoring', {
      alerts,
      deadLetterQueues: { Ingest: ingest.deadLetterQueue, Estate: estate.deadLetterQueue },
      functions: {
        Ingest: ingest.function,
        Estate: estate.function,
        Http: http.function,
        Offline: registry.offlineFunction,
        Daily: daily.function,
        Compaction: compaction.function,
        ...(http.queryFunction && { Query: http.queryFunction }),
      },
      topicRuleNames: [ingest.ruleName, ingest.lorawanRuleName],
    });

    acknowledgeStackFindings(this);

    new CfnOutput(this, 'HttpApiUrl', {
      value: http.url,
      description: `POST ${HTTP_FORMATS.map((f) => f.route.path).join(', ')} here`,
    });
    new CfnOutput(this, 'KeysTableName', {
      value: keys.table.tableName,
      description: `npm run cli -- keys create --stage ${config.stage} --name <name> --scope ingest:sigfox`,
    });
    new CfnOutput(this, 'TelemetryRuleName', {
      value: ingest.ruleName,
      description:
        'Publish to dt/<type>/<id>, or $aws/rules/<this>/dt/<type>/<id> to skip the messaging charge',
    });
    new CfnOutput(this, 'LorawanRuleName', {
      value: ingest.lorawanRuleName,
      description:
        'aws iotwireless create-destination --name <name> --expression-type RuleName --expression <this> --role-arn <LorawanDestinationRoleArn>',
    });
    new CfnOutput(this, 'LorawanDestinationRoleArn', {
      value: ingest.lorawanDestinationRole.roleArn,
      description:
        'The --role-arn of an IoT Core for LoRaWAN destination: it may publish to the LoRaWAN rule only',
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
    if (webConsole) {
      new CfnOutput(this, 'ConsoleUrl', {
        value: webConsole.url,
        description: `Sign in here; invite people with: npm run cli -- users add <email> --stage ${config.stage}`,
      });
      new CfnOutput(this, 'UserPoolId', { value: webConsole.userPool.userPoolId });
      new CfnOutput(this, 'UserPoolClientId', { value: webConsole.userPoolClient.userPoolClientId });
    }
    if (timeseries) {
      new CfnOutput(this, 'TimestreamDatabase', { value: timeseries.databaseName });
      new CfnOutput(this, 'TimestreamTable', { value: timeseries.tableName });
    }
  }
}
