/**
 * SDK clients made on first use and kept for the container's life: a function makes
 * only the clients its resources need (no Timestream client in a stack without
 * Timestream), and each once. Give it factories, typically traced ones:
 *
 * @example
 * const clients = onFirstUse<IngestClients>({
 *   s3: () => tracer.captureAWSv3Client(new S3Client({})),
 *   ...
 * });
 */
export function onFirstUse<T extends object>(factories: { readonly [K in keyof T]: () => T[K] }): T {
  const made = new Map<keyof T, T[keyof T]>();
  const clients = {} as T;
  for (const key of Object.keys(factories) as (keyof T)[]) {
    Object.defineProperty(clients, key, {
      enumerable: true,
      get: () => {
        if (!made.has(key)) made.set(key, factories[key]());
        return made.get(key);
      },
    });
  }
  return clients;
}
