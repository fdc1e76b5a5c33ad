/** `iot-pipeline redecode`: the raw archive decoded again, its readings replaced (local lake or S3). */
import { DEFAULT_CONFIG } from '../../lib/config.ts';
import { readConfigFile } from '../../lib/config-sources.ts';
import { folderStore } from '../../local/adapters/folder-store.ts';
import { DEFAULT_DATA_DIR, dataPaths } from '../../local/data-dir.ts';
import { redecode } from '../../tools/redecode/redecode.ts';
import { parse, UsageError, wholeNumber } from '../args.ts';
import { REGION_OPTION, REGION_USAGE, s3Lake } from '../aws.ts';

export const options = {
  from: { type: 'string' },
  to: { type: 'string' },
  config: { type: 'string' },
  data: { type: 'string', default: DEFAULT_DATA_DIR },
  bucket: { type: 'string' },
  ...REGION_OPTION,
  'lookback-days': { type: 'string', default: '2' },
  json: { type: 'boolean', default: false },
} as const;

export const usage = `Usage: iot-pipeline redecode --from <YYYY-MM-DD> --to <YYYY-MM-DD> [options]

Decode the raw archive again with the current decoders (after fixing a codec or a grammar)
and replace the readings those messages made; exit code 1 when some failed (run it again).

Options:
  --from <YYYY-MM-DD>      the first arrival day (UTC) to decode again
  --to <YYYY-MM-DD>        the last arrival day
  --config <file>          the pipeline config with the decoders to use (default: the built-in one)
  --lookback-days <n>      days before each arrival day searched for a message's old readings (default 2)
  --data <dir>             the local lake's data folder (default ${DEFAULT_DATA_DIR})
  --bucket <name>          the lake on S3 instead: the LakeBucketName stack output
${REGION_USAGE}
  --json                   print the report as one JSON document on stdout
  -h, --help               show this help

Examples:
  iot-pipeline redecode --from 2026-11-01 --to 2026-11-25 --config config.json
  iot-pipeline redecode --from 2026-11-01 --to 2026-11-25 --bucket iot-pipeline-dev-lake-123 --region eu-west-1`;

export async function run(args: string[]): Promise<number> {
  const { values } = parse({ args, options });
  if (!values.from || !values.to)
    throw new UsageError('Give the arrival days to decode again: --from 2026-11-01 --to 2026-11-25');
  const lookbackDays = wholeNumber('--lookback-days', values['lookback-days'], 0, 36_500);
  const config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
  const store = values.bucket
    ? await s3Lake(values.bucket, values.region)
    : folderStore(dataPaths(values.data).lakeDir);
  let report: Awaited<ReturnType<typeof redecode>>;
  try {
    report = await redecode(store, config, {
      from: values.from,
      to: values.to,
      lookbackDays,
      onProgress: (line) => process.stderr.write(`${line}\n`),
    });
  } catch (error) {
    if ((error as Error).message.startsWith('--')) throw new UsageError((error as Error).message);
    throw error;
  }
  if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    process.stderr.write(
      `redecode: ${report.messages} messages over ${report.days} days: ${report.readings} readings stored, ${report.quarantined} quarantined, ${report.removedLines} old lines replaced in ${report.rewrittenObjects} objects${report.failedMessages ? `, ${report.failedMessages} FAILED (run again)` : ''}\n`,
    );
  }
  return report.failedMessages > 0 ? 1 : 0;
}
