/**
 * Vitest global setup: says once, before any test, which AWS protocol suites will be
 * skipped on this machine and how to get what they need.
 */
import { type AwsTool, HOW_TO_GET, hasTool, REQUIRED } from './aws-tools.ts';

export default function setup(): void {
  const tools: AwsTool[] = ['moto_server', 'cfn-lint', 'botocore'];
  const missing = tools.filter((t) => !hasTool(t));
  if (missing.length === 0) return;
  if (REQUIRED)
    throw new Error(`IOT_PIPELINE_REQUIRE_AWS_TOOLS=1 but ${missing.join(', ')} not found: ${HOW_TO_GET}`);
  process.stderr.write(
    `\nAWS protocol checks SKIPPED: ${missing.join(', ')} not found (moto wire-protocol tests, cfn-lint, ` +
      `request checks against AWS's models). To run them: ${HOW_TO_GET}. .ci/run requires them.\n\n`,
  );
}
