/**
 * The five Lambda handlers, as Lambda loads them, against moto's server: their clients
 * are the ones they create at cold start (`new XClient({})`, pointed at moto by
 * AWS_ENDPOINT_URL), every request checked against AWS's models by the test setup. One
 * telemetry POST and one MQTT envelope go through the http and ingest functions into
 * the lake, the registry and an alert; the offline check, the query API and the daily
 * job then run over what they left.
 */
import { AthenaClient, GetQueryExecutionCommand, ListQueryExecutionsCommand } from '@aws-sdk/client-athena';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
  SQSEvent,
} from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { dynamodbKeyStore } from '../../lambdas/adapters/aws/dynamodb-keys.ts';
import { dynamodbRegistry } from '../../lambdas/adapters/aws/dynamodb-registry.ts';
import { createKey, type KeySpec } from '../../lambdas/core/access/keys.ts';
import { skipWithout } from '../support/aws-tools.ts';
import { mqttMessage, sqsEvent } from '../support/fakes.ts';
import { createRegistryTable, createTable, type Moto, startMoto } from '../support/moto.ts';
import {
  EXPECTED,
  MATRIX_KEYS,
  type MatrixKey,
  matrixStatus,
  ROUTES,
  type Route,
  rowTitle,
  UNKNOWN_KEY,
} from '../support/permission-matrix.ts';

/** The keys of the permission matrix, each made in the keys table before the functions start. */
const SPECS: Record<MatrixKey, KeySpec> = MATRIX_KEYS;
const MADE = Object.fromEntries(Object.entries(SPECS).map(([k, spec]) => [k, createKey(spec, Date.now())]));
const KEYS = Object.fromEntries(Object.entries(MADE).map(([k, made]) => [k, made.key])) as Record<
  keyof typeof SPECS,
  string
>;
const KEY = KEYS.both as string;
const context = { functionName: 'ingest', awsRequestId: 'req-1' } as Context;

function api(method: string, path: string, body = '', query = '', key = KEY): APIGatewayProxyEventV2 {
  return {
    rawPath: path,
    rawQueryString: query,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body,
    isBase64Encoded: false,
    requestContext: { http: { method }, requestId: `req-${Math.random()}`, timeEpoch: Date.now() },
  } as unknown as APIGatewayProxyEventV2;
}

type ApiHandler = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

describe.skipIf(skipWithout('moto_server', 'botocore'))('Lambda handlers against moto', () => {
  let moto: Moto;
  let http: ApiHandler;
  let query: ApiHandler;
  let ingest: (event: SQSEvent, context: Context) => Promise<{ batchItemFailures: unknown[] }>;
  let estate: (event: SQSEvent, context: Context) => Promise<{ batchItemFailures: unknown[] }>;
  let offline: () => Promise<{ raised: number }>;
  let daily: (event: { day?: string }) => Promise<{ day: string; reportDays: number }>;
  let sqs: SQSClient;
  let queueUrl: string;
  let inboxUrl: string;
  let estateUrl: string;

  beforeAll(async () => {
    moto = await startMoto();
    const config = moto.clientConfig;
    const s3 = new S3Client(config);
    await s3.send(new CreateBucketCommand({ Bucket: 'lake' }));
    const dynamodb = new DynamoDBClient(config);
    await createRegistryTable(dynamodb, 'registry');
    await createTable(dynamodb, 'claims', 'pk');
    await createTable(dynamodb, 'keys', 'id');
    const keys = dynamodbKeyStore(dynamodb, 'keys');
    for (const made of Object.values(MADE)) await keys.add(made.record);
    await keys.revoke('revoked', Date.now());
    sqs = new SQSClient(config);
    queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'ingest' }))).QueueUrl as string;
    inboxUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'inbox' }))).QueueUrl as string;
    estateUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'estate' }))).QueueUrl as string;
    const sns = new SNSClient(config);
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: 'alerts' }));
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: inboxUrl, AttributeNames: ['QueueArn'] }),
    );
    await sns.send(new SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: Attributes?.QueueArn }));

    for (const [name, value] of Object.entries({
      ...moto.env,
      LAKE_BUCKET: 'lake',
      REGISTRY_TABLE: 'registry',
      CLAIMS_TABLE: 'claims',
      ALERT_TOPIC_ARN: TopicArn as string,
      INGEST_QUEUE_URL: queueUrl,
      ESTATE_QUEUE_URLS: estateUrl,
      KEYS_TABLE: 'keys',
      INGEST_FUNCTION_NAME: 'ingest',
      ATHENA_WORKGROUP: 'primary',
      GLUE_DATABASE: 'iot_pipeline_dev',
      PIPELINE_RUNTIME_CONFIG: JSON.stringify({
        alertRules: [{ name: 'hot', metric: 'temp', comparison: '>', threshold: 30, severity: 'critical' }],
        offline: { after: '1h' },
      }),
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      POWERTOOLS_METRICS_NAMESPACE: 'Test',
      POWERTOOLS_DEV: 'true',
    })) {
      vi.stubEnv(name, value);
    }
    ({ handler: http } = await import('../../lambdas/handlers/http.ts'));
    ({ handler: ingest } = await import('../../lambdas/handlers/ingest.ts'));
    ({ handler: estate } = await import('../../lambdas/handlers/estate.ts'));
    ({ handler: offline } = await import('../../lambdas/handlers/offline.ts'));
    ({ handler: query } = await import('../../lambdas/handlers/query.ts'));
    ({ handler: daily } = await import('../../lambdas/handlers/analytics.ts'));
  }, 60_000);
  afterAll(async () => {
    vi.unstubAllEnvs();
    await moto?.stop();
  });

  it('takes a POST through the http function and an MQTT envelope through the ingest function into the lake, and through the estate queue and function into the registry and an alert', async () => {
    const posted = await http(api('POST', '/v1/telemetry', JSON.stringify({ $id: 'h-1', temp: 35 })));
    expect(posted.statusCode).toBe(202);
    const { Messages } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10 }),
    );
    expect(Messages).toHaveLength(1);
    const fromHttp = { messageId: Messages?.[0]?.MessageId as string, body: Messages?.[0]?.Body as string };
    const fromMqtt = mqttMessage('m-1', { temp: 21 }, 'dt/thermo/mq-1', Date.now());

    const result = await ingest(sqsEvent(fromHttp, fromMqtt), context);

    expect(result.batchItemFailures).toEqual([]);
    const s3 = new S3Client(moto.clientConfig);
    const keys =
      (await s3.send(new ListObjectsV2Command({ Bucket: 'lake' }))).Contents?.map((o) => o.Key) ?? [];
    expect(keys.filter((k) => k?.startsWith('raw/'))).toHaveLength(2);
    expect(keys.filter((k) => k?.startsWith('readings/')).length).toBeGreaterThan(0);
    // The registry is the estate function's: nothing there until it has run.
    const registry = new DynamoDBClient(moto.clientConfig);
    expect((await registry.send(new ScanCommand({ TableName: 'registry' }))).Items).toEqual([]);
    const queued = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: estateUrl, MaxNumberOfMessages: 10 }),
    );
    expect(queued.Messages).toHaveLength(1);
    const deltas = (queued.Messages ?? []).map((m) => ({
      messageId: m.MessageId as string,
      body: m.Body as string,
    }));
    expect((await estate(sqsEvent(...deltas), context)).batchItemFailures).toEqual([]);
    // The same window again (SQS delivers at least once): nothing changes, no second alert.
    expect((await estate(sqsEvent(...deltas), context)).batchItemFailures).toEqual([]);
    const devices = await registry.send(new ScanCommand({ TableName: 'registry' }));
    expect(devices.Items?.map((i) => i.deviceId?.S).sort()).toEqual(['h-1', 'mq-1']);
    const alerts = await sqs.send(new ReceiveMessageCommand({ QueueUrl: inboxUrl, MaxNumberOfMessages: 10 }));
    expect(alerts.Messages?.map((m) => JSON.parse(m.Body ?? '{}').MessageAttributes.rule.Value)).toEqual([
      'hot',
    ]);
  });

  it('answers the query API: the estate from the registry, readings from Athena at its largest page', async () => {
    const estate = await query(api('GET', '/v1/devices'));
    expect(estate.statusCode).toBe(200);
    expect(
      JSON.parse(String(estate.body))
        .devices.map((d: { deviceId: string }) => d.deviceId)
        .sort(),
    ).toEqual(['h-1', 'mq-1']);
    // The estate: both devices heard just now (online, offline after 1 h), one open alert (hot: critical);
    // CloudWatch has none of the ingest function's counts here, and daily_uptime no row.
    const glance = await query(api('GET', '/v1/estate'));
    expect(glance.statusCode).toBe(200);
    expect(JSON.parse(String(glance.body))).toMatchObject({
      devices: { total: 2, online: 2, offline: 0, never: 0 },
      alerts: { open: 1, bySeverity: { critical: 1 } },
      traffic: { source: 'cloudwatch', messages: 0, quarantineRate: null },
      uptime: { last24h: null, last7d: null },
    });
    const paged = JSON.parse(String((await query(api('GET', '/v1/devices', '', 'limit=1&count=true'))).body));
    expect(paged).toMatchObject({
      count: 1,
      total: 2,
      devices: [{ deviceId: 'h-1' }],
      next: expect.any(String),
    });
    const rest = await query(api('GET', '/v1/devices', '', `limit=1&next=${paged.next}`));
    expect(JSON.parse(String(rest.body))).toMatchObject({ count: 1, devices: [{ deviceId: 'mq-1' }] });
    const readings = await query(api('GET', '/v1/devices/h-1/readings', '', 'limit=1000'));
    expect(readings.statusCode).toBe(200);
    // moto ran no SQL: no rows, and no next page.
    expect(JSON.parse(String(readings.body))).toMatchObject({ rows: [] });
    expect(JSON.parse(String(readings.body)).next).toBeUndefined();
  });

  describe('the permission matrix: every route by every key, through the functions', () => {
    for (const [key, row] of Object.entries(EXPECTED)) {
      it(rowTitle(key, row), async () => {
        for (const [route, status] of Object.entries(row)) {
          const [method, target, body] = ROUTES[route as Route];
          // API Gateway hands the path and the query string apart.
          const [path = target, search = ''] = target.split('?');
          const presented = key === 'unknown' ? UNKNOWN_KEY : (KEYS[key as MatrixKey] as string);
          const response = await (method === 'POST' ? http : query)(
            api(method, path, body, search, presented),
          );
          expect([route, matrixStatus(response.statusCode ?? 0)]).toEqual([route, status]);
          if (status !== 2) expect(JSON.parse(String(response.body)).message).toEqual(expect.any(String));
        }
      });
    }

    it('refuses a write as a device the registry knows from MQTT (403 with the reason), and lists only its own devices to a device key', async () => {
      const impersonated = await http(
        api('POST', '/v1/telemetry', JSON.stringify({ $id: 'mq-1', temp: 20 })),
      );
      expect(impersonated.statusCode).toBe(403);
      expect(JSON.parse(String(impersonated.body))).toMatchObject({
        error: 'foreign_device',
        message: expect.stringContaining('known from mqtt'),
      });
      const own = await query(api('GET', '/v1/devices', '', '', KEYS.otherDevices));
      expect(JSON.parse(String(own.body))).toMatchObject({ count: 0, devices: [] });
    });
  });

  it('runs the offline check over the registry and the daily job on Athena, writing the manifest', async () => {
    const silentSince = Date.now() - 2 * 3_600_000;
    await dynamodbRegistry(new DynamoDBClient(moto.clientConfig), 'registry').put(
      {
        deviceId: 'quiet-1',
        deviceType: 'thermo',
        attributes: {},
        firstSeen: silentSince,
        lastSeen: silentSince,
        lastValues: {},
        lostMessages: 0,
        alerts: {},
        version: 1,
      },
      0,
    );
    expect(await offline()).toEqual({ raised: 1 });
    const alert = await sqs.send(new ReceiveMessageCommand({ QueueUrl: inboxUrl, MaxNumberOfMessages: 10 }));
    expect(alert.Messages?.map((m) => JSON.parse(m.Body ?? '{}').MessageAttributes.rule.Value)).toEqual([
      'offline',
    ]);
    // Kept in the alert history too, and listed open by the query function.
    const history = await new S3Client(moto.clientConfig).send(
      new ListObjectsV2Command({ Bucket: 'lake', Prefix: 'alerts/' }),
    );
    expect(history.Contents?.length).toBeGreaterThanOrEqual(1);
    const open = await query(api('GET', '/v1/alerts', '', '', KEY));
    expect(JSON.parse(String(open.body)).rows).toContainEqual(
      expect.objectContaining({ deviceId: 'quiet-1', rule: 'offline', severity: 'warning' }),
    );
    const report = await daily({ day: '2026-11-24' });
    expect(report.day).toBe('2026-11-24');
    const s3 = new S3Client(moto.clientConfig);
    const manifest = await s3.send(new ListObjectsV2Command({ Bucket: 'lake', Prefix: 'reports/' }));
    expect(manifest.Contents?.map((o) => o.Key)).toEqual(['reports/manifest.json']);
    // Four UNLOADs (curated readings, daily metrics, the report, uptime), as Athena received them.
    const athena = new AthenaClient(moto.clientConfig);
    const ids = (await athena.send(new ListQueryExecutionsCommand({}))).QueryExecutionIds ?? [];
    const sql = await Promise.all(
      ids.map(
        async (id) =>
          (await athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }))).QueryExecution?.Query ??
          '',
      ),
    );
    expect(sql.filter((q) => q.startsWith('UNLOAD'))).toHaveLength(4);
    // The uptime is measured by the deployed config's offline timeout (1 h).
    const uptime = sql.find((q) => q.includes("TO 's3://lake/curated/daily_uptime/dt=2026-11-24/'"));
    expect(uptime).toContain('CAST(3600000 AS BIGINT) AS timeout_ms');
  });
});
