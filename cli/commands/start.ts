/** `iot-pipeline start`: the whole pipeline on this machine until Ctrl-C. */
import { randomBytes } from 'node:crypto';
import { DEFAULT_CONFIG } from '../../lib/config.ts';
import { readConfigFile } from '../../lib/config-sources.ts';
import { DEFAULT_DATA_DIR, dataPaths, writeApiKey } from '../../local/data-dir.ts';
import { LOCAL_HOST, startLocalRuntime } from '../../local/runtime.ts';
import { parse, port, UsageError } from '../args.ts';

export const options = {
  'mqtt-port': { type: 'string' },
  'http-port': { type: 'string' },
  data: { type: 'string', default: DEFAULT_DATA_DIR },
  config: { type: 'string' },
  'alert-webhook': { type: 'string' },
} as const;

export const usage = `Usage: iot-pipeline start [options]

Run the whole pipeline locally: an MQTT broker and the HTTP API on 127.0.0.1, feeding the
same ingest as on AWS, into a lake folder and DuckDB. Ctrl-C stores what is queued and stops.

Options:
  --mqtt-port <n>          the MQTT broker's port (default 1883; 0 picks a free one)
  --http-port <n>          the HTTP API's port (default 3000; 0 picks a free one)
  --data <dir>             the data folder: lake, DuckDB file, dead letters, API key (default ${DEFAULT_DATA_DIR})
  --config <file>          the pipeline config (device types, decoders, alert rules), as for cdk synth
  --alert-webhook <url>    POST each alert there as JSON, besides printing it
  -h, --help               show this help

The API key: IOT_PIPELINE_API_KEY, else one is generated, printed and kept in <data>/api-key.

Example:
  iot-pipeline start --config config.json --http-port 3001`;

export async function run(args: string[]): Promise<number> {
  const { values } = parse({ args, options });
  const webhook = values['alert-webhook'];
  if (webhook !== undefined && !/^https?:\/\/\S+$/.test(webhook))
    throw new UsageError(`--alert-webhook "${webhook}" must be an http(s) URL`);
  const config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
  const given = process.env.IOT_PIPELINE_API_KEY;
  const apiKey = given || randomBytes(24).toString('base64url');
  // The local CLI commands (devices, simulate over HTTP) read it from there.
  const keyFile = given ? dataPaths(values.data).apiKeyFile : writeApiKey(values.data, apiKey);
  const runtime = await startLocalRuntime({
    dataDir: values.data,
    mqttPort: port(values['mqtt-port'], 1883, '--mqtt-port'),
    httpPort: port(values['http-port'], 3000, '--http-port'),
    apiKey,
    config,
    alertWebhookUrl: webhook,
    log: (line) => console.log(`${new Date().toISOString()} ${line}`),
  });
  console.log(
    [
      'iot-pipeline: local runtime started',
      `  MQTT     mqtt://${LOCAL_HOST}:${runtime.mqttPort}    publish JSON to dt/<deviceType>/<deviceId>`,
      `  HTTP     http://${LOCAL_HOST}:${runtime.httpPort}    POST /v1/telemetry with "Authorization: Bearer <key>"`,
      `  API key  ${given ? '(from IOT_PIPELINE_API_KEY)' : `${apiKey}  (generated, kept in ${keyFile}; set IOT_PIPELINE_API_KEY to choose one)`}`,
      `  lake     ${runtime.lakeDir}  (raw/, readings/, quarantine/: same keys as the S3 bucket)`,
      `  DuckDB   ${runtime.databaseFile}  (table timeseries)`,
      `  dead letters ${runtime.deadLetterFile}`,
      'Try: npm run simulate -- --devices 50 --rate 10/s',
      '     npm run query -- "SELECT device_id, metric, max(value) FROM readings GROUP BY ALL"',
      'Ctrl-C stores what is queued and stops.',
    ].join('\n'),
  );
  const report = setInterval(() => {
    const s = runtime.queue.stats();
    if (s.sent > 0)
      console.log(
        `${new Date().toISOString()} messages: ${s.sent} in, ${s.done} done, ${s.pending} pending, ${s.retried} retried, ${s.deadLettered} dead-lettered`,
      );
  }, 10_000);
  report.unref();
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(report);
  console.log('iot-pipeline: stopping; storing what is queued…');
  await runtime.close();
  const s = runtime.queue.stats();
  console.log(`iot-pipeline: stopped. ${s.done} messages done, ${s.deadLettered} dead-lettered.`);
  return 0;
}
