/**
 * `npm run bench [-- <name-prefix>]`: runs every `bench/*.bench.ts`, prints one table
 * and writes `bench/results.json`. Prints figures; never fails on a timing.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './types.ts';

const dir = fileURLToPath(new URL('.', import.meta.url));
const prefix = process.argv[2] ?? '';
const results: BenchResult[] = [];
// `bench/<group>.bench.ts` prints `<group>.*` figures: run only the files the prefix can match.
const matches = (group: string) =>
  group.startsWith(prefix) || prefix.startsWith(`${group}.`) || prefix === group;
for (const file of readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts') && matches(f.slice(0, -'.bench.ts'.length)))
  .sort()) {
  const module = (await import(new URL(file, import.meta.url).href)) as { run: () => Promise<BenchResult[]> };
  results.push(...(await module.run()).filter((r) => r.name.startsWith(prefix)));
}
console.table(
  results.map((r) => ({
    name: r.name,
    value: `${r.value} ${r.unit}`,
    baseline: `${r.baseline} ${r.unit}`,
    ratio: r.ratio.toFixed(2),
    target: r.target,
    met: r.met ? 'yes' : 'NO',
  })),
);
writeFileSync(new URL('results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
