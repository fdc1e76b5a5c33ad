/**
 * The sandbox's worker (`worker.ts` and what it imports) bundled into one ESM file by
 * esbuild: for a Lambda bundle at synth, for the benchmarks, and from sources at run
 * time (a bundled worker starts in a tenth of the time tsx takes to load one). esbuild
 * is a devDependency: it is required here when called, never from a Lambda bundle.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Esbuild from 'esbuild';
import { SANDBOX_FILES } from './wasm.ts';

const bundles = new Map<string, string>();

/** The worker bundle's path, built once per process and options into a temp folder removed at exit. */
export function sandboxWorkerBundle(options: { readonly minify: boolean; readonly target: string }): string {
  const key = `${options.target}:${options.minify}`;
  let outfile = bundles.get(key);
  if (!outfile) {
    const esbuild = createRequire(import.meta.url)('esbuild') as typeof Esbuild;
    const dir = mkdtempSync(join(tmpdir(), 'iot-pipeline-sandbox-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    outfile = join(dir, SANDBOX_FILES.worker);
    esbuild.buildSync({
      entryPoints: [fileURLToPath(new URL('./worker.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: options.target,
      minify: options.minify,
      outfile,
      logLevel: 'warning',
    });
    bundles.set(key, outfile);
  }
  return outfile;
}
