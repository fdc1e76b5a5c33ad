#!/usr/bin/env -S npx tsx
/**
 * `iot-pipeline <command>` (DESIGN.md, "Contracts: CLI"), run as `npm run cli -- <command>`.
 * Messages go to stderr; `--json` puts exactly one JSON document on stdout.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { AthenaClient } from '@aws-sdk/client-athena';
import { IoTClient } from '@aws-sdk/client-iot';
import { S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { formatCsv, formatTable } from '../cli/table.ts';
import { athenaEngine } from '../lambdas/adapters/aws/athena.ts';
import { s3Store } from '../lambdas/adapters/aws/s3-store.ts';
import {
  ATHENA_PRICE,
  athenaCost,
  checkDay,
  runDailyJob,
  yesterday,
} from '../lambdas/core/analytics/daily.ts';
import { DEVICES_PATH, parseFilter } from '../lambdas/core/api/devices.ts';
import { parseHex } from '../lambdas/core/decoders/hex.ts';
import { buildDecoder, type Decoder, decoderFor } from '../lambdas/core/decoders/registry.ts';
import { type DeviceFilter, type DeviceSummary, filterDevices } from '../lambdas/core/estate/update.ts';
import { stageOfDevicePolicy } from '../lambdas/core/topics.ts';
import { ConfigError, DEFAULT_CONFIG, readConfigFile } from '../lib/config.ts';
import { createLakeViews, duckdbEngine, duckdbRegistry, runQuery } from '../local/adapters/duckdb.ts';
import { folderStore } from '../local/adapters/folder-store.ts';
import { StartupError } from '../local/listen.ts';
import { LOCAL_HOST, startLocalRuntime } from '../local/runtime.ts';
import { costTable, PRICES_FILE, runCostModel, withCodec } from '../tools/cost/measure.ts';
import { checkPrices } from '../tools/cost/model.ts';
import {
  AMAZON_ROOT_CA_URL,
  deprovision,
  ProvisionError,
  provision,
  writeDeviceFiles,
} from '../tools/provision/provisioning.ts';
import { redecode } from '../tools/redecode/redecode.ts';
import { parseDuration, parseRate } from '../tools/simulator/fleet.ts';
import { runSimulation, type SimulationProgress } from '../tools/simulator/run.ts';

/** A mistake in how the command was called: printed without a stack, exit code 2. */
class UsageError extends Error {}

const USAGE = `Usage: iot-pipeline <command> [options]

Commands:
  start      run the whole pipeline locally (MQTT broker, HTTP API, lake folder, DuckDB)
             --mqtt-port <n> (1883)  --http-port <n> (3000)  --data <dir> (./.data)  --config <file>  --alert-webhook <url>
             API key: IOT_PIPELINE_API_KEY, else one is generated, printed and kept in <data>/api-key
  simulate   send readings from simulated devices
             --devices <n> (10)  --rate <n/s|n/m|n/h> (10/s)  --format json|http|sigfox|ttn (json: MQTT)
             --duration <30s|5m> --count <n>  --type <deviceType> (thermo)  --silent <0..1> (0.1)
             --mqtt-url <url> (mqtt://127.0.0.1:1883)  --http-url <url> (http://127.0.0.1:3000)
             AWS IoT: --endpoint <ats-endpoint> --cert <file> --key <file> [--ca <file>] [--basic-ingest <rule>]
             --id <thingName> (repeatable): exact device ids, e.g. a provisioned thing
  decode     try a decoder on a payload: --hex <bytes> | --base64 <bytes>, and one of
             --type <deviceType> [--config <file>]  |  --sigfox '<grammar>'  |  --codec <file.js> --fport <n>
             [--recv-time <ISO-8601>] (now): the codec's recvTime; [--timeout-ms <n>] (50) [--memory-mb <n>] (16): its limits
             prints the decoded object (--json: exactly that object on stdout)
  redecode   decode the raw archive again with the current decoders and replace the readings it made
             --from <YYYY-MM-DD> --to <YYYY-MM-DD> (arrival days)  [--config <file>]  [--lookback-days <n>] (2)
             local lake: [--data <dir>] (./.data)   S3 lake: --bucket <LakeBucketName>   [--json]
  devices    list the device estate: [--type <t>] [--tag key=value] [--status online|offline] [--silent-for 1h]
             from a running pipeline: [--url <HttpApiUrl>] (local: --http-port, 3000), key from IOT_PIPELINE_API_KEY;
             when no local runtime answers, from [--data <dir>] directly   [--json]
  provision  create a device on AWS IoT Core: provision <thingName> --type <deviceType> [--attr k=v ...] [--stage <stage>]
             --policy <DevicePolicyName> --out <dir>; or --csv <file> (thingName,deviceType[,k=v ...] per line)
  deprovision  detach, deactivate and delete: deprovision <thingName>
  daily      run the daily job on the local lake: [--day <YYYY-MM-DD>] (yesterday) [--data <dir>]
  cost       what the pipeline would cost on AWS, from the calls it makes in a local run, at list prices:
             --devices <n> (1000) --interval <60s> --bytes <n> (200) --source mqtt|http|sigfox|ttn (mqtt)
             [--config <file>] [--prices <file>] [--json]; --source ttn --codec <file.js>: uplinks through that codec
  query      run SQL: query "SELECT ..." [--json | --csv]; on the local lake with DuckDB [--data <dir>],
             or on Athena with --workgroup <AthenaWorkGroup> --database <GlueDatabaseName> (stack outputs)
             tables: readings, raw, quarantine, curated_readings, daily_metrics (and timeseries when start is not running)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return start(rest);
    case 'simulate':
      return simulate(rest);
    case 'query':
      return query(rest);
    case 'decode':
      return decode(rest);
    case 'redecode':
      return redecodeCommand(rest);
    case 'devices':
      return devices(rest);
    case 'daily':
      return daily(rest);
    case 'provision':
      return provisionCommand(rest);
    case 'deprovision':
      return deprovisionCommand(rest);
    case 'cost':
      return costCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`Unknown command "${command}".\n\n${USAGE}`);
  }
}

/** The API key: IOT_PIPELINE_API_KEY, else the one `start` generated into the data folder. */
function localApiKey(dataDir: string): string | undefined {
  if (process.env.IOT_PIPELINE_API_KEY) return process.env.IOT_PIPELINE_API_KEY;
  try {
    return readFileSync(join(dataDir, 'api-key'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

function parse<T extends ParseArgsConfig>(config: T) {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${USAGE}`);
  }
}

/** A flag's value as a whole number from `min` to `max`, else a UsageError that says so. */
function wholeNumber(flag: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`${flag} "${text}" must be a whole number ${range}`);
  }
  return value;
}

function port(text: string | undefined, fallback: number, flag: string): number {
  return text === undefined ? fallback : wholeNumber(flag, text, 0, 65535);
}

async function start(args: string[]): Promise<number> {
  const { values } = parse({
    args,
    options: {
      'mqtt-port': { type: 'string' },
      'http-port': { type: 'string' },
      data: { type: 'string', default: './.data' },
      config: { type: 'string' },
      'alert-webhook': { type: 'string' },
    },
  });
  const webhook = values['alert-webhook'];
  if (webhook !== undefined && !/^https?:\/\/\S+$/.test(webhook))
    throw new UsageError(`--alert-webhook "${webhook}" must be an http(s) URL`);
  const config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
  const given = process.env.IOT_PIPELINE_API_KEY;
  const apiKey = given || randomBytes(24).toString('base64url');
  const keyFile = join(values.data, 'api-key');
  if (!given) {
    // The local CLI commands (devices, simulate over HTTP) read it from here.
    mkdirSync(values.data, { recursive: true });
    writeFileSync(keyFile, `${apiKey}\n`, { mode: 0o600 });
  }
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

async function simulate(args: string[]): Promise<number> {
  const { values } = parse({
    args,
    options: {
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
      data: { type: 'string', default: './.data' },
      'basic-ingest': { type: 'string' },
      id: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
    },
  });
  const devices = values.id?.length ? values.id.length : wholeNumber('--devices', values.devices, 1);
  const silentShare = Number(values.silent);
  if (!(silentShare >= 0 && silentShare <= 1))
    throw new UsageError(`--silent "${values.silent}" must be between 0 and 1`);
  const formats = ['json', 'http', 'sigfox', 'ttn'] as const;
  const format = formats.find((f) => f === values.format);
  if (!format) throw new UsageError(`--format "${values.format}" must be json (MQTT), http, sigfox or ttn`);
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
    httpUrl: values['http-url'],
    apiKey: localApiKey(values.data),
    signal: controller.signal,
    onProgress: (p) => process.stderr.write(tty ? `\r${line(p)}\u001b[K` : `${line(p)}\n`),
  });
  if (tty) process.stderr.write('\n');
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  return result.failed > 0 ? 1 : 0;
}

async function decode(args: string[]): Promise<number> {
  const { values } = parse({
    args,
    options: {
      hex: { type: 'string' },
      base64: { type: 'string' },
      type: { type: 'string' },
      config: { type: 'string' },
      sigfox: { type: 'string' },
      codec: { type: 'string' },
      fport: { type: 'string' },
      'recv-time': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'memory-mb': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if ((values.hex === undefined) === (values.base64 === undefined)) {
    throw new UsageError('Give the payload once: --hex 0a1b2c or --base64 ChsS');
  }
  let bytes: Buffer;
  if (values.hex !== undefined) {
    const parsed = parseHex(values.hex);
    if ('error' in parsed) throw new UsageError(`--hex: ${parsed.error}`);
    bytes = parsed;
  } else {
    const text = values.base64 ?? '';
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
      throw new UsageError('--base64 is not base64 (A-Z, a-z, 0-9, +, / and = padding, in groups of 4)');
    }
    bytes = Buffer.from(text, 'base64');
  }
  // A LoRaWAN port.
  const fPort = values.fport === undefined ? undefined : wholeNumber('--fport', values.fport, 0, 255);
  const recvTime = values['recv-time'] === undefined ? new Date() : new Date(values['recv-time']);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(values['recv-time'] ?? '0000-00-00T') || Number.isNaN(recvTime.getTime())) {
    throw new UsageError(
      `--recv-time: "${values['recv-time']}" is not an ISO-8601 time (2026-11-25T06:00:00Z)`,
    );
  }
  const chosen = [values.type, values.sigfox, values.codec].filter((v) => v !== undefined);
  if (chosen.length !== 1)
    throw new UsageError(
      'Say which decoder, once: --type <deviceType>, --sigfox <grammar> or --codec <file.js>',
    );
  let decoder: Decoder;
  try {
    if (values.sigfox !== undefined) decoder = buildDecoder({ sigfox: values.sigfox }, '--sigfox');
    else if (values.codec !== undefined) {
      decoder = buildDecoder(
        {
          codec: values.codec,
          source: readFileSync(values.codec, 'utf8'),
          ...(values['timeout-ms'] === undefined
            ? {}
            : { timeoutMs: wholeNumber('--timeout-ms', values['timeout-ms'], 1, 10_000) }),
          ...(values['memory-mb'] === undefined
            ? {}
            : { memoryMb: wholeNumber('--memory-mb', values['memory-mb'], 1, 256) }),
        },
        values.codec,
      );
    } else {
      const config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
      const type = values.type ?? '';
      if (!config.deviceTypes[type]) {
        process.stderr.write(`iot-pipeline: device type "${type}" is not configured; decoding as JSON\n`);
      }
      decoder = decoderFor(config.deviceTypes, type);
    }
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new UsageError((error as Error).message);
  }
  let decoded: unknown;
  if (decoder.kind === 'json') {
    try {
      decoded = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      process.stderr.write(`iot-pipeline: the payload is not JSON: ${(error as Error).message}\n`);
      return 1;
    }
  } else {
    const result = decoder.decode(bytes, { fPort, recvTime });
    if (!result.ok) {
      process.stderr.write(`iot-pipeline: cannot decode: ${result.reason}\n`);
      return 1;
    }
    for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
    decoded = result.data;
  }
  process.stdout.write(
    values.json ? `${JSON.stringify(decoded)}\n` : `${JSON.stringify(decoded, null, 2)}\n`,
  );
  return 0;
}

async function redecodeCommand(args: string[]): Promise<number> {
  const { values } = parse({
    args,
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      config: { type: 'string' },
      data: { type: 'string', default: './.data' },
      bucket: { type: 'string' },
      'lookback-days': { type: 'string', default: '2' },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.from || !values.to)
    throw new UsageError('Give the arrival days to decode again: --from 2026-11-01 --to 2026-11-25');
  const lookbackDays = wholeNumber('--lookback-days', values['lookback-days'], 0, 36_500);
  const config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
  const store = values.bucket
    ? s3Store(new S3Client({}), values.bucket)
    : folderStore(join(values.data, 'lake'));
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

async function devices(args: string[]): Promise<number> {
  const { values } = parse({
    args,
    options: {
      type: { type: 'string' },
      tag: { type: 'string' },
      status: { type: 'string' },
      'silent-for': { type: 'string' },
      url: { type: 'string' },
      'http-port': { type: 'string' },
      data: { type: 'string', default: './.data' },
      json: { type: 'boolean', default: false },
    },
  });
  const params = new URLSearchParams();
  if (values.type) params.set('type', values.type);
  if (values.tag) params.set('tag', values.tag);
  if (values.status) params.set('status', values.status);
  if (values['silent-for']) params.set('silentFor', values['silent-for']);
  const filter = parseFilter(params);
  if ('error' in filter) throw new UsageError(filter.error);
  const url = values.url ?? `http://${LOCAL_HOST}:${port(values['http-port'], 3000, '--http-port')}`;
  let list: DeviceSummary[];
  try {
    const response = await fetch(`${url.replace(/\/$/, '')}${DEVICES_PATH}?${params}`, {
      headers: { authorization: `Bearer ${localApiKey(values.data) ?? ''}` },
    });
    const body = (await response.json()) as { devices?: DeviceSummary[]; message?: string };
    if (!response.ok) throw new UsageError(`${url} answered ${response.status}: ${body.message ?? ''}`);
    list = body.devices ?? [];
  } catch (error) {
    if (error instanceof UsageError || values.url) throw error;
    // No local runtime running: read its registry file.
    list = await devicesFromFile(join(values.data, 'pipeline.duckdb'), filter);
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(list)}\n`);
    return 0;
  }
  const columns = ['device', 'type', 'status', 'last seen', 'lost', 'open alerts', 'attributes'];
  const rows = list.map((d) => ({
    device: d.deviceId,
    type: d.deviceType,
    status: d.status,
    'last seen': d.lastSeen,
    lost: d.lostMessages,
    'open alerts': d.openAlerts.map((a) => a.rule).join(' '),
    attributes: Object.entries(d.attributes)
      .map(([k, v]) => `${k}=${v}`)
      .join(' '),
  }));
  process.stdout.write(formatTable({ columns, rows }));
  process.stderr.write(`(${list.length} device${list.length === 1 ? '' : 's'})\n`);
  return 0;
}

async function devicesFromFile(file: string, filter: DeviceFilter): Promise<DeviceSummary[]> {
  const { existsSync } = await import('node:fs');
  if (!existsSync(file))
    throw new UsageError(
      `No local runtime answered and ${file} does not exist: start one with npm start, or pass --url`,
    );
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run(`ATTACH '${file.replaceAll("'", "''")}' AS pipeline (READ_ONLY)`);
    await connection.run('USE pipeline');
    return filterDevices(await (await duckdbRegistry(connection)).list(), filter, Date.now());
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

async function provisionCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse({
    args,
    allowPositionals: true,
    options: {
      type: { type: 'string' },
      attr: { type: 'string', multiple: true, default: [] },
      policy: { type: 'string' },
      stage: { type: 'string' },
      out: { type: 'string' },
      csv: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.policy) throw new UsageError('--policy <DevicePolicyName> is needed (a stack output)');
  const stage = values.stage ?? stageOfDevicePolicy(values.policy);
  if (!stage) {
    throw new UsageError(
      `--policy ${values.policy} is not a pipeline device policy (iot_pipeline_<stage>_device): give --stage <stage> too`,
    );
  }
  if (!values.out) throw new UsageError('--out <dir> is needed: the certificate and key are written there');
  const attributes = (list: readonly string[]) =>
    Object.fromEntries(
      list.map((pair) => {
        const at = pair.indexOf('=');
        if (at < 1) throw new UsageError(`attribute "${pair}" must be key=value`);
        return [pair.slice(0, at), pair.slice(at + 1)];
      }),
    );
  let requests: { thingName: string; deviceType: string; attributes: Record<string, string> }[];
  if (values.csv) {
    requests = readFileSync(values.csv, 'utf8')
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#') && !/^thingName,/i.test(line))
      .map((line, i) => {
        const [thingName = '', deviceType = '', ...pairs] = line.split(',').map((f) => f.trim());
        if (!thingName || !deviceType)
          throw new UsageError(`${values.csv} line ${i + 1}: want thingName,deviceType[,key=value ...]`);
        return { thingName, deviceType, attributes: attributes(pairs) };
      });
  } else {
    const [thingName] = positionals;
    if (!thingName || !values.type)
      throw new UsageError('Give the thing name and type: provision <thingName> --type <deviceType>');
    requests = [{ thingName, deviceType: values.type, attributes: attributes(values.attr) }];
  }
  const client = new IoTClient({});
  const done: { thingName: string; certificateId: string; endpoint: string }[] = [];
  const failed: string[] = [];
  for (const [i, request] of requests.entries()) {
    try {
      const result = await provision(client, { ...request, policyName: values.policy, stage });
      const base = await writeDeviceFiles(values.out, request, result);
      done.push({
        thingName: request.thingName,
        certificateId: result.certificateId,
        endpoint: result.endpoint,
      });
      if (requests.length === 1) {
        process.stderr.write(
          [
            `provisioned ${request.thingName}${result.reusedThing ? ' (existing thing kept)' : ''}: certificate ${result.certificateId}`,
            `  ${base}.cert.pem, ${base}.private.key (mode 0600), ${base}.connect.sh`,
            `  endpoint: ${result.endpoint}`,
            `  root CA: ${AMAZON_ROOT_CA_URL}`,
            '',
          ].join('\n'),
        );
      }
    } catch (error) {
      failed.push(`${request.thingName}: ${(error as Error).message}`);
    }
    if (requests.length > 1) {
      const width = 30;
      const filled = Math.round(((i + 1) / requests.length) * width);
      process.stderr.write(
        `\rprovision [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${i + 1}/${requests.length}, ${failed.length} failed`,
      );
    }
  }
  if (requests.length > 1) process.stderr.write('\n');
  for (const failure of failed) process.stderr.write(`iot-pipeline: ${failure}\n`);
  if (values.json) process.stdout.write(`${JSON.stringify({ provisioned: done, failed })}\n`);
  return failed.length > 0 ? 1 : 0;
}

async function deprovisionCommand(args: string[]): Promise<number> {
  const { positionals } = parse({ args, allowPositionals: true, options: {} });
  const [thingName] = positionals;
  if (!thingName) throw new UsageError('Give the thing name: deprovision <thingName>');
  try {
    const { certificates } = await deprovision(new IoTClient({}), thingName);
    process.stderr.write(
      `deprovisioned ${thingName}: ${certificates} certificate(s) deactivated and deleted, thing deleted\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof ProvisionError) throw new UsageError(error.message);
    throw error;
  }
}

async function daily(args: string[]): Promise<number> {
  const { values } = parse({
    args,
    options: { day: { type: 'string' }, data: { type: 'string', default: './.data' } },
  });
  let day: string;
  try {
    day = values.day === undefined ? yesterday(Date.now()) : checkDay(values.day);
  } catch (error) {
    throw new UsageError(`--day: ${(error as Error).message}`);
  }
  const lakeDir = join(values.data, 'lake');
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const engine = await duckdbEngine(await instance.connect(), lakeDir);
    const report = await runDailyJob(day, {
      engine,
      lake: folderStore(lakeDir),
      bucket: 'local-lake',
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stderr.write(`daily: ${day} done; the manifest lists ${report.reportDays} report days\n`);
    return 0;
  } finally {
    instance.closeSync();
  }
}

async function costCommand(args: string[]): Promise<number> {
  const { values } = parse({
    args,
    options: {
      devices: { type: 'string', default: '1000' },
      interval: { type: 'string', default: '60s' },
      bytes: { type: 'string', default: '200' },
      source: { type: 'string', default: 'mqtt' },
      messages: { type: 'string' },
      config: { type: 'string' },
      prices: { type: 'string' },
      codec: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  let intervalMs: number;
  try {
    intervalMs = parseDuration(values.interval);
  } catch (error) {
    throw new UsageError(`--interval: ${(error as Error).message}`);
  }
  const pricesFile = values.prices ?? PRICES_FILE;
  let prices: ReturnType<typeof checkPrices>;
  try {
    prices = checkPrices(JSON.parse(readFileSync(pricesFile, 'utf8')));
  } catch (error) {
    throw new UsageError(`--prices ${String(pricesFile)}: ${(error as Error).message}`);
  }
  const sources = ['mqtt', 'http', 'sigfox', 'ttn'] as const;
  const source = sources.find((s) => s === values.source);
  if (!source) throw new UsageError(`--source "${values.source}" must be one of ${sources.join(', ')}`);
  let config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
  let frames: Parameters<typeof runCostModel>[0]['frames'];
  if (values.codec !== undefined) {
    if (source !== 'ttn') {
      throw new UsageError(
        '--codec prices a codec on The Things Stack uplinks (frm_payload): add --source ttn',
      );
    }
    let text: string;
    try {
      text = readFileSync(values.codec, 'utf8');
    } catch (error) {
      throw new UsageError(`--codec ${values.codec}: ${(error as Error).message}`);
    }
    try {
      ({ config, frames } = withCodec(config, values.codec, text));
    } catch (error) {
      throw new UsageError(`--codec: ${(error as Error).message}`);
    }
  }
  const report = await runCostModel({
    source,
    fleet: { devices: wholeNumber('--devices', values.devices, 1, 10_000_000), intervalMs },
    messageBytes: wholeNumber('--bytes', values.bytes, 1, 128 * 1024),
    config,
    ...(frames ? { frames } : {}),
    prices,
    ...(values.messages ? { messages: wholeNumber('--messages', values.messages, 1, 1_000_000) } : {}),
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  const month = (n: number) => `$${n.toFixed(2)}/month`;
  process.stdout.write(
    `${report.fleet.devices} devices, one ${report.messageBytes}-byte message every ${values.interval}: ` +
      `${Math.round(report.messagesPerMonth).toLocaleString('en-US')} messages a month. ` +
      `Counted over ${report.messagesRun} messages in ${report.batches} ingest invocations ` +
      `(${(report.messagesRun / report.batches).toFixed(1)} a batch, ${report.ingestDurationMs.toFixed(0)} ms billed each).\n\n`,
  );
  process.stdout.write(formatTable(costTable(report)));
  process.stdout.write(
    `\nAWS SDK calls per message (${report.source === 'mqtt' ? 'the ingest function' : 'the ingest and http functions'}): ${Object.entries(
      report.callsPerMessage,
    )
      .map(([call, n]) => `${call} ${n.toFixed(3)}`)
      .join(', ')}.\n` +
      `Monthly totals include ${report.fixedMonthly.map((l) => `${l.line} $${l.dollars.toFixed(2)}`).join('; ')}.\n` +
      (report.basicIngest
        ? `Pipeline: ${month(report.pipeline.perMonth)} over MQTT, ${month(report.basicIngest.perMonth)} with Basic Ingest; ` +
          `naive: ${month(report.naive.perMonth)}. With Basic Ingest: ${report.ratioToFloor.toFixed(2)}x the IoT Core floor ` +
          `(target <= 1.0x: ${report.ratioToFloor <= 1 ? 'met' : 'not met'}).\n`
        : `Pipeline: ${month(report.pipeline.perMonth)}; naive: ${month(report.naive.perMonth)}; ` +
          `${report.ratioToFloor.toFixed(2)}x the ${report.floor.design} (one request per message).\n`),
  );
  return 0;
}

async function query(args: string[]): Promise<number> {
  const { values, positionals } = parse({
    args,
    allowPositionals: true,
    options: {
      data: { type: 'string', default: './.data' },
      workgroup: { type: 'string' },
      database: { type: 'string' },
      json: { type: 'boolean', default: false },
      csv: { type: 'boolean', default: false },
    },
  });
  const sql = positionals.join(' ').trim();
  if (!sql) throw new UsageError(`Give the SQL to run: query "SELECT * FROM readings LIMIT 10"\n\n${USAGE}`);
  if (values.workgroup !== undefined) {
    if (!values.database)
      throw new UsageError('--workgroup needs --database <GlueDatabaseName> (a stack output)');
    return queryAthena(
      sql,
      values.workgroup,
      values.database,
      values.json ? 'json' : values.csv ? 'csv' : 'table',
    );
  }
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await createLakeViews(connection, `${values.data}/lake`);
    await attachTimeSeries(connection, `${values.data}/pipeline.duckdb`);
    const result = await runQuery(connection, sql).catch((error: Error) => {
      throw new UsageError(`The query failed: ${error.message}`);
    });
    if (values.json) process.stdout.write(`${JSON.stringify(result.rows)}\n`);
    else if (values.csv) process.stdout.write(formatCsv(result));
    else {
      process.stdout.write(formatTable(result));
      process.stderr.write(`(${result.rows.length} row${result.rows.length === 1 ? '' : 's'})\n`);
    }
    return 0;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

async function queryAthena(
  sql: string,
  workGroup: string,
  database: string,
  output: 'json' | 'csv' | 'table',
): Promise<number> {
  const tty = process.stderr.isTTY;
  const engine = athenaEngine(new AthenaClient({}), {
    workGroup,
    database,
    bucket: '',
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
    throw new UsageError(`The query failed: ${(error as Error).message}`);
  }
  if (tty) process.stderr.write('\n');
  const columns = Object.keys(result.rows[0] ?? {});
  if (output === 'json') process.stdout.write(`${JSON.stringify(result.rows)}\n`);
  else if (output === 'csv') process.stdout.write(formatCsv({ columns, rows: result.rows }));
  else process.stdout.write(formatTable({ columns, rows: result.rows }));
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

/** The runtime's time-series table, when its file exists and no running runtime holds it. */
async function attachTimeSeries(connection: import('@duckdb/node-api').DuckDBConnection, file: string) {
  const { existsSync } = await import('node:fs');
  if (!existsSync(file)) return;
  try {
    await connection.run(`ATTACH '${file.replaceAll("'", "''")}' AS pipeline (READ_ONLY)`);
    await connection.run('CREATE TEMP VIEW timeseries AS SELECT * FROM pipeline.timeseries');
  } catch {
    // DuckDB lets one process write a file; the lake views hold every reading anyway.
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof StartupError) {
      process.stderr.write(`iot-pipeline: ${(error as Error).message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`iot-pipeline: ${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
