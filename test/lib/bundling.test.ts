import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SANDBOX_FILES, wasmPath } from '../../lambdas/core/decoders/sandbox/wasm.ts';
import { synthPipeline } from './synth.ts';

describe('Lambda bundles', () => {
  it('builds every function with the local esbuild (no Docker) into a minified ESM bundle', () => {
    // Arrange + Act: the only synth in the suite that bundles for real.
    const { assembly, template } = synthPipeline(
      { iotPipeline: { deviceTypes: { lht65: { decoder: { codec: 'codecs/lht65.js' } } } } },
      { bundle: true },
    );
    // Assert
    // Ours; CDK's own provider that empties the results bucket on destroy has its asset from CDK.
    const functions = Object.entries(template.findResources('AWS::Lambda::Function'))
      .filter(([id]) => !id.startsWith('CustomS3AutoDeleteObjects'))
      .map(([, fn]) => fn);
    // ingest, estate, http, query, offline, daily, compaction.
    expect(functions).toHaveLength(7);
    for (const fn of functions) {
      // The code's S3 key is `<asset hash>.zip`; the cloud assembly holds the bundle in `asset.<hash>/`.
      const hash = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
      const bundle = join(assembly.directory, `asset.${hash}`, 'index.mjs');
      expect(existsSync(bundle), bundle).toBe(true);
      expect(statSync(bundle).size).toBeGreaterThan(1000);
      // The run-time config (codec sources included) is built into the ingest bundle, not the
      // environment; only the ingest function carries the codec and its sandbox.
      const dir = join(assembly.directory, `asset.${hash}`);
      const ingest = String(fn.Properties.Description).startsWith('Decodes');
      expect(readFileSync(bundle, 'utf8').includes('function decodeUplink(input)'), bundle).toBe(ingest);
      expect(existsSync(join(dir, SANDBOX_FILES.worker)), dir).toBe(ingest);
      expect(existsSync(join(dir, SANDBOX_FILES.wasm)), dir).toBe(ingest);
      if (ingest) {
        expect(readFileSync(join(dir, SANDBOX_FILES.wasm))).toEqual(readFileSync(wasmPath()));
        // Loading the bundle as Lambda's cold start does opens the codec in the shipped sandbox.
        // The bundle leaves the AWS SDK to the Lambda runtime: here it comes from node_modules.
        symlinkSync(join(import.meta.dirname, '../../node_modules'), join(dir, 'node_modules'), 'dir');
        const loaded = spawnSync(
          process.execPath,
          ['--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(bundle).href)})`],
          {
            encoding: 'utf8',
            timeout: 60_000,
            env: {
              PATH: process.env.PATH ?? '',
              AWS_REGION: 'us-east-1',
              AWS_EC2_METADATA_DISABLED: 'true',
              AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
              LAKE_BUCKET: 'lake',
              CLAIMS_TABLE: 'claims',
              ESTATE_QUEUE_URLS: 'https://sqs.us-east-1.amazonaws.com/123456789012/estate',
            },
          },
        );
        expect(loaded.stderr.slice(0, 800)).toBe('');
        expect(loaded.status).toBe(0);
      }
      expect(fn.Properties.Environment.Variables).not.toHaveProperty('PIPELINE_RUNTIME_CONFIG');
    }
  }, 120_000);
});
