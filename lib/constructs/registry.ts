import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/env.ts';
import type { Alerts } from './alerts.ts';
import { PipelineFunction } from './pipeline-function.ts';

export interface RegistryProps {
  /** Where offline alerts go: the offline check may publish to its topic. */
  readonly alerts: Alerts;
  /** The run-time config JSON (offline timeouts per device type), built into the bundle. */
  readonly runtimeConfig: string;
  /**
   * How often devices are checked for silence.
   *
   * @default Duration.minutes(5)
   */
  readonly offlineCheckInterval?: Duration;
}

/**
 * The device registry (DynamoDB, pay per request, point-in-time recovery): per device
 * its type, attributes, first and last seen, last values, sequence numbers and alert
 * state. And the scheduled offline check (EventBridge every few minutes -> Lambda) that
 * raises an alert for devices silent longer than their type's timeout.
 */
export class Registry extends Construct {
  readonly table: dynamodb.Table;
  readonly offlineFunction: PipelineFunction;

  constructor(scope: Construct, id: string, props: RegistryProps) {
    super(scope, id);
    const interval = props.offlineCheckInterval ?? Duration.minutes(5);
    const minutes = interval.toMinutes({ integral: false });
    if (!Number.isInteger(minutes) || minutes < 1) {
      throw new Error(
        `Registry: offlineCheckInterval must be a whole number of minutes >= 1 (EventBridge rates), got ${interval.toHumanString()}`,
      );
    }
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'deviceId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // The estate's history (first seen, attributes) is not rebuilt from the lake by itself.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.offlineFunction = new PipelineFunction(this, 'OfflineFunction', {
      handler: 'offline',
      description: 'Raises offline alerts for devices silent longer than their timeout',
      memorySize: 256,
      timeout: Duration.minutes(2),
      runtimeConfig: props.runtimeConfig,
    });
    // Scans for silent devices, writes their alert state back.
    this.grant(this.offlineFunction, 'dynamodb:Scan', 'dynamodb:PutItem');
    props.alerts.grantPublish(this.offlineFunction);
    new events.Rule(this, 'OfflineSchedule', {
      description: 'Checks the device registry for silent devices',
      schedule: events.Schedule.rate(interval),
      targets: [new targets.LambdaFunction(this.offlineFunction, { retryAttempts: 2 })],
    });
  }

  /**
   * What the ingest path needs: read records in batches, write them conditionally. Each
   * grant also names the table in the function's environment (`REGISTRY_TABLE`).
   */
  grantUpdate(fn: lambda.Function): void {
    this.grant(fn, 'dynamodb:BatchGetItem', 'dynamodb:PutItem');
  }

  /** Reads records by device id (the HTTP edge: which way in each device is known from). */
  grantRead(fn: lambda.Function): void {
    this.grant(fn, 'dynamodb:BatchGetItem');
  }

  /** What listings need (GET /v1/devices). */
  grantList(fn: lambda.Function): void {
    this.grant(fn, 'dynamodb:Scan');
  }

  private grant(fn: lambda.Function, ...actions: string[]): void {
    this.table.grant(fn, ...actions);
    fn.addEnvironment(ENV.registryTable, this.table.tableName);
  }
}
