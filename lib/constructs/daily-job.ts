import { Arn, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { LAKE_PREFIXES } from '../../lambdas/core/lake/layout.ts';
import { ENV } from '../../lambdas/env.ts';
import type { Analytics } from './analytics.ts';
import type { Lake } from './lake.ts';
import { PipelineFunction } from './pipeline-function.ts';

export interface DailyJobProps {
  readonly lake: Lake;
  readonly analytics: Analytics;
  /**
   * When the job runs (UTC), for the day before.
   *
   * @default 01:15 UTC
   */
  readonly schedule?: events.Schedule;
}

/**
 * The daily job: EventBridge -> Lambda -> Athena. Compacts yesterday's `readings/`
 * into Parquet under `curated/`, writes the daily aggregates (Parquet and CSV for
 * QuickSight with its manifest) and keeps the views current. Its role reads the lake
 * and writes only `curated/` and `reports/`.
 */
export class DailyJob extends Construct {
  readonly function: PipelineFunction;

  constructor(scope: Construct, id: string, props: DailyJobProps) {
    super(scope, id);
    const { lake, analytics } = props;
    this.function = new PipelineFunction(this, 'Function', {
      handler: 'analytics',
      description: 'Daily compaction to Parquet, aggregates and QuickSight reports via Athena',
      memorySize: 256,
      // Athena does the work; the function waits for up to three UNLOADs and some DDL.
      timeout: Duration.minutes(15),
      environment: {
        [ENV.lakeBucket]: lake.bucket.bucketName,
        [ENV.athenaWorkGroup]: analytics.workGroupName,
        [ENV.glueDatabase]: analytics.databaseName,
      },
    });
    grantAthena(this.function, analytics, lake.bucket);
    new events.Rule(this, 'Schedule', {
      description: 'Runs the daily analytics job for the day before',
      schedule: props.schedule ?? events.Schedule.cron({ minute: '15', hour: '1' }),
      targets: [new targets.LambdaFunction(this.function, { retryAttempts: 2 })],
    });
  }
}

/**
 * What running Athena queries over the lake takes: the workgroup, the Glue catalog
 * objects of the database, reading the lake, and the results bucket; writing (UNLOAD)
 * only under `curated/` and `reports/`.
 */
export function grantAthena(
  grantee: PipelineFunction,
  analytics: Analytics,
  lakeBucket: s3.IBucket,
  access: 'read' | 'read-write' = 'read-write',
): void {
  const stack = Stack.of(grantee);
  grantee.addToRolePolicy(
    new iam.PolicyStatement({
      actions: [
        'athena:StartQueryExecution',
        'athena:GetQueryExecution',
        'athena:GetQueryResults',
        'athena:StopQueryExecution',
      ],
      resources: [
        Arn.format(
          { service: 'athena', resource: 'workgroup', resourceName: analytics.workGroupName },
          stack,
        ),
      ],
    }),
  );
  const glueArn = (resource: string, name?: string) =>
    Arn.format({ service: 'glue', resource, ...(name === undefined ? {} : { resourceName: name }) }, stack);
  grantee.addToRolePolicy(
    new iam.PolicyStatement({
      actions: [
        'glue:GetDatabase',
        'glue:GetDatabases',
        'glue:GetTable',
        'glue:GetTables',
        'glue:GetPartitions',
      ],
      // Athena also reads the `default` database for some operations (its guide's minimum policy).
      resources: [
        glueArn('catalog'),
        glueArn('database', analytics.databaseName),
        glueArn('database', 'default'),
        glueArn('table', `${analytics.databaseName}/*`),
      ],
    }),
  );
  lakeBucket.grantRead(grantee);
  analytics.resultsBucket.grantReadWrite(grantee);
  if (access === 'read-write') {
    grantee.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [LAKE_PREFIXES.curated, LAKE_PREFIXES.dailyMetrics, LAKE_PREFIXES.reports].map((p) =>
          lakeBucket.arnForObjects(`${p}*`),
        ),
      }),
    );
  }

  const id = (bucket: s3.IBucket) => stack.getLogicalId(bucket.node.defaultChild as s3.CfnBucket);
  const findings: [string, string][] = [
    ['Action::s3:GetObject*', 'read the lake tables'],
    ['Action::s3:GetBucket*', 'read the lake tables'],
    ['Action::s3:List*', 'list the partitions of the lake tables'],
    ['Action::s3:DeleteObject*', 'write query results'],
    ['Action::s3:Abort*', 'write query results'],
    [
      `Resource::<${id(lakeBucket)}.Arn>/*`,
      'read every object of the lake tables (writes are limited to the prefixes below)',
    ],
    [
      `Resource::<${id(analytics.resultsBucket)}.Arn>/*`,
      'keep query results in the workgroup results bucket',
    ],
    ...[LAKE_PREFIXES.curated, LAKE_PREFIXES.dailyMetrics, LAKE_PREFIXES.reports].map(
      (prefix): [string, string] => [
        `Resource::<${id(lakeBucket)}.Arn>/${prefix}*`,
        `replace a day's generated files under ${prefix} (UNLOAD)`,
      ],
    ),
    [
      `Resource::arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:table/${analytics.databaseName}/*`,
      `read the tables and views of database ${analytics.databaseName}`,
    ],
  ];
  for (const [finding, why] of findings) {
    Validations.of(grantee).acknowledge({
      id: `AwsSolutions-IAM5[${finding}]`,
      reason: `Athena queries over the lake need to ${why}.`,
    });
  }
}
