import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { synthPipeline } from './synth.ts';

describe('Lambda bundles', () => {
  it('builds every function with the local esbuild (no Docker) into a minified ESM bundle', () => {
    // Arrange + Act: the only synth in the suite that bundles for real.
    const { assembly, template } = synthPipeline(
      { iotPipeline: { deviceTypes: { lht65: { decoder: { codec: 'codecs/lht65.js' } } } } },
      { bundle: true },
    );
    // Assert
    const functions = Object.values(template.findResources('AWS::Lambda::Function'));
    expect(functions).toHaveLength(5);
    for (const fn of functions) {
      // The code's S3 key is `<asset hash>.zip`; the cloud assembly holds the bundle in `asset.<hash>/`.
      const hash = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
      const bundle = join(assembly.directory, `asset.${hash}`, 'index.mjs');
      expect(existsSync(bundle), bundle).toBe(true);
      expect(statSync(bundle).size).toBeGreaterThan(1000);
      // The run-time config (codec sources included) is built into the bundle, not the environment.
      if (String(fn.Properties.Description).startsWith('Decodes')) {
        expect(readFileSync(bundle, 'utf8')).toContain('function decodeUplink(input)');
      }
      expect(fn.Properties.Environment.Variables).not.toHaveProperty('PIPELINE_RUNTIME_CONFIG');
    }
  }, 120_000);
});
