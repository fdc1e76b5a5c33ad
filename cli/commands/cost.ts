/** `iot-pipeline cost`: the monthly AWS bill of a fleet, from the calls a local run makes, at list prices. */

import { DEFAULT_CONFIG } from '../../lib/config.ts';
import { readConfigFile } from '../../lib/config-sources.ts';
import { CODEC_SOURCES, runCostModel, withCodec, withDeviceCodec } from '../../tools/cost/measure.ts';
import { checkPrices, LORAWAN_UPLINK_PRICE } from '../../tools/cost/model.ts';
import { costTable, PRICES_FILE } from '../../tools/cost/report.ts';
import { SIMULATED_FORMATS } from '../../tools/simulator/bodies.ts';
import { parseDuration } from '../../tools/simulator/fleet.ts';
import { parse, UsageError, wholeNumber } from '../args.ts';
import { readFlagFile } from '../files.ts';
import { formatTable } from '../table.ts';

export const options = {
  devices: { type: 'string', default: '1000' },
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
against metered in-memory AWS clients, counts the calls, and prices them at list prices.

Options:
  --devices <n>            devices in the fleet (default 1000)
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
  --messages <n>           messages to run through the model (default: enough for a steady count)
  --chart-views-per-day <n> device charts viewed a day (7-day series, one Athena query each; default 0)
  --estate-calls-per-day <n> console views of the estate a day (GET /v1/estate and a page of
                           GET /v1/devices, their registry reads measured at --devices; default 0)
  --config <file>          the pipeline config (batch size, decoders...; default: the built-in one)
  --prices <file>          the price list (default: tools/cost/aws-prices.json, us-east-1 list prices)
  --codec <file.js>        with --source ${CODEC_SOURCES.join(', ')}: the uplinks carry this codec's example
                           frames and go through it (iot-lorawan: default ${DEFAULT_LORAWAN_CODEC})
  --json                   print the report as one JSON document on stdout
  -h, --help               show this help

Examples:
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
  const report = await runCostModel({
    source,
    fleet: { devices: wholeNumber('--devices', values.devices, 1, 10_000_000), intervalMs },
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
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(describe(report, values.interval));
  return 0;
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
    `\nAWS SDK calls per message (${report.source === 'mqtt' || report.source === 'iot-lorawan' ? 'the ingest function' : 'the ingest and http functions'}): ${Object.entries(
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
