/**
 * Token buckets: `rate` tokens a second, at most `burst` held. A request takes one; when
 * none is left, the caller learns how many seconds until one is (`Retry-After`).
 */

export interface Bucket {
  /** Takes a token: 0 when the request may pass, else the seconds to wait (at least 1). */
  take(): number;
}

export function tokenBucket(
  rate: number,
  burst: number,
  now: () => number = performance.now.bind(performance),
): Bucket {
  let tokens = burst;
  let last = now();
  return {
    take() {
      const t = now();
      tokens = Math.min(burst, tokens + ((t - last) / 1000) * rate);
      last = t;
      if (tokens >= 1) {
        tokens -= 1;
        return 0;
      }
      return Math.max(1, Math.ceil((1 - tokens) / rate));
    },
  };
}

/** A bucket per name (per key), made on first use; idle ones are dropped past `max` names. */
export function bucketsByName(
  limits: (name: string) => { rate: number; burst: number },
  now?: () => number,
  max = 10_000,
) {
  const buckets = new Map<string, { bucket: Bucket; rate: number; burst: number }>();
  return (name: string): number => {
    const { rate, burst } = limits(name);
    let entry = buckets.get(name);
    // A key whose limits changed (keys create after a revoke) starts over with its new ones.
    if (!entry || entry.rate !== rate || entry.burst !== burst) {
      if (buckets.size >= max) buckets.delete(buckets.keys().next().value as string);
      entry = { bucket: tokenBucket(rate, burst, now), rate, burst };
      buckets.set(name, entry);
    }
    return entry.bucket.take();
  };
}
