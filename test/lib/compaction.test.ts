/**
 * The intraday compaction construct (`lib/constructs/compaction.ts`): a schedule, a
 * function, and a role that may touch `readings/` and `raw/` of the lake only.
 * Synthesized once, with cdk-nag on; cfn-lint over the template when it is installed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../lambdas/env.ts';
import { LakeCompaction } from '../../lib/constructs/compaction.ts';
import { Lake } from '../../lib/constructs/lake.ts';
import { acknowledgeStackFindings } from '../../lib/nag.ts';
import { cfnLint, skipWithout } from '../support/aws-tools.ts';

function stackWith(props: Partial<ConstructorParameters<typeof LakeCompaction>[2]> = {}) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Test');
  stack.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
  const lake = new Lake(stack, 'Lake');
  new LakeCompaction(stack, 'Compaction', { lake, ...props });
  // As the pipeline stack does: the basic execution role, acknowledged once for all.
  acknowledgeStackFindings(stack);
  return { app, stack };
}

type Statement = { Action: string | string[]; Resource: unknown; Condition?: unknown };

describe('LakeCompaction', () => {
  let stack: Stack;
  let template: Template;
  let dir: string;
  beforeAll(() => {
    const built = stackWith();
    Validations.of(built.app).addPlugins(new AwsSolutionsChecks(built.app));
    built.app.synth();
    stack = built.stack;
    template = Template.fromStack(stack);
    dir = mkdtempSync(join(tmpdir(), 'compaction-template-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the compact handler every 10 minutes, named the lake bucket, and is cdk-nag clean', () => {
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(10 minutes)' });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('readings/ and raw/'),
      MemorySize: 1024,
      Timeout: 300,
      Environment: {
        Variables: Match.objectLike({ [ENV.lakeBucket]: { Ref: Match.stringLikeRegexp('^LakeBucket') } }),
      },
    });
    expect(Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-'))).toEqual([]);
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-'))).toEqual(
      [],
    );
  });

  it('may get, put and delete under readings/ and raw/ only, and list the bucket under them only', () => {
    const policies = Object.values(template.findResources('AWS::IAM::Policy'));
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
    const s3 = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('s3:')));
    const text = JSON.stringify(s3);
    expect(text).not.toMatch(/s3:\*|s3:Get\*|s3:Put\*|s3:Delete\*|s3:List\*/);
    const objects = s3.find((s) => [s.Action].flat().includes('s3:DeleteObject'));
    expect([objects?.Action].flat().sort()).toEqual(['s3:DeleteObject', 's3:GetObject', 's3:PutObject']);
    expect(JSON.stringify(objects?.Resource)).toMatch(/\/readings\/\*"/);
    expect(JSON.stringify(objects?.Resource)).toMatch(/\/raw\/\*"/);
    expect(objects?.Resource).toHaveLength(2);
    const list = s3.find((s) => [s.Action].flat().includes('s3:ListBucket'));
    expect(list?.Condition).toEqual({
      StringLike: { 's3:prefix': ['readings', 'readings/*', 'raw', 'raw/*'] },
    });
    expect(s3).toHaveLength(2);
  });

  it('refuses an interval EventBridge cannot run, naming the prop', () => {
    expect(() => stackWith({ interval: Duration.seconds(90) })).toThrow(
      /interval must be a whole number of minutes/,
    );
    expect(() => stackWith({ interval: Duration.hours(2) })).toThrow(/from 1 to 60/);
    const five = Template.fromStack(stackWith({ interval: Duration.minutes(5) }).stack);
    five.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(5 minutes)' });
  });

  it.skipIf(skipWithout('cfn-lint'))(
    'passes cfn-lint: no finding but the stack-wide W3005',
    async () => {
      const file = join(dir, 'compaction-template.json');
      writeFileSync(file, JSON.stringify(template.toJSON()));
      const findings = await cfnLint([file]);
      // W3005 is acknowledged for the whole stack in test/aws/cfn-lint.test.ts.
      expect(findings.filter((f) => f.Rule.Id !== 'W3005').map((f) => `${f.Rule.Id}: ${f.Message}`)).toEqual(
        [],
      );
    },
    120_000,
  );
});
