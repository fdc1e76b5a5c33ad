/**
 * The gate without a server: keys found by id and compared by hash, scopes, a revoked
 * key stopping within the cache time, throttles per key and for keyless callers, and
 * the headers a key may come in.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  coversDevice,
  createKey,
  hasScope,
  type KeyRecord,
  KeySpecError,
  keyId,
  keyMatches,
  namesDevice,
  readKeyRecord,
  SCOPES,
  validateKeySpec,
} from '../../../lambdas/core/access/keys.ts';
import { tokenBucket } from '../../../lambdas/core/access/throttle.ts';
import {
  cachedKeys,
  createGate,
  DEFAULT_GATE_LIMITS,
  isResponse,
  presentedKey,
  usageRecorder,
} from '../../../lambdas/core/api/gate.ts';

const bearer = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });

describe('keys', () => {
  it('makes keys shaped iotp_<id>_<secret> whose record holds the hash, not the key', () => {
    const { key, record } = createKey({ name: 'sigfox', scopes: ['ingest:sigfox'] }, 1);
    expect(key).toMatch(/^iotp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(keyId(key)).toBe(record.id);
    expect(JSON.stringify(record)).not.toContain(key.slice(22));
    expect(keyMatches(record, key)).toBe(true);
    expect(keyMatches(record, `${key.slice(0, -1)}x`)).toBe(false);
    expect(readKeyRecord(record)).toEqual(record);
    expect(readKeyRecord({ ...record, hash: 'short' })).toBeUndefined();
  });

  it('knows a scope per HTTP ingest route, and ingest covers them all; read covers none of them', () => {
    expect(SCOPES).toEqual([
      'read',
      'ingest',
      'ingest:telemetry',
      'ingest:sigfox',
      'ingest:ttn',
      'ingest:chirpstack',
    ]);
    expect(hasScope(['ingest'], 'ingest:ttn')).toBe(true);
    expect(hasScope(['ingest:sigfox'], 'ingest:ttn')).toBe(false);
    expect(hasScope(['read'], 'ingest:telemetry')).toBe(false);
    expect(hasScope(['ingest'], 'read')).toBe(false);
  });

  it('narrows to device ids and prefixes; a prototype name is a plain id', () => {
    expect(coversDevice(undefined, 'any')).toBe(true);
    expect(namesDevice(undefined, 'any')).toBe(false);
    expect(coversDevice(['north-*', 'x'], 'north-7')).toBe(true);
    expect(coversDevice(['north-*', 'x'], 'x')).toBe(true);
    expect(coversDevice(['north-*', 'x'], 'xy')).toBe(false);
    expect(coversDevice(['north-*'], '__proto__')).toBe(false);
    expect(coversDevice(['__proto__'], '__proto__')).toBe(true);
  });

  it.each([
    [{ name: 'a b', scopes: ['read'] }, /name "a b" must match/],
    [{ name: 'a', scopes: [] }, /at least one scope/],
    [{ name: 'a', scopes: ['admin'] }, /unknown scope "admin"/],
    [{ name: 'a', scopes: ['read'], devices: [] }, /give 1 to 1000 devices/],
    [{ name: 'a', scopes: ['read'], devices: ['a*b'] }, /device "a\*b" must be an id/],
    [{ name: 'a', scopes: ['read'], rateLimit: 0 }, /rate must be a whole number/],
  ])('refuses the spec %j', (spec, message) => {
    expect(() => validateKeySpec(spec)).toThrow(KeySpecError);
    expect(() => validateKeySpec(spec)).toThrow(message);
  });
});

describe('the gate', () => {
  const made = createKey({ name: 'reader', scopes: ['read'] }, 0);
  const store = new Map<string, KeyRecord>([[made.record.id, made.record]]);
  let finds = 0;
  const find = async (id: string) => {
    finds++;
    return store.get(id);
  };

  it('admits a key for its scope, 403s it for another, 401s anything else with what to do', async () => {
    const gate = createGate({ find });
    const caller = await gate.admit(bearer(made.key), 'read');
    expect(isResponse(caller) ? caller : caller.name).toBe('reader');
    const forbidden = await gate.admit(bearer(made.key), 'ingest:sigfox');
    expect(isResponse(forbidden) && [forbidden.statusCode, JSON.parse(forbidden.body)]).toEqual([
      403,
      { error: 'forbidden', message: expect.stringContaining('needs scope "ingest:sigfox" or "ingest"') },
    ]);
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { 'x-api-key': `${made.key}x` }]) {
      const refused = await gate.admit({ headers }, 'read');
      expect(isResponse(refused) && refused.statusCode).toBe(401);
    }
  });

  it('stops a revoked key within the cache time, reading the store once per id per period', async () => {
    let now = 0;
    const revocable = new Map(store);
    finds = 0;
    const gate = createGate({
      find: cachedKeys(
        async (id) => {
          finds++;
          return revocable.get(id);
        },
        30_000,
        () => now,
      ),
    });
    for (let i = 0; i < 50; i++) expect(isResponse(await gate.admit(bearer(made.key), 'read'))).toBe(false);
    expect(finds).toBe(1);
    revocable.set(made.record.id, { ...made.record, revokedAt: 1 });
    now = 29_999;
    expect(isResponse(await gate.admit(bearer(made.key), 'read'))).toBe(false);
    now = 30_000;
    const refused = await gate.admit(bearer(made.key), 'read');
    expect(isResponse(refused) && refused.statusCode).toBe(401);
    // Made-up ids: one lookup each per period, however often they are tried.
    finds = 0;
    const forged = `iotp_${'0'.repeat(16)}_${'A'.repeat(43)}`;
    for (let i = 0; i < 20; i++) await gate.admit(bearer(forged), 'read');
    expect(finds).toBe(1);
  });

  it('throttles each key by its own bucket (its own limits when made with them), with Retry-After', async () => {
    let t = 0;
    const slow = createKey({ name: 'slow', scopes: ['read'], rateLimit: 1, burstLimit: 2 }, 0);
    const keys = new Map([
      [slow.record.id, slow.record],
      [made.record.id, made.record],
    ]);
    const gate = createGate({ find: async (id) => keys.get(id), clock: () => t });
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const r = await gate.admit(bearer(slow.key), 'read');
      statuses.push(isResponse(r) ? [r.statusCode, r.headers['retry-after']] : 200);
    }
    expect(statuses).toEqual([200, 200, [429, '1']]);
    // Another key is not affected; a second later the slow one may go again.
    expect(isResponse(await gate.admit(bearer(made.key), 'read'))).toBe(false);
    t = 1000;
    expect(isResponse(await gate.admit(bearer(slow.key), 'read'))).toBe(false);
  });

  it('gives keyless callers their own bucket: a flood of them leaves a key its budget', async () => {
    const gate = createGate({
      find,
      limits: { ...DEFAULT_GATE_LIMITS, keyRateLimit: 1, keyBurstLimit: 1 },
      clock: () => 0,
    });
    const flood = await Promise.all(Array.from({ length: 100 }, () => gate.admit({ headers: {} }, 'read')));
    const codes = flood.map((r) => (isResponse(r) ? r.statusCode : 200));
    expect(codes.filter((c) => c === 401)).toHaveLength(DEFAULT_GATE_LIMITS.anonymousBurstLimit);
    expect(codes.filter((c) => c === 429)).toHaveLength(100 - DEFAULT_GATE_LIMITS.anonymousBurstLimit);
    expect(isResponse(await gate.admit(bearer(made.key), 'read'))).toBe(false);
  });

  it('takes the key from x-api-key, a Bearer or a bare Authorization; an empty header is absent', () => {
    expect(presentedKey({ 'x-api-key': 'a' })).toBe('a');
    expect(presentedKey({ authorization: 'Bearer b' })).toBe('b');
    expect(presentedKey({ authorization: 'bearer   c ' })).toBe('c');
    expect(presentedKey({ authorization: 'd' })).toBe('d');
    expect(presentedKey({ 'x-api-key': '', authorization: 'Bearer e' })).toBe('e');
    expect(presentedKey({ 'x-api-key': '  ', authorization: 'Bearer ' })).toBeUndefined();
    expect(presentedKey({})).toBeUndefined();
  });

  it('notes a key use at most once a minute, and a failing store never fails the request', async () => {
    const touched: number[] = [];
    const errors: string[] = [];
    const record = usageRecorder(
      async (used) => {
        touched.push(...used.values());
        if (touched.length === 2) throw new Error('throttled');
      },
      (error) => errors.push(error.message),
    );
    for (const at of [0, 10_000, 59_999, 60_000, 61_000, 120_000]) await record(made.record, at);
    expect(touched).toEqual([0, 60_000, 120_000]);
    expect(errors).toEqual(['throttled']);
  });

  it('never admits text that is not a stored key (property)', async () => {
    const gate = createGate({ find, limits: { ...DEFAULT_GATE_LIMITS, anonymousBurstLimit: 1e9 } });
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 80 }), async (text) => {
        fc.pre(text.trim() !== made.key);
        const r = await gate.admit({ headers: { authorization: `Bearer ${text}` } }, 'read');
        return isResponse(r) && r.statusCode === 401;
      }),
    );
  });

  it('buckets answer how long to wait', () => {
    let t = 0;
    const bucket = tokenBucket(0.5, 1, () => t);
    expect(bucket.take()).toBe(0);
    expect(bucket.take()).toBe(2);
    t = 2000;
    expect(bucket.take()).toBe(0);
  });
});
