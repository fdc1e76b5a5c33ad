import { existsSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TIME_SERIES_COMMON_ATTRIBUTES, toTimeSeriesRecord } from '../../../lambdas/core/reading.ts';
import {
  checkPrices,
  dynamodbItemBytes,
  dynamodbReadUnits,
  dynamodbWriteUnits,
  emptyUsage,
  iotFloorUsage,
  lambdaGbSeconds,
  messagesPerMonth,
  priceUsage,
  type TimestreamRecordShape,
  timestreamRecordBytes,
  timestreamWriteUnits,
  totalDollars,
} from '../../../tools/cost/model.ts';
import { PRICES_FILE } from '../../../tools/cost/report.ts';

const prices = checkPrices(JSON.parse(readFileSync(PRICES_FILE, 'utf8')));

// The example of the Timestream metering docs: an EC2 instance's CPU utilization.
const cpuEvent: TimestreamRecordShape = {
  Time: '1602983435238563000',
  Dimensions: [
    { Name: 'region', Value: 'us-east-1' },
    { Name: 'az', Value: '1d' },
    { Name: 'vpc', Value: 'vpc-1a2b3c4d' },
    { Name: 'hostname', Value: 'host-24Gju' },
  ],
  MeasureName: 'cpu_utilization',
  MeasureValue: '35.0',
  MeasureValueType: 'DOUBLE',
};

describe('metering', () => {
  it('sizes a Timestream event as the metering docs do (83 bytes)', () => {
    expect(timestreamRecordBytes(cpuEvent)).toBe(83);
  });

  it('bills a WriteRecords call per 1 KiB of its events: 12 of them fit one write, 13 take two', () => {
    expect(timestreamWriteUnits({ Records: Array(12).fill(cpuEvent) }, 1024)).toBe(1);
    expect(timestreamWriteUnits({ Records: Array(13).fill(cpuEvent) }, 1024)).toBe(2);
    expect(timestreamWriteUnits({ Records: [] }, 1024)).toBe(1);
  });

  it('counts common attributes once per call, and the shared time for each record', () => {
    const reading = {
      deviceId: 'dev-1',
      deviceType: 'thermo',
      time: 1,
      receivedAt: 1,
      source: 'mqtt' as const,
      messageId: 'm',
      metrics: { temp: 21.5, door: true, fw: '1.2' },
      key: 'seq:1',
    };
    const record = toTimeSeriesRecord(reading);
    // 8 time + device_id dev-1 (14) + device_type thermo (17) + source mqtt (10) + temp 8 (12) + door 1 (5) + fw '1.2' (5)
    expect(timestreamRecordBytes(record)).toBe(71);
    const common = timestreamRecordBytes(TIME_SERIES_COMMON_ATTRIBUTES);
    expect(common).toBe('telemetry'.length);
    expect(
      timestreamWriteUnits(
        { CommonAttributes: TIME_SERIES_COMMON_ATTRIBUTES, Records: Array(14).fill(record) },
        1024,
      ),
    ).toBe(1);
    expect(
      timestreamWriteUnits(
        { CommonAttributes: TIME_SERIES_COMMON_ATTRIBUTES, Records: Array(15).fill(record) },
        1024,
      ),
    ).toBe(2);
  });

  it('never bills a batch more than the same records written one by one', () => {
    const record = fc.record({
      Time: fc.constant('1'),
      Dimensions: fc.array(
        fc.record({ Name: fc.string({ maxLength: 20 }), Value: fc.string({ maxLength: 40 }) }),
        {
          maxLength: 4,
        },
      ),
      MeasureValues: fc.array(
        fc.record({
          Name: fc.string({ maxLength: 20 }),
          Value: fc.string({ maxLength: 30 }),
          Type: fc.constantFrom('DOUBLE', 'BOOLEAN', 'VARCHAR'),
        }),
        { maxLength: 12 },
      ),
    });
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 100 }), (records) => {
        const batched = timestreamWriteUnits({ Records: records }, 1024);
        const single = records.reduce((n, r) => n + timestreamWriteUnits({ Records: [r] }, 1024), 0);
        const bytes = records.reduce((n, r) => n + timestreamRecordBytes(r), 0);
        expect(batched).toBeLessThanOrEqual(single);
        expect(batched).toBe(Math.max(1, Math.ceil(bytes / 1024)));
      }),
    );
  });

  it('sizes DynamoDB items and bills writes per 1 KB (the larger of old and new) and reads per 4 KB', () => {
    expect(dynamodbItemBytes({ pk: { S: 'abc' }, n: { N: '12345' }, ok: { BOOL: true } })).toBe(
      2 + 3 + 1 + 4 + 2 + 1,
    );
    expect(dynamodbItemBytes({ name: { S: 'é' } })).toBe(4 + 2);
    expect(dynamodbWriteUnits(1024)).toBe(1);
    expect(dynamodbWriteUnits(1025)).toBe(2);
    expect(dynamodbWriteUnits(10, 3000)).toBe(3);
    expect(dynamodbReadUnits(0, true)).toBe(1);
    expect(dynamodbReadUnits(4097, true)).toBe(2);
    expect(dynamodbReadUnits(4097, false)).toBe(1);
  });

  it('bills Lambda duration rounded up to the millisecond', () => {
    expect(lambdaGbSeconds(100.2, 512)).toBeCloseTo(0.101 * 0.5);
    expect(lambdaGbSeconds(1, 1024)).toBe(0.001);
  });
});

describe('prices', () => {
  it('prices units at the list prices', () => {
    const usage = emptyUsage();
    usage.iotMessages = 1e6;
    usage.s3Puts = 1000;
    usage.dynamodbWriteUnits = 2e6;
    const lines = priceUsage(usage, prices);
    expect(lines.map((l) => [l.line, l.dollars])).toEqual([
      ['IoT Core messaging', 1],
      ['S3 PUT', 0.005],
      ['DynamoDB write units', 1.25],
    ]);
    expect(totalDollars(lines)).toBeCloseTo(2.255);
  });

  it('puts the IoT Core floor at one message, one rule and one action ($1.30 per million)', () => {
    expect(totalDollars(priceUsage(iotFloorUsage(1e6, 200, prices), prices))).toBeCloseTo(1.3);
    // IoT Core meters messages in 5 KB steps.
    expect(iotFloorUsage(1, 6000, prices).iotMessages).toBe(2);
    expect(messagesPerMonth({ devices: 1000, intervalMs: 60_000 })).toBe(43_200_000);
  });

  it('names the key a price file lacks', () => {
    const broken = JSON.parse(readFileSync(PRICES_FILE, 'utf8'));
    delete broken.sqs.requestsPerMillion;
    expect(() => checkPrices(broken)).toThrow('sqs.requestsPerMillion');
  });

  // The shared price list sits beside the repository in the workspace, not in a clone of it.
  const shared = new URL('../../../../shared/aws-prices.json', import.meta.url);
  it.skipIf(!existsSync(shared))('carries the same prices as the shared aws-prices.json', () => {
    // Our copy adds what the shared list lacks (Kinesis Data Streams, for the Kinesis design), with its source.
    const { kinesisDataStreams, ...ours } = JSON.parse(readFileSync(PRICES_FILE, 'utf8'));
    const theirs = JSON.parse(readFileSync(shared, 'utf8'));
    expect(ours).toEqual(theirs);
    expect(theirs.kinesisDataStreams).toBeUndefined();
    expect(kinesisDataStreams.about).toMatch(/aws\.amazon\.com\/kinesis\/data-streams\/pricing/);
  });

  it('takes the optional Kinesis and Firehose sections when they hold numbers', () => {
    const listed = JSON.parse(readFileSync(PRICES_FILE, 'utf8'));
    listed.kinesisDataStreams.shardHour = 'cheap';
    expect(() => checkPrices(listed)).toThrow('kinesisDataStreams.shardHour must be a number');
    delete listed.kinesisDataStreams;
    delete listed.firehose;
    expect(checkPrices(listed).kinesisDataStreams).toBeUndefined();
  });
});
