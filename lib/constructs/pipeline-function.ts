import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { ENV } from '../../lambdas/env.ts';

/** The Lambda handlers this project ships, by file name under `lambdas/handlers/`. */
export type HandlerName = 'ingest' | 'http' | 'offline' | 'analytics' | 'query';

export interface PipelineFunctionProps {
  /** Which handler under `lambdas/handlers/` this function runs. */
  readonly handler: HandlerName;
  /** What the function is for, shown in the console. */
  readonly description: string;
  /**
   * Memory in MB (CPU grows with it).
   *
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * Timeout.
   *
   * @default Duration.seconds(10)
   */
  readonly timeout?: Duration;
  /** Environment variables (names from `lambdas/env.ts`). */
  readonly environment?: Record<string, string>;
  /**
   * The run-time config JSON (from `runtimeConfigJson`), built into the bundle as
   * `process.env.PIPELINE_RUNTIME_CONFIG`: codec sources do not fit the 4 KB Lambda
   * allows for all environment variables together.
   */
  readonly runtimeConfig?: string;
  /**
   * Days the function's logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/** Where the handler sources live, resolved from this file so the synth works from any directory. */
export function handlerEntry(handler: HandlerName): string {
  return fileURLToPath(new URL(`../../lambdas/handlers/${handler}.ts`, import.meta.url));
}

/**
 * A Node.js Lambda with this project's defaults: nodejs24.x on arm64 (cheaper per
 * GB-second), bundled and minified by the locally installed esbuild (never Docker),
 * ESM output, X-Ray tracing, JSON logs in a log group with a retention period, and the
 * Powertools service name set.
 */
export class PipelineFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: PipelineFunctionProps) {
    const memorySize = props.memorySize ?? 256;
    if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10_240) {
      throw new Error(
        `PipelineFunction "${id}": memorySize must be an integer from 128 to 10240, got ${memorySize}`,
      );
    }
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    super(scope, id, {
      entry: handlerEntry(props.handler),
      handler: 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize,
      timeout: props.timeout ?? Duration.seconds(10),
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: {
        POWERTOOLS_SERVICE_NAME: `iot-pipeline-${props.handler}`,
        POWERTOOLS_METRICS_NAMESPACE: 'IotPipeline',
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        minify: true,
        sourceMap: true,
        target: 'node24',
        format: OutputFormat.ESM,
        mainFields: ['module', 'main'],
        // Some dependencies still call require(); ESM bundles need it defined.
        banner: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);",
        forceDockerBundling: false,
        ...(props.runtimeConfig !== undefined && {
          define: { [`process.env.${ENV.runtimeConfig}`]: JSON.stringify(props.runtimeConfig) },
        }),
      },
    });
    Validations.of(this).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource type and need "*".',
    });
  }
}
