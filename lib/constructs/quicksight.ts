import { Aws } from 'aws-cdk-lib';
import * as quicksight from 'aws-cdk-lib/aws-quicksight';
import { Construct } from 'constructs';
import { LAKE_TABLES } from '../../lambdas/core/lake/tables.ts';
import type { Analytics } from './analytics.ts';

export interface QuickSightReportsProps {
  /** The workgroup the data source queries through, and the database of `v_daily_metrics`. */
  readonly analytics: Analytics;
  /** The QuickSight user or group that may use and share the data source and data set. */
  readonly principalArn: string;
  /** Part of the resource ids (one set per stage). */
  readonly stage: string;
}

const TYPES: Record<string, string> = {
  string: 'STRING',
  double: 'DECIMAL',
  bigint: 'INTEGER',
  boolean: 'BOOLEAN',
  timestamp: 'DATETIME',
  date: 'DATETIME',
};

/**
 * For accounts with QuickSight enabled: an Athena data source on the pipeline's
 * workgroup and a direct-query data set of `v_daily_metrics` (the daily aggregates with
 * their range), shared with one QuickSight principal. QuickSight's own service role must
 * be allowed to read the lake and results buckets (QuickSight console, Security & permissions).
 */
export class QuickSightReports extends Construct {
  constructor(scope: Construct, id: string, props: QuickSightReportsProps) {
    super(scope, id);
    if (!/^arn:[a-z-]+:quicksight:[a-z0-9-]+:\d{12}:(user|group)\/.+$/.test(props.principalArn)) {
      throw new Error(
        `QuickSightReports: principalArn must be a QuickSight user or group ARN (arn:aws:quicksight:<region>:<account>:user/...), got "${props.principalArn}"`,
      );
    }
    const dataSource = new quicksight.CfnDataSource(this, 'DataSource', {
      awsAccountId: Aws.ACCOUNT_ID,
      dataSourceId: `iot-pipeline-${props.stage}-athena`,
      name: `IoT pipeline (${props.stage})`,
      type: 'ATHENA',
      dataSourceParameters: { athenaParameters: { workGroup: props.analytics.workGroupName } },
      permissions: [
        {
          principal: props.principalArn,
          actions: [
            'quicksight:DescribeDataSource',
            'quicksight:DescribeDataSourcePermissions',
            'quicksight:PassDataSource',
          ],
        },
      ],
    });
    const daily = LAKE_TABLES.find((t) => t.name === 'daily_metrics');
    const columns = [
      ...(daily?.columns ?? []).map((c) => ({ name: c.name, type: TYPES[c.type] ?? 'STRING' })),
      { name: 'range', type: 'DECIMAL' },
      { name: 'dt', type: 'STRING' },
    ];
    new quicksight.CfnDataSet(this, 'DailyMetrics', {
      awsAccountId: Aws.ACCOUNT_ID,
      dataSetId: `iot-pipeline-${props.stage}-daily-metrics`,
      name: `Daily metrics (${props.stage})`,
      importMode: 'DIRECT_QUERY',
      physicalTableMap: {
        daily: {
          relationalTable: {
            dataSourceArn: dataSource.attrArn,
            catalog: 'AwsDataCatalog',
            schema: props.analytics.databaseName,
            name: 'v_daily_metrics',
            inputColumns: columns,
          },
        },
      },
      permissions: [
        {
          principal: props.principalArn,
          actions: [
            'quicksight:DescribeDataSet',
            'quicksight:DescribeDataSetPermissions',
            'quicksight:PassDataSet',
            'quicksight:DescribeIngestion',
            'quicksight:ListIngestions',
          ],
        },
      ],
    });
  }
}
