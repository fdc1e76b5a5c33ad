import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createKey } from '../../../lambdas/core/access/keys.ts';
import { type DevicesAnswer, handleDevicesRequest } from '../../../lambdas/core/api/devices.ts';
import { createGate } from '../../../lambdas/core/api/gate.ts';
import type { HttpRequest } from '../../../lambdas/core/api/http.ts';
import { NOT_A_TOKEN, OTHER_QUERY } from '../../../lambdas/core/api/page-token.ts';
import { checkOffline, type DeviceRecord } from '../../../lambdas/core/estate/alerts.ts';
import {
  type DeviceFilter,
  type DeviceStatus,
  type EstateQuery,
  matchesQuery,
  type OfflineTimeouts,
  offlineTimeouts,
  queryRecords,
  seenRanges,
  statusAt,
} from '../../../lambdas/core/estate/registry-query.ts';
import { memoryRegistry, UNLIMITED } from '../../support/fakes.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const NOW = Date.parse('2026-11-25T06:00:00Z');
/** 30 minutes by default, trackers 6 hours, as a config with `offline.after` and one type's `offlineAfter`. */
const TIMEOUTS: OfflineTimeouts = { defaultMs: 30 * MIN, byType: { tracker: 6 * HOUR } };

const record = (deviceId: string, deviceType: string, lastSeen: number, attributes = {}): DeviceRecord => ({
  deviceId,
  deviceType,
  attributes,
  firstSeen: lastSeen,
  lastSeen,
  lastValues: {},
  lostMessages: 0,
  alerts: {},
  version: 1,
});

const MASTER = 'master-key';
const north = createKey({ name: 'north', scopes: ['read'], devices: ['north-*', 'x-1'] }, 0);
const gate = createGate({
  find: async (id) => (id === north.record.id ? north.record : undefined),
  masterKey: MASTER,
  limits: UNLIMITED,
});
const get = (query: string, key = MASTER): HttpRequest => ({
  method: 'GET',
  path: '/v1/devices',
  query,
  headers: { authorization: `Bearer ${key}` },
  body: Buffer.alloc(0),
  requestId: 'r',
  receivedAt: NOW,
});

async function registryOf(records: readonly DeviceRecord[]) {
  const registry = memoryRegistry();
  for (const r of records) registry.records.set(r.deviceId, r);
  return registry;
}

async function ask(
  records: readonly DeviceRecord[],
  query: string,
  options: { key?: string; now?: number } = {},
) {
  const registry = await registryOf(records);
  const response = await handleDevicesRequest(get(query, options.key), {
    gate,
    registry,
    timeouts: TIMEOUTS,
    now: () => options.now ?? NOW,
  });
  return {
    status: response.statusCode,
    body: JSON.parse(response.body) as DevicesAnswer & { error?: string; message?: string },
  };
}

describe('device status', () => {
  it.each([
    ['never heard', record('a', 'thermo', 0), 'never'],
    ['heard within the default timeout', record('a', 'thermo', NOW - 30 * MIN), 'online'],
    ['silent past the default timeout', record('a', 'thermo', NOW - 30 * MIN - 1), 'offline'],
    ["silent past the default, within its type's", record('a', 'tracker', NOW - 5 * HOUR), 'online'],
    ["silent past its type's", record('a', 'tracker', NOW - 6 * HOUR - 1), 'offline'],
  ] as const)('is %s', (_, r, status) => {
    expect(statusAt(r, NOW, TIMEOUTS)).toBe(status);
  });

  it('is never offline for a type with no timeout (no offline.after)', () => {
    expect(statusAt(record('a', 'thermo', 1), NOW, { byType: { tracker: HOUR } })).toBe('online');
  });

  it('takes the timeouts the offline check takes: the type, else the default', () => {
    const timeouts = offlineTimeouts({
      offline: { afterMs: 30 * MIN, severity: 'warning' },
      deviceTypes: { tracker: { offlineAfterMs: 6 * HOUR }, plain: {} },
    });
    expect(timeouts).toEqual(TIMEOUTS);
  });

  it('agrees with the offline check on every device and time', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('thermo', 'tracker'),
        fc.integer({ min: 1, max: 10 * HOUR }),
        fc.integer({ min: 0, max: 10 * HOUR }),
        (type, lastSeen, silence) => {
          const r = record('a', type, lastSeen);
          const raised = checkOffline(
            r,
            lastSeen + silence,
            TIMEOUTS.byType[type] ?? TIMEOUTS.defaultMs,
            'warning',
          );
          expect(statusAt(r, lastSeen + silence, TIMEOUTS) === 'offline').toBe(raised.event !== undefined);
        },
      ),
    );
  });
});

describe('seenRanges: status and silence as lastSeen ranges', () => {
  it.each<[string, DeviceFilter, ReturnType<typeof seenRanges>]>([
    ['no status, no silence: no condition', { type: 'thermo' }, undefined],
    ['never: lastSeen 0, for every type', { status: 'never' }, [{ before: 1 }]],
    [
      'offline: past each group of types its timeout',
      { status: 'offline' },
      [
        { types: ['tracker'], from: 1, before: NOW - 6 * HOUR },
        { otherThan: ['tracker'], from: 1, before: NOW - 30 * MIN },
      ],
    ],
    [
      'online of one type: within its timeout',
      { type: 'tracker', status: 'online' },
      [{ types: ['tracker'], from: NOW - 6 * HOUR }],
    ],
    [
      'silence alone: lastSeen at least that long ago',
      { silentForMs: 2 * HOUR },
      [{ from: 1, before: NOW - 2 * HOUR + 1 }],
    ],
    [
      'online and silent longer than the timeout: only the types it allows',
      { status: 'online', silentForMs: 2 * HOUR },
      [{ types: ['tracker'], from: NOW - 6 * HOUR, before: NOW - 2 * HOUR + 1 }],
    ],
    ['never and silent: nothing', { status: 'never', silentForMs: MIN }, []],
  ])('%s', (_, filter, ranges) => {
    expect(seenRanges(filter, NOW, TIMEOUTS)).toEqual(ranges);
  });

  it('matches exactly the devices whose status and silence say so, for any filter and time', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('thermo', 'tracker', 'door', '__proto__'),
        fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20 * HOUR })),
        fc.record(
          {
            type: fc.constantFrom('thermo', 'tracker', 'door'),
            status: fc.constantFrom<DeviceStatus>('online', 'offline', 'never'),
            silentForMs: fc.integer({ min: 0, max: 12 * HOUR }),
          },
          { requiredKeys: [] },
        ),
        fc.constantFrom<OfflineTimeouts>(
          TIMEOUTS,
          { byType: { door: HOUR } },
          { defaultMs: 7 * HOUR, byType: { tracker: 7 * HOUR } },
        ),
        (type, lastSeen, filter, timeouts) => {
          const at = 20 * HOUR;
          const r = record('a', type, lastSeen);
          const expected =
            (filter.type === undefined || filter.type === type) &&
            (filter.status === undefined || statusAt(r, at, timeouts) === filter.status) &&
            (filter.silentForMs === undefined || (lastSeen > 0 && at - lastSeen >= filter.silentForMs));
          expect(matchesQuery(r, { filter, at, timeouts })).toBe(expected);
        },
      ),
    );
  });
});

describe('GET /v1/devices', () => {
  const estate = [
    record('north-1', 'thermo', NOW - MIN, { site: 'north' }),
    record('north-2', 'thermo', NOW - 2 * HOUR, { site: 'north' }),
    record('south-1', 'tracker', NOW - 2 * HOUR, { site: 'south' }),
    record('south-2', 'tracker', 0),
    record('x-1', 'door', NOW - 3 * HOUR),
  ];

  it('answers a page of 100 by default, by device id, with its time and count', async () => {
    const many = Array.from({ length: 250 }, (_, i) =>
      record(`d-${String(i).padStart(3, '0')}`, 'thermo', NOW),
    );
    const { status, body } = await ask(many, '');
    expect(status).toBe(200);
    expect(body.count).toBe(100);
    expect(body.devices.map((d) => d.deviceId)).toEqual(many.slice(0, 100).map((r) => r.deviceId));
    expect(body.at).toBe(new Date(NOW).toISOString());
    expect(body.next).toEqual(expect.any(String));
    expect(body.total).toBeUndefined();
  });

  it.each([
    ['type', 'type=tracker', ['south-1', 'south-2']],
    ['attribute', 'tag=site=north', ['north-1', 'north-2']],
    ['online', 'status=online', ['north-1', 'south-1']],
    ['offline', 'status=offline', ['north-2', 'x-1']],
    ['never heard', 'status=never', ['south-2']],
    ['silent for', 'silentFor=2h', ['north-2', 'south-1', 'x-1']],
    ['id prefix', 'q=south', ['south-1', 'south-2']],
    [
      'by last seen, newest first',
      'sort=lastSeen&order=desc',
      ['north-1', 'south-1', 'north-2', 'x-1', 'south-2'],
    ],
    ['by id, descending', 'order=desc&type=thermo', ['north-2', 'north-1']],
    ['several filters at once', 'status=offline&tag=site=north&q=north', ['north-2']],
  ])('filters and sorts: %s', async (_, query, ids) => {
    const { status, body } = await ask(estate, query);
    expect(status).toBe(200);
    expect(body.devices.map((d) => d.deviceId)).toEqual(ids);
  });

  it('says each device as listings show it, status at the listing time', async () => {
    const { body } = await ask(estate, 'q=south');
    expect(body.devices).toEqual([
      expect.objectContaining({
        deviceId: 'south-1',
        status: 'online',
        lastSeen: new Date(NOW - 2 * HOUR).toISOString(),
      }),
      expect.objectContaining({ deviceId: 'south-2', status: 'never', lastSeen: null, firstSeen: null }),
    ]);
  });

  it('counts every match with count=true, not only the page', async () => {
    const { body } = await ask(estate, 'status=offline&limit=1&count=true');
    expect(body).toMatchObject({ count: 1, total: 2, devices: [{ deviceId: 'north-2' }] });
    expect(body.next).toEqual(expect.any(String));
  });

  it('lists and counts only the devices of a key made for some', async () => {
    const { body } = await ask(estate, 'count=true', { key: north.key });
    expect(body.devices.map((d) => d.deviceId)).toEqual(['north-1', 'north-2', 'x-1']);
    expect(body.total).toBe(3);
  });

  it('measures status at the first page time on every page of a listing', async () => {
    // north-1 was heard a minute ago: a page asked 40 minutes later, with the first page's token, still says online.
    const first = await ask(estate, 'status=online&limit=1');
    expect(first.body.devices.map((d) => d.deviceId)).toEqual(['north-1']);
    const later = await ask(estate, `status=online&limit=1&next=${first.body.next}`, { now: NOW + 40 * MIN });
    expect(later.body.at).toBe(first.body.at);
    expect(later.body.devices.map((d) => d.deviceId)).toEqual(['south-1']);
    expect(later.body.next).toBeUndefined();
  });

  it.each([
    ['limit=0', 'invalid_parameter', /limit must be 1 to 1000/],
    ['limit=1001', 'invalid_parameter', /limit must be 1 to 1000/],
    ['limit=ten', 'invalid_parameter', /limit must be 1 to 1000/],
    ['sort=name', 'invalid_parameter', /sort must be one of deviceId, lastSeen/],
    ['order=up', 'invalid_parameter', /order must be one of asc, desc/],
    ['count=yes', 'invalid_parameter', /count must be one of true, false/],
    ['status=sleeping', 'invalid_filter', /status must be online, offline, never/],
    ['silentFor=soon', 'invalid_filter', /silentFor: "soon" is not a duration/],
    ['tag=site', 'invalid_filter', /must be key=value/],
    ['type=a%20b', 'invalid_filter', /type must match/],
    ['q=a%2Fb', 'invalid_filter', /q \(a device id prefix\) must match/],
    ['next=garbage!', 'invalid_token', new RegExp(NOT_A_TOKEN)],
  ])('refuses %s with a reason (400 %s)', async (query, error, message) => {
    const { status, body } = await ask(estate, query);
    expect(status).toBe(400);
    expect(body.error).toBe(error);
    expect(body.message).toMatch(message);
  });

  it('refuses a token made for another filter, sort or key, and takes it with another page size', async () => {
    const { body } = await ask(estate, 'status=offline&limit=1');
    for (const other of [
      'status=online',
      'status=offline&sort=lastSeen',
      'status=offline&order=desc',
      'type=thermo',
    ]) {
      const refused = await ask(estate, `${other}&limit=1&next=${body.next}`);
      expect(refused.status).toBe(400);
      expect(refused.body).toMatchObject({ error: 'invalid_token', message: OTHER_QUERY });
    }
    const byKey = await ask(estate, `status=offline&limit=1&next=${body.next}`, { key: north.key });
    expect(byKey.body.error).toBe('invalid_token');
    const resized = await ask(estate, `status=offline&limit=5&next=${body.next}`);
    expect(resized.body.devices.map((d) => d.deviceId)).toEqual(['x-1']);
  });

  it('refuses a token whose position is not a device (a made-up one)', async () => {
    const { body } = await ask(estate, 'limit=1');
    const state = JSON.parse(Buffer.from(body.next as string, 'base64url').toString());
    const forged = Buffer.from(JSON.stringify({ ...state, i: 'not an id' })).toString('base64url');
    expect((await ask(estate, `limit=1&next=${forged}`)).body).toMatchObject({
      error: 'invalid_token',
      message: NOT_A_TOKEN,
    });
  });

  it('pages a forged position through the caller’s own devices only', async () => {
    const { body } = await ask(estate, 'limit=1', { key: north.key });
    const state = JSON.parse(Buffer.from(body.next as string, 'base64url').toString());
    const forged = Buffer.from(JSON.stringify({ ...state, i: 'a' })).toString('base64url');
    const page = await ask(estate, `limit=10&next=${forged}`, { key: north.key });
    expect(page.body.devices.map((d) => d.deviceId)).toEqual(['north-1', 'north-2', 'x-1']);
  });

  it('answers 405 to anything but GET', async () => {
    const registry = await registryOf(estate);
    const response = await handleDevicesRequest(
      { ...get(''), method: 'POST' },
      { gate, registry, timeouts: TIMEOUTS },
    );
    expect(response.statusCode).toBe(405);
  });
});

const ID = fc.stringMatching(/^[a-cA-C0-9_.:-]{1,4}$/);
const RECORD = fc.record({
  deviceId: ID,
  deviceType: fc.constantFrom('thermo', 'tracker', 'door'),
  lastSeen: fc.oneof(fc.constant(0), fc.integer({ min: NOW - 10 * HOUR, max: NOW }), fc.constant(NOW - HOUR)),
  site: fc.constantFrom('north', 'south', undefined),
});
const QUERY = fc.record(
  {
    type: fc.constantFrom('thermo', 'tracker', 'door'),
    tag: fc.constant('site=north'),
    status: fc.constantFrom('online', 'offline', 'never'),
    silentFor: fc.constantFrom('1h', '90m', '5h'),
    q: fc.constantFrom('a', 'b', 'A', '1'),
    sort: fc.constantFrom('deviceId', 'lastSeen'),
    order: fc.constantFrom('asc', 'desc'),
  },
  { requiredKeys: [] },
);

/** Every page of a listing, following `next` to the end. */
async function allPages(registry: Awaited<ReturnType<typeof registryOf>>, query: string, limit: number) {
  const pages: DevicesAnswer[] = [];
  let next: string | undefined;
  do {
    const response = await handleDevicesRequest(
      get(`${query}&limit=${limit}${next ? `&next=${next}` : ''}`),
      { gate, registry, timeouts: TIMEOUTS, now: () => NOW + pages.length * MIN },
    );
    expect(response.statusCode).toBe(200);
    const page = JSON.parse(response.body) as DevicesAnswer;
    pages.push(page);
    next = page.next;
    expect(pages.length).toBeLessThan(1000);
  } while (next);
  return pages;
}

describe('paging (property)', () => {
  it('returns every matching device exactly once, in order, whatever the filter, sort and page size', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(RECORD, { selector: (r) => r.deviceId, maxLength: 40 }),
        QUERY,
        fc.integer({ min: 1, max: 7 }),
        async (rows, params, limit) => {
          const records = rows.map((r) =>
            record(r.deviceId, r.deviceType, r.lastSeen, r.site ? { site: r.site } : {}),
          );
          const registry = await registryOf(records);
          const query = new URLSearchParams(params as Record<string, string>).toString();
          const pages = await allPages(registry, query, limit);
          const listed = pages.flatMap((p) => p.devices.map((d) => d.deviceId));
          // The reference: the whole listing at once, at the first page's time.
          const filter = { filter: {}, at: NOW, timeouts: TIMEOUTS } as const;
          const whole = queryRecords(records, {
            ...filter,
            filter: {
              ...(params.type ? { type: params.type } : {}),
              ...(params.tag ? { tag: { key: 'site', value: 'north' } } : {}),
              ...(params.status ? { status: params.status as DeviceStatus } : {}),
              ...(params.silentFor
                ? { silentForMs: { '1h': HOUR, '90m': 90 * MIN, '5h': 5 * HOUR }[params.silentFor] }
                : {}),
              ...(params.q ? { prefix: params.q } : {}),
            },
            sort: (params.sort ?? 'deviceId') as EstateQuery['sort'],
            order: (params.order ?? 'asc') as EstateQuery['order'],
            limit: records.length + 1,
            count: true,
          });
          expect(listed).toEqual(whole.records.map((r) => r.deviceId));
          expect(new Set(listed).size).toBe(listed.length);
          expect(pages.every((p) => p.count <= limit)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
