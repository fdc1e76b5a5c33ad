/**
 * X-Ray for SDK clients: each call a subsegment, through Powertools' Tracer, when the
 * stack traces the function (`POWERTOOLS_TRACE_ENABLED=true`, from `tracing.enabled`).
 * The tracer, and the X-Ray SDK under it, is loaded only then: it adds about 15-25 ms
 * to a cold start (`npm run bench -- coldstart`).
 */

/** Wraps an SDK client for tracing; the identity when the function is not traced. */
export type TraceClient = <T>(client: T) => T;

export async function clientTracer(env: NodeJS.ProcessEnv = process.env): Promise<TraceClient> {
  if (env.POWERTOOLS_TRACE_ENABLED !== 'true') return (client) => client;
  const { Tracer } = await import('@aws-lambda-powertools/tracer');
  const tracer = new Tracer();
  return (client) => tracer.captureAWSv3Client(client);
}
