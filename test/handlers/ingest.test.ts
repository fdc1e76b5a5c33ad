import { BatchGetItemCommand, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import {
  RejectedRecordsException,
  ThrottlingException,
  TimestreamWriteClient,
  WriteRecordsCommand,
} from '@aws-sdk/client-timestream-write';
import type { Context, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { mqttMessage, sqsEvent } from '../support/fakes.ts';

const s3 = mockClient(S3Client);
const ddb = mockClient(DynamoDBClient);
const sqs = mockClient(SQSClient);
const timestream = mockClient(TimestreamWriteClient);
let handler: (
  event: SQSEvent,
  context: Context,
) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;

const event = sqsEvent;
const context = { functionName: 'ingest', awsRequestId: 'req-1' } as Context;
const now = Date.now();

describe('ingest handler', () => {
  beforeAll(async () => {
    vi.stubEnv('LAKE_BUCKET', 'lake-bucket');
    vi.stubEnv('ESTATE_QUEUE_URLS', 'https://sqs.us-east-1.amazonaws.com/123456789012/estate');
    vi.stubEnv('CLAIMS_TABLE', 'claims');
    vi.stubEnv('TIMESTREAM_DATABASE', 'iot');
    vi.stubEnv('TIMESTREAM_TABLE', 'readings');
    vi.stubEnv('POWERTOOLS_METRICS_NAMESPACE', 'Test');
    vi.stubEnv('POWERTOOLS_DEV', 'true');
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
    ({ handler } = await import('../../lambdas/handlers/ingest.ts'));
  });
  beforeEach(() => {
    s3.reset();
    timestream.reset();
    ddb.reset();
    sqs.reset();
    ddb.on(PutItemCommand).resolves({});
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    s3.on(PutObjectCommand).resolves({});
    timestream.on(WriteRecordsCommand).resolves({ RecordsIngested: { Total: 1 } });
  });

  it('stores a batch with one PutObject per lake object and one WriteRecords call', async () => {
    // Arrange
    const records = event(
      mqttMessage('m1', { temp: 1 }, 'dt/thermo/a', now),
      mqttMessage('m2', { temp: 2 }, 'dt/thermo/b', now),
    );
    // Act
    const response = await handler(records, context);
    // Assert
    expect(response.batchItemFailures).toEqual([]);
    expect(timestream.commandCalls(WriteRecordsCommand)).toHaveLength(1);
    expect(timestream.commandCalls(WriteRecordsCommand)[0]?.args[0].input).toMatchObject({
      DatabaseName: 'iot',
      TableName: 'readings',
      CommonAttributes: { MeasureName: 'telemetry', MeasureValueType: 'MULTI', TimeUnit: 'MILLISECONDS' },
    });
    expect(timestream.commandCalls(WriteRecordsCommand)[0]?.args[0].input.Records).toHaveLength(
      records.Records.length,
    );
    const puts = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    expect(puts.map((p) => p.Key?.split('/')[0]).sort()).toEqual(['raw', 'readings']);
    expect(puts[0]).toMatchObject({ Bucket: 'lake-bucket', ContentEncoding: 'gzip' });
    // The registry is not the ingest function's: one SendMessageBatch to the estate queue, no DynamoDB read.
    expect(sqs.commandCalls(SendMessageBatchCommand)).toHaveLength(1);
    expect(ddb.commandCalls(BatchGetItemCommand)).toEqual([]);
  });

  it('fails the batch when the estate queue refuses its update, and writes no readings/ for it', async () => {
    sqs.on(SendMessageBatchCommand).rejects(new Error('ServiceUnavailable'));
    await expect(
      handler(
        event(
          mqttMessage('m1', { temp: 1 }, 'dt/thermo/a', now),
          mqttMessage('m2', { temp: 2 }, 'dt/thermo/b', now),
        ),
        context,
      ),
    ).rejects.toThrow(/All records failed/);
    const keys = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input.Key ?? '');
    expect(keys.filter((k) => k.startsWith('readings/'))).toEqual([]);
  });

  it('reports only the message whose sink failed, and acknowledges the quarantined one', async () => {
    // Arrange: S3 refuses the readings object of yesterday's reading only
    s3.on(PutObjectCommand).callsFake((input: { Key: string }) => {
      if (
        input.Key.startsWith('readings/') &&
        input.Key.includes(new Date(now - 86_400_000).toISOString().slice(0, 10))
      ) {
        throw new Error('SlowDown');
      }
      return {};
    });
    const records = event(
      mqttMessage('ok', { temp: 1 }, 'dt/thermo/a', now),
      mqttMessage('late', { $ts: now - 86_400_000, temp: 2 }, 'dt/thermo/b', now),
      mqttMessage('bad', 'not json', 'dt/thermo/c', now),
    );
    // Act
    const response = await handler(records, context);
    // Assert
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'late' }]);
  });

  it('retries a throttled Timestream write and then succeeds', async () => {
    timestream
      .on(WriteRecordsCommand)
      .rejectsOnce(
        new ThrottlingException({ message: 'Rate exceeded', Message: 'Rate exceeded', $metadata: {} }),
      )
      .resolves({});
    const response = await handler(event(mqttMessage('m1', { temp: 1 }, 'dt/thermo/a', now)), context);
    expect(response.batchItemFailures).toEqual([]);
    expect(timestream.commandCalls(WriteRecordsCommand).length).toBeGreaterThanOrEqual(2);
  });

  it('quarantines the records Timestream rejects and acknowledges them', async () => {
    timestream.on(WriteRecordsCommand).rejects(
      new RejectedRecordsException({
        message: 'One or more records have been rejected',
        $metadata: {},
        RejectedRecords: [
          {
            RecordIndex: 0,
            Reason: 'The record timestamp is outside the time range of the data ingestion window.',
          },
        ],
      }),
    );
    const response = await handler(event(mqttMessage('m1', { temp: 1 }, 'dt/thermo/a', now)), context);
    expect(response.batchItemFailures).toEqual([]);
    const keys = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input.Key ?? '');
    expect(keys.some((k) => k.startsWith('quarantine/'))).toBe(true);
  });

  it('fails every message of a Timestream write that keeps failing, so SQS retries them', async () => {
    timestream.on(WriteRecordsCommand).rejects(new Error('InternalServerException'));
    await expect(handler(event(mqttMessage('m1', { temp: 1 }, 'dt/thermo/a', now)), context)).rejects.toThrow(
      /All records failed/,
    );
    // Nothing of the message reaches the lake: the retry will write it once.
    expect(s3.commandCalls(PutObjectCommand)).toEqual([]);
  });
});
