import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { ObjectStore } from '../../core/ports.ts';

/**
 * The lake as a folder: the same keys as the S3 bucket, one file per object. A write
 * goes to a temporary name first and is renamed into place, so a reader (DuckDB)
 * never sees half an object and a crash leaves no torn file behind.
 */
export function folderStore(root: string): ObjectStore {
  const base = resolve(root);
  return {
    async put(key, body) {
      const path = resolve(base, key);
      // Keys come from the lake layout (validated ids only); refuse anything that escapes anyway.
      if (!path.startsWith(base + sep)) throw new Error(`lake key "${key}" points outside ${base}`);
      await mkdir(dirname(path), { recursive: true });
      const temporary = join(dirname(path), `.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
      await writeFile(temporary, body);
      await rename(temporary, path);
    },
  };
}
