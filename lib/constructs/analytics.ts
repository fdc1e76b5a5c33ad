import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { type LakeView, NAMED_QUERIES, VIEWS } from '../../lambdas/core/analytics/daily.ts';
import {
  type ColumnType,
  LAKE_TABLES,
  type LakeTable,
  SOURCE_VALUES,
} from '../../lambdas/core/lake/tables.ts';

export interface AnalyticsProps {
  /** The lake bucket the tables read. */
  readonly lakeBucket: s3.IBucket;
  /** Bucket receiving S3 access logs (for the query results bucket). */
  readonly accessLogsBucket: s3.IBucket;
  /** Glue database name; underscores only (Athena identifiers). */
  readonly databaseName: string;
  /** Athena workgroup name. */
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
    const firstDay = props.firstDay ?? '2024-01-01';
    if (!/^\d{4}-\d{2}-\d{2}$/.test(firstDay)) {
      throw new Error(`Analytics: firstDay must be yyyy-MM-dd, got "${firstDay}"`);
    }
    this.databaseName = props.databaseName;
    this.workGroupName = props.workGroupName;

    this.resultsBucket = new s3.Bucket(this, 'QueryResults', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: 'athena-results/',
      lifecycleRules: [{ id: 'expire-results', expiration: Duration.days(props.resultsExpirationDays ?? 7) }],
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
        tableInput: tableInput(table, props.lakeBucket.bucketName, firstDay),
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
        bytesScannedCutoffPerQuery: props.bytesScannedCutoffPerQuery ?? 10 * 1024 ** 3,
        engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
        resultConfiguration: {
          outputLocation: `s3://${this.resultsBucket.bucketName}/results/`,
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
