import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/env.ts';

/**
 * The claims table: which message stored a Sigfox or The Things Stack reading first,
 * so a callback the network sends again is stored once. Pay per request (one write per
 * callback reading), items expire by TTL after two days.
 */
export class ReadingClaimsTable extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // Claims are two days of duplicate suppression, not data: nothing to keep.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Validations.of(this.table).acknowledge({
      id: 'AwsSolutions-DDB3',
      reason:
        'Claims expire after two days and hold no data (the lake has every message); losing them lets at most a resent duplicate through, so point-in-time recovery would cost without protecting anything.',
    });
  }

  /**
   * Conditional PutItem only (the ingest function neither reads, scans nor deletes
   * claims), and the table named in the function's environment (`CLAIMS_TABLE`).
   */
  grantClaim(fn: lambda.Function): void {
    this.table.grant(fn, 'dynamodb:PutItem');
    fn.addEnvironment(ENV.claimsTable, this.table.tableName);
  }
}
