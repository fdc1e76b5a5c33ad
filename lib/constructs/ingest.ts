import { Aws, Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { LAKE_PREFIXES } from '../../lambdas/core/lake/layout.ts';
import { telemetryRuleName, telemetryRuleSql } from '../../lambdas/core/topics.ts';
import type { Lake } from './lake.ts';
import { PipelineFunction } from './pipeline-function.ts';

export interface IngestProps {
  /** Stage name, part of the IoT rule name devices use for Basic Ingest. */
  readonly stage: string;
  /** The lake: the rule's error action writes here, under `errors/iot-rule/`. */
  readonly lake: Lake;
  /** Environment of the ingest function (sink names, run-time config). */
  readonly environment: Record<string, string>;
  /** The run-time config JSON, built into the function's bundle. */
  readonly runtimeConfig: string;
  /**
   * A device type decodes with a codec: ship the codec sandbox (worker and QuickJS) with the function.
   *
   * @default false
   */
  readonly codecSandbox?: boolean;
  /**
   * Records per ingest invocation.
   *
   * @default 100
   */
  readonly batchSize?: number;
  /**
   * Seconds SQS waits to fill a batch: fewer, fuller invocations for a few seconds of latency.
   *
   * @default 5
   */
  readonly maxBatchingWindowSeconds?: number;
  /**
   * Deliveries before a record moves to the DLQ.
   *
   * @default 5
   */
  readonly maxReceiveCount?: number;
  /**
   * Most concurrent ingest functions the queue starts (protects the sinks' quotas).
   *
   * @default 5
   */
  readonly maxConcurrency?: number;
  /**
   * Ingest function memory in MB.
   *
   * @default 512
   */
  readonly memorySizeMb?: number;
  /**
   * Ingest function timeout in seconds.
   *
   * @default 60
   */
  readonly timeoutSeconds?: number;
}

/**
 * Where every message meets: an IoT topic rule for `dt/<type>/<id>` (and its Basic
 * Ingest form) into an encrypted SQS queue with a dead-letter queue, and the ingest
 * function on that queue with batching and partial batch responses. The HTTP API
 * enqueues to the same queue.
 */
export class Ingest extends Construct {
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly function: PipelineFunction;
  public readonly rule: iot.CfnTopicRule;
  /** Devices may publish to `$aws/rules/<ruleName>/dt/<type>/<id>` to skip the messaging charge. */
  public readonly ruleName: string;

  constructor(scope: Construct, id: string, props: IngestProps) {
    super(scope, id);
    const batchSize = props.batchSize ?? 100;
    const window = props.maxBatchingWindowSeconds ?? 5;
    const timeoutSeconds = props.timeoutSeconds ?? 60;
    if (batchSize > 10 && window === 0) {
      throw new Error(
        `Ingest: batchSize ${batchSize} needs maxBatchingWindowSeconds >= 1 (SQS allows 10 without a window)`,
      );
    }
    if (timeoutSeconds * 6 > 43_200) {
      throw new Error(
        `Ingest: timeoutSeconds ${timeoutSeconds} is too long; six times it must fit SQS's 12-hour visibility limit`,
      );
    }

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(4),
      // AWS's rule for SQS triggers: at least six times the function timeout, so a
      // batch being retried by Lambda is not handed to a second function meanwhile.
      visibilityTimeout: Duration.seconds(timeoutSeconds * 6),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    });

    this.function = new PipelineFunction(this, 'Function', {
      handler: 'ingest',
      description: 'Decodes, validates and stores queued telemetry',
      memorySize: props.memorySizeMb ?? 512,
      timeout: Duration.seconds(timeoutSeconds),
      environment: props.environment,
      runtimeConfig: props.runtimeConfig,
      codecSandbox: props.codecSandbox ?? false,
    });
    this.function.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize,
        maxBatchingWindow: window > 0 ? Duration.seconds(window) : undefined,
        reportBatchItemFailures: true,
        maxConcurrency: props.maxConcurrency ?? 5,
      }),
    );

    this.ruleName = telemetryRuleName(props.stage);
    const ruleRole = new iam.Role(this, 'RuleRole', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
      description: 'Lets the telemetry rule enqueue messages and record failed ones',
    });
    this.queue.grantSendMessages(ruleRole);
    props.lake.grantWritePrefixes(ruleRole, [LAKE_PREFIXES.ruleErrors]);

    this.rule = new iot.CfnTopicRule(this, 'TelemetryRule', {
      ruleName: this.ruleName,
      topicRulePayload: {
        description: 'Device telemetry (JSON or binary, base64-encoded whole) to the ingest queue',
        awsIotSqlVersion: '2016-03-23',
        sql: telemetryRuleSql(),
        ruleDisabled: false,
        actions: [{ sqs: { queueUrl: this.queue.queueUrl, roleArn: ruleRole.roleArn, useBase64: false } }],
        // When SQS refuses a message, keep it (with the failure) in the lake instead of losing it.
        errorAction: {
          s3: {
            bucketName: props.lake.bucket.bucketName,
            key: `${LAKE_PREFIXES.ruleErrors}\${parse_time("yyyy-MM-dd", timestamp())}/\${newuuid()}.json`,
            roleArn: ruleRole.roleArn,
          },
        },
      },
    });
    this.rule.node.addDependency(ruleRole);
  }
}
