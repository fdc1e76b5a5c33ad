import { Duration, Fn, Names } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { MAX_SHARDS } from '../../lambdas/core/estate/delta.ts';
import { LAKE_PREFIXES } from '../../lambdas/core/lake/layout.ts';
import { ENV } from '../../lambdas/env.ts';
import type { Alerts } from './alerts.ts';
import type { Lake } from './lake.ts';
import { PipelineFunction } from './pipeline-function.ts';
import type { Registry } from './registry.ts';

export interface EstateUpdatesProps {
  /** The device registry the function updates (last seen, last values, sequence gaps, alert states). */
  readonly registry: Registry;
  /** Where the function publishes threshold, lost-message and network offline alerts. */
  readonly alerts: Alerts;
  /** The lake: the function writes the alert history (`alerts/`). */
  readonly lake: Lake;
  /** The run-time config JSON (alert rules, offline severities), built into the function's bundle. */
  readonly runtimeConfig: string;
  /**
   * Seconds the queue gathers updates before the function applies them. A device that
   * reports every minute is read and written once per window: at 300 s, a fifth of the
   * registry's units of one write per message; alerts wait up to the window.
   *
   * @default 300
   */
  readonly maxBatchingWindowSeconds?: number;
  /**
   * Updates (one per ingest batch, or a few) per invocation.
   *
   * @default 10000
   */
  readonly batchSize?: number;
  /**
   * Deliveries before an update moves to the dead-letter queue.
   *
   * @default 5
   */
  readonly maxReceiveCount?: number;
  /**
   * Queues a device's updates are spread over by its id (1 to 16). An invocation takes at
   * most 6 MB of updates (about 75,000 readings of 200-byte messages), so a large fleet's
   * window is cut short and coalesces less: `iot-pipeline cost --devices N` says how many
   * shards keep the whole window (8 for 100,000 devices at one message a minute).
   *
   * @default 1
   */
  readonly shards?: number;
  /**
   * The ingest batching window before the estate's: with it, how far a device's last seen
   * in the registry may be behind its arrival ({@link EstateUpdates.tellLag}).
   *
   * @default 20
   */
  readonly ingestWindowSeconds?: number;
}

/**
 * The estate's updates, queued (`lambdas/core/estate/delta.ts`): the ingest function sends
 * each stored batch's readings to an encrypted SQS queue (a dead-letter queue behind it),
 * and the estate function drains it with a long batching window, so each device's
 * record is read and written once per window, not once per message. The function alone
 * holds the registry's update rights, the alert topic's publish and the alert history's
 * prefix; the ingest function gets only {@link EstateUpdates.grantSend}.
 */
export class EstateUpdates extends Construct {
  /** The queues, one per shard: a device's updates always go to `queues[shardOf(id)]`. */
  readonly queues: sqs.Queue[];
  readonly deadLetterQueue: sqs.Queue;
  readonly function: PipelineFunction;
  /** The window the queue gathers updates in, seconds: the alert latency it costs. */
  readonly maxBatchingWindowSeconds: number;
  /** Seconds a device's last seen in the registry may be behind arrival: the ingest and estate windows. */
  readonly lagSeconds: number;

  constructor(scope: Construct, id: string, props: EstateUpdatesProps) {
    super(scope, id);
    const window = props.maxBatchingWindowSeconds ?? 300;
    const batchSize = props.batchSize ?? 10_000;
    if (!Number.isInteger(window) || window < 0 || window > 300)
      throw new Error(
        `EstateUpdates: maxBatchingWindowSeconds must be 0 to 300 (SQS's limit), got ${window}`,
      );
    if (
      !Number.isInteger(batchSize) ||
      batchSize < 1 ||
      batchSize > 10_000 ||
      (batchSize > 10 && window === 0)
    )
      throw new Error(
        `EstateUpdates: batchSize must be 1 to 10000, and at most 10 without a window (SQS's limits), got ${batchSize}`,
      );
    const shards = props.shards ?? 1;
    if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS)
      throw new Error(`EstateUpdates: shards must be 1 to ${MAX_SHARDS}, got ${shards}`);
    this.maxBatchingWindowSeconds = window;
    this.lagSeconds = (props.ingestWindowSeconds ?? 20) + window;
    const timeout = Duration.minutes(2);
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    // Shard 0 is `Queue`, as with one shard; the others `Queue1`, `Queue2`...
    this.queues = Array.from(
      { length: shards },
      (_, shard) =>
        new sqs.Queue(this, shard === 0 ? 'Queue' : `Queue${shard}`, {
          encryption: sqs.QueueEncryption.SQS_MANAGED,
          enforceSSL: true,
          retentionPeriod: Duration.days(4),
          // At least six times the function's timeout (AWS's rule for SQS triggers), plus the window.
          visibilityTimeout: Duration.seconds(timeout.toSeconds() * 6 + window),
          deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
        }),
    );
    this.function = new PipelineFunction(this, 'Function', {
      handler: 'estate',
      description: 'Applies queued readings to the device registry and raises alerts',
      memorySize: 512,
      timeout,
      runtimeConfig: props.runtimeConfig,
    });
    for (const queue of this.queues) {
      this.function.addEventSourceMapping(`SqsEventSource:${Names.nodeUniqueId(queue.node)}`, {
        eventSourceArn: queue.queueArn,
        batchSize,
        maxBatchingWindow: window > 0 ? Duration.seconds(window) : undefined,
        reportBatchItemFailures: true,
        // Two at most per shard: a shard's devices are its own, so only two functions at
        // once write the same records (each conflict is a failed conditional write and a
        // read again).
        maxConcurrency: 2,
      });
    }
    iam.Grant.addToPrincipal({
      grantee: this.function,
      actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'],
      resourceArns: this.queues.map((q) => q.queueArn),
    });
    props.registry.grantUpdate(this.function);
    props.alerts.grantPublish(this.function);
    // alerts/: the alert history, one object per alert event the function publishes.
    props.lake.grantWrite(this.function, [LAKE_PREFIXES.alerts]);
  }

  /**
   * Lets a function send updates (the ingest function): sqs:SendMessage on the queues and
   * nothing else, and names them in its environment, in shard order (`ESTATE_QUEUE_URLS`).
   */
  /**
   * Tells a function that judges silence from the registry (the offline check, the
   * estate's reads) how far its last seen may lag, so a late record is not offline
   * (`REGISTRY_LAG_SECONDS`, added to every offline timeout).
   */
  tellLag(fn: lambda.Function): void {
    fn.addEnvironment(ENV.registryLagSeconds, String(this.lagSeconds));
  }

  grantSend(fn: lambda.Function): void {
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['sqs:SendMessage'],
      resourceArns: this.queues.map((q) => q.queueArn),
    });
    fn.addEnvironment(
      ENV.estateQueueUrls,
      Fn.join(
        ',',
        this.queues.map((q) => q.queueUrl),
      ),
    );
  }
}
