import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { telemetryRuleName } from '../../lambdas/core/topics.ts';
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
  beforeAll(() => {
    // Arrange + Act: one synth for the whole file (cdk-nag runs inside it and throws on a finding).
    synth = synthPipeline();
  });

  it('synthesizes with no unacknowledged cdk-nag AwsSolutions finding', () => {
    expect(synth.assembly.stacks).toHaveLength(1);
  });

  it('runs every Lambda on nodejs24.x arm64 with explicit memory and timeout', () => {
    const functions = synth.template.findResources('AWS::Lambda::Function');
    expect(Object.keys(functions)).toHaveLength(5);
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
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 5,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 5 },
    });
  });

  it('routes dt/+/+ through one rule that base64-encodes every payload, with an S3 error action', () => {
    synth.template.hasResourceProperties('AWS::IoT::TopicRule', {
      RuleName: telemetryRuleName('dev'),
      TopicRulePayload: {
        AwsIotSqlVersion: '2016-03-23',
        Sql: Match.stringLikeRegexp(
          "^SELECT encode\\(\\*, 'base64'\\) AS payload, topic\\(\\) AS topic.* FROM 'dt/\\+/\\+'$",
        ),
        Actions: [{ Sqs: Match.objectLike({ UseBase64: false }) }],
        ErrorAction: { S3: Match.objectLike({ Key: Match.stringLikeRegexp('^errors/iot-rule/') }) },
      },
    });
  });

  it('lets the IoT rule role only enqueue and record rule errors', () => {
    expect(actionsOf(statementsOf(synth, 'IngestRuleRole'))).toEqual([
      's3:PutObject',
      'sqs:GetQueueAttributes',
      'sqs:GetQueueUrl',
      'sqs:SendMessage',
    ]);
    synth.template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          Match.objectLike({
            Principal: { Service: 'iot.amazonaws.com' },
            Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
          }),
        ],
      },
    });
  });

  it('scopes the ingest function to its queue, three lake prefixes and the Timestream table', () => {
    const statements = statementsOf(synth, 'IngestFunction');
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
    ).toEqual(['dynamodb:BatchGetItem', 'dynamodb:PutItem', 'dynamodb:PutItem']);
    const publish = statements.find((s) => s.Action === 'sns:Publish');
    expect(publish?.Resource).toEqual({ Ref: expect.stringMatching(/^AlertsTopic/) });
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
      expect.arrayContaining([
        'dynamodb:Scan',
        'athena:StartQueryExecution',
        'secretsmanager:GetSecretValue',
      ]),
    );
    const writes = statements.filter((s) =>
      [s.Action]
        .flat()
        .some((action) => !action.startsWith('xray:') && /Put|Delete|Create|Update|SendMessage/.test(action)),
    );
    expect(writes.length).toBeGreaterThan(0);
    for (const write of writes) expect(JSON.stringify(write.Resource)).toMatch(/AnalyticsQueryResults/);
    const select = statements.find((s) => s.Action === 'timestream:Select');
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
    const writes = statements.find((s) => [s.Action].flat().includes('s3:AbortMultipartUpload'));
    expect(JSON.stringify(writes?.Resource)).toMatch(
      /curated\/readings\/\*.*curated\/daily_metrics\/\*.*reports\/\*/,
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

  it('gives devices one policy: connect as their thing, publish and subscribe only on their own topics', () => {
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
        [
          arn('topic/dt/${iot:Connection.Thing.ThingTypeName}/${iot:Connection.Thing.ThingName}'),
          arn(
            'topic/$aws/rules/iot_pipeline_dev_telemetry/dt/${iot:Connection.Thing.ThingTypeName}/${iot:Connection.Thing.ThingName}',
          ),
        ],
      ],
      [
        'iot:Subscribe',
        arn('topicfilter/cmd/${iot:Connection.Thing.ThingTypeName}/${iot:Connection.Thing.ThingName}'),
      ],
      [
        'iot:Receive',
        arn('topic/cmd/${iot:Connection.Thing.ThingTypeName}/${iot:Connection.Thing.ThingName}'),
      ],
    ]);
    expect(statements[0]?.Condition).toEqual({ Bool: { 'iot:Connection.Thing.IsAttached': 'true' } });
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

  it('lets the HTTP function only enqueue and read its API key', () => {
    expect(actionsOf(statementsOf(synth, 'HttpFunction'))).toEqual([
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetSecretValue',
      'sqs:GetQueueAttributes',
      'sqs:GetQueueUrl',
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
          'projection.source.values': 'mqtt,http,sigfox,ttn',
        }),
      }),
    });
    synth.template.resourceCountIs('AWS::Glue::Crawler', 0);
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

  it('generates the API key in Secrets Manager, never in the template', () => {
    synth.template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: Match.objectLike({ PasswordLength: 40 }),
    });
    const secrets = Object.values(synth.template.findResources('AWS::SecretsManager::Secret'));
    expect(secrets).toHaveLength(1);
    for (const secret of secrets) expect(secret.Properties).not.toHaveProperty('SecretString');
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
      'ApproximateNumberOfMessagesVisible',
      'Errors',
      'Errors',
      'Errors',
      'Errors',
      'Errors',
      'Failure',
    ]);
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/AlertsTopic/) }]);
    }
  });

  it('creates the Timestream table with the configured retention and magnetic writes on', () => {
    synth.template.hasResourceProperties('AWS::Timestream::Table', {
      RetentionProperties: {
        MemoryStoreRetentionPeriodInHours: '24',
        MagneticStoreRetentionPeriodInDays: '365',
      },
      MagneticStoreWriteProperties: Match.objectLike({ EnableMagneticStoreWrites: true }),
    });
  });
});

describe('PipelineStack with Timestream off', () => {
  it('contains no Timestream resource, permission or setting', () => {
    // Arrange + Act
    const synth = synthPipeline({ timestream: 'false' });
    const json = JSON.stringify(synth.template.toJSON());
    // Assert
    expect(json).not.toMatch(/timestream/i);
  });
});

describe('PipelineStack configuration', () => {
  it('creates a thing type per device type with its searchable attributes', () => {
    const { template } = synthPipeline({
      iotPipeline: {
        deviceTypes: { tracker: { description: 'GPS tracker', searchableAttributes: ['site', 'owner'] } },
      },
    });
    template.hasResourceProperties('AWS::IoT::ThingType', {
      ThingTypeName: 'tracker',
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
