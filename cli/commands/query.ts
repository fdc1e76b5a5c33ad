/** `iot-pipeline query`: SQL on the local lake (DuckDB) or on the deployed one (Athena). */
import { ATHENA_PRICE, athenaCost } from '../../lambdas/core/analytics/daily.ts';
import { DEFAULT_DATA_DIR, dataPaths } from '../../local/data-dir.ts';
import { parse, UsageError } from '../args.ts';
import { athenaQueries, REGION_OPTION, REGION_USAGE } from '../aws.ts';
import { awsProblem, CliError } from '../errors.ts';
import { formatCsv, formatTable, type Rows } from '../table.ts';

export const options = {
  data: { type: 'string', default: DEFAULT_DATA_DIR },
  workgroup: { type: 'string' },
  database: { type: 'string' },
  ...REGION_OPTION,
  json: { type: 'boolean', default: false },
  csv: { type: 'boolean', default: false },
} as const;

export const usage = `Usage: iot-pipeline query "<SQL>" [options]

Run SQL on the local lake with DuckDB, or on Athena over the deployed lake.
Tables: readings, raw, quarantine, curated_readings, daily_metrics; locally also the
runtime's timeseries, devices (the registry, a JSON record per device) and claims: from
<data>/pipeline.duckdb (read only) when start is not running, else from the snapshot
start refreshes every 5 s in <data>/snapshot/ (the age is printed on stderr).

Options:
  --data <dir>             the local data folder (default ${DEFAULT_DATA_DIR})
  --workgroup <name>       run on Athena in this workgroup: the AthenaWorkGroup stack output
  --database <name>        with --workgroup: the GlueDatabaseName stack output
${REGION_USAGE}
  --json                   print the rows as one JSON document on stdout
  --csv                    print the rows as CSV
  -h, --help               show this help

Examples:
  iot-pipeline query "SELECT device_id, metric, max(value) FROM readings GROUP BY ALL"
  iot-pipeline query --workgroup iot_pipeline_dev --database iot_pipeline_dev --csv "SELECT * FROM readings LIMIT 10"`;

type Output = 'json' | 'csv' | 'table';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse({ args, allowPositionals: true, options });
  const sql = positionals.join(' ').trim();
  if (!sql) throw new UsageError('Give the SQL to run: query "SELECT * FROM readings LIMIT 10"', true);
  const output: Output = values.json ? 'json' : values.csv ? 'csv' : 'table';
  if (values.workgroup !== undefined) {
    if (!values.database)
      throw new UsageError('--workgroup needs --database <GlueDatabaseName> (a stack output)');
    return queryAthena(sql, values.workgroup, values.database, values.region, output);
  }
  const { queryLocalLake } = await import('../duckdb.ts');
  const result = await queryLocalLake(dataPaths(values.data), sql);
  const { pipeline } = result;
  if (
    pipeline.from === 'snapshot' &&
    [...pipeline.tables].some((t) => new RegExp(`\\b${t}\\b`, 'i').test(sql))
  ) {
    const age = Math.max(0, Math.round((Date.now() - Date.parse(pipeline.info.currentAt)) / 1000));
    process.stderr.write(
      `(${[...pipeline.tables].join(', ')}: the running runtime's snapshot, current as of ${pipeline.info.currentAt} (${age} s ago; checked every ${pipeline.info.everyMs / 1000} s))\n`,
    );
  }
  print(result, output);
  if (output === 'table')
    process.stderr.write(`(${result.rows.length} row${result.rows.length === 1 ? '' : 's'})\n`);
  return 0;
}

function print(result: Rows, output: Output): void {
  if (output === 'json') process.stdout.write(`${JSON.stringify(result.rows)}\n`);
  else if (output === 'csv') process.stdout.write(formatCsv(result));
  else process.stdout.write(formatTable(result));
}

async function queryAthena(
  sql: string,
  workGroup: string,
  database: string,
  region: string | undefined,
  output: Output,
): Promise<number> {
  const tty = process.stderr.isTTY;
  const engine = await athenaQueries({
    workGroup,
    database,
    bucket: '',
    region,
    onProgress: ({ state, elapsedMs, bytesScanned }) => {
      const line = `athena: ${state.toLowerCase()}, ${(elapsedMs / 1000).toFixed(1)} s, ${formatBytes(bytesScanned)} scanned`;
      process.stderr.write(tty ? `\r${line}\u001b[K` : `${line}\n`);
    },
  });
  let result: Awaited<ReturnType<typeof engine.query>>;
  try {
    result = await engine.query(sql);
  } catch (error) {
    if (tty) process.stderr.write('\n');
    const aws = awsProblem(error);
    // No region or credentials: nothing ran. A refused or failed query is the SQL's problem.
    if (aws && !('$metadata' in (error as object))) throw new CliError(aws);
    throw new UsageError(`The query failed: ${(error as Error).message}`);
  }
  if (tty) process.stderr.write('\n');
  print({ columns: Object.keys(result.rows[0] ?? {}), rows: result.rows }, output);
  process.stderr.write(
    `(${result.rows.length} rows; ${formatBytes(result.bytesScanned)} scanned, $${athenaCost(result.bytesScanned).toFixed(6)} at $${ATHENA_PRICE.perTbScanned}/TB with a 10 MB minimum; query ${result.id})\n`,
  );
  return 0;
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
