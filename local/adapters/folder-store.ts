import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { CompactionStore } from '../../lambdas/core/lake/compaction.ts';

/**
 * The lake as a folder: the same keys as the S3 bucket, one file per object. A write
 * goes to a temporary name first and is renamed into place, so a reader (DuckDB)
 * never sees half an object and a crash leaves no torn file behind.
 */
export function folderStore(root: string): CompactionStore {
  const base = resolve(root);
  const pathOf = (key: string) => {
    const path = resolve(base, key);
    // Keys come from the lake layout (validated ids only); refuse anything that escapes anyway.
    if (!path.startsWith(base + sep)) throw new Error(`lake key "${key}" points outside ${base}`);
    return path;
  };
  const list = async (prefix: string) => {
    // The prefix's folder part is listed recursively; the rest filters names.
    const folder = join(base, prefix.slice(0, prefix.lastIndexOf('/') + 1));
    if (!existsSync(folder)) return [];
    const entries = await readdir(folder, { recursive: true, withFileTypes: true });
    return entries
      .filter((e) => e.isFile() && !e.name.startsWith('.'))
      .map((e) => relative(base, join(e.parentPath, e.name)).split(sep).join('/'))
      .filter((key) => key.startsWith(prefix));
  };
  return {
    list,
    async listObjects(prefix) {
      const objects = await Promise.all(
        (await list(prefix)).map(async (key) => {
          // Gone between the listing and the stat (compaction or a rename): not listed.
          const info = await stat(pathOf(key)).catch(() => undefined);
          return info && { key, lastModified: info.mtimeMs, size: info.size };
        }),
      );
      return objects.filter((o) => o !== undefined);
    },
    async deleteMany(keys) {
      for (const key of keys) await rm(pathOf(key), { force: true });
    },
    async put(key, body) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      const temporary = join(dirname(path), `.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
      await writeFile(temporary, body);
      await rename(temporary, path);
    },
    get: (key) => readFile(pathOf(key)),
    delete: (key) => rm(pathOf(key), { force: true }),
  };
}
