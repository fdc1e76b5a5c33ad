/**
 * Least privilege, by role: every IAM role of the stack with its exact statements, and
 * every Allow statement of a resource policy (key, topic, buckets) with its principal and
 * conditions. Tokens read as cdk-nag writes them, `<LakeBucket.Arn>`, `<AlertsTopic>`,
 * `<AWS::Region>`, with CDK's hash suffix dropped from logical ids, so each expectation
 * reads like the policy. A grant added, widened or removed fails here, naming the role:
 * change the one object below that describes it.
 */
import { App, Stack } from 'aws-cdk-lib';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  curatedReadingsSelect,
  dailyMetricsSelect,
  dailyReportSelect,
  dailyUptimeSelect,
} from '../../lambdas/core/analytics/daily.ts';
import { Analytics, QUERY_API_TABLES } from '../../lib/constructs/analytics.ts';
import { DAILY_JOB_TABLES } from '../../lib/constructs/daily-job.ts';
import { Lake } from '../../lib/constructs/lake.ts';
import { PipelineFunction } from '../../lib/constructs/pipeline-function.ts';
import { synthPipeline } from './synth.ts';

/**
 * A policy statement as this file compares it: actions and resources as sorted lists; no
 * `Sid`, no `Effect` when it is Allow (every statement here is); no `Resource` in a trust policy.
 */
interface Statement {
  readonly Principal?: unknown;
  readonly Action: readonly string[];
  readonly Resource?: readonly string[];
  readonly Condition?: unknown;
}

interface RoleGrants {
  /** The trust policy's statements. */
  readonly trust: readonly Statement[];
  /** AWS managed policies attached. */
  readonly managed: readonly string[];
  /** The statements of every policy attached to the role (default policy and inline). */
  readonly statements: readonly Statement[];
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** A logical id without CDK's 8-character hash suffix: `LakeBucketB1D32E10` -> `LakeBucket`. */
const bare = (id: string) => id.replace(/[0-9A-F]{8}$/, '');

/** CloudFormation tokens rewritten as cdk-nag names them: `{"Fn::GetAtt": [id, "Arn"]}` -> `<Id.Arn>`. */
function render(value: Json): Json {
  if (Array.isArray(value)) return value.map(render);
  if (value === null || typeof value !== 'object') return value;
  const ref = value.Ref;
  if (typeof ref === 'string') return `<${ref.startsWith('AWS::') ? ref : bare(ref)}>`;
  const getAtt = value['Fn::GetAtt'];
  if (Array.isArray(getAtt)) return `<${bare(String(getAtt[0]))}.${String(getAtt[1])}>`;
  const join = value['Fn::Join'];
  if (Array.isArray(join)) return (join[1] as Json[]).map(render).join(String(join[0]));
  const sub = value['Fn::Sub'];
  if (typeof sub === 'string') return sub.replace(/\$\{([^}]+)\}/g, '<$1>');
  return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, render(v)]));
}

const list = (value: Json | undefined): string[] => [render(value ?? [])].flat().map(String);

/** Every key of a statement but `Sid`, and `Effect` only when it is not Allow; actions and resources as sorted lists. */
function statement(raw: Record<string, Json>): Statement {
  const { Sid: _, Effect, ...rest } = raw;
  return Object.fromEntries([
    ...(Effect === 'Allow' ? [] : [['Effect', Effect]]),
    ...Object.entries(rest).map(([key, value]) => [
      key,
      /^(Not)?(Action|Resource)$/.test(key) ? list(value).sort() : render(value),
    ]),
  ]) as unknown as Statement;
}

/** JSON with every object's keys in order: the same text for the same statement, however it was written. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );

/** Statements in a stable order, so an expectation may list them in any order. */
const sorted = (statements: readonly Statement[]) =>
  [...statements].sort((a, b) => canonical(a).localeCompare(canonical(b)));

type Resources = Record<string, { Type: string; Properties: Record<string, Json> }>;

/** Every role of the template, by bare logical id, with what it is granted. */
function rolesOf(resources: Resources): Record<string, RoleGrants> {
  const roles: Record<string, RoleGrants> = {};
  for (const [id, role] of Object.entries(resources)) {
    if (role.Type !== 'AWS::IAM::Role') continue;
    const trust = role.Properties.AssumeRolePolicyDocument as { Statement: Record<string, Json>[] };
    const inline = (
      (role.Properties.Policies ?? []) as { PolicyDocument: { Statement: Record<string, Json>[] } }[]
    ).flatMap((policy) => policy.PolicyDocument.Statement);
    const attached = Object.values(resources)
      .filter((policy) => policy.Type === 'AWS::IAM::Policy')
      .filter((policy) => JSON.stringify(policy.Properties.Roles).includes(`{"Ref":"${id}"}`))
      .flatMap(
        (policy) => (policy.Properties.PolicyDocument as { Statement: Record<string, Json>[] }).Statement,
      );
    roles[bare(id)] = {
      trust: sorted(trust.Statement.map(statement)),
      managed: list(role.Properties.ManagedPolicyArns).sort(),
      statements: sorted([...inline, ...attached].map(statement)),
    };
  }
  return roles;
}

/** The Allow statements of every resource policy (KMS key, topic, queue and bucket policies), by bare logical id. */
function resourcePolicyGrantsOf(resources: Resources): Record<string, readonly Statement[]> {
  const grants: Record<string, readonly Statement[]> = {};
  for (const [id, resource] of Object.entries(resources)) {
    const document = (resource.Properties.KeyPolicy ?? resource.Properties.PolicyDocument) as
      | { Statement: Record<string, Json>[] }
      | undefined;
    if (!document || resource.Type === 'AWS::IAM::Policy' || resource.Type === 'AWS::IoT::Policy') continue;
    const allows = document.Statement.filter((s) => s.Effect === 'Allow');
    if (allows.length > 0) grants[bare(id)] = sorted(allows.map(statement));
  }
  return grants;
}

/** An Allow statement, actions and resources as one value or many. */
function allow(actions: string | string[], resources: string | string[], condition?: Json): Statement {
  return {
    Action: [actions].flat().sort(),
    Resource: [resources].flat().sort(),
    ...(condition === undefined ? {} : { Condition: condition }),
  };
}

const ARN = 'arn:<AWS::Partition>';
const IN_ACCOUNT = '<AWS::Region>:<AWS::AccountId>';
const glue = (resource: string) => `${ARN}:glue:${IN_ACCOUNT}:${resource}`;
const WORKGROUP = `${ARN}:athena:${IN_ACCOUNT}:workgroup/iot-pipeline-dev`;
const SOURCE_ACCOUNT = { StringEquals: { 'aws:SourceAccount': '<AWS::AccountId>' } };
const prefixes = (...names: string[]) => ({ StringLike: { 's3:prefix': names } });

const LAMBDA_TRUST = [{ Principal: { Service: 'lambda.amazonaws.com' }, Action: ['sts:AssumeRole'] }];
const BASIC_EXECUTION = [`${ARN}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole`];
/** tracing.enabled (the default): X-Ray takes no resource. */
const TRACING = allow(['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], '*');
/** Alerts.grantPublish: the topic, and its key to encrypt with. */
const PUBLISH_ALERTS = [
  allow('sns:Publish', '<AlertsTopic>'),
  allow(['kms:Decrypt', 'kms:GenerateDataKey*'], '<AlertsKey.Arn>'),
];
/** What the functions Analytics.grantQuery grants share: run queries in the workgroup, keep their results. */
const ATHENA_RESULTS = [
  allow(['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:GetQueryResults'], WORKGROUP),
  allow(
    ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
    '<AnalyticsQueryResults.Arn>/results/*',
  ),
  allow('s3:ListBucket', '<AnalyticsQueryResults.Arn>', prefixes('results', 'results/*')),
  allow('s3:GetBucketLocation', ['<LakeBucket.Arn>', '<AnalyticsQueryResults.Arn>']),
];

/** Each role of the default stack (Timestream off) and all it may do. */
const ROLES: Record<string, RoleGrants> = {
  IngestFunctionServiceRole: {
    trust: LAMBDA_TRUST,
    managed: BASIC_EXECUTION,
    statements: [
      TRACING,
      // The event source mapping's poller; no ChangeMessageVisibility, no GetQueueUrl.
      allow(['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'], '<IngestQueue.Arn>'),
      allow('s3:PutObject', [
        '<LakeBucket.Arn>/raw/*',
        '<LakeBucket.Arn>/readings/*',
        '<LakeBucket.Arn>/quarantine/*',
      ]),
      allow('dynamodb:PutItem', '<ClaimsTable.Arn>'),
      // Each batch's readings to the estate queue: no registry, no alert topic.
      allow('sqs:SendMessage', '<EstateQueue.Arn>'),
    ],
  },
  EstateFunctionServiceRole: {
    trust: LAMBDA_TRUST,
    managed: BASIC_EXECUTION,
    statements: [
      TRACING,
      allow(['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'], '<EstateQueue.Arn>'),
      allow(['dynamodb:BatchGetItem', 'dynamodb:PutItem'], '<RegistryTable.Arn>'),
      ...PUBLISH_ALERTS,
      // The alert history: the alerts it raises.
      allow('s3:PutObject', '<LakeBucket.Arn>/alerts/*'),
    ],
  },
  IngestRuleRole: {
    trust: [
      {
        Principal: { Service: 'iot.amazonaws.com' },
        Action: ['sts:AssumeRole'],
        Condition: {
          ...SOURCE_ACCOUNT,
          // The telemetry rule and the LoRaWAN rule, both this stage's.
          ArnLike: {
            'aws:SourceArn': [
              `${ARN}:iot:${IN_ACCOUNT}:rule/iot_pipeline_dev_telemetry`,
              `${ARN}:iot:${IN_ACCOUNT}:rule/iot_pipeline_dev_lorawan`,
            ],
          },
        },
      },
    ],
    managed: [],
    statements: [
      allow('sqs:SendMessage', '<IngestQueue.Arn>'),
      allow('s3:PutObject', '<LakeBucket.Arn>/errors/iot-rule/*'),
    ],
  },
  // What an IoT Core for LoRaWAN destination passes to IoT Wireless: publish to the
  // LoRaWAN rule (Basic Ingest) and look up the endpoint, which takes no resource.
  IngestLorawanDestinationRole: {
    trust: [
      {
        Principal: { Service: 'iotwireless.amazonaws.com' },
        Action: ['sts:AssumeRole'],
        Condition: SOURCE_ACCOUNT,
      },
    ],
    managed: [],
    statements: [
      allow('iot:Publish', `${ARN}:iot:${IN_ACCOUNT}:topic/$aws/rules/iot_pipeline_dev_lorawan`),
      allow('iot:DescribeEndpoint', '*'),
    ],
  },
  RegistryOfflineFunctionServiceRole: {
    trust: LAMBDA_TRUST,
    managed: BASIC_EXECUTION,
    statements: [
      TRACING,
      allow(['dynamodb:Scan', 'dynamodb:PutItem'], '<RegistryTable.Arn>'),
      ...PUBLISH_ALERTS,
      // The alert history: the offline alerts it raises.
      allow('s3:PutObject', '<LakeBucket.Arn>/alerts/*'),
    ],
  },
  DailyFunctionServiceRole: {
    trust: LAMBDA_TRUST,
    managed: BASIC_EXECUTION,
    statements: [
      TRACING,
      ...ATHENA_RESULTS,
      allow(
        ['glue:GetDatabase', 'glue:GetTable', 'glue:GetPartitions'],
        [
          glue('catalog'),
          glue('database/iot_pipeline_dev'),
          glue('database/default'),
          glue('table/iot_pipeline_dev/readings'),
        ],
      ),
      // Reads readings/ only: not raw payloads, not quarantine.
      allow('s3:GetObject', '<LakeBucket.Arn>/readings/*'),
      allow('s3:ListBucket', '<LakeBucket.Arn>', prefixes('readings', 'readings/*')),
      // UNLOAD's outputs, replaced day by day.
      allow(
        ['s3:PutObject', 's3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        [
          '<LakeBucket.Arn>/curated/readings/*',
          '<LakeBucket.Arn>/curated/daily_metrics/*',
          '<LakeBucket.Arn>/curated/daily_uptime/*',
          '<LakeBucket.Arn>/reports/*',
        ],
      ),
      allow(
        's3:ListBucket',
        '<LakeBucket.Arn>',
        prefixes(
          'curated/readings',
          'curated/readings/*',
          'curated/daily_metrics',
          'curated/daily_metrics/*',
          'curated/daily_uptime',
          'curated/daily_uptime/*',
          'reports',
          'reports/*',
        ),
      ),
    ],
  },
  // Intraday compaction: merges readings/ and raw/ objects in place, nothing else.
  CompactionFunctionServiceRole: {
    trust: LAMBDA_TRUST,
    managed: BASIC_EXECUTION,
    statements: [
      TRACING,
      allow(
        ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
        ['<LakeBucket.Arn>/readings/*', '<LakeBucket.Arn>/raw/*'],
      ),
      allow('s3:ListBucket', '<LakeBucket.Arn>', prefixes('readings', 'readings/*', 'raw', 'raw/*')),
    ],
  },
  // The HTTP and query functions: their API key grants (the keys table) belong to the keys rewrite.
  HttpFunctionServiceRole: {
    trust: LAMBDA_TRUST,
    managed: BASIC_EXECUTION,
    statements: [
      TRACING,
      allow('sqs:SendMessage', '<IngestQueue.Arn>'),
      allow(['dynamodb:GetItem', 'dynamodb:UpdateItem'], '<KeysTable.Arn>'),
      allow('dynamodb:BatchGetItem', '<RegistryTable.Arn>'),
    ],
  },
  HttpQueryFunctionServiceRole: {
    trust: LAMBDA_TRUST,
    managed: BASIC_EXECUTION,
    statements: [
      TRACING,
      allow(['dynamodb:GetItem', 'dynamodb:UpdateItem'], '<KeysTable.Arn>'),
      // The estate's reads: the table's Scan and a page's BatchGetItem; the type index's Query and Scan.
      allow(['dynamodb:BatchGetItem', 'dynamodb:Scan'], '<RegistryTable.Arn>'),
      allow(['dynamodb:Query', 'dynamodb:Scan'], '<RegistryTable.Arn>/index/ByType'),
      // GET /v1/estate: the ingest function's counts (GetMetricData has no resource-level permissions).
      allow('cloudwatch:GetMetricData', '*'),
      ...ATHENA_RESULTS,
      allow(
        ['glue:GetDatabase', 'glue:GetTable', 'glue:GetPartitions'],
        [
          glue('catalog'),
          glue('database/iot_pipeline_dev'),
          glue('database/default'),
          glue('table/iot_pipeline_dev/readings'),
          glue('table/iot_pipeline_dev/daily_metrics'),
          glue('table/iot_pipeline_dev/alerts'),
          glue('table/iot_pipeline_dev/quarantine'),
          glue('table/iot_pipeline_dev/curated_readings'),
          glue('table/iot_pipeline_dev/daily_uptime'),
          glue('table/iot_pipeline_dev/raw'),
        ],
      ),
      // The tables the query API reads: the alert history and the quarantine (GET /v1/alerts,
      // GET /v1/quarantine) besides readings and daily figures, and a device's last raw
      // messages (GET /v1/devices/{id}/raw: payloads as the quarantine serves them).
      allow('s3:GetObject', [
        '<LakeBucket.Arn>/readings/*',
        '<LakeBucket.Arn>/curated/daily_metrics/*',
        '<LakeBucket.Arn>/alerts/*',
        '<LakeBucket.Arn>/quarantine/*',
        // The series route's compacted days (GET /v1/devices/{id}/series), and which days are.
        '<LakeBucket.Arn>/curated/readings/*',
        // GET /v1/estate's uptime.
        '<LakeBucket.Arn>/curated/daily_uptime/*',
        '<LakeBucket.Arn>/raw/*',
      ]),
      allow(
        's3:ListBucket',
        '<LakeBucket.Arn>',
        prefixes(
          'readings',
          'readings/*',
          'curated/daily_metrics',
          'curated/daily_metrics/*',
          'curated/readings',
          'curated/readings/*',
          'alerts',
          'alerts/*',
          'quarantine',
          'quarantine/*',
          'curated/daily_uptime',
          'curated/daily_uptime/*',
          'raw',
          'raw/*',
        ),
      ),
    ],
  },
  // CDK's autoDeleteObjects handler: its grants are in the results bucket's policy (below).
  CustomS3AutoDeleteObjectsCustomResourceProviderRole: {
    trust: LAMBDA_TRUST,
    managed: BASIC_EXECUTION,
    statements: [],
  },
};

/** With Timestream on, what the roles get besides: the table, and the endpoint discovery that takes no resource. */
const TIMESTREAM_GRANTS: Record<string, readonly Statement[]> = {
  IngestFunctionServiceRole: [
    allow('timestream:WriteRecords', '<TimeSeriesTable.Arn>'),
    allow('timestream:DescribeEndpoints', '*'),
  ],
  HttpQueryFunctionServiceRole: [
    allow('timestream:Select', '<TimeSeriesTable.Arn>'),
    allow('timestream:DescribeEndpoints', '*'),
  ],
};

/** Conditions on a grant to CloudWatch: this account's alarms only. */
const ALARMS_OF_THIS_ACCOUNT = {
  ...SOURCE_ACCOUNT,
  ArnLike: { 'aws:SourceArn': `${ARN}:cloudwatch:${IN_ACCOUNT}:alarm:*` },
};

/** The Allow statements of every resource policy, by the resource that carries it. */
const RESOURCE_POLICY_GRANTS: Record<string, readonly Statement[]> = {
  AlertsKey: [
    // The account may manage its key through IAM (the KMS default).
    {
      Principal: { AWS: `${ARN}:iam::<AWS::AccountId>:root` },
      Action: ['kms:*'],
      Resource: ['*'],
    },
    {
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      Resource: ['*'],
      Condition: ALARMS_OF_THIS_ACCOUNT,
    },
  ],
  AlertsTopicPolicy: [
    {
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Action: ['sns:Publish'],
      Resource: ['<AlertsTopic>'],
      Condition: ALARMS_OF_THIS_ACCOUNT,
    },
  ],
  // S3 server access logs, each bucket into its own prefix.
  LakeAccessLogsPolicy: [
    {
      Principal: { Service: 'logging.s3.amazonaws.com' },
      Action: ['s3:PutObject'],
      Resource: ['<LakeAccessLogs.Arn>/lake/*'],
      Condition: { ...SOURCE_ACCOUNT, ArnLike: { 'aws:SourceArn': '<LakeBucket.Arn>' } },
    },
    {
      Principal: { Service: 'logging.s3.amazonaws.com' },
      Action: ['s3:PutObject'],
      Resource: ['<LakeAccessLogs.Arn>/athena-results/*'],
      Condition: { ...SOURCE_ACCOUNT, ArnLike: { 'aws:SourceArn': '<AnalyticsQueryResults.Arn>' } },
    },
  ],
  AnalyticsQueryResultsPolicy: [
    {
      Principal: { AWS: '<CustomS3AutoDeleteObjectsCustomResourceProviderRole.Arn>' },
      Action: ['s3:DeleteObject*', 's3:GetBucket*', 's3:List*', 's3:PutBucketPolicy'],
      Resource: ['<AnalyticsQueryResults.Arn>', '<AnalyticsQueryResults.Arn>/*'],
    },
  ],
};

const expectedRoles = (extra: Record<string, readonly Statement[]> = {}) =>
  Object.fromEntries(
    Object.entries(ROLES).map(([id, role]) => [
      id,
      {
        trust: sorted(role.trust),
        managed: [...role.managed].sort(),
        statements: sorted([...role.statements, ...(extra[id] ?? [])]),
      },
    ]),
  );

/** The lake tables a statement reads: every `FROM <table>`. */
const tablesRead = (...sql: string[]) =>
  [...new Set(sql.flatMap((text) => [...text.matchAll(/\bFROM\s+([a-z_]+)/gi)].map((m) => m[1])))].sort();

describe('least privilege', () => {
  let resources: Resources;
  beforeAll(() => {
    // Arrange + Act: the default stack, cdk-nag on (the synth throws on an unacknowledged finding).
    resources = synthPipeline().template.toJSON().Resources as Resources;
  });

  it.each(Object.keys(ROLES))('grants %s exactly its statements', (id) => {
    expect(rolesOf(resources)[id]).toEqual(expectedRoles()[id]);
  });

  it('has no role this file does not describe', () => {
    expect(Object.keys(rolesOf(resources)).sort()).toEqual(Object.keys(ROLES).sort());
  });

  it('grants AWS services through resource policies only for their source: this account, this resource', () => {
    expect(resourcePolicyGrantsOf(resources)).toEqual(
      Object.fromEntries(Object.entries(RESOURCE_POLICY_GRANTS).map(([id, grants]) => [id, sorted(grants)])),
    );
  });

  it('lets each service invoke a function only from its source (rule, schedule, route)', () => {
    const permissions = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Permission');
    expect(permissions.length).toBeGreaterThan(0);
    for (const permission of permissions) expect(permission.Properties.SourceArn).toBeDefined();
  });

  it('adds only the Timestream table and its endpoint discovery when Timestream is on', () => {
    const withTimestream = synthPipeline({ timestream: 'true' }).template.toJSON().Resources as Resources;
    expect(rolesOf(withTimestream)).toEqual(expectedRoles(TIMESTREAM_GRANTS));
  });

  it('grants the query API and the daily job the tables their SQL reads, and no other', async () => {
    // Imported here: the API module is being rewritten, and its SQL is all this test needs.
    const { readingsPlan, dailyPlan } = await import('../../lambdas/core/api/query.ts');
    const api = [
      readingsPlan('d', 0, 86_400_000, 'temp', 10).sql,
      dailyPlan('d', '2026-01-01', '2026-01-02', 'temp').sql,
    ];
    expect(tablesRead(...api)).toEqual([...QUERY_API_TABLES].sort());
    // GET /v1/devices/{id}/raw reads the raw table alone (granted to the query function above).
    const { rawPlan } = await import('../../lambdas/core/api/raw.ts');
    expect(tablesRead(rawPlan({ deviceId: 'd', from: 0, to: 3_600_000 }).sql)).toEqual(['raw']);
    const day = '2026-01-01';
    const uptime = dailyUptimeSelect(day, { offline: { severity: 'warning' }, deviceTypes: {} });
    expect(
      tablesRead(curatedReadingsSelect(day), dailyMetricsSelect(day), dailyReportSelect(day), uptime),
    ).toEqual([...DAILY_JOB_TABLES].sort());
  });
});

describe('Analytics grants', () => {
  it.each([
    [[], /at least one lake table/],
    [['readings', 'v_readings'], /tables must be lake tables \(readings, .*\), got "v_readings"/],
  ])('refuses to grant queries over %j', (tables, message) => {
    // Arrange
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
    stack.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
    const lake = new Lake(stack, 'Lake');
    const analytics = new Analytics(stack, 'Analytics', { lake, databaseName: 'db', workGroupName: 'wg' });
    const fn = new PipelineFunction(stack, 'Fn', { handler: 'query', description: 'test' });
    // Act + Assert
    expect(() => analytics.grantQuery(fn, { tables })).toThrow(message);
  });
});
