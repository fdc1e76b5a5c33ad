/**
 * `cost.*`: the cost model (`iot-pipeline cost`) for the fleet, 1,000 devices
 * sending one 200-byte message a minute, with the default config. The baseline is the
 * IoT Core floor measured in the same run: one message, one rule and one action per
 * message. Target: the whole pipeline with Basic Ingest at most 1.0x of that floor.
 * Measured twice: with the default 5 s batching window (readings stored within
 * seconds) and with SQS's longest, 300 s, which trades latency for fewer calls.
 * `cost.codec_per_million`: the Lambda GB-seconds a codec adds, The Things Stack
 * uplinks through `codecs/lht65.js` against the same uplinks decoded by the network;
 * target at most $0.01 per million messages.
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_CONFIG } from '../lib/config.ts';
import { runCostModel, withCodec } from '../tools/cost/measure.ts';
import { checkPrices } from '../tools/cost/model.ts';
import { PRICES_FILE } from '../tools/cost/report.ts';
import type { BenchResult } from './types.ts';

/** The longest batches SQS allows: each device is seen five times a batch, so its registry record is written once for five messages. */
const LONG_BATCHES = { ...DEFAULT_CONFIG.ingest, batchSize: 10_000, maxBatchingWindowSeconds: 300 };

export async function run(): Promise<BenchResult[]> {
  const prices = checkPrices(JSON.parse(readFileSync(PRICES_FILE, 'utf8')));
  const fleet = { devices: 1000, intervalMs: 60_000 };
  const report = await runCostModel({ fleet, messageBytes: 200, config: DEFAULT_CONFIG, prices });
  const long = await runCostModel({
    fleet,
    messageBytes: 200,
    config: { ...DEFAULT_CONFIG, ingest: LONG_BATCHES },
    prices,
  });
  // A codec's Lambda time: The Things Stack uplinks through codecs/lht65.js (its own
  // example frames as frm_payload) against the same uplinks already decoded, same run.
  const ttnFleet = { devices: 1000, intervalMs: 60_000 };
  const plain = await runCostModel({
    fleet: ttnFleet,
    messageBytes: 200,
    source: 'ttn',
    config: DEFAULT_CONFIG,
    prices,
  });
  const lht65 = withCodec(DEFAULT_CONFIG, 'codecs/lht65.js', readFileSync('codecs/lht65.js', 'utf8'));
  const decoded = await runCostModel({
    fleet: ttnFleet,
    messageBytes: 200,
    source: 'ttn',
    config: lht65.config,
    frames: lht65.frames,
    prices,
  });
  const lambdaDollars = (r: typeof report) =>
    r.pipeline.lines.filter((l) => l.line.startsWith('Lambda GB-s')).reduce((n, l) => n + l.dollars, 0);
  const codecCost = Math.max(0, lambdaDollars(decoded) - lambdaDollars(plain));
  const basic = (r: typeof report) => r.basicIngest?.perMillion ?? Number.NaN;
  const floor = report.floor.perMillion;
  const dollars = (n: number) => Math.round(n * 1000) / 1000;
  return [
    {
      name: 'cost.per_million',
      value: dollars(basic(report)),
      unit: '$ per million messages',
      baseline: dollars(floor),
      ratio: basic(report) / floor,
      target: '<= 1.0x the IoT Core floor',
      met: basic(report) <= floor,
    },
    {
      name: 'cost.per_million_300s_batches',
      value: dollars(basic(long)),
      unit: '$ per million messages',
      baseline: dollars(long.floor.perMillion),
      ratio: basic(long) / long.floor.perMillion,
      target: '<= 1.0x the IoT Core floor',
      met: basic(long) <= long.floor.perMillion,
    },
    {
      name: 'cost.per_million_mqtt',
      value: dollars(report.pipeline.perMillion),
      unit: '$ per million messages',
      baseline: dollars(floor),
      ratio: report.pipeline.perMillion / floor,
      target: 'none (Basic Ingest is the figure)',
      met: true,
    },
    {
      name: 'cost.codec_per_million',
      value: Math.round(codecCost * 10_000) / 10_000,
      unit: '$ per million messages (ingest Lambda GB-s)',
      baseline: Math.round(lambdaDollars(plain) * 10_000) / 10_000,
      ratio: codecCost / lambdaDollars(plain),
      target: '<= $0.01',
      met: codecCost <= 0.01,
    },
    {
      name: 'cost.vs_naive',
      value: dollars(report.pipeline.perMonth),
      unit: '$ per month',
      baseline: dollars(report.naive.perMonth),
      ratio: report.pipeline.perMonth / report.naive.perMonth,
      target: 'below the naive design',
      met: report.pipeline.perMonth < report.naive.perMonth,
    },
  ];
}
