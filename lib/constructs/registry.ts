import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { REGISTRY_TYPE_INDEX } from '../../lambdas/adapters/aws/dynamodb-registry.ts';
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
 *
 * One index, `ByType` (`deviceType`, then `deviceId`, keys only), pages the estate by
 * type and id prefix without a Scan. Its keys are attributes every item already had, so
 * DynamoDB fills it from the existing items when it is added, and they change only when
 * a device is first written or changes type: the ingest path's updates (one per device
 * per batch) cost it nothing. An index keyed on `lastSeen` would be rewritten by every
 * one of them (two write units each, more than doubling the registry's write bill), so
 * status and silence filters read the table with a Scan instead (README, "The estate on
 * DynamoDB", has the figures).
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
    this.table.addGlobalSecondaryIndex({
      indexName: REGISTRY_TYPE_INDEX,
      partitionKey: { name: 'deviceType', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'deviceId', type: dynamodb.AttributeType.STRING },
      // Keys only: a projected record would be rewritten by every update of the device.
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
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

  /**
   * What the estate's reads need (GET /v1/devices, GET /v1/estate, GET /v1/alerts): Scan
   * and BatchGetItem on the table, Query and Scan on the type index.
   */
  grantList(fn: lambda.Function): void {
    this.grant(fn, 'dynamodb:Scan', 'dynamodb:BatchGetItem');
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['dynamodb:Query', 'dynamodb:Scan'],
      resourceArns: [`${this.table.tableArn}/index/${REGISTRY_TYPE_INDEX}`],
    });
  }

  /** The table's actions on the table itself (never `index/*`: only listings read the index). */
  private grant(fn: lambda.Function, ...actions: string[]): void {
    iam.Grant.addToPrincipal({ grantee: fn, actions, resourceArns: [this.table.tableArn] });
    fn.addEnvironment(ENV.registryTable, this.table.tableName);
  }
}
