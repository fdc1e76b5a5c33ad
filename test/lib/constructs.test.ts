import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { TimestreamWriteClient } from '@aws-sdk/client-timestream-write';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { CfnQueue } from 'aws-cdk-lib/aws-sqs';
import { describe, expect, it } from 'vitest';
import { onFirstUse } from '../../lambdas/adapters/aws/clients.ts';
import {
  awsEstateDeps,
  awsIngestDeps,
  type EstateClients,
  type IngestClients,
} from '../../lambdas/adapters/aws/ingest-lambda.ts';
import { ENV } from '../../lambdas/env.ts';
import { DEFAULT_CONFIG } from '../../lib/config.ts';
import { Alerts } from '../../lib/constructs/alerts.ts';
import { Analytics } from '../../lib/constructs/analytics.ts';
import { ReadingClaimsTable } from '../../lib/constructs/claims.ts';
import { EstateUpdates } from '../../lib/constructs/estate-updates.ts';
import { Ingest } from '../../lib/constructs/ingest.ts';
import { Lake } from '../../lib/constructs/lake.ts';
import { Monitoring } from '../../lib/constructs/monitoring.ts';
import { PipelineFunction } from '../../lib/constructs/pipeline-function.ts';
import { QuickSightReports } from '../../lib/constructs/quicksight.ts';
import { Registry } from '../../lib/constructs/registry.ts';
import { TimeSeries } from '../../lib/constructs/timeseries.ts';
import { synthPipeline } from './synth.ts';

/** A function's environment from the template, tokens (Ref, GetAtt) replaced by a stand-in name. */
function environmentOf(template: Template, description: RegExp): Record<string, string> {
  const functions = template.findResources('AWS::Lambda::Function', {
    Properties: { Description: Match.stringLikeRegexp(description.source) },
  });
  const variables = Object.values(functions)[0]?.Properties.Environment.Variables as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(variables).map(([name, value]) => [
      name,
      typeof value === 'string' ? value : `resolved-${name}`,
    ]),
  );
}

/** A stack without the pipeline, set as PipelineStack sets itself (access logs by bucket policy). */
function emptyStack() {
  const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
  stack.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
  return stack;
}

describe('constructs wire themselves', () => {
  it.each([
    ['on', 'true', true],
    ['off', 'false', false],
  ])(
    'gives the ingest function (Timestream %s) every resource name its adapters read',
    (_, flag, timestream) => {
      // Arrange: the environment the stack gives the function
      const { template } = synthPipeline({ timestream: flag });
      const env = environmentOf(template, /^Decodes/);
      const made: string[] = [];
      const counted =
        <T>(name: string, make: () => T) =>
        () => {
          made.push(name);
          return make();
        };
      const region = { region: 'us-east-1' };
      const clients = onFirstUse<IngestClients>({
        s3: counted('s3', () => new S3Client(region)),
        dynamodb: counted('dynamodb', () => new DynamoDBClient(region)),
        timestream: counted('timestream', () => new TimestreamWriteClient(region)),
        sqs: counted('sqs', () => new SQSClient(region)),
      });
      // Act: what the handler does at cold start
      const deps = awsIngestDeps(DEFAULT_CONFIG, clients, env, new Logger({ logLevel: 'SILENT' }));
      // Assert
      expect(deps.timeseries !== undefined).toBe(timestream);
      expect(made.includes('timestream')).toBe(timestream);
      expect(Object.keys(env).filter((name) => !/^(POWERTOOLS_|NODE_OPTIONS)/.test(name))).toEqual(
        expect.arrayContaining([ENV.lakeBucket, ENV.claimsTable, ENV.estateQueueUrls]),
      );
      // The registry and the alert topic are the estate function's, not the ingest function's.
      expect(Object.keys(env)).not.toContain(ENV.registryTable);
      expect(Object.keys(env)).not.toContain(ENV.alertTopicArn);
    },
  );

  it('gives the estate function every resource name its adapters read, and a 300 s window by default', () => {
    const { template } = synthPipeline({});
    const env = environmentOf(template, /^Applies queued readings/);
    const made: string[] = [];
    const region = { region: 'us-east-1' };
    awsEstateDeps(
      DEFAULT_CONFIG,
      onFirstUse<EstateClients>({
        s3: () => {
          made.push('s3');
          return new S3Client(region);
        },
        dynamodb: () => {
          made.push('dynamodb');
          return new DynamoDBClient(region);
        },
        sns: () => {
          made.push('sns');
          return new SNSClient(region);
        },
      }),
      env,
    );
    expect(made.sort()).toEqual(['dynamodb', 's3', 'sns']);
    // The offline check and the estate's reads add the registry's lag (20 s + 300 s) to every timeout.
    expect(environmentOf(template, /^Raises offline alerts/)[ENV.registryLagSeconds]).toBe('320');
    expect(environmentOf(template, /^Answers/)[ENV.registryLagSeconds]).toBe('320');
    const mappings = Object.values(template.findResources('AWS::Lambda::EventSourceMapping')).map(
      (m) => m.Properties as { BatchSize: number; MaximumBatchingWindowInSeconds?: number },
    );
    expect(mappings.map((m) => [m.BatchSize, m.MaximumBatchingWindowInSeconds]).sort()).toEqual([
      [1000, 20],
      [10000, 300],
    ]);
  });

  it('spreads the estate over its shards: a queue and an event source each, one function, the ingest function told every URL in order', () => {
    const stack = emptyStack();
    const alerts = new Alerts(stack, 'Alerts');
    const lake = new Lake(stack, 'Lake');
    const registry = new Registry(stack, 'Registry', { alerts, runtimeConfig: '{}' });
    const estate = new EstateUpdates(stack, 'Estate', {
      registry,
      alerts,
      lake,
      runtimeConfig: '{}',
      shards: 3,
    });
    const sender = new PipelineFunction(stack, 'Sender', { handler: 'ingest', description: 'sender' });
    estate.grantSend(sender);
    const template = Template.fromStack(stack);
    // Three shard queues and the dead-letter queue they share.
    expect(Object.keys(template.findResources('AWS::SQS::Queue'))).toHaveLength(4);
    const mappings = Object.values(template.findResources('AWS::Lambda::EventSourceMapping'));
    expect(mappings).toHaveLength(3);
    expect(new Set(mappings.map((m) => JSON.stringify(m.Properties.FunctionName))).size).toBe(1);
    const urls = Object.values(
      template.findResources('AWS::Lambda::Function', {
        Properties: { Description: 'sender' },
      }),
    )[0]?.Properties.Environment.Variables[ENV.estateQueueUrls];
    expect(urls).toEqual({
      'Fn::Join': [
        ',',
        estate.queues.map((q) => ({ Ref: stack.getLogicalId(q.node.defaultChild as CfnQueue) })),
      ],
    });
  });

  it('tells the query function the hours Timestream answers for: its memory store retention', () => {
    const { template } = synthPipeline({
      timestream: 'true',
      iotPipeline: { timestream: { memoryRetentionHours: 48 } },
    });
    expect(environmentOf(template, /^Answers/)[ENV.timestreamWindowHours]).toBe('48');
  });

  it('grants and names a resource in one call: alerts.grantPublish(fn)', () => {
    // Arrange
    const stack = emptyStack();
    const alerts = new Alerts(stack, 'Alerts');
    const fn = new PipelineFunction(stack, 'Fn', { handler: 'offline', description: 'test' });
    // Act
    alerts.grantPublish(fn);
    // Assert
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ [ENV.alertTopicArn]: { Ref: Match.stringLikeRegexp('^AlertsTopic') } }),
      },
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'sns:Publish',
            Resource: { Ref: Match.stringLikeRegexp('^AlertsTopic') },
          }),
        ]),
      },
    });
  });
});

describe('tracing', () => {
  it.each([
    [true, 'Active', 'true'],
    [false, undefined, 'false'],
  ])('traces every function, or none, from tracing.enabled (%s), cdk-nag clean', (enabled, mode, flag) => {
    // Arrange / Act
    const { stack, template } = synthPipeline({ iotPipeline: { tracing: { enabled } } });
    // Assert: the mode X-Ray sees and the flag lambdas/adapters/aws/tracing.ts reads, on every function
    const functions = Object.values(
      template.findResources('AWS::Lambda::Function', {
        Properties: { Environment: { Variables: { POWERTOOLS_SERVICE_NAME: Match.anyValue() } } },
      }),
    );
    expect(functions.length).toBeGreaterThanOrEqual(5);
    for (const fn of functions) {
      expect(fn.Properties.TracingConfig?.Mode).toBe(mode);
      expect(fn.Properties.Environment.Variables.POWERTOOLS_TRACE_ENABLED).toBe(flag);
    }
    expect(Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-'))).toEqual([]);
  });
});

describe('construct props', () => {
  const build = {
    estate: (props: Partial<ConstructorParameters<typeof EstateUpdates>[2]>) => {
      const stack = emptyStack();
      const alerts = new Alerts(stack, 'Alerts');
      const registry = new Registry(stack, 'Registry', { alerts, runtimeConfig: '{}' });
      const lake = new Lake(stack, 'Lake');
      return new EstateUpdates(stack, 'Estate', { registry, alerts, lake, runtimeConfig: '{}', ...props });
    },
    ingest: (props: Partial<ConstructorParameters<typeof Ingest>[2]>) => {
      const stack = emptyStack();
      const lake = new Lake(stack, 'Lake');
      const alerts = new Alerts(stack, 'Alerts');
      const registry = new Registry(stack, 'Registry', { alerts, runtimeConfig: '{}' });
      const estate = new EstateUpdates(stack, 'Estate', { registry, alerts, lake, runtimeConfig: '{}' });
      return new Ingest(stack, 'Ingest', {
        stage: 'dev',
        lake,
        estate,
        claims: new ReadingClaimsTable(stack, 'Claims'),
        runtimeConfig: '{}',
        ...props,
      });
    },
  };

  it.each([
    [
      'Ingest batchSize',
      () => build.ingest({ batchSize: 0 }),
      /Ingest: batchSize must be an integer from 1 to 10000, got 0/,
    ],
    ['Ingest maxConcurrency', () => build.ingest({ maxConcurrency: 1 }), /Ingest: maxConcurrency .* got 1/],
    ['Ingest stage', () => build.ingest({ stage: 'Prod' }), /Ingest: stage .* got "Prod"/],
    [
      'EstateUpdates shards',
      () => build.estate({ shards: 17 }),
      /EstateUpdates: shards must be 1 to 16, got 17/,
    ],
    [
      'EstateUpdates maxBatchingWindowSeconds',
      () => build.estate({ maxBatchingWindowSeconds: 301 }),
      /EstateUpdates: maxBatchingWindowSeconds must be 0 to 300/,
    ],
    [
      'Registry offlineCheckInterval',
      () => {
        const stack = emptyStack();
        new Registry(stack, 'Registry', {
          alerts: new Alerts(stack, 'Alerts'),
          runtimeConfig: '{}',
          offlineCheckInterval: Duration.seconds(30),
        });
      },
      /Registry: offlineCheckInterval must be a whole number of minutes >= 1/,
    ],
    [
      'TimeSeries tableName',
      () => {
        const stack = emptyStack();
        new TimeSeries(stack, 'TimeSeries', { lake: new Lake(stack, 'Lake'), tableName: 'a b' });
      },
      /TimeSeries: tableName .* got "a b"/,
    ],
    [
      'Analytics workGroupName',
      () => {
        const stack = emptyStack();
        new Analytics(stack, 'Analytics', {
          lake: new Lake(stack, 'Lake'),
          databaseName: 'db',
          workGroupName: 'a/b',
        });
      },
      /Analytics: workGroupName .* got "a\/b"/,
    ],
    [
      'QuickSightReports principalArn',
      () => {
        const stack = emptyStack();
        const analytics = new Analytics(stack, 'Analytics', {
          lake: new Lake(stack, 'Lake'),
          databaseName: 'db',
          workGroupName: 'wg',
        });
        new QuickSightReports(stack, 'QuickSight', { analytics, principalArn: 'someone', stage: 'dev' });
      },
      /QuickSightReports: principalArn .* got "someone"/,
    ],
    [
      'Alerts webhookUrl',
      () => new Alerts(emptyStack(), 'Alerts', { webhookUrl: 'http://example.com' }),
      /Alerts: webhookUrl must be an https:\/\/ URL/,
    ],
    [
      'Monitoring names',
      () => {
        const stack = emptyStack();
        new Monitoring(stack, 'Monitoring', {
          alerts: new Alerts(stack, 'Alerts'),
          deadLetterQueues: {},
          functions: { 'my fn': {} as never },
        });
      },
      /Monitoring: .* PascalCase .* got "my fn"/,
    ],
  ])('refuses a bad %s, naming the prop and what is allowed', (_, make, message) => {
    expect(make).toThrow(message);
  });
});
