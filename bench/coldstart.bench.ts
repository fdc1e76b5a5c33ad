/**
 * `coldstart.<function>`: for each Lambda's production bundle (esbuild, minified ESM, as
 * the stack builds it), the time to load it in a fresh `node` process minus a bare
 * `node -e 0`, median of 11 runs; the baseline column is the bare start. Target: at most
 * 60 ms. `coldstart.<function>.bundle` prints the bundle size. Loading runs the module's top level
 * (clients created, config validated) with stand-in environment values; nothing is called.
 * `coldstart.sdk_client_only` is the floor: a bundle holding one DynamoDB client and
 * nothing else, loaded the same way. `coldstart.ingest_codec` is the ingest function
 * with a codec configured (`codecs/lht65.js`): its cold start opens the codec sandbox
 * (compiles QuickJS's WebAssembly, starts the worker, loads the codec), and its bundle
 * size counts the worker and the WebAssembly file shipped beside it. No target: it
 * reports what a codec adds; functions without one do not pay it. Functions load as the
 * stack deploys them by default, traced (the Powertools Tracer and the X-Ray SDK load);
 * `coldstart.ingest_untraced` is the ingest function with `tracing.enabled` false.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { sandboxWorkerBundle } from '../lambdas/core/decoders/sandbox/bundle.ts';
import { SANDBOX_FILES, wasmPath } from '../lambdas/core/decoders/sandbox/wasm.ts';
import { ENV as ENV_NAMES } from '../lambdas/env.ts';
import { runtimeConfigJson, validateConfig } from '../lib/config.ts';
import { type BenchResult, median } from './types.ts';

const HANDLERS = ['ingest', 'estate', 'http', 'offline', 'analytics', 'query', 'compact'] as const;
const RUNS = 11;
const ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  AWS_EC2_METADATA_DISABLED: 'true',
  // Node 20 here: without this the SDK prints its Node 22 notice on every load, inside the timing.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  LAKE_BUCKET: 'lake',
  CLAIMS_TABLE: 'claims',
  REGISTRY_TABLE: 'registry',
  ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts',
  INGEST_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/ingest',
  ESTATE_QUEUE_URLS: 'https://sqs.us-east-1.amazonaws.com/123456789012/estate',
  KEYS_TABLE: 'keys',
  INGEST_FUNCTION_NAME: 'ingest',
  ATHENA_WORKGROUP: 'wg',
  GLUE_DATABASE: 'db',
  POWERTOOLS_LOG_LEVEL: 'SILENT',
  // As the stack deploys them by default (tracing.enabled): the tracer loads. `ingest_untraced` turns it off.
  POWERTOOLS_TRACE_ENABLED: 'true',
  PATH: process.env.PATH ?? '',
};

function timeNode(args: string[], env: Record<string, string> = {}): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    execFileSync(process.execPath, args, { env: { ...ENV, ...env }, stdio: 'ignore' });
    times.push(performance.now() - start);
  }
  return median(times);
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'coldstart-'));
  try {
    const bare = timeNode(['-e', '0']);
    const results: BenchResult[] = [];
    const repo = fileURLToPath(new URL('..', import.meta.url));
    // The floor: a bundle of nothing but one SDK client, created as the handlers create theirs.
    const entries: {
      name: string;
      entry: { entryPoints: string[] } | { stdin: { contents: string; resolveDir: string } };
      define?: Record<string, string>;
      env?: Record<string, string>;
    }[] = [
      ...HANDLERS.map((handler) => ({
        name: handler,
        entry: {
          entryPoints: [fileURLToPath(new URL(`../lambdas/handlers/${handler}.ts`, import.meta.url))],
        },
      })),
      {
        name: 'sdk_client_only',
        entry: {
          stdin: {
            contents:
              "import { DynamoDBClient } from '@aws-sdk/client-dynamodb'; export const client = new DynamoDBClient({});",
            resolveDir: repo,
          },
        },
      },
    ];
    // The ingest function with a codec configured: the codec sandbox starts at cold start.
    const withCodec = validateConfig({ deviceTypes: { lht65: { decoder: { codec: 'codecs/lht65.js' } } } });
    entries.push({
      name: 'ingest_codec',
      entry: { entryPoints: [fileURLToPath(new URL('../lambdas/handlers/ingest.ts', import.meta.url))] },
      define: {
        [`process.env.${ENV_NAMES.runtimeConfig}`]: JSON.stringify(
          runtimeConfigJson(withCodec, { decoders: true }),
        ),
      },
    });
    // What the stack ships next to that bundle (lib/constructs/pipeline-function.ts).
    copyFileSync(sandboxWorkerBundle({ minify: true, target: 'node20' }), join(dir, SANDBOX_FILES.worker));
    copyFileSync(wasmPath(), join(dir, SANDBOX_FILES.wasm));
    // The ingest function with tracing.enabled false: no tracer loaded.
    entries.push({
      ...(entries[0] as (typeof entries)[number]),
      name: 'ingest_untraced',
      env: { POWERTOOLS_TRACE_ENABLED: 'false' },
    });
    for (const { name: handler, entry, define, env } of entries) {
      const outfile = join(dir, `${handler}.mjs`);
      await build({
        ...entry,
        ...(define ? { define } : {}),
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        minify: true,
        mainFields: ['module', 'main'],
        banner: { js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" },
        outfile,
        logLevel: 'error',
      });
      const load = timeNode(
        ['--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(outfile).href)})`],
        env,
      );
      const ms = load - bare;
      results.push({
        name: `coldstart.${handler}`,
        value: Math.round(ms),
        unit: 'ms to load',
        baseline: Math.round(bare),
        ratio: ms / bare,
        ...(handler === 'ingest_codec'
          ? { target: 'none (report: what a codec adds to coldstart.ingest)', met: true }
          : handler === 'ingest_untraced'
            ? { target: '<= 60 ms (tracing.enabled false: no tracer loaded)', met: ms <= 60 }
            : { target: '<= 60 ms', met: ms <= 60 }),
      });
      const bytes =
        statSync(outfile).size +
        (handler === 'ingest_codec'
          ? statSync(join(dir, SANDBOX_FILES.worker)).size + statSync(join(dir, SANDBOX_FILES.wasm)).size
          : 0);
      results.push({
        name: `coldstart.${handler}.bundle`,
        value: bytes,
        unit: 'bytes',
        baseline: bytes,
        ratio: 1,
        target: 'none (size)',
        met: true,
      });
    }
    return results;
  } finally {
    if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true });
  }
}
