/**
 * cfn-lint, AWS's CloudFormation linter, over the templates the stack synthesizes: the
 * defaults, Timestream on, and a full configuration. No error; a warning stays only when
 * it is acknowledged below, once, with its reason.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { synthPipeline } from '../lib/synth.ts';
import { type CfnLintFinding, cfnLint, skipWithout } from '../support/aws-tools.ts';

/** Warnings that stay, with why. */
const ACKNOWLEDGED: Readonly<Record<string, string>> = {
  W3005:
    "CDK makes each function depend on its role and the role's default policy, so the policy is attached before the function is used; the role half is redundant with the GetAtt, harmlessly.",
  W3697:
    'Timestream for LiveAnalytics is in maintenance mode (closed to new customers since 2025-06-20): off by default, created only with timestream=true for accounts that have it.',
};

const CONFIGS: Readonly<Record<string, Record<string, unknown>>> = {
  defaults: {},
  timestream: { timestream: 'true' },
  full: {
    timestream: 'true',
    iotPipeline: {
      stage: 'prod',
      deviceTypes: {
        tracker: { decoder: { sigfox: 'temp::int:16*0.01 battery::uint:8*0.02' }, offlineAfter: '2h' },
        lht65: { decoder: { codec: 'codecs/lht65.js' }, searchableAttributes: ['site'] },
        thermo: { description: 'Room sensor', sigfoxDownlink: '0102030405060708' },
      },
      alertRules: [{ name: 'hot', metric: 'temp', comparison: '>', threshold: 30, severity: 'critical' }],
      offline: { after: '30m', severity: 'warning' },
      alerts: {
        email: 'ops@example.com',
        emailSeverities: ['critical'],
        webhookUrl: 'https://tickets.example.com/hook',
      },
      quicksight: { principalArn: 'arn:aws:quicksight:us-east-1:123456789012:user/default/analyst' },
    },
  },
};

type Finding = CfnLintFinding;

describe.skipIf(skipWithout('cfn-lint'))('cfn-lint over the synthesized templates', () => {
  let findings: Finding[];
  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfn-lint-'));
    const files: string[] = [];
    for (const [name, context] of Object.entries(CONFIGS)) {
      const file = join(dir, `${name}.json`);
      await writeFile(file, JSON.stringify(synthPipeline(context).template.toJSON()));
      files.push(file);
    }
    findings = await cfnLint(files);
  }, 180_000);

  const where = (f: Finding) =>
    `${f.Filename.split('/').pop()} ${f.Rule.Id} ${f.Location.Path.join('.')}: ${f.Message}`;

  it('finds no error in any template', () => {
    expect(findings.filter((f) => f.Level === 'Error').map(where)).toEqual([]);
  });

  it('leaves only acknowledged warnings, each with its reason', () => {
    const unacknowledged = findings.filter((f) => f.Level !== 'Error' && !(f.Rule.Id in ACKNOWLEDGED));
    expect(unacknowledged.map(where)).toEqual([]);
    // The linter's findings were read: the acknowledged warnings are there, Timestream's only where it is on.
    expect(findings.some((f) => f.Rule.Id === 'W3005')).toBe(true);
    expect(findings.some((f) => f.Rule.Id === 'W3697' && f.Filename.endsWith('timestream.json'))).toBe(true);
    expect(findings.some((f) => f.Rule.Id === 'W3697' && f.Filename.endsWith('defaults.json'))).toBe(false);
  });
});
