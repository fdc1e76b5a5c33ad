import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import type { GateLimits } from '../../lambdas/core/api/gate.ts';
import { ENV } from '../../lambdas/env.ts';

export interface ApiKeysProps {
  /** Per-key and keyless request limits the functions apply after authentication. */
  readonly limits: GateLimits;
  /**
   * What happens to the table when the stack is deleted.
   *
   * @default RemovalPolicy.RETAIN: the keys pasted into Sigfox and The Things Stack outlive a redeploy
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The HTTP API's keys: a DynamoDB table of key records (SHA-256 hashes, never keys;
 * scopes; devices), one small item per key, managed with `iot-pipeline keys create|list|revoke
 * --stage <stage>`. The functions read a key's item once per 30 s at most, so a revoked
 * key stops within a minute with no redeploy.
 */
export class ApiKeys extends Construct {
  public readonly table: dynamodb.Table;
  private readonly limits: GateLimits;

  constructor(scope: Construct, id: string, props: ApiKeysProps) {
    super(scope, id);
    const { keyRateLimit, keyBurstLimit, anonymousRateLimit, anonymousBurstLimit } = props.limits;
    this.limits = { keyRateLimit, keyBurstLimit, anonymousRateLimit, anonymousBurstLimit };
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /**
   * Lets a function check keys: read an item by id and note its last use, nothing else
   * (no Scan: a function cannot list the keys). Names the table and the limits in its
   * environment (`KEYS_TABLE`, `GATE_LIMITS`).
   */
  grantCheck(fn: lambda.Function): void {
    this.table.grant(fn, 'dynamodb:GetItem', 'dynamodb:UpdateItem');
    fn.addEnvironment(ENV.keysTable, this.table.tableName);
    fn.addEnvironment(ENV.gateLimits, JSON.stringify(this.limits));
  }
}
