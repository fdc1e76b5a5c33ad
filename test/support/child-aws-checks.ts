/**
 * Preloaded into CLI child processes the tests start (`node --import tsx --import
 * ./test/support/child-aws-checks.ts cli/main.ts ...`): each refused request member is
 * appended to IOT_PIPELINE_AWS_VIOLATIONS, which the test reads once the child is done.
 */
import { appendFileSync } from 'node:fs';
import { botocoreDataDir } from './aws-models.ts';
import { describeViolation, installRequestCheck } from './aws-request-check.ts';

const file = process.env.IOT_PIPELINE_AWS_VIOLATIONS;
if (file && botocoreDataDir()) {
  installRequestCheck((service, violation) =>
    appendFileSync(file, `${describeViolation(service, violation)}\n`),
  );
}
