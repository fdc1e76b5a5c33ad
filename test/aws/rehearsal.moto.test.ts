/**
 * A deployment rehearsal: the synthesized template, with its Lambda assets, created as
 * a stack in moto's CloudFormation, as far as moto can create its resource types (the
 * others are taken out, with what refers to them, and listed); then the handlers run
 * against the resources that stack created: one HTTP post and one MQTT envelope end up
 * as lake objects and registry items.
 */
import { execFileSync } from 'node:child_process';
import {
  CloudFormationClient,
  CreateStackCommand,
  DescribeStacksCommand,
  ListStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
  SQSEvent,
} from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { dynamodbKeyStore } from '../../lambdas/adapters/aws/dynamodb-keys.ts';
import { createKey } from '../../lambdas/core/access/keys.ts';
import { synthPipeline } from '../lib/synth.ts';
import { skipWithout } from '../support/aws-tools.ts';
import { mqttMessage, sqsEvent } from '../support/fakes.ts';
import { type Moto, startMoto } from '../support/moto.ts';

type Template = {
  Resources: Record<string, { Type: string; Properties?: unknown; DependsOn?: string | string[] }>;
  [section: string]: unknown;
};

/** The resource types moto's CloudFormation creates (its model map), asked of moto itself. */
function motoResourceTypes(): Set<string> {
  const json = execFileSync(
    'python3',
    [
      '-c',
      'import json; from moto.cloudformation.parsing import get_model_map, NULL_MODELS; print(json.dumps(sorted(list(get_model_map()) + list(NULL_MODELS))))',
    ],
    { encoding: 'utf8' },
  );
  return new Set(JSON.parse(json) as string[]);
}

/**
 * The template without the resources moto cannot create: each reference to one (Ref,
 * GetAtt, Sub, DependsOn) becomes a placeholder, outputs and the bootstrap rule go.
 */
function forMoto(template: Template, supported: Set<string>): { template: Template; removed: string[] } {
  const removed = Object.entries(template.Resources)
    .filter(([, r]) => !supported.has(r.Type))
    .map(([id]) => id);
  const gone = new Set(removed);
  // An ARN: IAM policies that named the resource must still parse.
  const placeholder = (id: string) => `arn:aws:removed:us-east-1:123456789012:${id}`;
  const replace = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(replace);
    if (value && typeof value === 'object') {
      const object = value as Record<string, unknown>;
      const ref = object.Ref;
      if (typeof ref === 'string' && gone.has(ref)) return placeholder(ref);
      const att = object['Fn::GetAtt'];
      if (Array.isArray(att) && gone.has(String(att[0]))) return placeholder(String(att[0]));
      const sub = object['Fn::Sub'];
      if (typeof sub === 'string') {
        return {
          'Fn::Sub': sub.replace(/\$\{([A-Za-z0-9]+)(\.[A-Za-z.]+)?\}/g, (m, id: string) =>
            gone.has(id) ? `removed-${id}` : m,
          ),
        };
      }
      return Object.fromEntries(Object.entries(object).map(([k, v]) => [k, replace(v)]));
    }
    return value;
  };
  const resources = Object.fromEntries(
    Object.entries(template.Resources)
      .filter(([id]) => !gone.has(id))
      .map(([id, r]) => {
        const dependsOn = [r.DependsOn ?? []].flat().filter((d) => !gone.has(d));
        const { DependsOn: _, ...rest } = r;
        return [
          id,
          { ...(replace(rest) as typeof r), ...(dependsOn.length ? { DependsOn: dependsOn } : {}) },
        ];
      }),
  );
  const { Outputs: _o, Rules: _r, Parameters: _p, ...sections } = template;
  return { template: { ...sections, Resources: resources }, removed };
}

describe.skipIf(skipWithout('moto_server', 'botocore'))('deployment rehearsal in moto', () => {
  let moto: Moto;
  let physical: Map<string, string>;
  let types: Map<string, string>;
  let removedTypes: string[];
  beforeAll(async () => {
    moto = await startMoto();
    const { template } = synthPipeline();
    const json = template.toJSON() as Template;
    const { template: deployable, removed } = forMoto(json, motoResourceTypes());
    removedTypes = [...new Set(removed.map((id) => json.Resources[id]?.Type ?? ''))].sort();
    // The Lambda code assets, where the template's S3Bucket/S3Key point (the bootstrap bucket).
    const s3 = new S3Client(moto.clientConfig);
    const bucket = 'cdk-hnb659fds-assets-123456789012-us-east-1';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const keys = JSON.stringify(deployable).match(/[0-9a-f]{64}\.zip/g) ?? [];
    for (const key of new Set(keys)) {
      // moto stores the function without running it: any zip stands for the bundle here.
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: Buffer.from('UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==', 'base64'),
        }),
      );
    }
    const cfn = new CloudFormationClient(moto.clientConfig);
    await cfn.send(
      new CreateStackCommand({
        StackName: 'IotPipeline-dev',
        TemplateBody: JSON.stringify(deployable),
        Capabilities: ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM', 'CAPABILITY_AUTO_EXPAND'],
      }),
    );
    const { Stacks } = await cfn.send(new DescribeStacksCommand({ StackName: 'IotPipeline-dev' }));
    if (Stacks?.[0]?.StackStatus !== 'CREATE_COMPLETE') {
      throw new Error(`stack ${Stacks?.[0]?.StackStatus}: ${Stacks?.[0]?.StackStatusReason}`);
    }
    const listed =
      (await cfn.send(new ListStackResourcesCommand({ StackName: 'IotPipeline-dev' })))
        .StackResourceSummaries ?? [];
    physical = new Map(listed.map((r) => [r.LogicalResourceId ?? '', r.PhysicalResourceId ?? '']));
    types = new Map(listed.map((r) => [r.LogicalResourceId ?? '', r.ResourceType ?? '']));
  }, 120_000);
  afterAll(async () => {
    vi.unstubAllEnvs();
    await moto?.stop();
  });

  const find = (prefix: string, type: string) => {
    const id = [...physical.keys()].find((k) => k.startsWith(prefix) && types.get(k) === type);
    if (!id) throw new Error(`no ${type} ${prefix}* in the rehearsed stack`);
    return physical.get(id) as string;
  };

  it('creates what moto supports, and names what it cannot create', () => {
    for (const type of [
      'AWS::S3::Bucket',
      'AWS::DynamoDB::Table',
      'AWS::SQS::Queue',
      'AWS::SNS::Topic',
      'AWS::Lambda::Function',
      'AWS::IAM::Role',
      'AWS::IoT::Policy',
      'AWS::Events::Rule',
    ]) {
      expect([...types.values()], type).toContain(type);
    }
    // Proved by cfn-lint and the construct tests instead; on AWS, by the first `cdk deploy`.
    expect(removedTypes).toEqual([
      'AWS::ApiGatewayV2::Api',
      'AWS::ApiGatewayV2::Integration',
      'AWS::ApiGatewayV2::Route',
      'AWS::ApiGatewayV2::Stage',
      'AWS::Athena::NamedQuery',
      'AWS::Athena::WorkGroup',
      'AWS::CloudWatch::Alarm',
      'AWS::Glue::Database',
      'AWS::Glue::Table',
      'AWS::IoT::TopicRule',
      'AWS::S3::BucketPolicy',
      'AWS::SNS::TopicPolicy',
      'AWS::SQS::QueuePolicy',
      'Custom::S3AutoDeleteObjects',
    ]);
  });

  it("takes an HTTP post and an MQTT envelope through the handlers into the stack's lake and registry", async () => {
    // A key made in the stack's keys table, as `keys create --stage` does.
    const keysTable = find('KeysTable', 'AWS::DynamoDB::Table');
    const { key, record } = createKey({ name: 'rehearsal', scopes: ['ingest:telemetry'] }, Date.now());
    await dynamodbKeyStore(new DynamoDBClient(moto.clientConfig), keysTable).add(record);
    const lake = find('LakeBucket', 'AWS::S3::Bucket');
    const registry = find('RegistryTable', 'AWS::DynamoDB::Table');
    // moto names the queue with AWS's own URL; the SDK would send to its host: keep it on moto.
    const queueUrl = find('IngestQueue', 'AWS::SQS::Queue').replace(/^https:\/\/sqs\.[^/]+/, moto.endpoint);
    const estateUrl = find('EstateQueue', 'AWS::SQS::Queue').replace(/^https:\/\/sqs\.[^/]+/, moto.endpoint);
    for (const [name, value] of Object.entries({
      ...moto.env,
      LAKE_BUCKET: lake,
      REGISTRY_TABLE: registry,
      CLAIMS_TABLE: find('ClaimsTable', 'AWS::DynamoDB::Table'),
      ALERT_TOPIC_ARN: find('AlertsTopic', 'AWS::SNS::Topic'),
      INGEST_QUEUE_URL: queueUrl,
      ESTATE_QUEUE_URLS: estateUrl,
      KEYS_TABLE: keysTable,
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      POWERTOOLS_DEV: 'true',
    })) {
      vi.stubEnv(name, value);
    }
    const { handler: http } = (await import('../../lambdas/handlers/http.ts')) as {
      handler: (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;
    };
    const { handler: ingest } = (await import('../../lambdas/handlers/ingest.ts')) as {
      handler: (event: SQSEvent, context: Context) => Promise<{ batchItemFailures: unknown[] }>;
    };
    const { handler: estate } = (await import('../../lambdas/handlers/estate.ts')) as {
      handler: (event: SQSEvent, context: Context) => Promise<{ batchItemFailures: unknown[] }>;
    };
    const posted = await http({
      rawPath: '/v1/telemetry',
      rawQueryString: '',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ $id: 'h-1', temp: 21 }),
      isBase64Encoded: false,
      requestContext: { http: { method: 'POST' }, requestId: 'r-1', timeEpoch: Date.now() },
    } as unknown as APIGatewayProxyEventV2);
    expect(posted.statusCode).toBe(202);
    const sqs = new SQSClient(moto.clientConfig);
    const { Messages } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10 }),
    );
    const queued = { messageId: Messages?.[0]?.MessageId as string, body: Messages?.[0]?.Body as string };
    const result = await ingest(
      sqsEvent(queued, mqttMessage('m-1', { temp: 22 }, 'dt/thermo/mq-1', Date.now())),
      { functionName: 'ingest', awsRequestId: 'r-2' } as Context,
    );
    expect(result.batchItemFailures).toEqual([]);
    const objects = await new S3Client(moto.clientConfig).send(new ListObjectsV2Command({ Bucket: lake }));
    const prefixes = new Set(objects.Contents?.map((o) => o.Key?.split('/')[0]));
    expect([...prefixes].sort()).toEqual(['raw', 'readings']);
    // The registry moves on from the stack's estate queue, through the estate function.
    const deltas = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: estateUrl, MaxNumberOfMessages: 10 }),
    );
    expect(deltas.Messages).toHaveLength(1);
    const window = (deltas.Messages ?? []).map((m) => ({
      messageId: m.MessageId as string,
      body: m.Body as string,
    }));
    expect(
      (await estate(sqsEvent(...window), { functionName: 'estate', awsRequestId: 'r-3' } as Context))
        .batchItemFailures,
    ).toEqual([]);
    const items = await new DynamoDBClient(moto.clientConfig).send(new ScanCommand({ TableName: registry }));
    expect(items.Items?.map((i) => i.deviceId?.S).sort()).toEqual(['h-1', 'mq-1']);
  });
});
