/** `iot-pipeline simulate`: readings from a simulated fleet, over MQTT or HTTP. */

import { DEFAULT_DATA_DIR, localKey } from '../../local/data-dir.ts';
import { LOCAL_HOST } from '../../local/host.ts';
import { NETWORKS, SIMULATED_FORMATS } from '../../tools/simulator/bodies.ts';
import { parseDuration, parseRate } from '../../tools/simulator/fleet.ts';
import { ConnectError, runSimulation, type SimulationProgress } from '../../tools/simulator/run.ts';
import { parse, UsageError, wholeNumber } from '../args.ts';
import { CliError } from '../errors.ts';

export const options = {
  devices: { type: 'string', default: '10' },
  rate: { type: 'string', default: '10/s' },
  format: { type: 'string', default: 'json' },
  duration: { type: 'string' },
  count: { type: 'string' },
  type: { type: 'string', default: 'thermo' },
  silent: { type: 'string', default: '0.1' },
  seed: { type: 'string', default: '1' },
  'mqtt-url': { type: 'string', default: `mqtt://${LOCAL_HOST}:1883` },
  'http-url': { type: 'string', default: `http://${LOCAL_HOST}:3000` },
  endpoint: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  ca: { type: 'string' },
  data: { type: 'string', default: DEFAULT_DATA_DIR },
  'basic-ingest': { type: 'string' },
  stage: { type: 'string', default: 'dev' },
  id: { type: 'string', multiple: true },
  json: { type: 'boolean', default: false },
} as const;

export const usage = `Usage: iot-pipeline simulate [options]

Send readings from simulated devices, each its own MQTT client (or HTTP caller), until
--count or --duration (or Ctrl-C). Progress goes to stderr; exit code 1 when a message failed.

Options:
  --devices <n>            devices in the fleet (default 10)
  --rate <n/s|n/m|n/h>     messages per second, minute or hour, for the whole fleet (default 10/s)
  --format <format>        what the fleet sends (default json):
                             json         MQTT, each device its own client, to dt/<type>/<id>
${SIMULATED_FORMATS.map((f) => `                             ${f.padEnd(12)} ${NETWORKS[f].summary}`).join('\n')}
  --count <n>              stop after this many messages
  --duration <30s|5m>      stop after this long
  --type <deviceType>      the devices' type (default thermo)
  --silent <0..1>          share of devices that go silent during the run (default 0.1)
  --seed <n>               seed of the fleet's random readings (default 1)
  --mqtt-url <url>         the broker (default mqtt://${LOCAL_HOST}:1883)
  --http-url <url>         the HTTP API (default http://${LOCAL_HOST}:3000); key from IOT_PIPELINE_INGEST_KEY,
                           IOT_PIPELINE_API_KEY or the local ingest key in <data>/local-keys.env
  --data <dir>             the local data folder, for its ingest key (default ${DEFAULT_DATA_DIR})
  --id <thingName>         an exact device id, e.g. a provisioned thing (repeatable; sets --devices)
  --stage <stage>          --format iot-lorawan: the stage whose rule is published to (default dev)
  --json                   print the result as one JSON document on stdout
  -h, --help               show this help

AWS IoT Core:
  --endpoint <ats-endpoint> --cert <file> --key <file> [--ca <AmazonRootCA1.pem>]
  --basic-ingest <rule>    publish through Basic Ingest ($aws/rules/<rule>/...)

Examples:
  iot-pipeline simulate --devices 50 --rate 10/s --count 500
  iot-pipeline simulate --format sigfox --type sim-sigfox --duration 30s
  iot-pipeline simulate --format sigfox-form --type sim-sigfox --count 100
  iot-pipeline simulate --format ttn --type sim-ttn --count 100
  iot-pipeline simulate --format chirpstack --type lht65 --count 100
  iot-pipeline simulate --format iot-lorawan --devices 5 --count 50
      (configure the uplinks' type and codec: "iotLorawan": { "deviceType": "lht65" } and
       "deviceTypes": { "lht65": { "decoder": { "codec": "codecs/lht65.js" } } })`;

export async function run(args: string[]): Promise<number> {
  const { values } = parse({ args, options });
  const devices = values.id?.length ? values.id.length : wholeNumber('--devices', values.devices, 1);
  const silentShare = Number(values.silent);
  if (!(silentShare >= 0 && silentShare <= 1))
    throw new UsageError(`--silent "${values.silent}" must be between 0 and 1`);
  const formats = ['json', ...SIMULATED_FORMATS] as const;
  const format = formats.find((f) => f === values.format);
  if (!format) {
    throw new UsageError(
      `--format "${values.format}" must be json (MQTT) or one of ${SIMULATED_FORMATS.join(', ')}`,
    );
  }
  if (!/^[a-z][a-z0-9]{0,15}$/.test(values.stage)) {
    throw new UsageError(
      `--stage "${values.stage}" must be a stage name: lowercase letters and digits, starting with a letter, at most 16`,
    );
  }
  if (values.endpoint && !(values.cert && values.key)) {
    throw new UsageError(
      '--endpoint needs the device certificate and key: --cert <file> --key <file> (and --ca <AmazonRootCA1.pem>)',
    );
  }
  const count = values.count === undefined ? undefined : wholeNumber('--count', values.count, 1);
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  let rate: number;
  let durationMs: number | undefined;
  try {
    rate = parseRate(values.rate);
    durationMs = values.duration === undefined ? undefined : parseDuration(values.duration);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const tty = process.stderr.isTTY;
  const line = (p: SimulationProgress) =>
    `simulate: ${p.sent} sent, ${p.failed} failed, ${(p.sent / Math.max(p.elapsedMs / 1000, 0.001)).toFixed(1)} msg/s, ${p.online}/${p.devices} devices online, ${(p.elapsedMs / 1000).toFixed(0)} s${p.lastError ? ` (last error: ${p.lastError})` : ''}`;
  const result = await runSimulation({
    devices,
    rate,
    format,
    type: values.type,
    silentShare,
    seed: Number(values.seed),
    durationMs,
    count,
    mqttUrl: values.endpoint ? `mqtts://${values.endpoint}:8883` : values['mqtt-url'],
    // With a certificate: TLS with client authentication, to IoT Core or any broker that asks for it.
    tls: values.cert && values.key ? { cert: values.cert, key: values.key, ca: values.ca } : undefined,
    ...(values.id?.length ? { deviceIds: values.id } : {}),
    basicIngestRule: values['basic-ingest'],
    stage: values.stage,
    httpUrl: values['http-url'],
    apiKey: localKey(values.data, 'ingest'),
    signal: controller.signal,
    onProgress: (p) => process.stderr.write(tty ? `\r${line(p)}\u001b[K` : `${line(p)}\n`),
  }).catch((error: unknown) => {
    if (!(error instanceof ConnectError)) throw error;
    const fix = values.endpoint
      ? 'check --endpoint (the account ATS endpoint), --cert and --key (an active certificate IoT Core knows)'
      : 'start the pipeline (iot-pipeline start) or pass --mqtt-url <url>';
    throw new CliError(`${error.message}: ${fix}`);
  });
  if (tty) process.stderr.write('\n');
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  return result.failed > 0 ? 1 : 0;
}
