/**
 * The alternative designs' arithmetic, against figures worked by hand from the price
 * list (tools/cost/aws-prices.json): 1,000 messages of 300 bytes from 1,000 devices a
 * minute (16.7 records a second, 5,000 bytes a second, 43.2 million messages a month).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  basicIngestFloor,
  type DesignInputs,
  firehoseDesign,
  KINESIS_PRICE_KEYS,
  kinesisCrossover,
  kinesisDesign,
  lakeWrites,
  shardsNeeded,
} from '../../../tools/cost/designs.ts';
import { type AwsPrices, checkPrices, emptyUsage } from '../../../tools/cost/model.ts';
import { PRICES_FILE } from '../../../tools/cost/report.ts';

const prices = checkPrices(JSON.parse(readFileSync(PRICES_FILE, 'utf8')));
const fleet = { devices: 1000, intervalMs: 60_000 };

function inputs(over: Partial<DesignInputs> = {}): DesignInputs {
  const frontDoor = { ...emptyUsage(), iotRulesTriggered: 1000, iotActions: 1000 };
  const pipeline = {
    ...emptyUsage(),
    iotRulesTriggered: 1000,
    iotActions: 1000,
    sqsRequests: 1200,
    lambdaRequests: 10,
    lambdaGbSeconds: 0.5,
    s3Puts: 20,
    dynamodbWriteUnits: 1000,
    dynamodbReadUnits: 500,
  };
  return {
    fleet,
    messages: 1000,
    records: new Map([[300, 1000]]),
    frontDoor,
    pipeline,
    queueRequests: 1200,
    fixedMonthly: 3,
    ...over,
  };
}

const withoutKinesis = (): AwsPrices => {
  const { kinesisDataStreams: _, ...rest } = prices;
  return rest;
};
const line = <T extends { line: string }>(lines: readonly T[], start: string) =>
  lines.find((l) => l.line.startsWith(start));

describe('IoT rule -> Firehose -> S3', () => {
  it('prices the rule, its action, 5 KB records by the GB and a PUT per 300 s buffer at a low rate', () => {
    const design = firehoseDesign(inputs(), prices);
    // Rule $0.15 + action $0.15; 10^6 records of one 5,120-byte step = 4.768 GiB at $0.029;
    // 5,000 B/s fills 5 MiB in 1,049 s, so the 300 s interval delivers: 1/300 objects a second
    // for 16.67 messages a second is 200 PUTs a million messages, $0.001.
    const ingest = ((5120 * 1e6) / 1024 ** 3) * 0.029;
    expect(line(design.lines, 'Firehose ingestion')?.dollars).toBeCloseTo(ingest, 9);
    expect(line(design.lines, 'S3 PUT')?.units).toBeCloseTo(200, 6);
    expect(design.perMillion).toBeCloseTo(0.3 + ingest + 0.001, 9);
    expect(design.perMonth).toBeCloseTo(design.perMillion * 43.2 + 3, 9);
    expect(design.priced).toBe(true);
    expect(design.note).toMatch(/no decoding.*alerts.*registry.*dedupe/);
    expect(design.lake?.objectsPerDay).toBeCloseTo(288, 6);
    expect(design.lake?.averageBytes).toBeCloseTo(5000 * 300, 3);
  });

  it('delivers by size at a high rate, and rounds a 6,000-byte record up to two 5 KB steps', () => {
    // 1,000,000 devices a second, 6,000 bytes each: 6e9 B/s, a 5 MiB object every 0.87 ms.
    const design = firehoseDesign(
      inputs({ fleet: { devices: 1_000_000, intervalMs: 1000 }, records: new Map([[6000, 1000]]) }),
      prices,
    );
    expect(line(design.lines, 'S3 PUT')?.units).toBeCloseTo((6000 / (5 * 1024 * 1024)) * 1e6, 6);
    expect(line(design.lines, 'Firehose ingestion')?.units).toBeCloseTo((2 * 5120 * 1e6) / 1024 ** 3, 9);
    expect(design.lake?.averageBytes).toBeCloseTo(5 * 1024 * 1024, 3);
  });
});

describe('IoT rule -> Kinesis (provisioned) -> Lambda', () => {
  it("prices the rule, PUT payload units, a shard's hours over the fleet's messages and the pipeline's logic without SQS", () => {
    const design = kinesisDesign(inputs(), prices);
    expect(design.shards).toBe(1);
    // One shard for 720 hours over 43.2 million messages: 16.67 shard hours a million, $0.25.
    expect(line(design.lines, 'Kinesis shard hours')?.dollars).toBeCloseTo(0.25, 9);
    // A 300-byte record is one 25 KB unit: $0.014 a million.
    expect(line(design.lines, 'Kinesis PUT payload units')?.dollars).toBeCloseTo(0.014, 9);
    expect(line(design.lines, 'SQS')).toBeUndefined();
    // A second queue's requests (the estate queue's) stay: 300 of the 1,500 here, $0.12 a million.
    const twoQueues = kinesisDesign(
      inputs({ pipeline: { ...inputs().pipeline, sqsRequests: 1500 } }),
      prices,
    );
    expect(line(twoQueues.lines, 'SQS')?.dollars).toBeCloseTo(0.12, 9);
    // Lambda 10,000 requests $0.002 and 500 GB-s $0.0066667; 20,000 PUTs $0.10; 10^6 write units
    // $0.625; 5 x 10^5 read units $0.0625.
    const logic = 0.002 + 500 * 0.0000133334 + 0.1 + 0.625 + 0.0625;
    expect(design.perMillion).toBeCloseTo(0.3 + 0.014 + 0.25 + logic, 9);
    expect(design.perMonth).toBeCloseTo(design.perMillion * 43.2 + 3, 9);
    expect(design.priced).toBe(true);
  });

  it('needs a shard per 1,000 records or 1 MiB a second, at least one', () => {
    expect(shardsNeeded(0, 0)).toBe(1);
    expect(shardsNeeded(1000, 1024 * 1024)).toBe(1);
    expect(shardsNeeded(1001, 0)).toBe(2);
    expect(shardsNeeded(5000, 0)).toBe(5);
    expect(shardsNeeded(10, 3 * 1024 * 1024)).toBe(3);
    expect(shardsNeeded(2500, 1.5 * 1024 * 1024)).toBe(3);
    // 100,000 devices every 10 s, 300 bytes: 10,000 records a second.
    const busy = kinesisDesign(inputs({ fleet: { devices: 100_000, intervalMs: 10_000 } }), prices);
    expect(busy.shards).toBe(10);
    expect(line(busy.lines, 'Kinesis shard hours (10 shards)')?.units).toBeCloseTo(
      ((10 * 720) / 25_920_000_000) * 1e6,
      9,
    );
  });

  it('is not priced without the Kinesis prices, and names the keys to add', () => {
    const design = kinesisDesign(inputs(), withoutKinesis());
    expect(design.priced).toBe(false);
    expect(design.notPriced?.map((l) => l.missing).sort()).toEqual(
      [KINESIS_PRICE_KEYS.putPayloadUnits, KINESIS_PRICE_KEYS.shardHour].sort(),
    );
    expect(line(design.lines, 'Kinesis')).toBeUndefined();
    const crossover = kinesisCrossover(inputs(), withoutKinesis());
    expect(crossover.devices).toBeUndefined();
    expect(crossover.reason).toMatch(/^not priced/);
  });
});

describe('floors and the crossover', () => {
  it('puts the Basic Ingest floor at the rule and the action', () => {
    expect(basicIngestFloor(inputs(), prices).perMillion).toBeCloseTo(0.3, 9);
  });

  it('finds the fleet where one shard costs less than SQS', () => {
    const crossover = kinesisCrossover(inputs(), prices);
    // SQS 1.2 requests a message at $0.40 a million = $0.48; Kinesis $0.014; a shard $10.80 a
    // month: 10.80 / (0.466e-6 x 2,592,000 s) = 8.941 messages a second, 536.5 devices a minute.
    expect(crossover.sqsPerMillion).toBeCloseTo(0.48, 9);
    expect(crossover.kinesisPerMillion).toBeCloseTo(0.014, 9);
    expect(crossover.shardMonthly).toBeCloseTo(10.8, 9);
    expect(crossover.messagesPerSecond).toBeCloseTo(10.8 / (0.466e-6 * 2_592_000), 6);
    expect(crossover.devices).toBeCloseTo((60 * 10.8) / (0.466e-6 * 2_592_000), 4);
    // SQS as cheap as the stream's records: never.
    const cheapQueue = kinesisCrossover(inputs({ queueRequests: 30 }), prices);
    expect(cheapQueue.devices).toBeUndefined();
    expect(cheapQueue.reason).toMatch(/never/);
  });
});

describe('lake writes', () => {
  it('scales the PutObject calls counted to a day of the fleet, by folder', () => {
    const puts = new Map([
      ['readings/', { objects: 10, bytes: 20_000 }],
      ['raw/', { objects: 10, bytes: 50_000 }],
    ]);
    // 1,000 messages run of 1.44 million a day: each call counted stands for 1,440.
    const lake = lakeWrites(puts, 1000, fleet);
    expect(lake.objectsPerDay).toBeCloseTo(28_800, 6);
    expect(lake.averageBytes).toBeCloseTo(3500, 9);
    expect(lake.byPrefix['readings/']).toEqual({
      objectsPerDay: expect.closeTo(14_400, 6),
      averageBytes: 2000,
    });
    expect(Object.keys(lake.byPrefix)).toEqual(['raw/', 'readings/']);
  });
});
