import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { LAKE_PREFIXES } from '../../lambdas/core/lake/layout.ts';
import { ENV } from '../../lambdas/env.ts';

export interface LakeProps {
  /**
   * Days before `raw/` objects move to S3 Glacier Instant Retrieval (same millisecond
   * reads, a fifth of the storage price; raw is read rarely, for re-decoding).
   *
   * @default 90
   */
  readonly rawTransitionDays?: number;
  /**
   * Days before `quarantine/` objects expire; 0 keeps them.
   *
   * @default 0
   */
  readonly quarantineExpirationDays?: number;
  /**
   * Days an overwritten or deleted object version is kept.
   *
   * @default 30
   */
  readonly noncurrentVersionExpirationDays?: number;
  /**
   * What happens to the buckets when the stack is deleted. The lake is the system of
   * record, so it is kept unless you say otherwise.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The S3 data lake: one versioned, encrypted, TLS-only, private bucket laid out as in
 * DESIGN.md (`raw/`, `readings/`, `quarantine/`, `curated/`, `reports/`), with
 * lifecycle rules per prefix, and a second bucket that receives its access logs.
 */
export class Lake extends Construct {
  /** The lake bucket. */
  public readonly bucket: s3.Bucket;
  /** Where S3 server access logs of the lake go. */
  public readonly accessLogs: s3.Bucket;

  constructor(scope: Construct, id: string, props: LakeProps = {}) {
    super(scope, id);
    const rawTransitionDays = props.rawTransitionDays ?? 90;
    const quarantineExpirationDays = props.quarantineExpirationDays ?? 0;
    const noncurrentDays = props.noncurrentVersionExpirationDays ?? 30;
    for (const [name, value, min] of [
      ['rawTransitionDays', rawTransitionDays, 1],
      ['quarantineExpirationDays', quarantineExpirationDays, 0],
      ['noncurrentVersionExpirationDays', noncurrentDays, 1],
    ] as const) {
      if (!Number.isInteger(value) || value < min) {
        throw new Error(`Lake: ${name} must be an integer >= ${min}, got ${value}`);
      }
    }
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      // ACLs off: S3 log delivery is granted by bucket policy (an ACL is a legacy property, cfn-lint W3045).
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(365) }],
      removalPolicy,
    });
    Validations.of(this.accessLogs).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This bucket is the access-log target; logging it into itself would loop.',
    });

    this.bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'lake/',
      removalPolicy,
      lifecycleRules: [
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
        { id: 'noncurrent-versions', noncurrentVersionExpiration: Duration.days(noncurrentDays) },
        {
          id: 'raw-to-glacier-ir',
          prefix: LAKE_PREFIXES.raw,
          transitions: [
            {
              storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
              transitionAfter: Duration.days(rawTransitionDays),
            },
          ],
        },
        ...(quarantineExpirationDays > 0
          ? [
              {
                id: 'quarantine-expiry',
                prefix: LAKE_PREFIXES.quarantine,
                expiration: Duration.days(quarantineExpirationDays),
              },
            ]
          : []),
      ],
    });
  }

  /**
   * Lets a function put objects under the given lake prefixes and nothing else (as
   * {@link grantWritePrefixes}), and names the bucket in its environment (`LAKE_BUCKET`).
   */
  grantWrite(fn: lambda.Function, prefixes: readonly string[]): void {
    this.grantWritePrefixes(fn, prefixes);
    this.addEnvironment(fn);
  }

  /**
   * Names the bucket in a function's environment (`LAKE_BUCKET`) without granting
   * anything: for a function whose access to the lake another construct grants (the
   * daily job's, through `Analytics.grantUnload`).
   */
  addEnvironment(fn: lambda.Function): void {
    fn.addEnvironment(ENV.lakeBucket, this.bucket.bucketName);
  }

  /**
   * Lets `grantee` put objects under the given lake prefixes, and nothing else: no
   * read, no delete, no other prefix. IAM only; {@link grantWrite} also names the
   * bucket in a function's environment.
   */
  grantWritePrefixes(grantee: iam.IGrantable, prefixes: readonly string[]): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObject'],
      resourceArns: prefixes.map((prefix) => this.bucket.arnForObjects(`${prefix}*`)),
    });
    if (!(grantee instanceof Construct)) return;
    const bucketId = Stack.of(this).getLogicalId(this.bucket.node.defaultChild as s3.CfnBucket);
    for (const prefix of prefixes) {
      Validations.of(grantee).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${prefix}*]`,
        reason: `Writes objects with generated names (batch ids) under the lake prefix ${prefix} only.`,
      });
    }
  }
}
