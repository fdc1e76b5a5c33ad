import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type PipelineConfig } from '../../../lib/config.ts';
import {
  type CostReport,
  type CostSource,
  runCostModel,
  withCodec,
  withDeviceCodec,
} from '../../../tools/cost/measure.ts';
import { checkPrices, LORAWAN_UPLINK_PRICE } from '../../../tools/cost/model.ts';
import { costTable, PRICES_FILE } from '../../../tools/cost/report.ts';

const prices = checkPrices(JSON.parse(readFileSync(PRICES_FILE, 'utf8')));
const NO_LATENCY = { s3: 0, timestream: 0, dynamodb: 0, sns: 0, sqs: 0 };
const line = (design: CostReport['pipeline'], name: string) => design.lines.find((l) => l.line === name);
function basicIngestOf(report: CostReport): CostReport['pipeline'] {
  if (!report.basicIngest) throw new Error('an MQTT report has a Basic Ingest design');
  return report.basicIngest;
}

/**
 * Short batches and no estate window: each 5 s batch's readings applied by one estate
 * invocation, so each device is read and written once a batch (the figures below count it).
 */
const SHORT: PipelineConfig = {
  ...DEFAULT_CONFIG,
  ingest: { ...DEFAULT_CONFIG.ingest, batchSize: 100, maxBatchingWindowSeconds: 5 },
  estate: { maxBatchingWindowSeconds: 0, shards: 1 },
};
/** Timestream on, as in the accounts that have it: its calls are counted too. */
const WITH_TIMESTREAM: PipelineConfig = {
  ...SHORT,
  timestream: { ...DEFAULT_CONFIG.timestream, enabled: true },
};

function run(config: PipelineConfig = WITH_TIMESTREAM, messages = 600, source: CostSource = 'mqtt') {
  // 50 devices every 10 s: 5 messages a second, so the 5 s window closes batches of 25.
  return runCostModel({
    source,
    fleet: { devices: 50, intervalMs: 10_000 },
    messageBytes: 200,
    config,
    prices,
    messages,
    latency: NO_LATENCY,
    // Mid-hour: the run's two minutes stay in one hour partition (a batch across an hour writes two objects).
    endAt: Date.parse('2026-11-25T06:30:00Z'),
  });
}

describe('cost model', () => {
  let report: CostReport;
  beforeAll(async () => {
    report = await run();
  });

  it('batches as the event source mapping does and counts the calls the ingest Lambda makes', () => {
    expect(report.messagesRun).toBe(600);
    expect(report.batches).toBe(24);
    expect(report.messageBytes).toBeGreaterThanOrEqual(200);
    expect(report.messageBytes).toBeLessThan(215);
    // Per batch: one raw object and one readings object; one Timestream call; one delta
    // to the estate queue, whose invocation reads the registry once.
    expect(report.callsPerMessage['S3.PutObject']).toBeCloseTo((2 * 24) / 600);
    expect(report.callsPerMessage['Timestream Write.WriteRecords']).toBeCloseTo(24 / 600);
    expect(report.callsPerMessage['SQS.SendMessageBatch']).toBeCloseTo(24 / 600);
    expect(report.callsPerMessage['DynamoDB.BatchGetItem']).toBeCloseTo(24 / 600);
    // Each device is in a batch once: one registry write per message.
    expect(report.callsPerMessage['DynamoDB.PutItem']).toBeCloseTo(1);
    // MQTT readings are not claimed (only network callbacks resend), and no alert rule is configured.
    expect(report.callsPerMessage['SNS.PublishBatch']).toBeUndefined();
  });

  it('bills each message once at IoT Core, once more at SQS, and each batch once at Lambda', () => {
    expect(line(report.pipeline, 'IoT Core messaging')?.units).toBeCloseTo(1e6);
    expect(line(report.pipeline, 'IoT rule actions')?.units).toBeCloseTo(1e6);
    // Send per message; receive and delete per ten messages; and per batch the delta's
    // send, receive and delete.
    expect(line(report.pipeline, 'SQS requests')?.units).toBeCloseTo(1e6 * (1 + (2 * 3 * 24 + 3 * 24) / 600));
    // The ingest and the estate function once a batch, and the compaction's month spread over the messages.
    const compactionRuns = (30 * 24 * 6 * 600) / report.messagesPerMonth;
    expect(line(report.pipeline, 'Lambda requests')?.units).toBeCloseTo(((48 + compactionRuns) / 600) * 1e6);
    expect(line(report.pipeline, 'S3 PUT')?.units).toBeGreaterThan((48 / 600) * 1e6);
    expect(line(report.pipeline, 'S3 GET')?.units).toBeGreaterThan(0);
  });

  it('puts Basic Ingest below the MQTT pipeline by the messaging charge, and both far below the naive design', () => {
    expect(report.pipeline.perMillion - basicIngestOf(report).perMillion).toBeCloseTo(1);
    expect(line(basicIngestOf(report), 'IoT Core messaging')).toBeUndefined();
    expect(report.floor.perMillion).toBeCloseTo(1.3);
    expect(report.naive.perMillion).toBeGreaterThan(2 * report.pipeline.perMillion);
    expect(line(report.naive, 'S3 PUT')?.dollars).toBeCloseTo(5);
    expect(report.ratioToFloor).toBeCloseTo(basicIngestOf(report).perMillion / 1.3);
    // A month: 50 devices every 10 s is 12.96 million messages.
    expect(report.messagesPerMonth).toBe(12_960_000);
    expect(basicIngestOf(report).perMonth).toBeGreaterThan((basicIngestOf(report).perMillion * 12.96) | 0);
  });

  it('prints one table with the four designs side by side', () => {
    const table = costTable(report);
    expect(table.columns).toEqual([
      'line',
      'per message',
      'pipeline (MQTT) $/M',
      'pipeline (Basic Ingest) $/M',
      'naive (Lambda per message) $/M',
      'IoT Core floor $/M',
    ]);
    const total = table.rows.find((r) => r.line === 'total per million messages');
    expect(total?.['IoT Core floor $/M']).toBe('1.30');
  });

  it('counts the lake objects the ingest path writes, scaled to a day of the fleet', () => {
    // 50 devices every 10 s: 432,000 messages a day; each PutObject counted stands for 432,000 / 600.
    const perDay = 432_000;
    expect(report.lake.objectsPerDay).toBeCloseTo((report.callsPerMessage['S3.PutObject'] ?? 0) * perDay, 6);
    expect(Object.keys(report.lake.byPrefix)).toEqual(expect.arrayContaining(['raw/', 'readings/']));
    const byPrefix = Object.values(report.lake.byPrefix);
    expect(byPrefix.reduce((n, p) => n + p.objectsPerDay, 0)).toBeCloseTo(report.lake.objectsPerDay, 6);
    for (const p of byPrefix) expect(p.averageBytes).toBeGreaterThan(0);
    expect(report.lake.averageBytes).toBeGreaterThan(0);
  });

  it('prices the designs a user would pick instead behind the same rule, from the same messages', () => {
    const alternatives = report.alternatives;
    if (!alternatives) throw new Error('an MQTT report has the IoT rule designs');
    // The rule and its action ($0.30), Firehose's 5 KB steps at $0.029 a GB, S3 PUTs of its buffers.
    const firehose = alternatives.firehose;
    expect(line(firehose, 'IoT Core messaging')).toBeUndefined();
    expect(line(firehose, 'Firehose ingestion (GB, records in 5 KB steps)')?.units).toBeCloseTo(
      (5120 * 1e6) / 1024 ** 3,
      6,
    );
    expect(firehose.perMillion).toBeGreaterThan(0.3 + ((5120 * 1e6) / 1024 ** 3) * 0.029);
    expect(firehose.perMillion).toBeLessThan(basicIngestOf(report).perMillion);
    // Kinesis keeps the pipeline's registry writes and lake objects, not its ingest queue.
    const kinesis = alternatives.kinesis;
    expect(kinesis.shards).toBe(1);
    expect(line(kinesis, 'DynamoDB write units')?.dollars).toBeCloseTo(
      line(basicIngestOf(report), 'DynamoDB write units')?.dollars ?? 0,
      9,
    );
    expect(line(kinesis, 'S3 PUT')?.units).toBeCloseTo(line(report.pipeline, 'S3 PUT')?.units ?? 0, 6);
    expect(line(kinesis, 'Kinesis PUT payload units (25 KB)')?.units).toBeCloseTo(1e6, 6);
    expect(alternatives.basicIngestFloor?.perMillion).toBeCloseTo(0.3, 9);
    // One shard ($10.80 a month) pays off where the ingest queue's SQS saves as much.
    const { crossover } = alternatives;
    expect(crossover.shardMonthly).toBeCloseTo(10.8, 9);
    expect(crossover.sqsPerMillion).toBeGreaterThan(0.4);
    expect(crossover.messagesPerSecond).toBeCloseTo(
      10.8 / (((crossover.sqsPerMillion - crossover.kinesisPerMillion) / 1e6) * 2_592_000),
      6,
    );
    expect(crossover.devices).toBeCloseTo(((crossover.messagesPerSecond ?? 0) * 10_000) / 1000, 6);
  });

  it('has no Timestream line with Timestream off (the default)', async () => {
    const off = await run(DEFAULT_CONFIG, 200);
    expect(off.callsPerMessage['Timestream Write.WriteRecords']).toBeUndefined();
    expect(line(off.pipeline, 'Timestream writes (1 KiB)')).toBeUndefined();
    expect(line(off.naive, 'Timestream writes (1 KiB)')).toBeUndefined();
  });

  it('shows what a longer batching window saves: a device seen several times a batch is written once', async () => {
    const long = await run({
      ...SHORT,
      ingest: { ...DEFAULT_CONFIG.ingest, batchSize: 1000, maxBatchingWindowSeconds: 60 },
    });
    // 60 s batches of 300 messages: each device six times a batch.
    expect(long.batches).toBe(2);
    expect(long.callsPerMessage['DynamoDB.PutItem']).toBeCloseTo(1 / 6);
    expect(basicIngestOf(long).perMillion).toBeLessThan(basicIngestOf(report).perMillion);
  });

  it('at the defaults, writes each device once per estate window, and says what that costs in latency', async () => {
    // 50 devices every 10 s for 15 minutes: about three 300 s estate windows of 20 s ingest batches.
    const defaults = await run(DEFAULT_CONFIG, 4500);
    // Each device about 30 times a window: one registry write per 30 messages (more for a window cut short).
    const writes = defaults.callsPerMessage['DynamoDB.PutItem'] ?? 1;
    expect(writes).toBeGreaterThan(1 / 35);
    expect(writes).toBeLessThan(1 / 20);
    // The lake within the ingest window and its invocation; the registry and alerts within the estate window too.
    expect(defaults.latency.lake.p99).toBeGreaterThan(15);
    expect(defaults.latency.lake.max).toBeLessThan(25);
    expect(defaults.latency.estate.p50).toBeGreaterThan(defaults.latency.lake.p50);
    expect(defaults.latency.estate.max).toBeLessThan(330);
    expect(basicIngestOf(defaults).perMillion).toBeLessThan(basicIngestOf(report).perMillion);
  });
});

describe('cost model for HTTP sources', () => {
  it('prices Sigfox callbacks: API Gateway and the http function per message, a claim per reading', async () => {
    const report = await run(SHORT, 300, 'sigfox');
    expect(report.source).toBe('sigfox');
    expect(report.basicIngest).toBeUndefined();
    expect(line(report.pipeline, 'IoT Core messaging')).toBeUndefined();
    expect(line(report.pipeline, 'API Gateway requests')?.units).toBeCloseTo(1e6);
    // The http function once per callback, the ingest and estate functions once per batch, and compaction.
    const compactionRuns = (30 * 24 * 6) / report.messagesPerMonth;
    expect(line(report.pipeline, 'Lambda requests')?.units).toBeCloseTo(
      1e6 * (1 + (2 * report.batches) / 300 + compactionRuns),
    );
    // The http function's SendMessage, plus the event source mapping's receives and deletes.
    expect(report.callsPerMessage['SQS.SendMessage']).toBe(1);
    // A registry write, and the claim that keeps a resent callback from being stored twice.
    expect(report.callsPerMessage['DynamoDB.PutItem']).toBeCloseTo(2);
    expect(report.floor.design).toBe('API Gateway floor');
    expect(report.floor.perMillion).toBeCloseTo(1);
    expect(report.naive.perMillion).toBeGreaterThan(report.pipeline.perMillion);
    expect(report.fixedMonthly.map((l) => l.line)).not.toContain(
      'IoT Core connectivity (every device connected all month)',
    );
  });

  it('prices our JSON over HTTP without claims (only network callbacks are resent)', async () => {
    const report = await run(SHORT, 300, 'http');
    expect(report.callsPerMessage['DynamoDB.PutItem']).toBeCloseTo(1);
    expect(report.messageBytes).toBeGreaterThanOrEqual(200);
    // The IoT rule designs do not apply behind API Gateway.
    expect(report.alternatives).toBeUndefined();
    expect(report.lake.objectsPerDay).toBeGreaterThan(0);
    expect(costTable(report).columns).toEqual([
      'line',
      'per message',
      'pipeline (HTTP) $/M',
      'naive (Lambda per message) $/M',
      'API Gateway floor $/M',
    ]);
  });
});

describe('cost command', () => {
  const cli = (...args: string[]) =>
    promisify(execFile)('npx', ['tsx', 'cli/main.ts', 'cost', ...args], {
      env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' },
    });

  it('prints the report as JSON', async () => {
    const { stdout } = await cli(
      '--devices',
      '20',
      '--interval',
      '30s',
      '--bytes',
      '120',
      '--messages',
      '100',
      '--json',
    );
    const report = JSON.parse(stdout) as CostReport;
    expect(report.fleet).toEqual({ devices: 20, intervalMs: 30_000 });
    expect(report.messagesRun).toBe(100);
    expect(report.floor.perMillion).toBeCloseTo(1.3);
  });

  it('prices with the file --prices names, and names the price a file lacks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prices-'));
    const doubled = JSON.parse(readFileSync(PRICES_FILE, 'utf8'));
    doubled.iotCore.messagingPerMillion = 2;
    await writeFile(join(dir, 'doubled.json'), JSON.stringify(doubled));
    const { stdout } = await cli(
      '--devices',
      '20',
      '--messages',
      '100',
      '--prices',
      join(dir, 'doubled.json'),
      '--json',
    );
    expect((JSON.parse(stdout) as CostReport).floor.perMillion).toBeCloseTo(2.3);
    delete doubled.s3.putPerThousand;
    await writeFile(join(dir, 'broken.json'), JSON.stringify(doubled));
    await expect(cli('--prices', join(dir, 'broken.json'))).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('no number at s3.putPerThousand'),
    });
  });

  it('prints 1,000, 10,000 and 100,000 devices side by side without --devices, Kinesis not priced without its prices', async () => {
    const { stdout } = await cli('--messages', '100', '--json');
    const { fleets } = JSON.parse(stdout) as { fleets: CostReport[] };
    expect(fleets.map((r) => r.fleet.devices)).toEqual([1000, 10_000, 100_000]);
    for (const r of fleets) {
      expect(r.messagesRun).toBe(100);
      // The lake objects: the PutObject calls counted, scaled to the fleet's day (a message a minute).
      expect(r.lake.objectsPerDay).toBeCloseTo(
        (r.callsPerMessage['S3.PutObject'] ?? 0) * r.fleet.devices * 1440,
        3,
      );
      expect(r.lake.averageBytes).toBeGreaterThan(0);
      expect(r.alternatives?.kinesis.priced).toBe(true);
    }
    // A hundred times the fleet, about a hundred times Firehose's month (the same 5 KB steps a
    // message and connectivity a device; only its S3 PUTs a message fall, as its buffers fill by size).
    const [small, , large] = fleets;
    const firehoseMonth = (r: CostReport | undefined) => r?.alternatives?.firehose.perMonth ?? Number.NaN;
    expect(firehoseMonth(large) / firehoseMonth(small)).toBeCloseTo(100, 0);
    expect(large?.alternatives?.firehose.lake?.objectsPerDay).toBeLessThan(
      100 * (small?.alternatives?.firehose.lake?.objectsPerDay ?? 0),
    );

    const dir = await mkdtemp(join(tmpdir(), 'prices-'));
    const { kinesisDataStreams: _, ...shared } = JSON.parse(readFileSync(PRICES_FILE, 'utf8'));
    await writeFile(join(dir, 'shared.json'), JSON.stringify(shared));
    const text = (await cli('--messages', '100', '--prices', join(dir, 'shared.json'))).stdout;
    expect(text).toMatch(/^line +\| 1,000 devices +\| 10,000 devices +\| 100,000 devices/m);
    expect(text).toMatch(
      /^IoT rule -> Kinesis \(provisioned\) -> Lambda \$\/M +\| not priced +\| not priced +\| not priced/m,
    );
    expect(text).toMatch(/^IoT rule -> Firehose -> S3 \$\/M +\| \d+\.\d\d/m);
    expect(text).toMatch(/^Basic Ingest floor \$\/M +\| 0\.30 +\| 0\.30 +\| 0\.30/m);
    expect(text).toMatch(/^lake objects a day \(ingest path\) +\| [\d,]+/m);
    expect(text).toMatch(/^ +readings\/ objects a day \(average bytes\) +\| [\d,]+ \([\d,]+\)/m);
    expect(text).toContain('Kinesis: not priced: the price list has no kinesisDataStreams.shardHour');
  });

  it('says what to fix in a bad call (exit 2)', async () => {
    await expect(cli('--interval', 'often')).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--interval'),
    });
    await expect(cli('--devices', '0')).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--devices "0" must be a whole number'),
    });
  });
});

describe('cost model for LoRaWAN networks and Sigfox form bodies', () => {
  const lht65 = () => readFileSync('codecs/lht65.js', 'utf8');

  it('prices a Sigfox form body as the JSON callback, but for its size', async () => {
    const [json, form] = await Promise.all([
      run(DEFAULT_CONFIG, 200, 'sigfox'),
      run(DEFAULT_CONFIG, 200, 'sigfox-form'),
    ]);
    expect(form.pipeline.design).toBe('pipeline (Sigfox, form body)');
    expect(form.messageBytes).toBeLessThan(json.messageBytes);
    expect(form.callsPerMessage).toEqual(json.callsPerMessage);
    expect(line(form.pipeline, 'API Gateway requests')?.units).toBeCloseTo(1e6);
  });

  it('prices ChirpStack up events decoded by ChirpStack, and through a codec with its frames', async () => {
    const plain = await run(SHORT, 300, 'chirpstack');
    expect(plain.pipeline.design).toBe('pipeline (ChirpStack)');
    expect(line(plain.pipeline, 'API Gateway requests')?.units).toBeCloseTo(1e6);
    // A registry write and a claim (ChirpStack may post an uplink twice).
    expect(plain.callsPerMessage['DynamoDB.PutItem']).toBeCloseTo(2);
    expect(plain.notes).toEqual([]);
    const codec = withCodec(SHORT, 'codecs/lht65.js', lht65());
    const decoded = await runCostModel({
      source: 'chirpstack',
      fleet: { devices: 50, intervalMs: 10_000 },
      messageBytes: 200,
      config: codec.config,
      frames: codec.frames,
      codec: 'codecs/lht65.js',
      prices,
      messages: 300,
      latency: NO_LATENCY,
    });
    expect(decoded.codec).toBe('codecs/lht65.js');
    expect(decoded.notes).toContain('decoded with the codec codecs/lht65.js');
    expect(decoded.callsPerMessage['DynamoDB.PutItem']).toBeCloseTo(2);
  });

  it('prices IoT Core for LoRaWAN uplinks through the LoRaWAN rule: no messaging charge, the uplink charge not priced', async () => {
    const config = withDeviceCodec(SHORT, 'codecs/lht65.js', lht65());
    const report = await run(config, 300, 'iot-lorawan');
    expect(report.pipeline.design).toBe('pipeline (AWS IoT Core for LoRaWAN)');
    expect(line(report.pipeline, 'IoT Core messaging')).toBeUndefined();
    expect(line(report.pipeline, 'API Gateway requests')).toBeUndefined();
    expect(line(report.pipeline, 'IoT rules triggered')?.units).toBeCloseTo(1e6);
    expect(line(report.pipeline, 'IoT rule actions')?.units).toBeCloseTo(1e6);
    // The rule's SendMessage, then the ingest and estate functions once a batch (no http function), and compaction.
    const compactionRuns = (30 * 24 * 6) / report.messagesPerMonth;
    expect(line(report.pipeline, 'Lambda requests')?.units).toBeCloseTo(
      ((2 * report.batches) / 300 + compactionRuns) * 1e6,
    );
    expect(report.callsPerMessage['SQS.SendMessage']).toBeUndefined();
    // Every LHT65 frame decoded: a registry write and a claim per message, nothing quarantined.
    expect(report.callsPerMessage['DynamoDB.PutItem']).toBeCloseTo(2);
    expect(report.floor.design).toBe('IoT Core for LoRaWAN floor');
    expect(report.floor.perMillion).toBeCloseTo(0.3);
    for (const design of [report.pipeline, report.naive, report.floor]) {
      expect(design.notPriced).toEqual([
        {
          line: 'IoT Core for LoRaWAN uplinks',
          units: expect.closeTo(1e6, 3),
          missing: LORAWAN_UPLINK_PRICE,
        },
      ]);
    }
    expect(report.notes.join('\n')).toMatch(
      /not priced: IoT Core for LoRaWAN uplinks .*iotCoreLorawan\.uplinkMessagesPerMillion.*--prices <file>/,
    );
    const row = costTable(report).rows.find((r) => r.line === 'IoT Core for LoRaWAN uplinks (not priced)');
    expect(row?.['pipeline (AWS IoT Core for LoRaWAN) $/M']).toBe('not priced');
    expect(report.fixedMonthly.map((l) => l.line)).not.toContain(
      'IoT Core connectivity (every device connected all month)',
    );
  });

  it('prices the LoRaWAN uplinks when the price list has their price', async () => {
    const config = withDeviceCodec(DEFAULT_CONFIG, 'codecs/lht65.js', lht65());
    const withPrice = checkPrices({ ...prices, iotCoreLorawan: { uplinkMessagesPerMillion: 2 } });
    const report = await runCostModel({
      source: 'iot-lorawan',
      fleet: { devices: 50, intervalMs: 10_000 },
      messageBytes: 200,
      config,
      prices: withPrice,
      messages: 200,
      latency: NO_LATENCY,
    });
    expect(line(report.pipeline, 'IoT Core for LoRaWAN uplinks')?.dollars).toBeCloseTo(2);
    expect(report.pipeline.notPriced).toBeUndefined();
    expect(report.floor.perMillion).toBeCloseTo(2.3);
    expect(report.notes).toEqual([]);
    expect(() => checkPrices({ ...prices, iotCoreLorawan: { uplinkMessagesPerMillion: 'free' } })).toThrow(
      LORAWAN_UPLINK_PRICE,
    );
  });

  it('says an IoT Core for LoRaWAN run needs a codec, and that frames need a LoRaWAN source', async () => {
    await expect(run(DEFAULT_CONFIG, 10, 'iot-lorawan')).rejects.toThrow(/iot-lorawan uplinks need a codec/);
    await expect(
      runCostModel({
        source: 'sigfox',
        fleet: { devices: 5, intervalMs: 10_000 },
        messageBytes: 100,
        config: DEFAULT_CONFIG,
        prices,
        messages: 10,
        frames: [{ bytes: [1], fPort: 1 }],
      }),
    ).rejects.toThrow(/sigfox messages carry no codec frames/);
  });
});
