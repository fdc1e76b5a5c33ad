/** `iot-pipeline start`: the whole pipeline on this machine until Ctrl-C. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFIG } from '../../lib/config.ts';
import { readConfigFile } from '../../lib/config-sources.ts';
import { repairJournal } from '../../local/adapters/journal.ts';
import { DEFAULT_DATA_DIR, dataPaths, KEY_VARIABLES } from '../../local/data-dir.ts';
import { healthLine } from '../../local/health.ts';
import { repairDatabase } from '../../local/repair.ts';
import { LOCAL_HOST, startLocalRuntime } from '../../local/runtime.ts';
import { parse, port, UsageError } from '../args.ts';

export const options = {
  'mqtt-port': { type: 'string' },
  'http-port': { type: 'string' },
  data: { type: 'string', default: DEFAULT_DATA_DIR },
  config: { type: 'string' },
  'alert-webhook': { type: 'string' },
  'mqtt-auth': { type: 'boolean', default: false },
  repair: { type: 'boolean', default: false },
} as const;

export const usage = `Usage: iot-pipeline start [options]

Run the whole pipeline locally: an MQTT broker and the HTTP API on 127.0.0.1, feeding the
same ingest as on AWS, into a lake folder and DuckDB. Ctrl-C stores what is queued and stops.

Options:
  --mqtt-port <n>          the MQTT broker's port (default 1883; 0 picks a free one)
  --http-port <n>          the HTTP API's port (default 3000; 0 picks a free one)
  --data <dir>             the data folder: lake, DuckDB file, dead letters, keys (default ${DEFAULT_DATA_DIR})
  --config <file>          the pipeline config (device types, decoders, alert rules), as for cdk synth
  --alert-webhook <url>    POST each alert there as JSON, besides printing it
  --mqtt-auth              devices connect with client id = username = device id and the password from
                           iot-pipeline devices add <id>, and use only their own topics. Off by default:
                           then any local process can publish as any device and read all telemetry
  --repair                 first keep a damaged journal's intact records (the damaged segment moved aside),
                           then rebuild <data>/pipeline.duckdb from the lake (the source of truth):
                           timeseries, the device registry (alert states replayed, none sent again) and
                           the last two days' claims of network resends; the old file is kept as
                           pipeline.duckdb.damaged-<time> (replaced-<time> when it was whole: this also
                           rebuilds after an edit of the lake). Without it, a damaged file stops the start
  -h, --help               show this help

Keys: the first start makes an ingest key and a read key, prints them as export lines and
keeps them in <data>/local-keys.env (mode 0600); later starts reuse them. Make more with
iot-pipeline keys create. ${KEY_VARIABLES.all}, when set, is one more key with every scope.

Example:
  iot-pipeline start --config config.json --http-port 3001`;

export async function run(args: string[]): Promise<number> {
  const { values } = parse({ args, options });
  const webhook = values['alert-webhook'];
  if (webhook !== undefined && !/^https?:\/\/\S+$/.test(webhook))
    throw new UsageError(`--alert-webhook "${webhook}" must be an http(s) URL`);
  const config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
  const apiKey = process.env[KEY_VARIABLES.all] || undefined;
  const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
  if (values.repair) {
    const journal = await repairJournal(dataPaths(values.data).journalDir);
    log(
      `journal: ${journal.segments} segments read, ${journal.kept} records kept, ${journal.unsettled} messages to deliver` +
        journal.damaged
          .map(
            (d) =>
              `; ${d.file} damaged at byte ${d.offset}: ${d.keptRecords} records kept, moved to ${d.movedTo}`,
          )
          .join('') +
        (journal.truncated
          ? `; a torn tail of ${journal.truncated.bytes} bytes cut from ${journal.truncated.file}`
          : ''),
    );
    await repairDatabase(values.data, config, log);
  }
  const runtime = await startLocalRuntime({
    dataDir: values.data,
    mqttPort: port(values['mqtt-port'], 1883, '--mqtt-port'),
    httpPort: port(values['http-port'], 3000, '--http-port'),
    apiKey,
    config,
    alertWebhookUrl: webhook,
    mqttAuth: values['mqtt-auth'],
    log: (line) => console.log(`${new Date().toISOString()} ${line}`),
  });
  // Listening for Ctrl-C before saying it stops us: a signal that came between the two
  // would otherwise end the process at once, without storing what is queued.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  console.log(
    [
      'iot-pipeline: local runtime started',
      `  MQTT     mqtt://${LOCAL_HOST}:${runtime.mqttPort}    publish JSON to dt/<deviceType>/<deviceId>`,
      `  HTTP     http://${LOCAL_HOST}:${runtime.httpPort}    POST /v1/telemetry with "Authorization: Bearer <ingest key>"`,
      `  console  http://${LOCAL_HOST}:${runtime.httpPort}/   the estate, devices, alerts and quarantine (no key to type)`,
      `  keys     ${runtime.keys.made.length > 0 ? `made ${runtime.keys.made.join(' and ')}` : 'reused'}, kept in ${runtime.keysFile}:`,
      `export ${KEY_VARIABLES.ingest}=${runtime.keys.ingest}`,
      `export ${KEY_VARIABLES.read}=${runtime.keys.read}`,
      ...(apiKey ? [`  and ${KEY_VARIABLES.all} (every scope, from the environment)`] : []),
      ...(existsSync(join(values.data, 'api-key'))
        ? [
            `  note     ${join(values.data, 'api-key')} (the one key of earlier versions) is no longer read: give callers the keys above, then delete it`,
          ]
        : []),
      `  lake     ${runtime.lakeDir}  (raw/, readings/, quarantine/: same keys as the S3 bucket)`,
      `  DuckDB   ${runtime.databaseFile}  (table timeseries)`,
      `  dead letters ${runtime.deadLetterFile}`,
      'Try: npm run simulate -- --devices 50 --rate 10/s',
      '     npm run query -- "SELECT device_id, metric, max(value) FROM readings GROUP BY ALL"',
      'Ctrl-C stores what is queued and stops.',
    ].join('\n'),
  );
  const report = setInterval(async () => {
    // The figures GET /healthz answers, once anything came in or something is wrong.
    const health = await runtime.health();
    if (runtime.queue.stats().sent > 0 || !health.ok)
      console.log(`${new Date().toISOString()} status: ${healthLine(health)}`);
  }, 10_000);
  report.unref();
  await stopped;
  clearInterval(report);
  console.log('iot-pipeline: stopping; storing what is queued…');
  await runtime.close();
  const s = runtime.queue.stats();
  console.log(`iot-pipeline: stopped. ${s.done} messages done, ${s.deadLettered} dead-lettered.`);
  return 0;
}
