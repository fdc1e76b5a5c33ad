/**
 * Where each device was first seen, for the HTTP edge: a write for a device the registry
 * knows from another way in is refused. Read from the registry behind a short cache,
 * since a device's first way in never changes and a device not yet known may become
 * known at any time (its entry is kept for less).
 */
import type { DeviceRegistry } from './update.ts';

export function registrySources(
  registry: Pick<DeviceRegistry, 'get'>,
  options: { knownTtlMs?: number; unknownTtlMs?: number; now?: () => number; max?: number } = {},
): (deviceIds: readonly string[]) => Promise<ReadonlyMap<string, string>> {
  const knownTtl = options.knownTtlMs ?? 300_000;
  const unknownTtl = options.unknownTtlMs ?? 10_000;
  const now = options.now ?? Date.now;
  const max = options.max ?? 50_000;
  const cache = new Map<string, { source: string | undefined; at: number }>();
  return async (deviceIds) => {
    const t = now();
    const found = new Map<string, string>();
    const missing: string[] = [];
    for (const id of deviceIds) {
      const hit = cache.get(id);
      if (hit && t - hit.at < (hit.source === undefined ? unknownTtl : knownTtl)) {
        if (hit.source !== undefined) found.set(id, hit.source);
      } else missing.push(id);
    }
    if (missing.length === 0) return found;
    const records = await registry.get(missing);
    for (const id of missing) {
      const source = records.get(id)?.source;
      if (source !== undefined) found.set(id, source);
      cache.delete(id);
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      cache.set(id, { source, at: t });
    }
    return found;
  };
}
