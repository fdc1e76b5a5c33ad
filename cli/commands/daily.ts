/** `iot-pipeline daily`: the daily job (curated readings, daily metrics, the report) on the local lake. */
import { checkDay, yesterday } from '../../lambdas/core/analytics/daily.ts';
import { DEFAULT_CONFIG } from '../../lib/config.ts';
import { readConfigFile } from '../../lib/config-sources.ts';
import { DEFAULT_DATA_DIR, dataPaths } from '../../local/data-dir.ts';
import { parse, UsageError } from '../args.ts';
import { dailyOnLocalLake } from '../duckdb.ts';

export const options = {
  day: { type: 'string' },
  data: { type: 'string', default: DEFAULT_DATA_DIR },
  config: { type: 'string' },
} as const;

export const usage = `Usage: iot-pipeline daily [options]

Run the daily job on the local lake, as the Daily function does on AWS: curated readings,
daily metrics and uptime for the day, the daily report, and the manifest QuickSight reads.

Options:
  --day <YYYY-MM-DD>       the day (UTC) to process (default: yesterday)
  --data <dir>             the local data folder (default ${DEFAULT_DATA_DIR})
  --config <file>          the config file whose offline timeouts uptime is measured by
                           (give the one \`start\` runs with; default: no timeouts)
  -h, --help               show this help

Example:
  iot-pipeline daily --day 2026-11-24 --config config.json`;

export async function run(args: string[]): Promise<number> {
  const { values } = parse({ args, options });
  let day: string;
  try {
    day = values.day === undefined ? yesterday(Date.now()) : checkDay(values.day);
  } catch (error) {
    throw new UsageError(`--day: ${(error as Error).message}`);
  }
  const config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
  const report = await dailyOnLocalLake(
    dataPaths(values.data).lakeDir,
    day,
    (line) => process.stderr.write(`${line}\n`),
    config,
  );
  process.stderr.write(`daily: ${day} done; the manifest lists ${report.reportDays} report days\n`);
  return 0;
}
