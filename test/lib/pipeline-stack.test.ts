import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { VIEWS } from '../../lambdas/core/analytics/daily.ts';
import { SOURCES } from '../../lambdas/core/formats/index.ts';
import { lorawanRuleName, telemetryRuleName } from '../../lambdas/core/iot-names.ts';
import { synthPipeline } from './synth.ts';

type Synth = ReturnType<typeof synthPipeline>;
type Statement = { Action: string | string[]; Resource: unknown; Effect: string };

function statementsOf(synth: Synth, rolePrefix: string): Statement[] {
  const policies = synth.template.findResources('AWS::IAM::Policy');
  return Object.entries(policies)
    .filter(([id]) => id.startsWith(rolePrefix))
    .flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement as Statement[]);
}

const actionsOf = (statements: Statement[]) => statements.flatMap((s) => [s.Action].flat()).sort();

describe('PipelineStack (defaults)', () => {
  let synth: Synth;
  let withTimestream: Synth;
  beforeAll(() => {
    // Arrange + Act: one synth of the defaults and one with Timestream on, for the whole
    // file (cdk-nag runs inside each and throws on a finding).
    synth = synthPipeline();
    withTimestream = synthPipeline({ timestream: 'true' });
  });

  it('synthesizes with no unacknowledged cdk-nag AwsSolutions finding', () => {
    expect(synth.assembly.stacks).toHaveLength(1);
  });

  it('runs every Lambda on nodejs24.x arm64 with explicit memory and timeout', () => {
    const functions = synth.template.findResources('AWS::Lambda::Function');
    // CDK's own: the provider that empties the Athena results bucket on destroy (autoDeleteObjects).
    const provider = Object.keys(functions).filter((id) => id.startsWith('CustomS3AutoDeleteObjects'));
    expect(provider).toHaveLength(1);
    for (const id of provider) delete functions[id];
    // ingest, estate, http, query, offline, daily, compaction.
    expect(Object.keys(functions)).toHaveLength(7);
    for (const fn of Object.values(functions)) {
      expect(fn.Properties).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'] });
      expect(fn.Properties.MemorySize).toBeGreaterThanOrEqual(128);
      expect(fn.Properties.Timeout).toBeGreaterThan(0);
    }
  });

  it('gives the ingest queue a visibility timeout of six times the ingest function timeout and a DLQ', () => {
    const functions = synth.template.findResources('AWS::Lambda::Function', {
      Properties: { Description: Match.stringLikeRegexp('^Decodes') },
    });
    const timeout = Object.values(functions)[0]?.Properties.Timeout as number;
    synth.template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: timeout * 6,
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: Match.anyValue(), maxReceiveCount: 5 },
    });
  });

  it('triggers the ingest function from the queue in batches with partial batch responses', () => {
    synth.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IngestQueue'), 'Arn'] },
      BatchSize: 1000,
      MaximumBatchingWindowInSeconds: 20,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 5 },
    });
  });

  it('triggers the estate function from its queue a 300 s window at a time, two at most, with partial batch responses', () => {
    synth.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^EstateQueue'), 'Arn'] },
      BatchSize: 10_000,
      MaximumBatchingWindowInSeconds: 300,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 2 },
    });
    // Six times the function's 2 minutes, plus the window; and a DLQ.
    synth.template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 6 * 120 + 300,
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: Match.anyValue(), maxReceiveCount: 5 },
    });
  });

  it('routes dt/# (dt/<type>/<id> and dt/<type>/<id>/<fPort>) through one rule that base64-encodes every payload, with an S3 error action', () => {
    synth.template.hasResourceProperties('AWS::IoT::TopicRule', {
      RuleName: telemetryRuleName('dev'),
      TopicRulePayload: {
        AwsIotSqlVersion: '2016-03-23',
        Sql: Match.stringLikeRegexp(
          "^SELECT encode\\(\\*, 'base64'\\) AS payload, topic\\(\\) AS topic.* FROM 'dt/#'$",
        ),
        Actions: [{ Sqs: Match.objectLike({ UseBase64: false }) }],
        ErrorAction: { S3: Match.objectLike({ Key: Match.stringLikeRegexp('^errors/iot-rule/') }) },
      },
    });
  });

  it('gives IoT Core for LoRaWAN destinations a rule of their own: Basic Ingest only (no FROM), the envelope the ingest path reads, the same queue and error action', () => {
    const rules = synth.template.findResources('AWS::IoT::TopicRule', {
      Properties: { RuleName: lorawanRuleName('dev') },
    });
    const [rule] = Object.values(rules);
    expect(rule?.Properties.TopicRulePayload).toMatchObject({
      AwsIotSqlVersion: '2016-03-23',
      Sql: "SELECT encode(*, 'base64') AS payload, 'iot-lorawan' AS source, '$aws/rules/iot_pipeline_dev_lorawan' AS topic, timestamp() AS receivedAt",
      RuleDisabled: false,
      Actions: [{ Sqs: { UseBase64: false, QueueUrl: { Ref: expect.stringMatching(/^IngestQueue/) } } }],
      ErrorAction: { S3: expect.objectContaining({ Key: expect.stringMatching(/^errors\/iot-rule\//) }) },
    });
    // Both rules' actions run as one role, the one the telemetry rule has.
    const telemetry = Object.values(
      synth.template.findResources('AWS::IoT::TopicRule', {
        Properties: { RuleName: telemetryRuleName('dev') },
      }),
    )[0];
    expect(rule?.Properties.TopicRulePayload.Actions[0].Sqs.RoleArn).toEqual(
      telemetry?.Properties.TopicRulePayload.Actions[0].Sqs.RoleArn,
    );
  });

  it('outputs the LoRaWAN rule name and the destination role ARN for create-destination', () => {
    const outputs = synth.template.toJSON().Outputs as Record<
      string,
      { Value: unknown; Description?: string }
    >;
    expect(outputs.LorawanRuleName?.Value).toBe('iot_pipeline_dev_lorawan');
    expect(outputs.LorawanRuleName?.Description).toMatch(
      /aws iotwireless create-destination .*--expression-type RuleName --expression <this> --role-arn/,
    );
    expect(outputs.LorawanDestinationRoleArn?.Value).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^IngestLorawanDestinationRole/), 'Arn'],
    });
  });

  it('alarms when either IoT rule fails an action', () => {
    for (const name of [telemetryRuleName('dev'), lorawanRuleName('dev')]) {
      synth.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'Failure',
        Namespace: 'AWS/IoT',
        Dimensions: Match.arrayWith([{ Name: 'RuleName', Value: name }]),
      });
    }
  });

  it('lets the IoT rule role only enqueue and record rule errors', () => {
    expect(actionsOf(statementsOf(synth, 'IngestRuleRole'))).toEqual(['s3:PutObject', 'sqs:SendMessage']);
    synth.template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          Match.objectLike({
            Principal: { Service: 'iot.amazonaws.com' },
            Condition: {
              StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
              ArnLike: { 'aws:SourceArn': Match.anyValue() },
            },
          }),
        ],
      },
    });
  });

  it('scopes the ingest function to its queue, three lake prefixes and the Timestream table (when on)', () => {
    const statements = statementsOf(withTimestream, 'IngestFunction');
    for (const statement of statements) {
      // The one wildcard: the alert topic key's GenerateDataKey* (acknowledged, key-scoped).
      for (const action of [statement.Action].flat())
        if (action !== 'kms:GenerateDataKey*') expect(action).not.toMatch(/\*/);
    }
    const s3 = statements.find((s) => s.Action === 's3:PutObject');
    expect(JSON.stringify(s3?.Resource)).toMatch(/\/raw\/\*.*\/readings\/\*.*\/quarantine\/\*/);
    const starResources = statements.filter((s) => s.Resource === '*').flatMap((s) => [s.Action].flat());
    expect(starResources.sort()).toEqual([
      'timestream:DescribeEndpoints',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ]);
    const write = statements.find((s) => s.Action === 'timestream:WriteRecords');
    expect(write?.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^TimeSeriesTable/), 'Arn'] });
    const claim = statements.find((s) => s.Action === 'dynamodb:PutItem');
    expect(claim?.Resource).toEqual([{ 'Fn::GetAtt': [expect.stringMatching(/^ClaimsTable/), 'Arn'] }]);
    expect(
      statements
        .flatMap((s) => [s.Action].flat())
        .filter((a) => a.startsWith('dynamodb:'))
        .sort(),
    ).toEqual(['dynamodb:PutItem']);
    // The registry and alerts are the estate function's: the ingest function only sends it each batch.
    expect(statements.find((s) => s.Action === 'sns:Publish')).toBeUndefined();
    const send = statements.find((s) => s.Action === 'sqs:SendMessage');
    expect(send?.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^EstateQueue/), 'Arn'] });
  });

  it('keeps the device registry with point-in-time recovery and checks it for silent devices on a schedule', () => {
    synth.template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'deviceId', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
    const rule = Object.values(synth.template.findResources('AWS::Events::Rule')).find(
      (r) => r.Properties.ScheduleExpression === 'rate(5 minutes)',
    );
    expect(rule?.Properties.Targets[0].Arn).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^RegistryOfflineFunction/), 'Arn'],
    });
    const actions = actionsOf(statementsOf(synth, 'RegistryOfflineFunction'));
    expect(actions).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:Scan', 'sns:Publish']));
    expect(actions.filter((a) => a.startsWith('dynamodb:')).sort()).toEqual([
      'dynamodb:PutItem',
      'dynamodb:Scan',
    ]);
    for (const route of ['GET /v1/devices', 'GET /v1/devices/{id}/readings', 'GET /v1/devices/{id}/daily']) {
      synth.template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: route });
    }
    // The read side has its own function: reads the registry and runs Athena; it writes only query results.
    const statements = statementsOf(synth, 'HttpQueryFunction');
    expect(actionsOf(statements)).toEqual(
      expect.arrayContaining(['dynamodb:Scan', 'athena:StartQueryExecution', 'dynamodb:GetItem']),
    );
    const writes = statements.filter((s) =>
      [s.Action]
        .flat()
        .some((action) => !action.startsWith('xray:') && /Put|Delete|Create|Update|SendMessage/.test(action)),
    );
    expect(writes.length).toBeGreaterThan(0);
    // Query results, and the keys' last use (dynamodb:UpdateItem on the keys table): nothing else.
    for (const write of writes)
      expect(JSON.stringify(write.Resource)).toMatch(
        [write.Action].flat().includes('dynamodb:UpdateItem') ? /KeysTable/ : /AnalyticsQueryResults/,
      );
    const withTimestreamStatements = statementsOf(withTimestream, 'HttpQueryFunction');
    const select = withTimestreamStatements.find((s) => s.Action === 'timestream:Select');
    expect(select?.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^TimeSeriesTable/), 'Arn'] });
  });

  it('runs the daily job after midnight with Athena, writing only curated/ and reports/, and saves the common queries', () => {
    const rule = Object.values(synth.template.findResources('AWS::Events::Rule')).find(
      (r) => r.Properties.ScheduleExpression === 'cron(15 1 * * ? *)',
    );
    expect(rule?.Properties.Targets[0].Arn).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^DailyFunction/), 'Arn'],
    });
    const statements = statementsOf(synth, 'DailyFunction');
    const writes = statements.find((s) => [s.Action].flat().includes('s3:DeleteObject'));
    expect(JSON.stringify(writes?.Resource)).toMatch(
      /curated\/readings\/\*.*curated\/daily_metrics\/\*.*curated\/daily_uptime\/\*.*reports\/\*/,
    );
    const athena = statements.find((s) => [s.Action].flat().includes('athena:StartQueryExecution'));
    expect(JSON.stringify(athena?.Resource)).toContain('workgroup/iot-pipeline-dev');
    const named = Object.values(synth.template.findResources('AWS::Athena::NamedQuery')).map(
      (q) => q.Properties.Name,
    );
    expect(named.sort()).toEqual([
      'daily-min-max-per-device',
      'devices-silent-since',
      'latest-value-per-device',
      'quarantine-reasons',
      'readings-of-one-device',
    ]);
  });

  it('gives devices one policy: connect as their thing of this stage, publish and subscribe only on their own topics', () => {
    const [policy] = Object.values(synth.template.findResources('AWS::IoT::Policy'));
    expect(policy?.Properties.PolicyName).toBe('iot_pipeline_dev_device');
    const statements = policy?.Properties.PolicyDocument.Statement as {
      Action: string;
      Resource: unknown;
      Condition?: unknown;
    }[];
    const arn = (resource: string) => ({
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':iot:',
          { Ref: 'AWS::Region' },
          ':',
          { Ref: 'AWS::AccountId' },
          `:${resource}`,
        ],
      ],
    });
    expect(statements.map((s) => [s.Action, s.Resource])).toEqual([
      ['iot:Connect', arn('client/${iot:Connection.Thing.ThingName}')],
      [
        'iot:Publish',
        // Its own topic, and the same with a LoRaWAN port of one to three characters.
        ['', '/?', '/??', '/???'].flatMap((port) => [
          arn(
            `topic/dt/\${iot:Connection.Thing.Attributes[deviceType]}/\${iot:Connection.Thing.ThingName}${port}`,
          ),
          arn(
            `topic/$aws/rules/iot_pipeline_dev_telemetry/dt/\${iot:Connection.Thing.Attributes[deviceType]}/\${iot:Connection.Thing.ThingName}${port}`,
          ),
        ]),
      ],
      [
        'iot:Subscribe',
        arn(
          'topicfilter/cmd/${iot:Connection.Thing.Attributes[deviceType]}/${iot:Connection.Thing.ThingName}',
        ),
      ],
      [
        'iot:Receive',
        arn('topic/cmd/${iot:Connection.Thing.Attributes[deviceType]}/${iot:Connection.Thing.ThingName}'),
      ],
    ]);
    // Only as a thing of this stage's types: another stage's devices cannot use this policy.
    expect(statements[0]?.Condition).toEqual({
      Bool: { 'iot:Connection.Thing.IsAttached': 'true' },
      StringLike: { 'iot:Connection.Thing.ThingTypeName': 'iot_pipeline_dev_*' },
    });
    expect(JSON.stringify(statements)).not.toMatch(/"iot:\*"|"\*"/);
  });

  it('keeps claims in a pay-per-request table that expires them by TTL', () => {
    synth.template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      SSESpecification: { SSEEnabled: true },
    });
  });

  it('lets the HTTP function only enqueue, check keys and read which way in devices are known from', () => {
    expect(actionsOf(statementsOf(synth, 'HttpFunction'))).toEqual([
      'dynamodb:BatchGetItem',
      'dynamodb:GetItem',
      'dynamodb:UpdateItem',
      'sqs:SendMessage',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ]);
  });

  it('keeps the lake private, encrypted, versioned, TLS-only and access-logged', () => {
    synth.template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      LoggingConfiguration: { LogFilePrefix: 'lake/', DestinationBucketName: Match.anyValue() },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 } }),
          Match.objectLike({
            Prefix: 'raw/',
            Transitions: [{ StorageClass: 'GLACIER_IR', TransitionInDays: 90 }],
          }),
        ]),
      },
    });
    const policies = synth.template.findResources('AWS::S3::BucketPolicy');
    expect(Object.keys(policies)).toHaveLength(3);
    for (const policy of Object.values(policies)) {
      expect(policy.Properties.PolicyDocument.Statement).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      );
    }
  });

  it('projects partitions of the readings table over the lake layout (no crawler)', () => {
    synth.template.hasResourceProperties('AWS::Glue::Table', {
      TableInput: Match.objectLike({
        Name: 'readings',
        PartitionKeys: [
          { Name: 'dt', Type: 'string' },
          { Name: 'hour', Type: 'string' },
        ],
        Parameters: Match.objectLike({
          'projection.enabled': 'true',
          'projection.dt.type': 'date',
          'projection.dt.format': 'yyyy-MM-dd',
          'projection.hour.type': 'integer',
          'projection.hour.digits': '2',
          'storage.location.template': {
            'Fn::Join': [
              '',
              // biome-ignore lint/suspicious/noTemplateCurlyInString: Athena's projection template, not JS
              ['s3://', { Ref: Match.stringLikeRegexp('LakeBucket') }, '/readings/dt=${dt}/hour=${hour}/'],
            ],
          },
        }),
      }),
    });
    synth.template.hasResourceProperties('AWS::Glue::Table', {
      TableInput: Match.objectLike({
        Name: 'raw',
        Parameters: Match.objectLike({
          'projection.source.type': 'enum',
          // Every format's source, from FORMATS: a new way in is partitioned without touching the lake.
          'projection.source.values': SOURCES.join(','),
        }),
      }),
    });
    synth.template.resourceCountIs('AWS::Glue::Crawler', 0);
  });

  it('catalogs the daily uptime as Parquet by day, with the columns the estate API reads', () => {
    synth.template.hasResourceProperties('AWS::Glue::Table', {
      TableInput: Match.objectLike({
        Name: 'daily_uptime',
        PartitionKeys: [{ Name: 'dt', Type: 'string' }],
        Parameters: Match.objectLike({
          classification: 'parquet',
          'projection.dt.type': 'date',
          'storage.location.template': {
            'Fn::Join': [
              '',
              // biome-ignore lint/suspicious/noTemplateCurlyInString: Athena's projection template, not JS
              ['s3://', { Ref: Match.stringLikeRegexp('LakeBucket') }, '/curated/daily_uptime/dt=${dt}/'],
            ],
          },
        }),
        StorageDescriptor: Match.objectLike({
          SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
          Columns: [
            Match.objectLike({ Name: 'device_id', Type: 'string' }),
            Match.objectLike({ Name: 'device_type', Type: 'string' }),
            Match.objectLike({ Name: 'uptime_pct', Type: 'double' }),
            Match.objectLike({ Name: 'offline_ms', Type: 'bigint' }),
            Match.objectLike({ Name: 'observed_ms', Type: 'bigint' }),
          ],
        }),
      }),
    });
  });

  it('enforces an encrypted results location and a scan limit on the Athena workgroup', () => {
    synth.template.hasResourceProperties('AWS::Athena::WorkGroup', {
      WorkGroupConfiguration: Match.objectLike({
        EnforceWorkGroupConfiguration: true,
        BytesScannedCutoffPerQuery: 10 * 1024 ** 3,
        ResultConfiguration: {
          OutputLocation: Match.anyValue(),
          EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
        },
      }),
    });
  });

  it('throttles the HTTP API and logs its access', () => {
    synth.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
    });
    for (const route of ['POST /v1/telemetry', 'POST /v1/sigfox', 'POST /v1/ttn']) {
      synth.template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: route });
    }
  });

  it('routes GET Sigfox callbacks to the ingest function, not the query function, and GET nowhere else in', () => {
    const routes = Object.values(synth.template.findResources('AWS::ApiGatewayV2::Route'));
    const target = (key: string) =>
      JSON.stringify(routes.find((r) => r.Properties?.RouteKey === key)?.Properties?.Target);
    expect(target('GET /v1/sigfox')).toBeDefined();
    expect(target('GET /v1/sigfox')).toBe(target('POST /v1/sigfox'));
    expect(target('GET /v1/sigfox')).not.toBe(target('GET /v1/devices'));
    expect(target('GET /v1/telemetry')).toBeUndefined();
    expect(target('GET /v1/ttn')).toBeUndefined();
  });

  it('keeps the API keys in a retained table of hashes that the functions may read by id but never list', () => {
    const tables = synth.template.findResources('AWS::DynamoDB::Table');
    const [id, keys] = Object.entries(tables).find(([name]) => name.startsWith('KeysTable')) ?? [];
    expect(keys?.DeletionPolicy).toBe('Retain');
    expect(keys?.Properties).toMatchObject({
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
    expect(synth.template.findResources('AWS::SecretsManager::Secret')).toEqual({});
    for (const fn of ['HttpFunction', 'HttpQueryFunction']) {
      const onKeys = statementsOf(synth, fn).filter((s) => JSON.stringify(s.Resource).includes(String(id)));
      expect(actionsOf(onKeys), fn).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    }
    synth.template.hasOutput('KeysTableName', { Value: { Ref: id } });
  });

  it('encrypts the alert topic with a rotated key CloudWatch may use, and has no email subscription by default', () => {
    synth.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    synth.template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          }),
        ]),
      },
    });
    synth.template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('alarms to the alert topic on the DLQ, on each function and on rule failures', () => {
    const alarms = Object.values(synth.template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms.map((a) => a.Properties.MetricName).sort()).toEqual([
      // The ingest and estate dead-letter queues.
      'ApproximateNumberOfMessagesVisible',
      'ApproximateNumberOfMessagesVisible',
      // Each of the seven functions.
      'Errors',
      'Errors',
      'Errors',
      'Errors',
      'Errors',
      'Errors',
      'Errors',
      // The telemetry rule's and the LoRaWAN rule's.
      'Failure',
      'Failure',
    ]);
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/AlertsTopic/) }]);
    }
  });

  it('creates the Timestream table with the configured retention and magnetic writes on', () => {
    withTimestream.template.hasResourceProperties('AWS::Timestream::Table', {
      RetentionProperties: {
        MemoryStoreRetentionPeriodInHours: '24',
        MagneticStoreRetentionPeriodInDays: '365',
      },
      MagneticStoreWriteProperties: Match.objectLike({ EnableMagneticStoreWrites: true }),
    });
  });
});

describe('PipelineStack with Timestream off (the default: closed to new AWS customers)', () => {
  it('contains no Timestream resource, permission or setting', () => {
    // Arrange + Act
    const synth = synthPipeline();
    const json = JSON.stringify(synth.template.toJSON());
    // Assert
    expect(json).not.toMatch(/timestream/i);
    expect(JSON.stringify(synthPipeline({ timestream: 'false' }).template.toJSON())).not.toMatch(
      /timestream/i,
    );
  });
});

describe('PipelineStack across deployments', () => {
  let synth: Synth;
  beforeAll(() => {
    synth = synthPipeline({
      stage: 'qa7',
      timestream: 'true',
      iotPipeline: {
        deviceTypes: { thermo: {} },
        quicksight: { principalArn: 'arn:aws:quicksight:us-east-1:123456789012:user/default/a' },
      },
    });
  });

  it('names every account-wide resource for its stage, so two stages share an account and region', () => {
    const resources = Object.values(
      synth.template.toJSON().Resources as Record<
        string,
        { Type: string; Properties?: Record<string, unknown> }
      >,
    ).map((r) => ({ Type: r.Type, Properties: r.Properties ?? {} }));
    const named: [string, unknown][] = resources.flatMap((r) =>
      (
        [
          ['AWS::Glue::Database', (r.Properties.DatabaseInput as { Name?: unknown } | undefined)?.Name],
          ['AWS::Athena::WorkGroup', r.Properties.Name],
          ['AWS::IoT::TopicRule', r.Properties.RuleName],
          ['AWS::IoT::Policy', r.Properties.PolicyName],
          ['AWS::IoT::ThingType', r.Properties.ThingTypeName],
          ['AWS::QuickSight::DataSource', r.Properties.DataSourceId],
          ['AWS::QuickSight::DataSet', r.Properties.DataSetId],
        ] as const
      )
        .filter(([type]) => r.Type === type)
        .map(([type, name]): [string, unknown] => [type, name]),
    );
    // Two rules (telemetry, LoRaWAN), a policy, thing types and QuickSight ids.
    expect(named).toHaveLength(8);
    for (const [type, name] of named) expect(String(name), type).toContain('qa7');
    // Retained resources hold data and carry no fixed name: a stage deploys again after a destroy.
    for (const r of resources.filter((r) => r.Type === 'AWS::Timestream::Database')) {
      expect(r.Properties.DatabaseName).toBeUndefined();
    }
    const retained = Object.entries(
      synth.template.toJSON().Resources as Record<string, { Type: string; DeletionPolicy?: string }>,
    )
      .filter(([, r]) => r.DeletionPolicy === 'Retain')
      .map(([, r]) => r.Type)
      .sort();
    expect(retained).toEqual([
      'AWS::DynamoDB::Table',
      'AWS::DynamoDB::Table',
      'AWS::S3::Bucket',
      'AWS::S3::Bucket',
      'AWS::Timestream::Database',
      'AWS::Timestream::Table',
    ]);
  });

  it('empties the Athena results bucket when the stack is destroyed', () => {
    const buckets = synth.template.findResources('AWS::S3::Bucket');
    const results = Object.entries(buckets).find(([id]) => id.startsWith('AnalyticsQueryResults'));
    expect(results?.[1].DeletionPolicy).toBe('Delete');
    synth.template.hasResourceProperties('Custom::S3AutoDeleteObjects', {
      BucketName: { Ref: results?.[0] },
    });
  });

  it('creates the views with the stack, as Athena stores them, so saved queries and QuickSight work before the first daily run', () => {
    const views = Object.values(synth.template.findResources('AWS::Glue::Table'))
      .map((t) => t.Properties.TableInput)
      .filter((input) => input.TableType === 'VIRTUAL_VIEW');
    expect(views.map((v) => v.Name)).toEqual(VIEWS.map((v) => v.name));
    for (const view of views) {
      const definition = /^\/\* Presto View: (?<b64>[A-Za-z0-9+/=]+) \*\/$/.exec(view.ViewOriginalText)
        ?.groups?.b64;
      const decoded = JSON.parse(Buffer.from(definition ?? '', 'base64').toString('utf8'));
      const expected = VIEWS.find((v) => v.name === view.Name);
      expect(decoded).toMatchObject({
        originalSql: expected?.sql,
        catalog: 'awsdatacatalog',
        schema: 'iot_pipeline_qa7',
      });
      expect(decoded.columns.map((c: { name: string }) => c.name)).toEqual(
        expected?.columns.map((c) => c.name),
      );
      expect(view.StorageDescriptor.Columns).toEqual(
        expected?.columns.map((c) => ({ Name: c.name, Type: c.type })),
      );
      expect(view.Parameters).toEqual({ presto_view: 'true', comment: 'Presto View' });
    }
    // Nothing at run time creates or replaces a table any more; Athena reads the catalog, `default` included.
    const statements = statementsOf(synth, 'DailyFunction');
    expect(actionsOf(statements).filter((a) => a.startsWith('glue:'))).toEqual([
      'glue:GetDatabase',
      'glue:GetPartitions',
      'glue:GetTable',
    ]);
    const glue = statements.find((s) => [s.Action].flat().includes('glue:GetDatabase'));
    expect(JSON.stringify(glue?.Resource)).toContain(':database/default');
  });
});

describe('PipelineStack configuration', () => {
  it('creates a thing type per device type, named for the stage, with its searchable attributes', () => {
    const { template } = synthPipeline({
      iotPipeline: {
        deviceTypes: { tracker: { description: 'GPS tracker', searchableAttributes: ['site', 'owner'] } },
      },
    });
    template.hasResourceProperties('AWS::IoT::ThingType', {
      ThingTypeName: 'iot_pipeline_dev_tracker',
      ThingTypeProperties: { ThingTypeDescription: 'GPS tracker', SearchableAttributes: ['site', 'owner'] },
    });
  });

  it('creates a QuickSight Athena data source and daily-metrics data set only when a principal is configured', () => {
    const principalArn = 'arn:aws:quicksight:us-east-1:123456789012:user/default/analyst';
    const { template } = synthPipeline({ iotPipeline: { quicksight: { principalArn } } });
    template.hasResourceProperties('AWS::QuickSight::DataSource', {
      Type: 'ATHENA',
      DataSourceParameters: { AthenaParameters: { WorkGroup: 'iot-pipeline-dev' } },
    });
    const [dataSet] = Object.values(template.findResources('AWS::QuickSight::DataSet'));
    const table = dataSet?.Properties.PhysicalTableMap.daily.RelationalTable;
    expect(table).toMatchObject({ Schema: 'iot_pipeline_dev', Name: 'v_daily_metrics' });
    expect(table.InputColumns.map((c: { Name: string }) => c.Name)).toContain('range');
    expect(dataSet?.Properties.Permissions[0].Principal).toBe(principalArn);
    expect(Object.keys(synthPipeline().template.findResources('AWS::QuickSight::DataSource'))).toHaveLength(
      0,
    );
    expect(() => synthPipeline({ iotPipeline: { quicksight: { principalArn: 'analyst' } } })).toThrow(
      'Invalid config "quicksight.principalArn"',
    );
  });

  it('subscribes the configured email to the alert topic', () => {
    const synth = synthPipeline({ alertEmail: 'ops@example.com', stage: 'prod' });
    synth.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    synth.template.hasResourceProperties('AWS::IoT::TopicRule', { RuleName: 'iot_pipeline_prod_telemetry' });
  });

  it('fails the synth naming the bad key and what is allowed', () => {
    expect(() => synthPipeline({ iotPipeline: { ingest: { batchSize: 0 } } })).toThrow(
      'Invalid config "ingest.batchSize": got 0, expected an integer from 1 to 10000',
    );
    expect(() => synthPipeline({ timestream: 'maybe' })).toThrow(
      'Invalid config "timestream": got "maybe", expected true or false',
    );
  });
});

describe('cdk-nag in the synth', () => {
  it('fails the synth on an unacknowledged AwsSolutions finding', () => {
    // Arrange: a bucket with no access logs, no TLS rule; the same plugin setup as bin/app.ts
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Noncompliant');
    new s3.Bucket(stack, 'Open');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    // Act + Assert
    expect(() => app.synth()).toThrow();
  });
});
