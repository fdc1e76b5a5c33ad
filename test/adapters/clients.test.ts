import { Tracer } from '@aws-lambda-powertools/tracer';
import { S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { onFirstUse } from '../../lambdas/adapters/aws/clients.ts';

describe('onFirstUse', () => {
  it('makes a client only when it is first read, and then always hands back the same one', () => {
    // Arrange
    const made: string[] = [];
    const clients = onFirstUse<{ a: { name: string }; b: { name: string } }>({
      a: () => {
        made.push('a');
        return { name: 'a' };
      },
      b: () => {
        made.push('b');
        return { name: 'b' };
      },
    });
    // Act
    const first = clients.a;
    const again = clients.a;
    // Assert
    expect(first).toBe(again);
    expect(made).toEqual(['a']);
    expect(Object.keys(clients)).toEqual(['a', 'b']);
  });
});

describe('Tracer around SDK clients', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('leaves a client untouched outside Lambda, so tests and the local runtime never look for an X-Ray daemon', () => {
    // Arrange: no AWS_EXECUTION_ENV, as in every test and on a laptop
    vi.stubEnv('AWS_EXECUTION_ENV', '');
    const client = new S3Client({ region: 'us-east-1' });
    const before = client.middlewareStack.identify();
    // Act
    const tracer = new Tracer();
    const traced = tracer.captureAWSv3Client(client);
    // Assert
    expect(tracer.isTracingEnabled()).toBe(false);
    expect(traced).toBe(client);
    expect(client.middlewareStack.identify()).toEqual(before);
  });

  it('adds the X-Ray subsegment middleware to a client in Lambda', () => {
    // Arrange: what the Lambda runtime sets; HTTP capture off so no global module is patched here
    vi.stubEnv('AWS_EXECUTION_ENV', 'AWS_Lambda_nodejs24.x');
    vi.stubEnv('POWERTOOLS_TRACER_CAPTURE_HTTPS_REQUESTS', 'false');
    const client = new S3Client({ region: 'us-east-1' });
    // Act
    const traced = new Tracer().captureAWSv3Client(client);
    // Assert
    expect(traced).toBe(client);
    expect(client.middlewareStack.identify()).toContain('XRaySDKInstrumentation - build');
  });
});
