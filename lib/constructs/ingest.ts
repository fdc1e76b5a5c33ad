import { Arn, Aws, Duration, Names, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { lorawanRuleSql } from '../../lambdas/core/formats/iot-lorawan.ts';
import { telemetryRuleSql } from '../../lambdas/core/formats/mqtt-topic.ts';
import { lorawanRuleName, telemetryRuleName } from '../../lambdas/core/iot-names.ts';
import { LAKE_PREFIXES } from '../../lambdas/core/lake/layout.ts';
import { ENV } from '../../lambdas/env.ts';
import type { ReadingClaimsTable } from './claims.ts';
import type { EstateUpdates } from './estate-updates.ts';
import type { Lake } from './lake.ts';
import { PipelineFunction } from './pipeline-function.ts';
import type { TimeSeries } from './timeseries.ts';

export interface IngestProps {
  /** Stage name, part of the IoT rule name devices use for Basic Ingest. */
  readonly stage: string;
  /**
   * The lake: the function writes `raw/`, `readings/` and `quarantine/`; the rule's error
   * action writes `errors/iot-rule/`.
   */
  readonly lake: Lake;
  /**
   * Timestream, when it is on: the function writes every reading to its table too.
   *
   * @default no time-series sink
   */
  readonly timeseries?: TimeSeries;
  /** Claims of Sigfox and The Things Stack readings, so a resent callback is stored once. */
  readonly claims: ReadingClaimsTable;
  /** Where the function sends each stored batch's readings: the registry and alerts are updated from there. */
  readonly estate: EstateUpdates;
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
   * @default 1000
   */
  readonly batchSize?: number;
  /**
   * Seconds SQS waits to fill a batch: fewer, fuller invocations (and lake objects) for
   * seconds of latency; the lake has a message within this and the invocation.
   *
   * @default 20
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
 * Ingest form), and one for AWS IoT Core for LoRaWAN destinations (with the role a
 * destination gives IoT Wireless to reach it), into an encrypted SQS queue with a dead-letter queue, and the ingest
 * function on that queue with batching and partial batch responses. The function is
 * wired to the sinks it is given (each grants its own access and sets its environment
 * variable); the HTTP API enqueues to the same queue through {@link Ingest.grantEnqueue}.
 */
export class Ingest extends Construct {
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly function: PipelineFunction;
  public readonly rule: iot.CfnTopicRule;
  /** Devices may publish to `$aws/rules/<ruleName>/dt/<type>/<id>` to skip the messaging charge. */
  public readonly ruleName: string;
  /** The rule an IoT Core for LoRaWAN destination names (`--expression-type RuleName`). */
  public readonly lorawanRule: iot.CfnTopicRule;
  public readonly lorawanRuleName: string;
  /**
   * The role a destination passes to IoT Wireless (`--role-arn`): it may publish to the
   * LoRaWAN rule (Basic Ingest) and nothing else.
   */
  public readonly lorawanDestinationRole: iam.Role;

  constructor(scope: Construct, id: string, props: IngestProps) {
    super(scope, id);
    const batchSize = props.batchSize ?? 1000;
    const window = props.maxBatchingWindowSeconds ?? 20;
    const timeoutSeconds = props.timeoutSeconds ?? 60;
    const maxReceiveCount = props.maxReceiveCount ?? 5;
    const maxConcurrency = props.maxConcurrency ?? 5;
    if (!/^[a-z0-9]+$/.test(props.stage)) {
      throw new Error(`Ingest: stage must be lowercase letters and digits, got "${props.stage}"`);
    }
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
      throw new Error(`Ingest: batchSize must be an integer from 1 to 10000, got ${batchSize}`);
    }
    if (!Number.isInteger(window) || window < 0 || window > 300) {
      throw new Error(`Ingest: maxBatchingWindowSeconds must be an integer from 0 to 300, got ${window}`);
    }
    if (!Number.isInteger(maxReceiveCount) || maxReceiveCount < 1 || maxReceiveCount > 1000) {
      throw new Error(`Ingest: maxReceiveCount must be an integer from 1 to 1000, got ${maxReceiveCount}`);
    }
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 2 || maxConcurrency > 1000) {
      throw new Error(`Ingest: maxConcurrency must be an integer from 2 to 1000, got ${maxConcurrency}`);
    }
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
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount },
    });

    this.function = new PipelineFunction(this, 'Function', {
      handler: 'ingest',
      description: 'Decodes, validates and stores queued telemetry',
      memorySize: props.memorySizeMb ?? 512,
      timeout: Duration.seconds(timeoutSeconds),
      runtimeConfig: props.runtimeConfig,
      codecSandbox: props.codecSandbox ?? false,
    });
    // The mapping SqsEventSource would make (same id, so the deployed mapping stays), without
    // its grant: the poller needs to receive, delete and read the queue's attributes, not
    // ChangeMessageVisibility or GetQueueUrl.
    this.function.addEventSourceMapping(`SqsEventSource:${Names.nodeUniqueId(this.queue.node)}`, {
      eventSourceArn: this.queue.queueArn,
      batchSize,
      maxBatchingWindow: window > 0 ? Duration.seconds(window) : undefined,
      reportBatchItemFailures: true,
      maxConcurrency,
    });
    iam.Grant.addToPrincipal({
      grantee: this.function,
      actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'],
      resourceArns: [this.queue.queueArn],
    });
    // A queue under a customer managed key needs it to read messages (SSE-SQS needs nothing).
    this.queue.encryptionMasterKey?.grant(this.function, 'kms:Decrypt');
    // Each sink grants the function exactly its access and names itself in the environment.
    props.lake.grantWrite(this.function, [
      LAKE_PREFIXES.raw,
      LAKE_PREFIXES.readings,
      LAKE_PREFIXES.quarantine,
    ]);
    props.timeseries?.grantWrite(this.function);
    props.claims.grantClaim(this.function);
    props.estate.grantSend(this.function);

    this.ruleName = telemetryRuleName(props.stage);
    this.lorawanRuleName = lorawanRuleName(props.stage);
    const ruleArn = (name: string) =>
      Arn.format({ service: 'iot', resource: 'rule', resourceName: name }, Stack.of(this));
    const ruleRole = new iam.Role(this, 'RuleRole', {
      // Only this account's two rules may assume it (IoT's confused deputy guidance).
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          ArnLike: { 'aws:SourceArn': [ruleArn(this.ruleName), ruleArn(this.lorawanRuleName)] },
        },
      }),
      description: 'Lets the telemetry and LoRaWAN rules enqueue messages and record failed ones',
    });
    this.grantSend(ruleRole);
    props.lake.grantWritePrefixes(ruleRole, [LAKE_PREFIXES.ruleErrors]);

    // Both rules send to the queue, and keep what SQS refuses (with the failure) in the lake instead of losing it.
    const queueRule = (id: string, ruleName: string, description: string, sql: string) => {
      const rule = new iot.CfnTopicRule(this, id, {
        ruleName,
        topicRulePayload: {
          description,
          awsIotSqlVersion: '2016-03-23',
          sql,
          ruleDisabled: false,
          actions: [{ sqs: { queueUrl: this.queue.queueUrl, roleArn: ruleRole.roleArn, useBase64: false } }],
          errorAction: {
            s3: {
              bucketName: props.lake.bucket.bucketName,
              key: `${LAKE_PREFIXES.ruleErrors}\${parse_time("yyyy-MM-dd", timestamp())}/\${newuuid()}.json`,
              roleArn: ruleRole.roleArn,
            },
          },
        },
      });
      rule.node.addDependency(ruleRole);
      return rule;
    };
    this.rule = queueRule(
      'TelemetryRule',
      this.ruleName,
      'Device telemetry (JSON or binary, base64-encoded whole) to the ingest queue',
      telemetryRuleSql(),
    );

    // AWS IoT Core for LoRaWAN: a destination invokes this rule by name (Basic Ingest, so
    // its SQL has no FROM and no device can reach it through the message broker).
    this.lorawanRule = queueRule(
      'LorawanRule',
      this.lorawanRuleName,
      'AWS IoT Core for LoRaWAN uplinks (a destination names this rule) to the ingest queue',
      lorawanRuleSql(this.lorawanRuleName),
    );
    this.lorawanDestinationRole = new iam.Role(this, 'LorawanDestinationRole', {
      // IoT Wireless assumes it for this account's destinations only.
      assumedBy: new iam.ServicePrincipal('iotwireless.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
      description: 'Lets an AWS IoT Core for LoRaWAN destination publish uplinks to the LoRaWAN rule',
    });
    this.lorawanDestinationRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['iot:Publish'],
        resources: [
          Arn.format(
            { service: 'iot', resource: 'topic', resourceName: `$aws/rules/${this.lorawanRuleName}` },
            Stack.of(this),
          ),
        ],
      }),
    );
    // The destination role policy AWS documents: IoT Wireless looks up the account's data
    // endpoint before it publishes, and DescribeEndpoint has no resource-level permissions.
    this.lorawanDestinationRole.addToPolicy(
      new iam.PolicyStatement({ actions: ['iot:DescribeEndpoint'], resources: ['*'] }),
    );
    Validations.of(this.lorawanDestinationRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'iot:DescribeEndpoint only, which has no resource-level permissions (IoT Wireless calls it before publishing to the rule).',
    });
  }

  /**
   * Lets a function put messages on the ingest queue (the HTTP way in), and names the
   * queue in its environment (`INGEST_QUEUE_URL`).
   */
  grantEnqueue(fn: lambda.Function): void {
    this.grantSend(fn);
    fn.addEnvironment(ENV.ingestQueueUrl, this.queue.queueUrl);
  }

  /**
   * Lets a function read the ingest function's message counts (its `messages` and
   * `quarantined` metrics, `GET /v1/estate`), and names the function in its environment
   * (`INGEST_FUNCTION_NAME`): the metrics' dimension that tells stages apart.
   */
  grantReadMetrics(fn: lambda.Function): void {
    iam.Grant.addToPrincipal({ grantee: fn, actions: ['cloudwatch:GetMetricData'], resourceArns: ['*'] });
    fn.addEnvironment(ENV.ingestFunctionName, this.function.functionName);
    Validations.of(fn).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'cloudwatch:GetMetricData has no resource-level permissions (the ingest counts GET /v1/estate reads); active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource type either.',
    });
  }

  /**
   * sqs:SendMessage on the ingest queue, and nothing else: senders have its URL (no
   * GetQueueUrl) and never read its attributes (no GetQueueAttributes, which
   * `queue.grantSendMessages` would add).
   */
  private grantSend(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({ grantee, actions: ['sqs:SendMessage'], resourceArns: [this.queue.queueArn] });
    // A queue under a customer managed key needs it to encrypt messages (SSE-SQS needs nothing).
    this.queue.encryptionMasterKey?.grant(grantee, 'kms:GenerateDataKey', 'kms:Decrypt');
  }
}
