import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { LAKE_PREFIXES } from '../../lambdas/core/lake/layout.ts';
import type { Lake } from './lake.ts';
import { PipelineFunction } from './pipeline-function.ts';

/** The lake prefixes compaction reads, rewrites and deletes under: nothing else. */
export const COMPACTION_PREFIXES: readonly string[] = [LAKE_PREFIXES.readings, LAKE_PREFIXES.raw];

export interface LakeCompactionProps {
  /** The lake whose `readings/` and `raw/` objects are merged. */
  readonly lake: Lake;
  /**
   * How often today's small objects are merged. A query of today reads about one object
   * per past hour plus the batches of the last `interval` (and two minutes).
   *
   * @default Duration.minutes(10)
   */
  readonly interval?: Duration;
  /**
   * Memory in MB: a run holds one hour partition's rows at a time (at most 6 MiB of
   * gzip inputs, about 130 MB of rows).
   *
   * @default 1024
   */
  readonly memorySize?: number;
}

/**
 * Intraday compaction (`lambdas/core/lake/compaction.ts`): EventBridge every `interval`
 * -> Lambda, which merges each hour partition of today's `readings/` and `raw/` into one
 * object and deletes the merged ones. Its role may read, write and delete under those two
 * prefixes only, and list the bucket under them only.
 */
export class LakeCompaction extends Construct {
  readonly function: PipelineFunction;

  constructor(scope: Construct, id: string, props: LakeCompactionProps) {
    super(scope, id);
    const interval = props.interval ?? Duration.minutes(10);
    const minutes = interval.toMinutes({ integral: false });
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 60) {
      throw new Error(
        `LakeCompaction: interval must be a whole number of minutes from 1 to 60 (EventBridge rates), got ${interval.toHumanString()}`,
      );
    }
    this.function = new PipelineFunction(this, 'Function', {
      handler: 'compact',
      description: "Merges today's small readings/ and raw/ lake objects, hour by hour",
      memorySize: props.memorySize ?? 1024,
      // Less than the interval: runs seldom overlap (and are safe when they do).
      timeout: Duration.minutes(Math.min(5, minutes)),
    });
    grantCompaction(props.lake.bucket, this.function);
    props.lake.addEnvironment(this.function);
    new events.Rule(this, 'Schedule', {
      description: "Compacts today's lake objects",
      schedule: events.Schedule.rate(interval),
      targets: [new targets.LambdaFunction(this.function, { retryAttempts: 0 })],
    });
  }
}

/** GET, PUT and DELETE of objects under `readings/` and `raw/`, and LIST under them only. */
function grantCompaction(bucket: s3.IBucket, fn: PipelineFunction): void {
  fn.addToRolePolicy(
    new iam.PolicyStatement({
      actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
      resources: COMPACTION_PREFIXES.map((prefix) => bucket.arnForObjects(`${prefix}*`)),
    }),
  );
  fn.addToRolePolicy(
    new iam.PolicyStatement({
      actions: ['s3:ListBucket'],
      resources: [bucket.bucketArn],
      // Each with and without its trailing slash: clients list a folder either way.
      conditions: {
        StringLike: {
          's3:prefix': COMPACTION_PREFIXES.flatMap((prefix) => [prefix.replace(/\/$/, ''), `${prefix}*`]),
        },
      },
    }),
  );
  const bucketId = Stack.of(fn).getLogicalId(bucket.node.defaultChild as s3.CfnBucket);
  for (const prefix of COMPACTION_PREFIXES) {
    Validations.of(fn).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${prefix}*]`,
      reason: `Merges objects with generated names (batch ids, content hashes) under the lake prefix ${prefix} only.`,
    });
  }
}
