/**
 * Who may do what, checked before any route reads a body: the key is authenticated
 * (its record found by id, its hash compared in constant time), throttled by its own
 * bucket, and its scopes checked against the route. Requests without a valid key get
 * 401 and spend only the keyless bucket, never a key's budget.
 */
import {
  ALL_SCOPES,
  hasScope,
  type KeyRecord,
  type KeyStore,
  keyId,
  keyMatches,
  READ_SCOPE,
  sameSecret,
} from '../access/keys.ts';
import { bucketsByName, tokenBucket } from '../access/throttle.ts';
import { type HttpRequest, type HttpResponse, json, type SignedInUser } from './http.ts';

/** Who is calling: the key's name, scopes and devices. */
export interface Caller {
  readonly name: string;
  readonly scopes: readonly string[];
  readonly devices?: readonly string[];
}

/** Requests a second and burst: per key (unless the key sets its own), and for all keyless requests together. */
export interface GateLimits {
  readonly keyRateLimit: number;
  readonly keyBurstLimit: number;
  readonly anonymousRateLimit: number;
  readonly anonymousBurstLimit: number;
}

export const DEFAULT_GATE_LIMITS: GateLimits = {
  keyRateLimit: 100,
  keyBurstLimit: 200,
  anonymousRateLimit: 10,
  anonymousBurstLimit: 20,
};

export interface GateOptions {
  /** Where keys are found; {@link cachedKeys} puts a short cache in front of a store. */
  readonly find: (id: string) => Promise<KeyRecord | undefined>;
  /** One more key with every scope, not stored anywhere (`IOT_PIPELINE_API_KEY` locally). */
  readonly masterKey?: string;
  readonly limits?: GateLimits;
  /** Told each time a stored key is used (see {@link usageRecorder}). */
  readonly onUse?: (record: KeyRecord, at: number) => Promise<void> | void;
  readonly now?: () => number;
  /** Clock of the buckets, in ms (tests). */
  readonly clock?: () => number;
}

export interface Gate {
  /**
   * The caller when the request may use a route needing `scope`, else the 401, 403 or 429 to
   * answer. A request API Gateway verified as signed in ({@link HttpRequest.signedIn}) may
   * read and nothing else; any other request needs a key.
   */
  admit(request: Pick<HttpRequest, 'headers' | 'signedIn'>, scope: string): Promise<Caller | HttpResponse>;
}

const MASTER_NAME = 'IOT_PIPELINE_API_KEY';

export function isResponse(value: Caller | HttpResponse): value is HttpResponse {
  return 'statusCode' in value;
}

export function createGate(options: GateOptions): Gate {
  const limits = options.limits ?? DEFAULT_GATE_LIMITS;
  const now = options.now ?? Date.now;
  const keyless = tokenBucket(limits.anonymousRateLimit, limits.anonymousBurstLimit, options.clock);
  const rates = new Map<string, { rate: number; burst: number }>();
  const perKey = bucketsByName(
    (name) => rates.get(name) ?? { rate: limits.keyRateLimit, burst: limits.keyBurstLimit },
    options.clock,
  );
  return {
    async admit(request, scope) {
      if (request.signedIn) return admitSignedIn(request.signedIn, scope);
      const presented = presentedKey(request.headers);
      const caller = presented === undefined ? undefined : await authenticate(presented);
      if (!caller) {
        const wait = keyless.take();
        if (wait > 0)
          return json(
            429,
            {
              error: 'too_many_requests',
              message: `Too many requests without a valid key; retry after ${wait} s`,
            },
            { 'retry-after': String(wait) },
          );
        return json(401, {
          error: 'unauthorized',
          message:
            presented === undefined
              ? 'Send an API key as "Authorization: Bearer <key>" or "x-api-key: <key>"'
              : 'The API key is not valid (unknown or revoked); make one with `iot-pipeline keys create`',
        });
      }
      const wait = perKey(caller.name);
      if (wait > 0) {
        const { rate, burst } = rates.get(caller.name) ?? {
          rate: limits.keyRateLimit,
          burst: limits.keyBurstLimit,
        };
        return json(
          429,
          {
            error: 'too_many_requests',
            message: `Key "${caller.name}" is over its ${rate} requests a second (burst ${burst}); retry after ${wait} s`,
          },
          { 'retry-after': String(wait) },
        );
      }
      if (!hasScope(caller.scopes, scope)) {
        const wanted = scope.startsWith('ingest:') ? `"${scope}" or "ingest"` : `"${scope}"`;
        return json(403, {
          error: 'forbidden',
          message: `Key "${caller.name}" may not use this route: it needs scope ${wanted}; the key has ${caller.scopes.join(', ')}`,
        });
      }
      return caller;
    },
  };

  /**
   * A console user: read scope only, whatever else the token says (sending telemetry
   * takes a key), throttled by their own bucket at the per-key limits.
   */
  function admitSignedIn(user: SignedInUser, scope: string): Caller | HttpResponse {
    // ':' is never in a key name, so a user's bucket is never a key's.
    const name = `console:${user.username ?? user.subject}`;
    const wait = perKey(`console:${user.subject}`);
    if (wait > 0)
      return json(
        429,
        {
          error: 'too_many_requests',
          message: `${name} is over ${limits.keyRateLimit} requests a second (burst ${limits.keyBurstLimit}); retry after ${wait} s`,
        },
        { 'retry-after': String(wait) },
      );
    if (scope !== READ_SCOPE)
      return json(403, {
        error: 'forbidden',
        message: `${name} signed in to the console, which may only read; this route needs scope "${scope}": use an API key`,
      });
    return { name, scopes: [READ_SCOPE] };
  }

  async function authenticate(presented: string): Promise<Caller | undefined> {
    if (options.masterKey && sameSecret(presented, options.masterKey))
      return { name: MASTER_NAME, scopes: ALL_SCOPES };
    const id = keyId(presented);
    if (id === undefined) return undefined;
    const record = await options.find(id);
    if (!record || record.revokedAt !== undefined || !keyMatches(record, presented)) return undefined;
    if (record.rateLimit !== undefined || record.burstLimit !== undefined)
      rates.set(record.name, {
        rate: record.rateLimit ?? limits.keyRateLimit,
        burst: record.burstLimit ?? limits.keyBurstLimit,
      });
    else rates.delete(record.name);
    await options.onUse?.(record, now());
    return {
      name: record.name,
      scopes: record.scopes,
      ...(record.devices === undefined ? {} : { devices: record.devices }),
    };
  }
}

/**
 * The key a request presents: `x-api-key`, else `Authorization: Bearer <key>`, else the
 * bare `Authorization` value (Sigfox lets users set only the header's whole value). An
 * empty header counts as absent, so an empty `x-api-key` never hides a good Bearer key.
 */
export function presentedKey(headers: HttpRequest['headers']): string | undefined {
  const header = headers['x-api-key']?.trim();
  if (header) return header;
  const authorization = headers.authorization?.trim().replace(/^Bearer(\s+|$)/i, '');
  return authorization || undefined;
}

/**
 * A store's `find` behind a cache of `ttlMs` (found and not found alike): a revoked key
 * stops working within `ttlMs`, and a flood of made-up ids costs one lookup each per
 * `ttlMs`, not one per request.
 */
export function cachedKeys(
  find: KeyStore['find'],
  ttlMs = 30_000,
  now: () => number = Date.now,
  max = 10_000,
): (id: string) => Promise<KeyRecord | undefined> {
  const cache = new Map<string, { record: KeyRecord | undefined; at: number }>();
  return async (id) => {
    const hit = cache.get(id);
    const t = now();
    if (hit && t - hit.at < ttlMs) return hit.record;
    const record = await find(id);
    cache.delete(id);
    if (cache.size >= max) cache.delete(cache.keys().next().value as string);
    cache.set(id, { record, at: t });
    return record;
  };
}

/**
 * Notes keys' use for `keys list`, writing to the store at most once per `everyMs` per key
 * (one write a minute, not one a request). Failures are reported, never fail a request.
 */
export function usageRecorder(
  touch: KeyStore['touch'],
  onError: (error: Error) => void,
  everyMs = 60_000,
): (record: KeyRecord, at: number) => Promise<void> {
  const written = new Map<string, number>();
  return async (record, at) => {
    const last = written.get(record.id) ?? record.lastUsedAt;
    if (last !== undefined && at - last < everyMs) return;
    written.set(record.id, at);
    try {
      await touch(new Map([[record.id, at]]));
    } catch (error) {
      onError(error as Error);
    }
  };
}
