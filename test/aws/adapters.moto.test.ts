/**
 * The AWS adapters with real SDK v3 clients against moto's server: AWS's wire protocols
 * (REST-XML, JSON 1.0/1.1, query), condition expressions, pagination and error shapes,
 * and every request checked against AWS's models by the test setup. Where moto does not
 * check what AWS checks (Athena's MaxResults), the model check does.
 */
import { AthenaClient } from '@aws-sdk/client-athena';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateThingCommand,
  DescribeThingCommand,
  IoTClient,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { TimestreamQueryClient } from '@aws-sdk/client-timestream-query';
import {
  CreateDatabaseCommand,
  CreateTableCommand as CreateTimestreamTable,
  TimestreamWriteClient,
} from '@aws-sdk/client-timestream-write';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ATHENA_MAX_RESULTS, athenaEngine, athenaPagedQueries } from '../../lambdas/adapters/aws/athena.ts';
import { dynamodbClaims } from '../../lambdas/adapters/aws/dynamodb-claims.ts';
import { dynamodbKeyStore } from '../../lambdas/adapters/aws/dynamodb-keys.ts';
import { dynamodbRegistry } from '../../lambdas/adapters/aws/dynamodb-registry.ts';
import { dynamodbGate } from '../../lambdas/adapters/aws/gate.ts';
import { sqsEnqueue } from '../../lambdas/adapters/aws/queue.ts';
import { s3Store } from '../../lambdas/adapters/aws/s3-store.ts';
import { snsAlerts } from '../../lambdas/adapters/aws/sns-alerts.ts';
import { timestreamRecentReadings } from '../../lambdas/adapters/aws/timestream-query.ts';
import { timestreamSink } from '../../lambdas/adapters/aws/timestream-sink.ts';
import { createKey, KeySpecError } from '../../lambdas/core/access/keys.ts';
import { isResponse } from '../../lambdas/core/api/gate.ts';
import { readingsPlan } from '../../lambdas/core/api/query.ts';
import type { DeviceRecord } from '../../lambdas/core/estate/alerts.ts';
import type { Reading } from '../../lambdas/core/reading.ts';
import { deprovision, provision } from '../../tools/provision/provisioning.ts';
import { skipWithout } from '../support/aws-tools.ts';
import { createIotStage, createTable, type Moto, startMoto } from '../support/moto.ts';

describe.skipIf(skipWithout('moto_server', 'botocore'))('AWS adapters against moto', () => {
  let moto: Moto;
  beforeAll(async () => {
    moto = await startMoto();
  }, 60_000);
  afterAll(() => moto?.stop());
  beforeEach(() => moto.reset());

  it('S3 lake: puts gzip NDJSON with its encoding, reads, lists and deletes', async () => {
    const s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'lake' }));
    const lake = s3Store(s3, 'lake');
    await lake.put(
      'readings/dt=2026-11-25/hour=06/a.ndjson.gz',
      Buffer.from('{"a":1}\n'),
      'application/x-ndjson',
      'gzip',
    );
    // (Continuation tokens past 1,000 keys: s3-store.test.ts; 1,001 PUTs to moto take 8 s.)
    const names = Array.from({ length: 20 }, (_, i) => `raw/x/${String(i).padStart(4, '0')}`);
    await Promise.all(names.map((key) => lake.put(key, Buffer.from('x'), 'text/plain')));
    expect((await lake.get('readings/dt=2026-11-25/hour=06/a.ndjson.gz')).toString()).toBe('{"a":1}\n');
    await expect(lake.get('readings/none')).rejects.toThrow(/NoSuchKey|does not exist/);
    const keys = await lake.list('raw/x/');
    expect(keys).toEqual(names);
    await lake.delete('raw/x/0000');
    expect(await lake.list('raw/x/')).toHaveLength(19);
  });

  it('SQS: enqueues an envelope as the http function does', async () => {
    const sqs = new SQSClient(moto.clientConfig);
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'ingest' }));
    const id = await sqsEnqueue(
      sqs,
      QueueUrl as string,
    )({ payload: 'e30=', topic: '/v1/telemetry', receivedAt: 1, source: 'http' });
    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
    expect(Messages?.map((m) => [m.MessageId, JSON.parse(m.Body ?? '').topic])).toEqual([
      [id, '/v1/telemetry'],
    ]);
  });

  it('DynamoDB registry: conditional puts by version, batch gets past 100 keys, scans', async () => {
    const dynamodb = new DynamoDBClient(moto.clientConfig);
    await createTable(dynamodb, 'registry', 'deviceId');
    const registry = dynamodbRegistry(dynamodb, 'registry');
    const record = (deviceId: string, version: number): DeviceRecord => ({
      deviceId,
      deviceType: 'thermo',
      attributes: {},
      firstSeen: 1,
      lastSeen: 2,
      lastValues: { temp: 21 },
      lostMessages: 0,
      alerts: {},
      version,
    });
    expect(await registry.put(record('d-1', 1), 0)).toBe(true);
    // Someone wrote first: the condition fails and the caller retries.
    expect(await registry.put(record('d-1', 2), 0)).toBe(false);
    expect(await registry.put(record('d-1', 2), 1)).toBe(true);
    expect(await registry.put(record('d-1', 3), 1)).toBe(false);
    for (let i = 0; i < 120; i++) await registry.put(record(`m-${i}`, 1), 0);
    const ids = Array.from({ length: 120 }, (_, i) => `m-${i}`);
    expect((await registry.get([...ids, 'd-1', 'nobody'])).size).toBe(121);
    expect((await registry.list()).length).toBe(121);
    expect((await registry.get(['d-1'])).get('d-1')?.version).toBe(2);
  }, 60_000);

  it('DynamoDB claims: a key is claimed once, again by the same message, refused to another', async () => {
    const dynamodb = new DynamoDBClient(moto.clientConfig);
    await createTable(dynamodb, 'claims', 'pk');
    const claims = dynamodbClaims(dynamodb, 'claims');
    expect(await claims.claim([{ key: 'sigfox#1A#seq:1@5', messageId: 'm1' }])).toEqual(new Set());
    expect(await claims.claim([{ key: 'sigfox#1A#seq:1@5', messageId: 'm1' }])).toEqual(new Set());
    expect(await claims.claim([{ key: 'sigfox#1A#seq:1@5', messageId: 'm2' }])).toEqual(
      new Set(['sigfox#1A#seq:1@5']),
    );
  });

  it('SNS: publishes alerts in batches of ten, attributes delivered to a subscribed queue', async () => {
    const sns = new SNSClient(moto.clientConfig);
    const sqs = new SQSClient(moto.clientConfig);
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: 'alerts' }));
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'inbox' }));
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }),
    );
    await sns.send(new SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: Attributes?.QueueArn }));
    const events = Array.from({ length: 12 }, (_, i) => ({
      deviceId: `d-${i}`,
      deviceType: 'thermo',
      rule: 'hot',
      severity: 'critical' as const,
      state: 'raised' as const,
      metric: 'temp',
      value: 31,
      comparison: '>' as const,
      threshold: 30,
      time: Date.parse('2026-11-25T06:00:00Z'),
    }));
    await snsAlerts(sns, TopicArn as string).publish(events);
    const received: { MessageAttributes: Record<string, { Value: string }>; Subject: string }[] = [];
    for (let round = 0; round < 5 && received.length < 12; round++) {
      const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
      for (const m of Messages ?? []) received.push(JSON.parse(m.Body ?? '{}'));
    }
    expect(received).toHaveLength(12);
    expect(received[0]?.MessageAttributes.severity?.Value).toBe('critical');
    expect(received[0]?.Subject).toBe('[critical] RAISED: hot: d-0 temp 31 (> 30)');
  });

  it('Timestream: writes multi-measure records in calls of 100 and sends the recent-readings query', async () => {
    const write = new TimestreamWriteClient(moto.clientConfig);
    await write.send(new CreateDatabaseCommand({ DatabaseName: 'iot' }));
    await write.send(new CreateTimestreamTable({ DatabaseName: 'iot', TableName: 'readings' }));
    const sink = timestreamSink(write, 'iot', 'readings');
    const readings: Reading[] = Array.from({ length: 150 }, (_, i) => ({
      deviceId: `d-${i % 3}`,
      deviceType: 'thermo',
      time: Date.parse('2026-11-25T06:00:00Z') + i * 1000,
      receivedAt: Date.parse('2026-11-25T06:00:00Z') + i * 1000,
      source: 'mqtt',
      messageId: `m-${i}`,
      key: `msg:m-${i}#0`,
      metrics: { temp: 20 + i / 10, door: i % 2 === 0, fw: '1.2' },
    }));
    for (let i = 0; i < readings.length; i += sink.maxRecordsPerWrite) {
      expect(await sink.write(readings.slice(i, i + sink.maxRecordsPerWrite))).toEqual([]);
    }
    // moto runs no SQL: it answers each exact query string with the results it is given, in
    // order. So the query strings are what is checked here, and the pages made of the answers.
    const recent = timestreamRecentReadings(new TimestreamQueryClient(moto.clientConfig), {
      database: 'iot',
      table: 'readings',
      windowMs: 86_400_000,
    });
    const from = Date.parse('2026-11-25T05:00:00Z');
    const to = Date.parse('2026-11-25T07:00:00Z');
    const at = Date.parse('2026-11-25T06:00:00Z');
    const queryFrom = (start: number, limit: number) =>
      `SELECT * FROM "iot"."readings" WHERE device_id = 'd-1' AND measure_name = 'telemetry' AND time >= from_milliseconds(${start}) AND time < from_milliseconds(${to}) ORDER BY time, device_type, source LIMIT ${limit}`;
    const columnInfo = ['device_id', 'device_type', 'source', 'measure_name', 'time', 'temp'].map((name) => ({
      Name: name,
      Type: { ScalarType: name === 'temp' ? 'DOUBLE' : name === 'time' ? 'TIMESTAMP' : 'VARCHAR' },
    }));
    const record = (time: string, source: string, temp: number) => ({
      Data: ['d-1', 'thermo', source, 'telemetry', `${time}.000000000`, String(temp)].map((v) => ({
        ScalarValue: v,
      })),
    });
    // Two records at 06:00:00 (two ways in), one a second later.
    const records = [
      record('2026-11-25 06:00:00', 'mqtt', 20),
      record('2026-11-25 06:00:00', 'sigfox', 21),
      record('2026-11-25 06:00:01', 'mqtt', 22),
    ];
    await moto.api('/moto-api/static/timestream/query-results', {
      region: 'us-east-1',
      results: {
        // Page 1 (2 records and 1 to know more follow): first an empty part with a NextToken.
        [queryFrom(from, 3)]: [
          { QueryId: 'q1', ColumnInfo: columnInfo, Rows: [], NextToken: 'part-2' },
          { QueryId: 'q1', ColumnInfo: columnInfo, Rows: records },
        ],
        // Page 2 starts again at the last time, skipping the 2 records there.
        [queryFrom(at, 5)]: [{ QueryId: 'q2', ColumnInfo: columnInfo, Rows: records }],
      },
    });
    const first = await recent.page({ deviceId: 'd-1', from, to }, undefined, { pageSize: 2 });
    expect(first.rows.map((r) => r.value)).toEqual([20, 21]);
    expect(JSON.parse(Buffer.from((first.next as string).slice(3), 'base64url').toString())).toEqual({
      q: expect.any(String),
      at,
      skip: 2,
    });
    const second = await recent.page({ deviceId: 'd-1', from, to }, first.next, { pageSize: 2 });
    expect(second).toEqual({
      rows: [
        { time: '2026-11-25 06:00:01.000', metric: 'temp', value: 22, value_str: null, value_bool: null },
      ],
    });
  });

  it('Athena: runs a query, pages its results, and pages the query API at its largest page', async () => {
    const athena = new AthenaClient(moto.clientConfig);
    const columns = ['time', 'metric', 'value'];
    const row = (values: string[]) => ({ Data: values.map((v) => ({ VarCharValue: v })) });
    // moto answers the queries it is told to, in order: the header row first, as Athena does.
    const results = (count: number) => ({
      rows: [
        row(columns),
        ...Array.from({ length: count }, (_, i) =>
          row([`2026-11-25 06:00:${String(i % 60).padStart(2, '0')}`, 'temp', String(i)]),
        ),
      ],
      column_info: columns.map((name) => ({
        Name: name,
        Type: 'varchar',
        CatalogName: 'hive',
        SchemaName: '',
        TableName: '',
        Label: name,
        Precision: 0,
        Scale: 0,
        Nullable: 'UNKNOWN',
        CaseSensitive: false,
      })),
    });
    await moto.api('/moto-api/static/athena/query-results', { region: 'us-east-1', results: [results(3)] });
    const engine = athenaEngine(athena, { workGroup: 'primary', database: 'iot', bucket: 'lake', pollMs: 1 });
    const { rows } = await engine.query('SELECT time, metric, value FROM readings');
    expect(rows).toEqual([
      { time: '2026-11-25 06:00:00', metric: 'temp', value: '0' },
      { time: '2026-11-25 06:00:01', metric: 'temp', value: '1' },
      { time: '2026-11-25 06:00:02', metric: 'temp', value: '2' },
    ]);
    // The query API's largest page: Athena returns at most 1,000 rows a call, header included.
    await moto.api('/moto-api/static/athena/query-results', { region: 'us-east-1', results: [results(5)] });
    const paged = athenaPagedQueries(athena, { workGroup: 'primary', database: 'iot' });
    const plan = readingsPlan('d-1', 0, 1, undefined, ATHENA_MAX_RESULTS);
    const page = await paged.page(plan, undefined, { waitMs: 5000, pageSize: ATHENA_MAX_RESULTS });
    expect(page.rows).toHaveLength(5);
  });

  it('DynamoDB keys: adds, finds, lists, revokes and notes use; names are unique among live keys; the gate checks scopes', async () => {
    const dynamodb = new DynamoDBClient(moto.clientConfig);
    await createTable(dynamodb, 'keys', 'id');
    const store = dynamodbKeyStore(dynamodb, 'keys');
    const sigfox = createKey({ name: 'sigfox', scopes: ['ingest:sigfox'], devices: ['sf-*'] }, 1000);
    const reader = createKey({ name: 'reader', scopes: ['read'], rateLimit: 5 }, 2000);
    await store.add(sigfox.record);
    await store.add(reader.record);
    await expect(store.add(createKey({ name: 'sigfox', scopes: ['read'] }, 3000).record)).rejects.toThrow(
      KeySpecError,
    );
    expect(await store.find(sigfox.record.id)).toEqual(sigfox.record);
    expect(await store.find('0000000000000000')).toBeUndefined();
    await store.touch(new Map([[reader.record.id, 5000]]));
    expect((await store.list()).map((k) => [k.name, k.lastUsedAt])).toEqual([
      ['sigfox', undefined],
      ['reader', 5000],
    ]);
    const gate = dynamodbGate(
      dynamodb,
      (error) => {
        throw error;
      },
      { KEYS_TABLE: 'keys' },
    );
    const admitted = await gate.admit(
      { headers: { authorization: `Bearer ${sigfox.key}` } },
      'ingest:sigfox',
    );
    expect(isResponse(admitted) ? admitted.statusCode : admitted.name).toBe('sigfox');
    const wrongRoute = await gate.admit({ headers: { 'x-api-key': sigfox.key } }, 'ingest:ttn');
    expect(isResponse(wrongRoute) && wrongRoute.statusCode).toBe(403);
    expect(await store.revoke('sigfox', 6000)).toBe(true);
    expect(await store.revoke('sigfox', 7000)).toBe(false);
    expect((await store.find(sigfox.record.id))?.revokedAt).toBe(6000);
    // Revoked: the name is free again, and a fresh gate (a new container) refuses the key.
    await store.add(createKey({ name: 'sigfox', scopes: ['ingest:sigfox'] }, 8000).record);
    const fresh = dynamodbGate(dynamodb, () => undefined, { KEYS_TABLE: 'keys' });
    const refused = await fresh.admit(
      { headers: { authorization: `Bearer ${sigfox.key}` } },
      'ingest:sigfox',
    );
    expect(isResponse(refused) && refused.statusCode).toBe(401);
  });

  it('IoT Core: provisions a device of its stage type with its certificate and policy, and deprovisions it', async () => {
    const iot = new IoTClient(moto.clientConfig);
    await createIotStage(iot, 'dev', ['thermo']);
    const done = await provision(iot, {
      thingName: 'thermo-1',
      deviceType: 'thermo',
      attributes: { site: 'north' },
      policyName: 'iot_pipeline_dev_device',
      stage: 'dev',
    });
    expect(done.certificatePem).toContain('BEGIN CERTIFICATE');
    expect(done.endpoint).toMatch(/-ats\.iot\.us-east-1\.amazonaws\.com$/);
    const thing = await iot.send(new DescribeThingCommand({ thingName: 'thermo-1' }));
    expect(thing).toMatchObject({
      thingTypeName: 'iot_pipeline_dev_thermo',
      attributes: { site: 'north', deviceType: 'thermo' },
    });
    expect((await iot.send(new ListThingPrincipalsCommand({ thingName: 'thermo-1' }))).principals).toEqual([
      done.certificateArn,
    ]);
    await expect(
      provision(iot, {
        thingName: 'thermo-1',
        deviceType: 'thermo',
        attributes: {},
        policyName: 'iot_pipeline_dev_device',
        stage: 'dev',
      }),
    ).rejects.toThrow('already provisioned');
    expect(await deprovision(iot, 'thermo-1', async () => undefined)).toEqual({ certificates: 1 });
    await expect(iot.send(new DescribeThingCommand({ thingName: 'thermo-1' }))).rejects.toThrow();
    // A thing made by hand, of the stage's type but without its deviceType: kept, and given it.
    await iot.send(
      new CreateThingCommand({ thingName: 'thermo-2', thingTypeName: 'iot_pipeline_dev_thermo' }),
    );
    const reused = await provision(iot, {
      thingName: 'thermo-2',
      deviceType: 'thermo',
      attributes: {},
      policyName: 'iot_pipeline_dev_device',
      stage: 'dev',
    });
    expect(reused.reusedThing).toBe(true);
    expect((await iot.send(new DescribeThingCommand({ thingName: 'thermo-2' }))).attributes).toEqual({
      deviceType: 'thermo',
    });
  });
});
