import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import { Construct } from 'constructs';
import type { Analytics } from './analytics.ts';
import { PipelineFunction } from './pipeline-function.ts';

/**
 * The lake tables the job's SQL reads (`lambdas/core/analytics/daily.ts`: every output is
 * built from `readings`): all of the lake it may read.
 */
export const DAILY_JOB_TABLES: readonly string[] = ['readings'];

export interface DailyJobProps {
  /** The tables and workgroup the job queries, and the lake (through them) it writes to. */
  readonly analytics: Analytics;
  /**
   * The run-time config JSON (from `runtimeConfigJson`), built into the bundle: the
   * offline timeouts per device type that the daily uptime is measured by.
   */
  readonly runtimeConfig: string;
  /**
   * When the job runs (UTC), for the day before.
   *
   * @default 01:15 UTC
   */
  readonly schedule?: events.Schedule;
}

/**
 * The daily job: EventBridge -> Lambda -> Athena. Compacts yesterday's `readings/`
 * into Parquet under `curated/`, writes the daily aggregates (Parquet and CSV for
 * QuickSight with its manifest) and each device's uptime (Parquet). Its role reads only
 * `readings/` and writes only `curated/` and `reports/`.
 */
export class DailyJob extends Construct {
  readonly function: PipelineFunction;

  constructor(scope: Construct, id: string, props: DailyJobProps) {
    super(scope, id);
    this.function = new PipelineFunction(this, 'Function', {
      handler: 'analytics',
      description: 'Daily compaction to Parquet, aggregates and QuickSight reports via Athena',
      memorySize: 256,
      // Athena does the work; the function waits for four UNLOADs in turn.
      timeout: Duration.minutes(15),
      runtimeConfig: props.runtimeConfig,
    });
    props.analytics.grantUnload(this.function, { tables: DAILY_JOB_TABLES });
    new events.Rule(this, 'Schedule', {
      description: 'Runs the daily analytics job for the day before',
      schedule: props.schedule ?? events.Schedule.cron({ minute: '15', hour: '1' }),
      targets: [new targets.LambdaFunction(this.function, { retryAttempts: 2 })],
    });
  }
}
