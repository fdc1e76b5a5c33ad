import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { LakeStore } from '../../lambdas/core/ingest/ports.ts';

/**
 * The lake as a folder: the same keys as the S3 bucket, one file per object. A write
 * goes to a temporary name first and is renamed into place, so a reader (DuckDB)
 * never sees half an object and a crash leaves no torn file behind.
 */
export function folderStore(root: string): LakeStore {
  const base = resolve(root);
  const pathOf = (key: string) => {
    const path = resolve(base, key);
    // Keys come from the lake layout (validated ids only); refuse anything that escapes anyway.
    if (!path.startsWith(base + sep)) throw new Error(`lake key "${key}" points outside ${base}`);
    return path;
  };
  return {
    async put(key, body) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      const temporary = join(dirname(path), `.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
      await writeFile(temporary, body);
      await rename(temporary, path);
    },
    async list(prefix) {
      // The prefix's folder part is listed recursively; the rest filters names.
      const folder = join(base, prefix.slice(0, prefix.lastIndexOf('/') + 1));
      if (!existsSync(folder)) return [];
      const entries = await readdir(folder, { recursive: true, withFileTypes: true });
      return entries
        .filter((e) => e.isFile() && !e.name.startsWith('.'))
        .map((e) => relative(base, join(e.parentPath, e.name)).split(sep).join('/'))
        .filter((key) => key.startsWith(prefix));
    },
    get: (key) => readFile(pathOf(key)),
    delete: (key) => rm(pathOf(key), { force: true }),
  };
}
