import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as timestream from 'aws-cdk-lib/aws-timestream';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/env.ts';
import type { Lake } from './lake.ts';

export interface TimeSeriesProps {
  /**
   * Timestream database name. The database is kept when the stack is destroyed (it holds
   * data), so a fixed name would make the next deployment of the stage fail with "already
   * exists": by default CloudFormation names it.
   *
   * @default a name CloudFormation generates
   */
  readonly databaseName?: string;
  /**
   * Table name.
   *
   * @default 'readings'
   */
  readonly tableName?: string;
  /**
   * Hours a record stays in the memory store.
   *
   * @default 24
   */
  readonly memoryRetentionHours?: number;
  /**
   * Days a record stays in the magnetic store.
   *
   * @default 365
   */
  readonly magneticRetentionDays?: number;
  /**
   * Where Timestream reports late records it rejected asynchronously from the
   * magnetic store, so they are not lost silently: the lake bucket, under `errors/timestream/`.
   */
  readonly lake: Lake;
}

/**
 * Amazon Timestream for LiveAnalytics (L1 resources only): one database and one table
 * of multi-measure records, with magnetic store writes on so late readings are kept.
 * Create it only when `timestream.enabled` is true: the service is closed to new AWS
 * customers, and a stack without it holds no Timestream resource or permission.
 */
export class TimeSeries extends Construct {
  public readonly database: timestream.CfnDatabase;
  public readonly table: timestream.CfnTable;
  public readonly databaseName: string;
  public readonly tableName: string;
  /** Hours of records the memory store holds: the range recent-readings queries answer for. */
  public readonly memoryRetentionHours: number;

  constructor(scope: Construct, id: string, props: TimeSeriesProps) {
    super(scope, id);
    const memory = props.memoryRetentionHours ?? 24;
    const magnetic = props.magneticRetentionDays ?? 365;
    if (!Number.isInteger(memory) || memory < 1 || memory > 8766) {
      throw new Error(`TimeSeries: memoryRetentionHours must be an integer from 1 to 8766, got ${memory}`);
    }
    if (!Number.isInteger(magnetic) || magnetic < 1 || magnetic > 73_000) {
      throw new Error(
        `TimeSeries: magneticRetentionDays must be an integer from 1 to 73000, got ${magnetic}`,
      );
    }
    if (props.tableName !== undefined && !/^[a-zA-Z0-9_.-]{3,256}$/.test(props.tableName)) {
      throw new Error(
        `TimeSeries: tableName must be 3 to 256 letters, digits, '_', '.' or '-', got "${props.tableName}"`,
      );
    }
    this.tableName = props.tableName ?? 'readings';
    this.memoryRetentionHours = memory;

    this.database = new timestream.CfnDatabase(
      this,
      'Database',
      props.databaseName === undefined ? {} : { databaseName: props.databaseName },
    );
    this.database.applyRemovalPolicy(RemovalPolicy.RETAIN);
    this.databaseName = this.database.ref;
    Validations.of(this).acknowledge(
      {
        id: 'AwsSolutions-TS3',
        reason:
          'Encrypted at rest with the AWS owned Timestream key; a customer managed key adds cost and a key policy to keep for no reader we have.',
      },
      {
        id: 'CloudFormation-Validate::W3697',
        reason:
          'Timestream is closed to new customers; it is on only for accounts that already have it (timestream.enabled), and the lake holds everything either way.',
      },
    );
    this.table = new timestream.CfnTable(this, 'Table', {
      databaseName: this.databaseName,
      tableName: this.tableName,
      retentionProperties: {
        MemoryStoreRetentionPeriodInHours: String(memory),
        MagneticStoreRetentionPeriodInDays: String(magnetic),
      },
      magneticStoreWriteProperties: {
        EnableMagneticStoreWrites: true,
        MagneticStoreRejectedDataLocation: {
          S3Configuration: {
            BucketName: props.lake.bucket.bucketName,
            ObjectKeyPrefix: 'errors/timestream/',
            EncryptionOption: 'SSE_S3',
          },
        },
      },
    });
    this.table.addResourceDependency(this.database);
    this.table.applyRemovalPolicy(RemovalPolicy.RETAIN);
  }

  /** The table's ARN. */
  get tableArn(): string {
    return this.table.attrArn;
  }

  /**
   * Lets a function write records to the table: WriteRecords on this table only, plus
   * DescribeEndpoints, which Timestream's endpoint discovery needs and which exists
   * only as an account-level action. Names the database and table in its environment
   * (`TIMESTREAM_DATABASE`, `TIMESTREAM_TABLE`).
   */
  grantWrite(fn: lambda.Function): void {
    this.grant(fn, 'timestream:WriteRecords');
  }

  /**
   * Queries on the table (the query API's recent readings), with the same environment
   * plus the memory store's hours (`TIMESTREAM_WINDOW_HOURS`), the range it answers for.
   */
  grantSelect(fn: lambda.Function): void {
    this.grant(fn, 'timestream:Select');
    fn.addEnvironment(ENV.timestreamWindowHours, String(this.memoryRetentionHours));
  }

  private grant(grantee: lambda.Function, action: string): void {
    grantee.addEnvironment(ENV.timestreamDatabase, this.databaseName);
    grantee.addEnvironment(ENV.timestreamTable, this.tableName);
    iam.Grant.addToPrincipal({
      grantee,
      actions: [action],
      resourceArns: [this.tableArn],
    });
    iam.Grant.addToPrincipal({ grantee, actions: ['timestream:DescribeEndpoints'], resourceArns: ['*'] });
    Validations.of(grantee).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'timestream:DescribeEndpoints has no resource type; AWS requires "*" for it.',
    });
  }
}
