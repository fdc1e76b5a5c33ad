/**
 * The AWS protocol tools this machine may have: moto's server (AWS's wire protocols,
 * emulated), cfn-lint (AWS's CloudFormation linter) and botocore's service models.
 * Suites that need one skip without it, unless IOT_PIPELINE_REQUIRE_AWS_TOOLS=1 (what
 * `.ci/run` sets), which makes a missing tool a failure.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { botocoreDataDir } from './aws-models.ts';

export type AwsTool = 'moto_server' | 'cfn-lint' | 'botocore';

const found = new Map<AwsTool, boolean>();

export function hasTool(tool: AwsTool): boolean {
  let has = found.get(tool);
  if (has === undefined) {
    if (tool === 'botocore') has = botocoreDataDir() !== null;
    else {
      try {
        execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
        has = true;
      } catch {
        has = false;
      }
    }
    found.set(tool, has);
  }
  return has;
}

export const REQUIRED = process.env.IOT_PIPELINE_REQUIRE_AWS_TOOLS === '1';

export const HOW_TO_GET =
  'they come with Python: pip install "moto[server]" cfn-lint (botocore comes with moto)';

/**
 * True when the suite must be skipped (the tool is missing and not required); throws
 * when it is missing and required, so CI cannot pass without it.
 */
export function skipWithout(...tools: AwsTool[]): boolean {
  const missing = tools.filter((t) => !hasTool(t));
  if (missing.length === 0) return false;
  if (REQUIRED) {
    throw new Error(`IOT_PIPELINE_REQUIRE_AWS_TOOLS=1 but ${missing.join(', ')} not found: ${HOW_TO_GET}`);
  }
  return true;
}

/** A cfn-lint finding, as `--format json` prints it. */
export interface CfnLintFinding {
  readonly Filename: string;
  readonly Level: 'Error' | 'Warning' | 'Informational';
  readonly Message: string;
  readonly Rule: { readonly Id: string };
  readonly Location: { readonly Path: readonly (string | number)[] };
}

/**
 * cfn-lint's findings over template files. It exits non-zero when it finds anything: the
 * JSON on stdout is what counts.
 */
export async function cfnLint(files: readonly string[]): Promise<CfnLintFinding[]> {
  const output = await promisify(execFile)('cfn-lint', ['--format', 'json', '--', ...files], {
    maxBuffer: 64 * 1024 * 1024,
  }).then(
    ({ stdout }) => stdout,
    (error: { stdout?: string }) => error.stdout ?? '[]',
  );
  return JSON.parse(output || '[]') as CfnLintFinding[];
}
