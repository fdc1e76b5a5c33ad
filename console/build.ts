/**
 * The web console's assets, bundled by esbuild from `console/src/main.ts` (uPlot included)
 * with `console/index.html`: into memory for the local runtime (built on its first request,
 * in about 100 ms), or into `console/dist/` for a static host (`npm run console:build`,
 * what the AWS console stack uploads). Nothing is loaded from elsewhere at run time.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const DIR = fileURLToPath(new URL('.', import.meta.url));

/** One built file: its bytes and its media type. */
export interface ConsoleAsset {
  readonly body: Buffer;
  readonly type: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/**
 * The built files by path: `index.html`, and `console/main.js`, `console/main.css` (the page
 * also reads `console/config.json`, which its host writes: the API's base URL and credential).
 */
export async function buildConsole(): Promise<ReadonlyMap<string, ConsoleAsset>> {
  const result = await build({
    entryPoints: [join(DIR, 'src/main.ts')],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    outdir: join(DIR, 'dist'),
    write: false,
    logLevel: 'silent',
    legalComments: 'none',
  });
  const assets = new Map<string, ConsoleAsset>();
  for (const file of result.outputFiles) {
    const name = file.path.slice(file.path.lastIndexOf('/') + 1);
    assets.set(`console/${name}`, { body: Buffer.from(file.contents), type: typeOf(name) });
  }
  assets.set('index.html', {
    body: readFileSync(join(DIR, 'index.html')),
    type: typeOf('index.html'),
  });
  return assets;
}

export function typeOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return TYPES[dot < 0 ? '' : name.slice(dot)] ?? 'application/octet-stream';
}

// `tsx console/build.ts`: the files into console/dist/ (no config.json: the host provides it).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = join(DIR, 'dist');
  await mkdir(out, { recursive: true });
  const assets = await buildConsole();
  await mkdir(join(out, 'console'), { recursive: true });
  for (const [name, asset] of assets) await writeFile(join(out, name), asset.body);
  const js = [...assets].filter(([n]) => n.endsWith('.js')).reduce((s, [, a]) => s + a.body.length, 0);
  process.stderr.write(`console: ${assets.size} files in ${out}, ${js} bytes of JavaScript\n`);
}
