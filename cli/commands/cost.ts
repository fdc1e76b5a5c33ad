/** `iot-pipeline cost`: the monthly AWS bill of a fleet, from the calls a local run makes, at list prices. */

import { DEFAULT_CONFIG } from '../../lib/config.ts';
import { readConfigFile } from '../../lib/config-sources.ts';
import { FLEET_SIZES, runFleetSizes } from '../../tools/cost/fleets.ts';
import {
  CODEC_SOURCES,
  type CostReport,
  runCostModel,
  withCodec,
  withDeviceCodec,
} from '../../tools/cost/measure.ts';
import { checkPrices, LORAWAN_UPLINK_PRICE } from '../../tools/cost/model.ts';
import { costTable, fleetTable, PRICES_FILE } from '../../tools/cost/report.ts';
import { SIMULATED_FORMATS } from '../../tools/simulator/bodies.ts';
import { parseDuration } from '../../tools/simulator/fleet.ts';
import { parse, UsageError, wholeNumber } from '../args.ts';
import { readFlagFile } from '../files.ts';
import { formatTable } from '../table.ts';

export const options = {
  devices: { type: 'string' },
  interval: { type: 'string', default: '60s' },
  bytes: { type: 'string', default: '200' },
  source: { type: 'string', default: 'mqtt' },
  messages: { type: 'string' },
  'chart-views-per-day': { type: 'string' },
  'estate-calls-per-day': { type: 'string' },
  config: { type: 'string' },
  prices: { type: 'string' },
  codec: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

const SOURCES = ['mqtt', ...SIMULATED_FORMATS] as const;

/** The codec IoT Core for LoRaWAN uplinks go through without --codec (the simulator sends LHT65 frames). */
const DEFAULT_LORAWAN_CODEC = 'codecs/lht65.js';
const DEFAULT_LORAWAN_CODEC_FILE = new URL('../../codecs/lht65.js', import.meta.url);

export const usage = `Usage: iot-pipeline cost [options]

What the pipeline would cost on AWS each month: runs messages through the real ingest code
against metered in-memory AWS clients, counts the calls, and prices them at list prices,
next to the designs a user would pick instead (IoT rule -> Firehose -> S3, IoT rule ->
Kinesis -> Lambda, a Lambda per message, the IoT Core and Basic Ingest floors) and the
lake objects it writes a day. Without --devices: ${FLEET_SIZES.map((n) => n.toLocaleString('en-US')).join(', ')} devices side by side.

Options:
  --devices <n>            devices in the fleet: one fleet in detail (default: the fleet sizes side by side)
  --interval <60s>         how often each device sends (default 60s)
  --bytes <n>              bytes in a message (default 200)
  --source <source>        how messages arrive (default mqtt):
                             mqtt         devices on AWS IoT Core (and Basic Ingest, side by side)
                             http         our JSON, POST /v1/telemetry through API Gateway
                             sigfox       Sigfox callbacks as JSON; sigfox-form: the same form-encoded
                                          (Sigfox's default), priced the same but for the body size
                             ttn          The Things Stack uplinks (decoded_payload)
                             chirpstack   ChirpStack v4 up events (object, as ChirpStack decoded it)
                             iot-lorawan  AWS IoT Core for LoRaWAN uplinks through the LoRaWAN rule (LHT65
                                          frames through ${DEFAULT_LORAWAN_CODEC}); its per-uplink charge is
                                          not in the price list: add ${LORAWAN_UPLINK_PRICE} with --prices
  --messages <n>           messages to run through the model, per fleet (default: enough for a steady count)
  --chart-views-per-day <n> device charts viewed a day (7-day series, one Athena query each; default 0)
  --estate-calls-per-day <n> console views of the estate a day (GET /v1/estate and a page of
                           GET /v1/devices, their registry reads measured at --devices; default 0)
  --config <file>          the pipeline config (batch size, decoders...; default: the built-in one)
  --prices <file>          the price list (default: tools/cost/aws-prices.json, us-east-1 list prices)
  --codec <file.js>        with --source ${CODEC_SOURCES.join(', ')}: the uplinks carry this codec's example
                           frames and go through it (iot-lorawan: default ${DEFAULT_LORAWAN_CODEC})
  --json                   print the report as one JSON document on stdout (side by side: { fleets: [...] })
  -h, --help               show this help

Examples:
  iot-pipeline cost
  iot-pipeline cost --devices 5000 --interval 5m
  iot-pipeline cost --source sigfox-form --interval 10m
  iot-pipeline cost --source ttn --codec codecs/lht65.js --json
  iot-pipeline cost --source chirpstack --interval 5m
  iot-pipeline cost --source iot-lorawan --interval 10m --prices my-prices.json
  iot-pipeline cost --devices 10000 --estate-calls-per-day 2000`;

export async function run(args: string[]): Promise<number> {
  const { values } = parse({ args, options });
  let intervalMs: number;
  try {
    intervalMs = parseDuration(values.interval);
  } catch (error) {
    throw new UsageError(`--interval: ${(error as Error).message}`);
  }
  const pricesFile = values.prices ?? PRICES_FILE;
  const pricesText = readFlagFile('--prices', pricesFile);
  let prices: ReturnType<typeof checkPrices>;
  try {
    prices = checkPrices(JSON.parse(pricesText));
  } catch (error) {
    throw new UsageError(`--prices ${String(pricesFile)}: ${(error as Error).message}`);
  }
  const source = SOURCES.find((s) => s === values.source);
  if (!source) throw new UsageError(`--source "${values.source}" must be one of ${SOURCES.join(', ')}`);
  let config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
  let frames: Parameters<typeof runCostModel>[0]['frames'];
  let codec: string | undefined;
  if (values.codec !== undefined) {
    if (!CODEC_SOURCES.some((s) => s === source)) {
      throw new UsageError(
        `--codec prices a codec on LoRaWAN uplinks: add --source ${CODEC_SOURCES.join(', --source ')}`,
      );
    }
    const text = readFlagFile('--codec', values.codec);
    try {
      ({ config, frames } = withCodec(config, values.codec, text));
    } catch (error) {
      throw new UsageError(`--codec: ${(error as Error).message}`);
    }
    codec = `${values.codec} (its example frames)`;
  } else if (source === 'iot-lorawan') {
    // The simulated uplinks carry LHT65 frames of their readings: the repository's codec reads them.
    config = withDeviceCodec(
      config,
      DEFAULT_LORAWAN_CODEC,
      readFlagFile('--codec', DEFAULT_LORAWAN_CODEC_FILE),
    );
    codec = `${DEFAULT_LORAWAN_CODEC} (the default for iot-lorawan; --codec <file> prices another)`;
  }
  const devices =
    values.devices === undefined ? undefined : wholeNumber('--devices', values.devices, 1, 10_000_000);
  const run = {
    source,
    messageBytes: wholeNumber('--bytes', values.bytes, 1, 128 * 1024),
    config,
    ...(frames ? { frames } : {}),
    ...(codec ? { codec } : {}),
    prices,
    ...(values.messages ? { messages: wholeNumber('--messages', values.messages, 1, 1_000_000) } : {}),
    ...(values['chart-views-per-day']
      ? {
          chartViewsPerDay: wholeNumber(
            '--chart-views-per-day',
            values['chart-views-per-day'],
            0,
            100_000_000,
          ),
        }
      : {}),
    ...(values['estate-calls-per-day']
      ? {
          estateCallsPerDay: wholeNumber(
            '--estate-calls-per-day',
            values['estate-calls-per-day'],
            0,
            100_000_000,
          ),
        }
      : {}),
  };
  if (devices === undefined) {
    const reports = await runFleetSizes({ ...run, intervalMs });
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ fleets: reports }, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(describeFleets(reports, values.interval));
    return 0;
  }
  const report = await runCostModel({ ...run, fleet: { devices, intervalMs } });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(
    `${describe(report, values.interval)}\n${formatTable(fleetTable([report]))}${alternativesNotes([report])}`,
  );
  return 0;
}

/** Fleet sizes side by side: one table, a column a fleet, then what the designs leave out. */
function describeFleets(reports: readonly CostReport[], interval: string): string {
  const first = reports[0];
  if (!first) return '';
  return (
    `One ${first.messageBytes}-byte message every ${interval} a device (${first.source}); ` +
    `counted over ${reports.map((r) => `${r.messagesRun} messages in ${r.batches} batches`).join(', ')}.\n\n` +
    formatTable(fleetTable(reports)) +
    alternativesNotes(reports) +
    [...new Set(reports.flatMap((r) => r.notes))].map((note) => `Note: ${note}\n`).join('')
  );
}

/** What the alternative designs are, and where Kinesis becomes cheaper than the queue. */
function alternativesNotes(reports: readonly CostReport[]): string {
  const alternatives = reports[0]?.alternatives;
  if (!alternatives) {
    return '\nThe IoT rule designs (Firehose, Kinesis) apply to --source mqtt and iot-lorawan only.\n';
  }
  const { crossover } = alternatives;
  const where =
    crossover.devices === undefined
      ? `Kinesis: ${crossover.reason}.`
      : `Kinesis (provisioned) is cheaper than SQS for the queue above ${Math.round(crossover.devices).toLocaleString('en-US')} devices ` +
        `(${crossover.messagesPerSecond?.toFixed(1)} messages a second): one shard $${crossover.shardMonthly.toFixed(2)} a month ` +
        `against SQS $${crossover.sqsPerMillion.toFixed(3)} and Kinesis PUT payload units $${crossover.kinesisPerMillion.toFixed(3)} per million messages (the ${reports[0]?.fleet.devices.toLocaleString('en-US')}-device run).`;
  return (
    `\n${alternatives.firehose.design}: ${alternatives.firehose.note}.\n` +
    `${alternatives.kinesis.design}: ${alternatives.kinesis.note}.\n` +
    `${where}\n`
  );
}

/** The report for people: the fleet, the table of costs, the calls per message and the comparison. */
function describe(report: Awaited<ReturnType<typeof runCostModel>>, interval: string): string {
  const month = (n: number) => `$${n.toFixed(2)}/month`;
  return (
    `${report.fleet.devices} devices, one ${report.messageBytes}-byte message every ${interval}: ` +
    `${Math.round(report.messagesPerMonth).toLocaleString('en-US')} messages a month. ` +
    `Counted over ${report.messagesRun} messages in ${report.batches} ingest invocations ` +
    `(${(report.messagesRun / report.batches).toFixed(1)} a batch, ${report.ingestDurationMs.toFixed(0)} ms billed each).\n\n` +
    formatTable(costTable(report)) +
    `\nAWS SDK calls per message (${report.source === 'mqtt' || report.source === 'iot-lorawan' ? 'the ingest and estate functions' : 'the http, ingest and estate functions'}): ${Object.entries(
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
        `${report.ratioToFloor.toFixed(2)}x the ${report.floor.design} (${report.source === 'iot-lorawan' ? 'one uplink, rule and action' : 'one request'} per message).\n`) +
    (report.estate
      ? `Estate API with ${report.estate.devices} devices (registry read units a call): ${report.estate.calls
          .map((c) => `${c.call} ${c.readUnits}`)
          .join(', ')}; a console view $${report.estate.dollarsPerView.toFixed(6)}.\n`
      : '') +
    report.notes.map((note) => `Note: ${note}\n`).join('')
  );
}
