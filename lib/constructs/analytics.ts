import { Arn, Aws, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { type LakeView, NAMED_QUERIES, VIEWS } from '../../lambdas/core/analytics/daily.ts';
import { LAKE_PREFIXES } from '../../lambdas/core/lake/layout.ts';
import {
  type ColumnType,
  LAKE_TABLES,
  type LakeTable,
  SOURCE_VALUES,
} from '../../lambdas/core/lake/tables.ts';
import { ENV } from '../../lambdas/env.ts';
import type { Lake } from './lake.ts';

/** Where UNLOAD writes: the only lake prefixes a job that writes through Athena may put or delete under. */
const UNLOAD_PREFIXES = [
  LAKE_PREFIXES.curated,
  LAKE_PREFIXES.dailyMetrics,
  LAKE_PREFIXES.dailyUptime,
  LAKE_PREFIXES.reports,
];

/** Where the workgroup keeps query results, in its results bucket. */
const RESULTS_PREFIX = 'results/';

/**
 * The lake tables the HTTP query API's SQL reads (`lambdas/core/api/query.ts`:
 * `readingsPlan`, `dailyPlan`): what {@link Analytics.grantQuery} grants by default.
 */
export const QUERY_API_TABLES: readonly string[] = ['readings', 'daily_metrics'];

/** What a function granted Athena queries may read. */
export interface QueryGrantOptions {
  /**
   * The lake tables (names in `LAKE_TABLES`) the function's SQL reads: their Glue
   * definitions, and the lake's objects under their prefixes, are all of the lake it may read.
   *
   * @default QUERY_API_TABLES (readings and daily_metrics)
   */
  readonly tables?: readonly string[];
}

export interface AnalyticsProps {
  /** The lake the tables read; its access-log bucket also receives the query results bucket's logs. */
  readonly lake: Lake;
  /** Glue database name; underscores only (Athena identifiers). */
  readonly databaseName: string;
  /** Athena workgroup name: letters, digits, '.', '_' and '-'. */
  readonly workGroupName: string;
  /**
   * Per-query scan limit in bytes: a runaway `SELECT *` is cancelled, not billed.
   *
   * @default 10 GiB
   */
  readonly bytesScannedCutoffPerQuery?: number;
  /**
   * Days query results are kept.
   *
   * @default 7
   */
  readonly resultsExpirationDays?: number;
  /**
   * First day of the `dt` partition projection (`yyyy-MM-dd`). Athena looks for no
   * partition before it, so keep it close to your first data.
   *
   * @default '2024-01-01'
   */
  readonly firstDay?: string;
}

/**
 * Glue tables with partition projection over the lake layout (no crawler, no
 * MSCK REPAIR: a new hour's folder is queryable the moment it is written) and an
 * Athena workgroup that enforces an encrypted results location and a scan limit.
 */
export class Analytics extends Construct {
  /** The lake the tables read. */
  public readonly lake: Lake;
  public readonly database: glue.CfnDatabase;
  public readonly workGroup: athena.CfnWorkGroup;
  public readonly resultsBucket: s3.Bucket;
  public readonly databaseName: string;
  public readonly workGroupName: string;

  constructor(scope: Construct, id: string, props: AnalyticsProps) {
    super(scope, id);
    if (!/^[a-z0-9_]{1,255}$/.test(props.databaseName)) {
      throw new Error(`Analytics: databaseName must match [a-z0-9_]+, got "${props.databaseName}"`);
    }
    if (!/^[a-zA-Z0-9._-]{1,128}$/.test(props.workGroupName)) {
      throw new Error(
        `Analytics: workGroupName must be 1 to 128 letters, digits, '.', '_' or '-', got "${props.workGroupName}"`,
      );
    }
    const firstDay = props.firstDay ?? '2024-01-01';
    if (!/^\d{4}-\d{2}-\d{2}$/.test(firstDay)) {
      throw new Error(`Analytics: firstDay must be yyyy-MM-dd, got "${firstDay}"`);
    }
    const resultsExpirationDays = props.resultsExpirationDays ?? 7;
    if (!Number.isInteger(resultsExpirationDays) || resultsExpirationDays < 1) {
      throw new Error(
        `Analytics: resultsExpirationDays must be an integer >= 1, got ${resultsExpirationDays}`,
      );
    }
    const cutoff = props.bytesScannedCutoffPerQuery ?? 10 * 1024 ** 3;
    if (!Number.isInteger(cutoff) || cutoff < 10_000_000) {
      throw new Error(
        `Analytics: bytesScannedCutoffPerQuery must be an integer >= 10000000 (Athena's minimum, 10 MB), got ${cutoff}`,
      );
    }
    this.lake = props.lake;
    this.databaseName = props.databaseName;
    this.workGroupName = props.workGroupName;

    this.resultsBucket = new s3.Bucket(this, 'QueryResults', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.lake.accessLogs,
      serverAccessLogsPrefix: 'athena-results/',
      lifecycleRules: [{ id: 'expire-results', expiration: Duration.days(resultsExpirationDays) }],
      // Query results are not data: emptied and deleted with the stack, or `cdk destroy`
      // would end in DELETE_FAILED after the first query.
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });

    this.database = new glue.CfnDatabase(this, 'Database', {
      catalogId: Aws.ACCOUNT_ID,
      databaseInput: {
        name: props.databaseName,
        description: 'IoT pipeline lake: readings, raw, quarantine, curated',
      },
    });

    const tables = LAKE_TABLES.map((table) => {
      const resource = new glue.CfnTable(this, pascal(table.name), {
        catalogId: Aws.ACCOUNT_ID,
        databaseName: props.databaseName,
        tableInput: tableInput(table, props.lake.bucket.bucketName, firstDay),
      });
      resource.addResourceDependency(this.database);
      return resource;
    });
    // The views as Athena stores them, so they exist from the first deployment: the saved
    // queries and QuickSight's data set use them before the first daily job has run.
    for (const view of VIEWS) {
      const resource = new glue.CfnTable(this, pascal(view.name), {
        catalogId: Aws.ACCOUNT_ID,
        databaseName: props.databaseName,
        tableInput: viewInput(view, props.databaseName),
      });
      resource.addResourceDependency(this.database);
      for (const table of tables) resource.addResourceDependency(table);
    }

    this.workGroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: props.workGroupName,
      description: 'IoT pipeline queries: results encrypted, scan limited',
      state: 'ENABLED',
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: cutoff,
        engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
        resultConfiguration: {
          outputLocation: `s3://${this.resultsBucket.bucketName}/${RESULTS_PREFIX}`,
          encryptionConfiguration: { encryptionOption: 'SSE_S3' },
        },
      },
    });

    // Saved queries for the common questions, in the workgroup's Saved queries tab.
    for (const query of NAMED_QUERIES) {
      const named = new athena.CfnNamedQuery(this, `Query${pascal(query.name.replaceAll('-', '_'))}`, {
        name: query.name,
        description: query.description,
        database: props.databaseName,
        workGroup: this.workGroup.name,
        queryString: query.sql,
      });
      named.addResourceDependency(this.workGroup);
      named.addResourceDependency(this.database);
    }
  }

  /**
   * Lets a function run Athena queries over some lake tables, and nothing more: the
   * workgroup's query calls; the Glue definitions of those tables; reading and listing
   * the lake under their prefixes only (raw payloads and quarantine stay out of a
   * function that does not query them); writing and reading its results under the
   * workgroup's results prefix. Names the workgroup and database in its environment
   * (`ATHENA_WORKGROUP`, `GLUE_DATABASE`).
   *
   * @example analytics.grantQuery(fn, { tables: ['readings'] })
   */
  grantQuery(fn: lambda.Function, options: QueryGrantOptions = {}): void {
    const tables = lakeTables(options.tables ?? QUERY_API_TABLES);
    const stack = Stack.of(this);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        // No StopQueryExecution: no function stops a query (the workgroup's scan limit cancels runaways).
        actions: ['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:GetQueryResults'],
        resources: [
          Arn.format({ service: 'athena', resource: 'workgroup', resourceName: this.workGroupName }, stack),
        ],
      }),
    );
    const glueArn = (resource: string, name?: string) =>
      Arn.format({ service: 'glue', resource, ...(name === undefined ? {} : { resourceName: name }) }, stack);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        // A query reads its tables' definitions; no listing of the catalog (GetDatabases, GetTables).
        actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:GetPartitions'],
        // Athena also reads the `default` database for some operations (its guide's minimum policy).
        resources: [
          glueArn('catalog'),
          glueArn('database', this.databaseName),
          glueArn('database', 'default'),
          ...tables.map((table) => glueArn('table', `${this.databaseName}/${table.name}`)),
        ],
      }),
    );
    // Athena reads the tables with the caller's credentials: each partition folder is listed, then read.
    const prefixes = tables.map((table) => table.prefix);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: prefixes.map((prefix) => this.lake.bucket.arnForObjects(`${prefix}*`)),
      }),
    );
    fn.addToRolePolicy(listUnder(this.lake.bucket, prefixes));
    // Athena writes the results with the caller's credentials, and GetQueryResults reads them back.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        resources: [this.resultsBucket.arnForObjects(`${RESULTS_PREFIX}*`)],
      }),
    );
    fn.addToRolePolicy(listUnder(this.resultsBucket, [RESULTS_PREFIX]));
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetBucketLocation'],
        resources: [this.lake.bucket.bucketArn, this.resultsBucket.bucketArn],
      }),
    );
    fn.addEnvironment(ENV.athenaWorkGroup, this.workGroupName);
    fn.addEnvironment(ENV.glueDatabase, this.databaseName);
    this.acknowledge(fn, [
      ...tables.map((table): [string, string] => [
        `Resource::<${this.bucketId(this.lake.bucket)}.Arn>/${table.prefix}*`,
        `read the objects of table ${table.name} (generated keys under ${table.prefix} only)`,
      ]),
      [
        `Resource::<${this.bucketId(this.resultsBucket)}.Arn>/${RESULTS_PREFIX}*`,
        `keep query results (named by query id) under ${RESULTS_PREFIX} in the workgroup results bucket`,
      ],
    ]);
  }

  /**
   * Everything {@link grantQuery} grants for the tables the job reads, plus writing
   * through UNLOAD: put, get, list and delete objects under `curated/readings/`,
   * `curated/daily_metrics/`, `curated/daily_uptime/` and `reports/` only (a day's generated files are replaced,
   * and UNLOAD writes only to an empty location). Names the lake bucket in the
   * environment too (`LAKE_BUCKET`).
   */
  grantUnload(fn: lambda.Function, options: Required<QueryGrantOptions>): void {
    this.lake.addEnvironment(fn);
    this.grantQuery(fn, options);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        // GetObject too, on the job's own outputs only: a writer may look for a file (HeadObject,
        // which s3:GetObject authorizes) before it writes it.
        actions: ['s3:PutObject', 's3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: UNLOAD_PREFIXES.map((p) => this.lake.bucket.arnForObjects(`${p}*`)),
      }),
    );
    fn.addToRolePolicy(listUnder(this.lake.bucket, UNLOAD_PREFIXES));
    this.acknowledge(
      fn,
      UNLOAD_PREFIXES.map((prefix): [string, string] => [
        `Resource::<${this.bucketId(this.lake.bucket)}.Arn>/${prefix}*`,
        `replace a day's generated files under ${prefix} (UNLOAD)`,
      ]),
    );
  }

  private bucketId(bucket: s3.IBucket): string {
    return Stack.of(this).getLogicalId(bucket.node.defaultChild as s3.CfnBucket);
  }

  /** cdk-nag's IAM5 findings the grants raise, each with why Athena needs it. */
  private acknowledge(fn: lambda.Function, findings: readonly [string, string][]): void {
    for (const [finding, why] of findings) {
      Validations.of(fn).acknowledge({
        id: `AwsSolutions-IAM5[${finding}]`,
        reason: `Athena queries over the lake need to ${why}.`,
      });
    }
  }
}

/** The lake tables of these names, or an error that names the bad one and what is allowed. */
function lakeTables(names: readonly string[]): LakeTable[] {
  if (names.length === 0) throw new Error('Analytics: tables must name at least one lake table, got none');
  return names.map((name) => {
    const table = LAKE_TABLES.find((t) => t.name === name);
    if (!table) {
      throw new Error(
        `Analytics: tables must be lake tables (${LAKE_TABLES.map((t) => t.name).join(', ')}), got "${name}"`,
      );
    }
    return table;
  });
}

/**
 * s3:ListBucket on a bucket for these key prefixes only (`s3:prefix`), each with and
 * without its trailing slash: clients list a folder either way.
 */
function listUnder(bucket: s3.IBucket, prefixes: readonly string[]): iam.PolicyStatement {
  return new iam.PolicyStatement({
    actions: ['s3:ListBucket'],
    resources: [bucket.bucketArn],
    conditions: {
      StringLike: { 's3:prefix': prefixes.flatMap((prefix) => [prefix.replace(/\/$/, ''), `${prefix}*`]) },
    },
  });
}

/** Athena (Trino) types of the catalog's column types, for a view's definition. */
const TRINO_TYPES: Record<ColumnType, string> = {
  string: 'varchar',
  double: 'double',
  boolean: 'boolean',
  timestamp: 'timestamp(3)',
  bigint: 'bigint',
  date: 'date',
};

/**
 * A view as Athena writes one into the Glue catalog: a `VIRTUAL_VIEW` table whose
 * original text is the view's definition (SQL, catalog, schema, columns) as base64 JSON
 * between `/* Presto View:` and `*\/`, its columns in Hive types alongside.
 */
export function viewInput(view: LakeView, databaseName: string): glue.CfnTable.TableInputProperty {
  const definition = {
    originalSql: view.sql,
    catalog: 'awsdatacatalog',
    schema: databaseName,
    columns: view.columns.map((c) => ({ name: c.name, type: TRINO_TYPES[c.type] })),
  };
  return {
    name: view.name,
    description: `View over the lake tables (${view.name})`,
    tableType: 'VIRTUAL_VIEW',
    parameters: { presto_view: 'true', comment: 'Presto View' },
    viewOriginalText: `/* Presto View: ${Buffer.from(JSON.stringify(definition)).toString('base64')} */`,
    viewExpandedText: '/* Presto View */',
    storageDescriptor: {
      columns: view.columns.map((c) => ({ name: c.name, type: c.type })),
      serdeInfo: {},
    },
  };
}

function pascal(name: string): string {
  return name.replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}

/** The Glue TableInput of one lake table, with partition projection over its key layout. */
export function tableInput(
  table: LakeTable,
  bucketName: string,
  firstDay: string,
): glue.CfnTable.TableInputProperty {
  const location = `s3://${bucketName}/${table.prefix}`;
  const template = location + table.partitions.map((p) => `${p.name}=\${${p.name}}/`).join('');
  const parameters: Record<string, string> = {
    'projection.enabled': 'true',
    'storage.location.template': template,
    classification: table.format === 'parquet' ? 'parquet' : 'json',
  };
  for (const partition of table.partitions) {
    const key = `projection.${partition.name}`;
    if (partition.projection === 'day') {
      Object.assign(parameters, {
        [`${key}.type`]: 'date',
        [`${key}.format`]: 'yyyy-MM-dd',
        [`${key}.range`]: `${firstDay},NOW`,
        [`${key}.interval`]: '1',
        [`${key}.interval.unit`]: 'DAYS',
      });
    } else if (partition.projection === 'hour') {
      Object.assign(parameters, {
        [`${key}.type`]: 'integer',
        [`${key}.range`]: '0,23',
        [`${key}.digits`]: '2',
      });
    } else {
      Object.assign(parameters, { [`${key}.type`]: 'enum', [`${key}.values`]: SOURCE_VALUES });
    }
  }
  const storage =
    table.format === 'parquet'
      ? {
          inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
          serdeInfo: { serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
        }
      : {
          inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
          // Hive's JSON SerDe reads `yyyy-MM-dd HH:mm:ss.SSS` as a timestamp; gzip is read by extension.
          serdeInfo: { serializationLibrary: 'org.apache.hive.hcatalog.data.JsonSerDe' },
        };
  return {
    name: table.name,
    description: table.description,
    tableType: 'EXTERNAL_TABLE',
    parameters,
    partitionKeys: table.partitions.map((p) => ({ name: p.name, type: 'string' })),
    storageDescriptor: {
      location,
      columns: table.columns.map((c) => ({ name: c.name, type: c.type, comment: c.comment })),
      ...storage,
    },
  };
}
