/**
 * The estate's queries for the registry adapters' tests: records and queries drawn by
 * fast-check, and paging through a registry (the port, as `GET /v1/devices` does) to
 * compare with the reference, `queryRecords` over the same records in memory.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import type { DeviceRecord } from '../../lambdas/core/estate/alerts.ts';
import {
  type DeviceFilter,
  type EstateQuery,
  type OfflineTimeouts,
  queryRecords,
} from '../../lambdas/core/estate/registry-query.ts';
import type { DeviceRegistry } from '../../lambdas/core/estate/update.ts';

export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const AT = Date.parse('2026-11-25T06:00:00Z');
/** 30 minutes by default, trackers 6 hours, doors 1 hour. */
export const TIMEOUTS: OfflineTimeouts = { defaultMs: 30 * MIN, byType: { tracker: 6 * HOUR, door: HOUR } };

export function estateRecord(
  deviceId: string,
  deviceType: string,
  lastSeen: number,
  attributes: Record<string, string> = {},
  alerts: DeviceRecord['alerts'] = {},
): DeviceRecord {
  return {
    deviceId,
    deviceType,
    attributes,
    firstSeen: lastSeen,
    lastSeen,
    lastValues: { temp: 21.5, site: 'north' },
    lostMessages: 0,
    alerts,
    version: 1,
  };
}

/** Records with ids that share prefixes, three types, never-heard ones and ties in `lastSeen`. */
export const RECORDS = fc
  .uniqueArray(
    fc.record({
      deviceId: fc.stringMatching(/^[a-cA-C0-9_.:-]{1,4}$/),
      deviceType: fc.constantFrom('thermo', 'tracker', 'door'),
      lastSeen: fc.oneof(
        fc.constant(0),
        fc.integer({ min: AT - 10 * HOUR, max: AT }),
        fc.constant(AT - HOUR),
      ),
      site: fc.constantFrom('north', 'south', undefined),
      alert: fc.constantFrom(undefined, 'hot', 'offline'),
    }),
    { selector: (r) => r.deviceId, maxLength: 40 },
  )
  .map((rows) =>
    rows.map((r) =>
      estateRecord(
        r.deviceId,
        r.deviceType,
        r.lastSeen,
        r.site ? { site: r.site } : {},
        r.alert
          ? {
              [r.alert]: {
                state: 'raised',
                since: AT - HOUR,
                value: r.alert === 'offline' ? 'critical' : 30,
              },
            }
          : {},
      ),
    ),
  );

/** Queries over {@link RECORDS}: any filter, sort, order and page size, with or without a key's devices. */
export const QUERIES: fc.Arbitrary<Omit<EstateQuery, 'after'>> = fc
  .record({
    filter: fc.record<DeviceFilter>(
      {
        type: fc.constantFrom('thermo', 'tracker', 'door'),
        tag: fc.constantFrom({ key: 'site', value: 'north' }, { key: 'site', value: 'west' }),
        status: fc.constantFrom('online', 'offline', 'never'),
        silentForMs: fc.constantFrom(HOUR, 90 * MIN, 5 * HOUR),
        prefix: fc.constantFrom('a', 'b', 'A', '1', 'ab'),
      },
      { requiredKeys: [] },
    ),
    devices: fc.option(fc.constantFrom(['a*'], ['b*', 'A'], ['c', '1*', 'a0']), { nil: undefined }),
    at: fc.constant(AT),
    timeouts: fc.constant(TIMEOUTS),
    sort: fc.constantFrom('deviceId', 'lastSeen'),
    order: fc.constantFrom('asc', 'desc'),
    limit: fc.integer({ min: 1, max: 7 }),
    count: fc.boolean(),
  })
  .map((q) => {
    const { devices, ...rest } = q;
    return devices === undefined ? rest : { ...rest, devices };
  });

/** Every page of a query from a registry, each resuming after the last device of the one before. */
export async function pageThrough(
  registry: Pick<DeviceRegistry, 'query'>,
  query: Omit<EstateQuery, 'after'>,
): Promise<{ ids: string[]; pages: number; totals: (number | undefined)[] }> {
  const ids: string[] = [];
  const totals: (number | undefined)[] = [];
  let after: EstateQuery['after'];
  for (let pages = 1; ; pages++) {
    const page = await registry.query({ ...query, ...(after ? { after } : {}) });
    expect(page.records.length).toBeLessThanOrEqual(query.limit);
    ids.push(...page.records.map((r) => r.deviceId));
    totals.push(page.total);
    const last = page.records[page.records.length - 1];
    if (!page.more || !last) return { ids, pages, totals };
    after = { deviceId: last.deviceId, lastSeen: last.lastSeen };
    expect(pages).toBeLessThan(500);
  }
}

/** Paging a registry through the query lists what the reference lists, each device once, and counts it. */
export async function expectPagesLikeReference(
  registry: Pick<DeviceRegistry, 'query'>,
  records: readonly DeviceRecord[],
  query: Omit<EstateQuery, 'after'>,
): Promise<void> {
  const whole = queryRecords(records, { ...query, limit: records.length + 1, count: true });
  const { ids, totals } = await pageThrough(registry, query);
  expect(ids).toEqual(whole.records.map((r) => r.deviceId));
  expect(new Set(ids).size).toBe(ids.length);
  for (const total of totals) expect(total).toBe(query.count ? whole.total : undefined);
}
