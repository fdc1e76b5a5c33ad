/**
 * API keys: named, scoped, stored hashed, revocable. A key reads `iotp_<id>_<secret>`:
 * the id finds its record (in DynamoDB, or `<data>/keys.json` locally), the SHA-256 of the
 * whole key is compared with the record's in constant time. The secret is 256 random bits,
 * so a plain hash is as strong as a slow one and costs microseconds a request.
 *
 * Scopes: `read` for the GET routes; `ingest` for every POST route, or `ingest:<route>`
 * for one (`ingest:telemetry`, `ingest:sigfox`, `ingest:ttn`, one per way in). A key may
 * also be narrowed to devices: ids, or prefixes ending in `*`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { HTTP_FORMATS } from '../formats/index.ts';
import { DEVICE_ID_PATTERN, truncate } from '../ids.ts';

/** A key's name: what `keys list` shows and `keys revoke` takes. */
export const KEY_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const KEY_PATTERN = /^iotp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** A device entry of a key: an id, or a prefix ending in `*`. */
const DEVICE_PREFIX_PATTERN = /^[A-Za-z0-9_.:-]{0,127}\*$/;
/** At most this many device entries a key; a fleet is a prefix. */
export const MAX_KEY_DEVICES = 1000;

/** The scope of one POST route: `ingest:` and the route's last path segment. */
export function routeScope(path: string): string {
  return `ingest:${path.slice(path.lastIndexOf('/') + 1)}`;
}

export const READ_SCOPE = 'read';
export const INGEST_SCOPE = 'ingest';
/** Every scope a key may hold, the routes' own included. */
export const SCOPES: readonly string[] = [
  READ_SCOPE,
  INGEST_SCOPE,
  ...HTTP_FORMATS.map((f) => routeScope(f.route.path)),
];
/** What `IOT_PIPELINE_API_KEY` holds locally: everything. */
export const ALL_SCOPES: readonly string[] = [READ_SCOPE, INGEST_SCOPE];

/** A stored key: everything but the key itself. */
export interface KeyRecord {
  /** The public part of the key, which finds this record. */
  readonly id: string;
  readonly name: string;
  /** SHA-256 of the whole key, hex. */
  readonly hash: string;
  readonly scopes: readonly string[];
  /** Devices it may write and read (ids, or prefixes ending in `*`); every device when absent. */
  readonly devices?: readonly string[];
  /** Requests a second and burst for this key; the API's defaults when absent. */
  readonly rateLimit?: number;
  readonly burstLimit?: number;
  /** Epoch ms. */
  readonly createdAt: number;
  readonly lastUsedAt?: number;
  /** Set by `keys revoke`: the key stops working (within the cache time, under a minute). */
  readonly revokedAt?: number;
}

/** What `keys create` is asked for. */
export interface KeySpec {
  readonly name: string;
  readonly scopes: readonly string[];
  readonly devices?: readonly string[];
  readonly rateLimit?: number;
  readonly burstLimit?: number;
}

/** A spec that cannot become a key; the message says what to fix. */
export class KeySpecError extends Error {}

/** Checks a spec: the name, known scopes, device entries, limits. Throws {@link KeySpecError}. */
export function validateKeySpec(spec: KeySpec): KeySpec {
  if (!KEY_NAME_PATTERN.test(spec.name))
    throw new KeySpecError(`name "${truncate(spec.name)}" must match ${KEY_NAME_PATTERN}`);
  if (spec.scopes.length === 0) throw new KeySpecError(`give at least one scope: ${SCOPES.join(', ')}`);
  for (const scope of spec.scopes) {
    if (!SCOPES.includes(scope))
      throw new KeySpecError(`unknown scope "${truncate(scope)}": use ${SCOPES.join(', ')}`);
  }
  if (spec.devices !== undefined) {
    if (spec.devices.length === 0 || spec.devices.length > MAX_KEY_DEVICES)
      throw new KeySpecError(`give 1 to ${MAX_KEY_DEVICES} devices (ids, or prefixes ending in *)`);
    for (const device of spec.devices) {
      if (!DEVICE_ID_PATTERN.test(device) && !DEVICE_PREFIX_PATTERN.test(device))
        throw new KeySpecError(
          `device "${truncate(device)}" must be an id matching ${DEVICE_ID_PATTERN} or a prefix ending in *`,
        );
    }
  }
  for (const [name, value, max] of [
    ['rate', spec.rateLimit, 10_000],
    ['burst', spec.burstLimit, 5_000],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1 || value > max))
      throw new KeySpecError(`${name} must be a whole number from 1 to ${max}`);
  }
  return {
    name: spec.name,
    scopes: [...new Set(spec.scopes)],
    ...(spec.devices === undefined ? {} : { devices: [...new Set(spec.devices)] }),
    ...(spec.rateLimit === undefined ? {} : { rateLimit: spec.rateLimit }),
    ...(spec.burstLimit === undefined ? {} : { burstLimit: spec.burstLimit }),
  };
}

/** A new key and its record: the key is shown once and never stored. */
export function createKey(
  spec: KeySpec,
  now: number,
  random: (size: number) => Buffer = randomBytes,
): { key: string; record: KeyRecord } {
  const valid = validateKeySpec(spec);
  const id = random(8).toString('hex');
  const key = `iotp_${id}_${random(32).toString('base64url')}`;
  return { key, record: { id, ...valid, hash: hashKey(key), createdAt: now } };
}

/** The id of a key, or undefined when the text is not shaped like one of ours. */
export function keyId(presented: string): string | undefined {
  return KEY_PATTERN.exec(presented)?.[1];
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** True when `presented` is the key of `record`, compared in constant time. */
export function keyMatches(record: Pick<KeyRecord, 'hash'>, presented: string): boolean {
  const stored = Buffer.from(record.hash, 'hex');
  const given = Buffer.from(hashKey(presented), 'hex');
  return stored.length === given.length && timingSafeEqual(stored, given);
}

/** True when two secrets are equal, compared in constant time (both hashed: lengths leak nothing). */
export function sameSecret(a: string, b: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** True when the scopes allow a route needing `scope` (`ingest` covers every `ingest:<route>`). */
export function hasScope(scopes: readonly string[], scope: string): boolean {
  return scopes.includes(scope) || (scope.startsWith(`${INGEST_SCOPE}:`) && scopes.includes(INGEST_SCOPE));
}

/** True when the key's devices (every device when absent) include `deviceId`. */
export function coversDevice(devices: readonly string[] | undefined, deviceId: string): boolean {
  return devices === undefined || namesDevice(devices, deviceId);
}

/** True when the key was made for this device: its list names it or a prefix of it. */
export function namesDevice(devices: readonly string[] | undefined, deviceId: string): boolean {
  return (
    devices !== undefined &&
    devices.some((entry) =>
      entry.endsWith('*') ? deviceId.startsWith(entry.slice(0, -1)) : entry === deviceId,
    )
  );
}

/** Reads a stored record back, refusing anything not shaped like one (a damaged file, a foreign item). */
export function readKeyRecord(value: unknown): KeyRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');
  const optionalNumber = (v: unknown) => v === undefined || typeof v === 'number';
  if (
    typeof r.id !== 'string' ||
    typeof r.name !== 'string' ||
    typeof r.hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(r.hash) ||
    !strings(r.scopes) ||
    (r.devices !== undefined && !strings(r.devices)) ||
    typeof r.createdAt !== 'number' ||
    !optionalNumber(r.lastUsedAt) ||
    !optionalNumber(r.revokedAt) ||
    !optionalNumber(r.rateLimit) ||
    !optionalNumber(r.burstLimit)
  )
    return undefined;
  return r as unknown as KeyRecord;
}

/** What `keys list` shows of a record: never the hash. */
export function keySummary(record: KeyRecord) {
  return {
    name: record.name,
    scopes: record.scopes,
    ...(record.devices === undefined ? {} : { devices: record.devices }),
    ...(record.rateLimit === undefined ? {} : { rateLimit: record.rateLimit }),
    ...(record.burstLimit === undefined ? {} : { burstLimit: record.burstLimit }),
    created: new Date(record.createdAt).toISOString(),
    lastUsed: record.lastUsedAt === undefined ? null : new Date(record.lastUsedAt).toISOString(),
    ...(record.revokedAt === undefined ? {} : { revoked: new Date(record.revokedAt).toISOString() }),
  };
}

/** Where keys are kept and managed: a DynamoDB table on AWS, `<data>/keys.json` locally. */
export interface KeyStore {
  /** The record of a key id (revoked ones included), or undefined. */
  find(id: string): Promise<KeyRecord | undefined>;
  list(): Promise<KeyRecord[]>;
  /** Adds a record; throws {@link KeySpecError} when an unrevoked key has the name. */
  add(record: KeyRecord): Promise<void>;
  /** Marks the named key revoked; resolves false when no unrevoked key has the name. */
  revoke(name: string, at: number): Promise<boolean>;
  /** Notes when keys were last used (called at most once a minute per key). */
  touch(used: ReadonlyMap<string, number>): Promise<void>;
}
