import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  type QueryExecutionState,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { athenaEngine } from '../../lambdas/adapters/aws/athena.ts';
import { csvText, runDailyJob } from '../../lambdas/core/analytics/daily.ts';
import { folderStore } from '../../local/adapters/folder-store.ts';

const athena = mockClient(AthenaClient);
const sleep = async () => undefined;
const engine = () =>
  athenaEngine(new AthenaClient({}), {
    workGroup: 'iot-pipeline-dev',
    database: 'iot_pipeline_dev',
    bucket: 'lake',
    sleep,
  });
const status = (State: QueryExecutionState, StateChangeReason?: string, DataScannedInBytes = 1024) => ({
  QueryExecution: { Status: { State, StateChangeReason }, Statistics: { DataScannedInBytes } },
});

afterEach(() => athena.reset());

describe('athenaEngine', () => {
  it('starts in the workgroup with execution parameters, polls until done, and pages the results', async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q1' });
    athena
      .on(GetQueryExecutionCommand)
      .resolvesOnce(status('QUEUED'))
      .resolvesOnce(status('RUNNING'))
      .resolves(status('SUCCEEDED', undefined, 2048));
    const columns = {
      ColumnInfo: [
        { Name: 'device_id', Type: 'varchar' },
        { Name: 'value', Type: 'double' },
      ],
    };
    athena
      .on(GetQueryResultsCommand, { QueryExecutionId: 'q1', NextToken: undefined })
      .resolves({
        ResultSet: {
          ResultSetMetadata: columns,
          Rows: [
            { Data: [{ VarCharValue: 'device_id' }, { VarCharValue: 'value' }] },
            { Data: [{ VarCharValue: 'd-1' }, { VarCharValue: '1.5' }] },
          ],
        },
        NextToken: 'page2',
      })
      .on(GetQueryResultsCommand, { QueryExecutionId: 'q1', NextToken: 'page2' })
      .resolves({
        ResultSet: { ResultSetMetadata: columns, Rows: [{ Data: [{ VarCharValue: 'd-2' }, {}] }] },
      });
    const result = await engine().query('SELECT device_id, value FROM readings WHERE device_id = ?', ['d-1']);
    expect(athena.commandCalls(StartQueryExecutionCommand)[0]?.args[0].input).toEqual({
      QueryString: 'SELECT device_id, value FROM readings WHERE device_id = ?',
      WorkGroup: 'iot-pipeline-dev',
      QueryExecutionContext: { Database: 'iot_pipeline_dev' },
      ExecutionParameters: ['d-1'],
    });
    expect(result).toEqual({
      id: 'q1',
      bytesScanned: 2048,
      rows: [
        { device_id: 'd-1', value: '1.5' },
        { device_id: 'd-2', value: null },
      ],
    });
    expect(athena.commandCalls(GetQueryExecutionCommand)).toHaveLength(3);
  });

  it("fails with Athena's reason, and runs again a query that failed for throttling", async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q2' });
    athena
      .on(GetQueryExecutionCommand)
      .resolves(status('FAILED', "SYNTAX_ERROR: line 1:8: Column 'nope' cannot be resolved"));
    await expect(engine().run('SELECT nope FROM readings')).rejects.toThrow(
      "Athena query q2 failed: SYNTAX_ERROR: line 1:8: Column 'nope' cannot be resolved",
    );
    expect(athena.commandCalls(StartQueryExecutionCommand)).toHaveLength(1);
    athena.reset();
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q3' });
    athena
      .on(GetQueryExecutionCommand)
      .resolvesOnce(
        status(
          'FAILED',
          'Query exhausted resources: Rate exceeded (Service: Amazon S3; Status Code: 503; Error Code: SlowDown)',
        ),
      )
      .resolves(status('SUCCEEDED'));
    await engine().unload('SELECT 1', 'reports/daily/dt=2026-11-24/', 'csv');
    expect(athena.commandCalls(StartQueryExecutionCommand)).toHaveLength(2);
    expect(athena.commandCalls(StartQueryExecutionCommand)[0]?.args[0].input.QueryString).toBe(
      "UNLOAD (SELECT 1) TO 's3://lake/reports/daily/dt=2026-11-24/' WITH (format = 'TEXTFILE', field_delimiter = ',')",
    );
  });
});

describe('the daily job on Athena', () => {
  it("empties each output of the day, UNLOADs it and writes the manifest (the views are the stack's)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'daily-athena-'));
    const lake = folderStore(dir);
    // What an earlier run of the same day left behind.
    await mkdir(join(dir, 'curated', 'readings', 'dt=2026-11-24'), { recursive: true });
    await writeFile(join(dir, 'curated', 'readings', 'dt=2026-11-24', 'old.parquet'), 'x');
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q' });
    athena.on(GetQueryExecutionCommand).resolves(status('SUCCEEDED'));
    const report = await runDailyJob('2026-11-24', { engine: engine(), lake, bucket: 'lake' });
    const sql = athena
      .commandCalls(StartQueryExecutionCommand)
      .map((c) => String(c.args[0].input.QueryString).split('\n')[0]);
    expect(sql).toEqual([
      'UNLOAD (SELECT device_id, device_type, time, metric, value, value_str, value_bool, source, received_at',
      "UNLOAD (SELECT device_id, metric, DATE '2026-11-24' AS day,",
      `UNLOAD (SELECT ${csvText('device_id')} AS device_id, ${csvText('metric')} AS metric, ${csvText("DATE '2026-11-24'")} AS day,`,
      "UNLOAD (SELECT CASE WHEN grouping(dev_id) = 1 THEN '*' ELSE dev_id END AS device_id,",
    ]);
    expect(athena.commandCalls(StartQueryExecutionCommand)[3]?.args[0].input.QueryString).toMatch(
      /\) TO 's3:\/\/lake\/curated\/daily_uptime\/dt=2026-11-24\/' WITH \(format = 'PARQUET', compression = 'SNAPPY'\)$/,
    );
    expect(await lake.list('curated/readings/')).toEqual([]);
    expect(await lake.list('reports/')).toEqual(['reports/manifest.json']);
    expect(report).toEqual({ day: '2026-11-24', reportDays: 0 });
  });
});
