import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { type ICommandHooks, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { sandboxWorkerBundle } from '../../lambdas/core/decoders/sandbox/bundle.ts';
import { SANDBOX_FILES, wasmPath } from '../../lambdas/core/decoders/sandbox/wasm.ts';
import { ENV } from '../../lambdas/env.ts';

/** The Lambda handlers this project ships, by file name under `lambdas/handlers/`. */
export type HandlerName = 'ingest' | 'estate' | 'http' | 'offline' | 'analytics' | 'query' | 'compact';

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
  /**
   * The run-time config JSON (from `runtimeConfigJson`), built into the bundle as
   * `process.env.PIPELINE_RUNTIME_CONFIG`: codec sources do not fit the 4 KB Lambda
   * allows for all environment variables together.
   */
  readonly runtimeConfig?: string;
  /**
   * Ship the codec sandbox next to the bundle: its worker thread (bundled by the same
   * esbuild) and the QuickJS WebAssembly binary. Only a function that runs codecs needs
   * them; the others do not pay for them in size or cold start.
   *
   * @default false
   */
  readonly codecSandbox?: boolean;
  /**
   * Days the function's logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * After bundling: the sandbox's worker, bundled by the same esbuild (once per synth),
 * and the QuickJS WebAssembly binary, copied beside `index.mjs` under the names the
 * sandbox looks for there.
 */
function codecSandboxHooks(): ICommandHooks {
  const worker = sandboxWorkerBundle({ minify: true, target: 'node24' });
  const quote = (path: string) => `"${path.replace(/(["\\$`])/g, '\\$1')}"`;
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_inputDir, outputDir) => [
      `cp ${quote(worker)} ${quote(join(outputDir, SANDBOX_FILES.worker))}`,
      `cp ${quote(wasmPath())} ${quote(join(outputDir, SANDBOX_FILES.wasm))}`,
    ],
  };
}

/** Where the handler sources live, resolved from this file so the synth works from any directory. */
export function handlerEntry(handler: HandlerName): string {
  return fileURLToPath(new URL(`../../lambdas/handlers/${handler}.ts`, import.meta.url));
}

/** Context key the stack sets from `tracing.enabled`; absent means traced. */
export const TRACING_CONTEXT = 'iot-pipeline:tracing';

/**
 * A Node.js Lambda with this project's defaults: nodejs24.x on arm64 (cheaper per
 * GB-second), bundled and minified by the locally installed esbuild (never Docker),
 * ESM output, X-Ray tracing, JSON logs in a log group with a retention period, and the
 * Powertools service name set. It names no resource in its environment: the construct
 * owning a resource does, when it grants the function access (`alerts.grantPublish(fn)`
 * sets `ALERT_TOPIC_ARN`), under the names of `lambdas/env.ts`.
 */
export class PipelineFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: PipelineFunctionProps) {
    const memorySize = props.memorySize ?? 256;
    if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10_240) {
      throw new Error(
        `PipelineFunction "${id}": memorySize must be an integer from 128 to 10240, got ${memorySize}`,
      );
    }
    const timeoutSeconds = props.timeout?.toSeconds() ?? 10;
    if (timeoutSeconds < 1 || timeoutSeconds > 900) {
      throw new Error(
        `PipelineFunction "${id}": timeout must be from 1 second to 15 minutes, got ${timeoutSeconds} s`,
      );
    }
    const traced = scope.node.tryGetContext(TRACING_CONTEXT) !== false;
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
      tracing: traced ? lambda.Tracing.ACTIVE : lambda.Tracing.DISABLED,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: {
        POWERTOOLS_SERVICE_NAME: `iot-pipeline-${props.handler}`,
        POWERTOOLS_METRICS_NAMESPACE: 'IotPipeline',
        // Read by lambdas/adapters/aws/tracing.ts: the tracer (and the X-Ray SDK) is loaded only when true.
        POWERTOOLS_TRACE_ENABLED: String(traced),
        NODE_OPTIONS: '--enable-source-maps',
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
        ...(props.codecSandbox && { commandHooks: codecSandboxHooks() }),
      },
    });
    if (traced) {
      Validations.of(this).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource type and need "*".',
      });
    }
  }
}
