import { S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { onFirstUse } from '../../lambdas/adapters/aws/clients.ts';
import { clientTracer } from '../../lambdas/adapters/aws/tracing.ts';

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

describe('clientTracer around SDK clients', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('is the identity when the stack does not trace the function, and loads no tracer', async () => {
    // Arrange: tracing.enabled false sets POWERTOOLS_TRACE_ENABLED=false
    const client = new S3Client({ region: 'us-east-1' });
    const before = client.middlewareStack.identify();
    // Act
    const trace = await clientTracer({ POWERTOOLS_TRACE_ENABLED: 'false' });
    // Assert
    expect(trace(client)).toBe(client);
    expect(client.middlewareStack.identify()).toEqual(before);
  });

  it('leaves a client untouched outside Lambda even when traced, so tests never look for an X-Ray daemon', async () => {
    // Arrange: no AWS_EXECUTION_ENV, as in every test and on a laptop
    vi.stubEnv('AWS_EXECUTION_ENV', '');
    const client = new S3Client({ region: 'us-east-1' });
    const before = client.middlewareStack.identify();
    // Act
    const trace = await clientTracer({ POWERTOOLS_TRACE_ENABLED: 'true' });
    // Assert
    expect(trace(client)).toBe(client);
    expect(client.middlewareStack.identify()).toEqual(before);
  });

  it('adds the X-Ray subsegment middleware to a client in a traced Lambda', async () => {
    // Arrange: what the Lambda runtime sets; HTTP capture off so no global module is patched here
    vi.stubEnv('AWS_EXECUTION_ENV', 'AWS_Lambda_nodejs24.x');
    vi.stubEnv('POWERTOOLS_TRACER_CAPTURE_HTTPS_REQUESTS', 'false');
    const client = new S3Client({ region: 'us-east-1' });
    // Act
    const trace = await clientTracer({ POWERTOOLS_TRACE_ENABLED: 'true' });
    // Assert
    expect(trace(client)).toBe(client);
    expect(client.middlewareStack.identify()).toContain('XRaySDKInstrumentation - build');
  });
});
