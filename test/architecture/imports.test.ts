/**
 * The layout's rules, checked on every import of the source tree (type-only ones
 * included: a cycle of types tangles the reading as much as one of values):
 * no import cycle anywhere; the core imports no SDK and nothing outside itself;
 * `lambdas/` imports nothing Lambdas do not bundle (the CLI, tools, the local runtime, the CDK app).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SOURCES = ['bin', 'cli', 'lambdas', 'lib', 'local', 'tools'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every module specifier of a file: static imports and re-exports, type-only ones too, and dynamic imports. */
function specifiers(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(/^\s*(?:import|export)\b[^'"`;]*?from\s*['"]([^'"]+)['"]/gms))
    found.push(m[1] as string);
  for (const m of source.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) found.push(m[1] as string);
  for (const m of source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1] as string);
  return found;
}

const graph = new Map<string, { local: string[]; packages: string[] }>();
for (const file of SOURCES.flatMap((dir) => files(join(ROOT, dir)))) {
  const imports = specifiers(readFileSync(file, 'utf8'));
  graph.set(relative(ROOT, file), {
    local: imports.filter((s) => s.startsWith('.')).map((s) => relative(ROOT, resolve(dirname(file), s))),
    packages: imports.filter((s) => !s.startsWith('.')),
  });
}

function cycles(): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    path.push(file);
    for (const next of graph.get(file)?.local ?? []) {
      if (state.get(next) === 'open') found.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next) && graph.has(next)) visit(next);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return found;
}

describe('the layout', () => {
  it('reads the whole tree (the check would pass on an empty one)', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get('lambdas/core/ingest/decode.ts')?.local).toContain('lambdas/core/formats/format.ts');
  });

  it('has no import cycle', () => {
    expect(cycles().map((cycle) => cycle.join(' -> '))).toEqual([]);
  });

  it('keeps the core pure: no AWS SDK, no CDK, nothing from outside lambdas/core', () => {
    const offences = [...graph]
      .filter(([file]) => file.startsWith('lambdas/core/'))
      .flatMap(([file, { local, packages }]) => [
        ...packages
          .filter((p) => /^@aws-sdk\/|^aws-cdk-lib|^@aws-lambda-powertools\//.test(p))
          .map((p) => `${file}: ${p}`),
        ...local.filter((l) => !l.startsWith('lambdas/core/')).map((l) => `${file}: ${l}`),
      ]);
    expect(offences).toEqual([]);
  });

  it('keeps in lambdas/ only what Lambdas bundle: nothing there imports the CLI, tools, the local runtime or the CDK app', () => {
    const offences = [...graph]
      .filter(([file]) => file.startsWith('lambdas/'))
      .flatMap(([file, { local }]) =>
        local.filter((l) => !l.startsWith('lambdas/')).map((l) => `${file}: ${l}`),
      );
    expect(offences).toEqual([]);
  });
});
