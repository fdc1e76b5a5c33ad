/**
 * `GET /v1/devices`: the device estate a page at a time, filtered where the records are
 * (`?type=`, `?tag=key=value`, `?status=online|offline|never`, `?silentFor=2h`, `?q=<id
 * prefix>`), sorted (`?sort=deviceId|lastSeen&order=asc|desc`), `?limit=` devices a page
 * (default 100, at most 1000), `?count=true` for the number that match on all pages, and
 * `?next=` to go on. Needs a key with the `read` scope; a key made for some devices sees
 * only those. 400 with the reason for a parameter it cannot read.
 *
 * Status is measured at the first page's time, which the token carries: every page of
 * one listing judges silence at the same moment. The token is bound to its query (the
 * filter, sort and the key's devices) and holds only the last device's position, which
 * the registry resumes after: one from another listing is refused, a forged one pages at
 * most the caller's own devices.
 */

import { READ_SCOPE } from '../access/keys.ts';
import { parseDuration } from '../duration.ts';
import {
  DEVICE_STATUSES,
  type DeviceFilter,
  type DeviceSummary,
  deviceSummary,
  ESTATE_SORTS,
  type EstatePosition,
  type EstateQuery,
  type OfflineTimeouts,
  SORT_ORDERS,
} from '../estate/registry-query.ts';
import type { DeviceRegistry } from '../estate/update.ts';
import { DEVICE_ID_PATTERN, DEVICE_TYPE_PATTERN } from '../ids.ts';
import { type Gate, isResponse } from './gate.ts';
import { type HttpRequest, type HttpResponse, json } from './http.ts';
import { ParameterError, parseChoice, parseLimit } from './list-params.ts';
import { decodePageToken, encodePageToken, NOT_A_TOKEN, queryDigest } from './page-token.ts';
import { InvalidTokenError } from './query.ts';

export const DEVICES_PATH = '/v1/devices';
/** Devices a page without `limit`. */
export const DEFAULT_DEVICES_PAGE = 100;

/** The answer: this page's devices, how many (`count`), the token for the next, and `total` when asked. */
export interface DevicesAnswer {
  /** When status was measured (ISO-8601): the first page's time. */
  readonly at: string;
  readonly count: number;
  readonly devices: DeviceSummary[];
  readonly next?: string;
  readonly total?: number;
}

export interface DevicesDeps {
  readonly gate: Gate;
  readonly registry: Pick<DeviceRegistry, 'query'>;
  /** The offline timeouts status is measured by (the run-time config's). */
  readonly timeouts: OfflineTimeouts;
  readonly now?: () => number;
}

export async function handleDevicesRequest(request: HttpRequest, deps: DevicesDeps): Promise<HttpResponse> {
  if (request.method !== 'GET')
    return json(
      405,
      { error: 'method_not_allowed', message: `Use GET on ${DEVICES_PATH}` },
      { allow: 'GET' },
    );
  const caller = await deps.gate.admit(request, READ_SCOPE);
  if (isResponse(caller)) return caller;
  const params = new URLSearchParams(request.query ?? '');
  const filter = parseFilter(params);
  if ('error' in filter) return json(400, { error: 'invalid_filter', message: filter.error });
  let listing: Omit<EstateQuery, 'at' | 'after' | 'timeouts'>;
  let digest: string;
  let resumed: { at: number; after: EstatePosition } | undefined;
  try {
    listing = {
      filter,
      ...(caller.devices === undefined ? {} : { devices: caller.devices }),
      sort: parseChoice(params, 'sort', ESTATE_SORTS) ?? 'deviceId',
      order: parseChoice(params, 'order', SORT_ORDERS) ?? 'asc',
      limit: parseLimit(params, DEFAULT_DEVICES_PAGE),
      count: parseChoice(params, 'count', ['true', 'false'] as const) === 'true',
    };
    digest = listingDigest(listing);
    const next = params.get('next');
    resumed = next === null ? undefined : readDevicesToken(next, digest);
  } catch (error) {
    if (error instanceof ParameterError)
      return json(400, { error: 'invalid_parameter', message: error.message });
    if (error instanceof InvalidTokenError)
      return json(400, { error: 'invalid_token', message: error.message });
    throw error;
  }
  const at = resumed?.at ?? (deps.now ?? Date.now)();
  const page = await deps.registry.query({
    ...listing,
    at,
    timeouts: deps.timeouts,
    ...(resumed ? { after: resumed.after } : {}),
  });
  const last = page.records[page.records.length - 1];
  const answer: DevicesAnswer = {
    at: new Date(at).toISOString(),
    count: page.records.length,
    devices: page.records.map((r) => deviceSummary(r, at, deps.timeouts)),
    ...(page.more && last
      ? {
          next: devicesToken(digest, at, {
            deviceId: last.deviceId,
            lastSeen: last.lastSeen,
          }),
        }
      : {}),
    ...(page.total === undefined ? {} : { total: page.total }),
  };
  return json(200, answer);
}

/**
 * The filter parameters (`type`, `tag`, `status`, `silentFor`, `q`), checked; also what
 * the CLI's `devices` flags become.
 */
export function parseFilter(params: URLSearchParams): DeviceFilter | { error: string } {
  const filter: { -readonly [K in keyof DeviceFilter]: DeviceFilter[K] } = {};
  const type = params.get('type');
  if (type !== null) {
    if (!DEVICE_TYPE_PATTERN.test(type)) return { error: `type must match ${DEVICE_TYPE_PATTERN}` };
    filter.type = type;
  }
  const tag = params.get('tag');
  if (tag !== null) {
    const at = tag.indexOf('=');
    if (at < 1) return { error: `tag "${tag.slice(0, 64)}" must be key=value` };
    filter.tag = { key: tag.slice(0, at), value: tag.slice(at + 1) };
  }
  const status = params.get('status');
  if (status !== null) {
    const known = DEVICE_STATUSES.find((s) => s === status);
    if (!known) return { error: `status must be ${DEVICE_STATUSES.join(', ')}` };
    filter.status = known;
  }
  const silentFor = params.get('silentFor');
  if (silentFor !== null) {
    try {
      filter.silentForMs = parseDuration(silentFor);
    } catch (error) {
      return { error: `silentFor: ${(error as Error).message}` };
    }
  }
  const q = params.get('q');
  if (q !== null && q !== '') {
    // A prefix of an id has an id's characters; anything else could only match nothing.
    if (!DEVICE_ID_PATTERN.test(q))
      return { error: `q (a device id prefix) must match ${DEVICE_ID_PATTERN}` };
    filter.prefix = q;
  }
  return filter;
}

/** What a token is bound to: the filter, the order and the key's devices (not the page size). */
function listingDigest(listing: Pick<EstateQuery, 'filter' | 'devices' | 'sort' | 'order'>): string {
  const { type, tag, status, silentForMs, prefix } = listing.filter;
  return queryDigest([
    'devices',
    type ?? null,
    tag ? [tag.key, tag.value] : null,
    status ?? null,
    silentForMs ?? null,
    prefix ?? null,
    listing.sort,
    listing.order,
    listing.devices ?? null,
  ]);
}

/** `next`: the listing's time and the last device's position, under the listing's digest. */
function devicesToken(digest: string, at: number, after: EstatePosition): string {
  return encodePageToken(digest, { t: at, i: after.deviceId, s: after.lastSeen });
}

function readDevicesToken(token: string, digest: string): { at: number; after: EstatePosition } {
  const { t, i, s } = decodePageToken(token, digest);
  if (
    typeof t !== 'number' ||
    !Number.isSafeInteger(t) ||
    t < 0 ||
    typeof i !== 'string' ||
    !DEVICE_ID_PATTERN.test(i) ||
    typeof s !== 'number' ||
    !Number.isSafeInteger(s) ||
    s < 0
  )
    throw new InvalidTokenError(NOT_A_TOKEN);
  return { at: t, after: { deviceId: i, lastSeen: s } };
}
