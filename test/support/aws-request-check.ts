/**
 * Checks every request an AWS SDK v3 client sends, in the tests' process, against
 * AWS's own model of the operation (`aws-models.ts`), at the one place every client
 * goes through: the `send` of Smithy's base client. Clients stubbed by
 * aws-sdk-client-mock answer before it and are not checked; real clients (against moto,
 * against in-process request handlers, in the cost model) are.
 */
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { checkInput, serviceModel, type Violation } from './aws-models.ts';

const CHECKED = Symbol.for('iot-pipeline.aws-request-check');

interface SmithyClient {
  send(command: { input?: unknown; constructor: { name: string } }, ...rest: unknown[]): Promise<unknown>;
  readonly config?: { readonly serviceId?: string };
}

/**
 * Wraps the base client's `send` once per process. `onViolation` is told of each member
 * AWS would refuse; the request is still sent, so the code under test behaves as it
 * would, and the test fails afterwards. Operations checked are appended to the file
 * named by IOT_PIPELINE_AWS_CHECKED_LOG (a coverage list), when set.
 */
export function installRequestCheck(onViolation: (service: string, violation: Violation) => void): void {
  const { Client } = createRequire(import.meta.url)('@smithy/core/client') as {
    Client: { prototype: SmithyClient & { [CHECKED]?: boolean } };
  };
  const proto = Client.prototype;
  if (proto[CHECKED]) return;
  proto[CHECKED] = true;
  const send = proto.send;
  const log = process.env.IOT_PIPELINE_AWS_CHECKED_LOG;
  proto.send = function (this: SmithyClient, command, ...rest) {
    const service = this.config?.serviceId;
    const operation = command?.constructor?.name?.replace(/Command$/, '');
    if (service && operation) {
      const model = serviceModel(service);
      if (model) {
        for (const violation of checkInput(model, operation, command.input)) onViolation(service, violation);
        if (log) appendFileSync(log, `${service} ${operation}\n`);
      }
    }
    return send.call(this, command, ...rest);
  };
}

export function describeViolation(service: string, v: Violation): string {
  return `${service}.${v.operation}: ${v.member || '(input)'} ${v.constraint}`;
}
