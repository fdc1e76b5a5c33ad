/**
 * Vitest setup (every test file): each AWS request a test makes through a real SDK
 * client is checked against AWS's model; a request AWS would refuse fails the test with
 * the operation, the member and the constraint.
 */
import { afterEach } from 'vitest';
import { botocoreDataDir } from './aws-models.ts';
import { describeViolation, installRequestCheck } from './aws-request-check.ts';

const found: string[] = [];

if (botocoreDataDir()) {
  installRequestCheck((service, violation) => found.push(describeViolation(service, violation)));
  afterEach(() => {
    if (found.length === 0) return;
    const list = [...new Set(found.splice(0))];
    throw new Error(`AWS would refuse ${list.length} request member(s):\n  ${list.join('\n  ')}`);
  });
}
