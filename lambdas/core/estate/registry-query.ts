/**
 * The estate as the registry answers it a page at a time: a filter (type, id prefix,
 * attribute, status, silence), the key's devices, a sort and a position to resume after.
 * Status is not stored: it is the device's silence at one time (`at`) against its type's
 * offline timeout, so a status or silence filter is a range of `lastSeen` per group of
 * types ({@link seenRanges}), which every engine can apply where the records are (SQL,
 * a DynamoDB condition). {@link queryRecords} is the same query over records in memory:
 * what the fakes answer with and what the engines are tested against. Pure: no engine.
 */

import { coversDevice } from '../access/keys.ts';
import type { RuntimeConfig } from '../config.ts';
import { own } from '../ids.ts';
import { type DeviceRecord, OFFLINE_RULE } from './alerts.ts';

/** A device at one time: heard within its type's timeout, silent past it, or never heard. */
export type DeviceStatus = 'online' | 'offline' | 'never';
export const DEVICE_STATUSES: readonly DeviceStatus[] = ['online', 'offline', 'never'];

export type EstateSort = 'deviceId' | 'lastSeen';
export const ESTATE_SORTS: readonly EstateSort[] = ['deviceId', 'lastSeen'];
export type SortOrder = 'asc' | 'desc';
export const SORT_ORDERS: readonly SortOrder[] = ['asc', 'desc'];

/**
 * `lastSeen` of a record made before its device's first message (registered, never
 * heard). Every record the ingest path makes has a reading's time; this is the only
 * value that means "never".
 */
export const NEVER_SEEN = 0;

/** How long a device may be silent before it is offline, by type: the estate config's rule. */
export interface OfflineTimeouts {
  /** `offline.after`: every type without its own. Absent: such types are never offline. */
  readonly defaultMs?: number;
  /** The types with their own `offlineAfter`. */
  readonly byType: Readonly<Record<string, number>>;
}

/**
 * The timeouts of the config, as the offline check reads them (`offlineTimeout`), each
 * plus `lagMs`: how far the registry's last seen may be behind arrival (on AWS the ingest
 * and estate windows), so that a device is not offline only because its record is late.
 */
export function offlineTimeouts(
  config: Pick<RuntimeConfig, 'offline' | 'deviceTypes'>,
  lagMs = 0,
): OfflineTimeouts {
  const byType: Record<string, number> = {};
  for (const [type, settings] of Object.entries(config.deviceTypes)) {
    if (settings.offlineAfterMs !== undefined)
      Object.defineProperty(byType, type, { value: settings.offlineAfterMs + lagMs, enumerable: true });
  }
  return config.offline.afterMs === undefined
    ? { byType }
    : { defaultMs: config.offline.afterMs + lagMs, byType };
}

export function timeoutOf(timeouts: OfflineTimeouts, deviceType: string): number | undefined {
  return own(timeouts.byType, deviceType) ?? timeouts.defaultMs;
}

/** A device's status at `at`: silent longer than its timeout is offline, as the offline check has it. */
export function statusAt(
  record: Pick<DeviceRecord, 'deviceType' | 'lastSeen'>,
  at: number,
  timeouts: OfflineTimeouts,
): DeviceStatus {
  if (!(record.lastSeen > NEVER_SEEN)) return 'never';
  const timeout = timeoutOf(timeouts, record.deviceType);
  return timeout !== undefined && at - record.lastSeen > timeout ? 'offline' : 'online';
}

/** What a listing keeps; every value already checked. */
export interface DeviceFilter {
  readonly type?: string;
  /** `key=value` of a device attribute. */
  readonly tag?: { readonly key: string; readonly value: string };
  readonly status?: DeviceStatus;
  /** Silent at least this long (ms) at the query's time; never-heard devices are not "silent". */
  readonly silentForMs?: number;
  /** Device ids starting with this (`q=`). */
  readonly prefix?: string;
}

/** The last device of the page before: a query resumes strictly after it in its order. */
export interface EstatePosition {
  readonly deviceId: string;
  readonly lastSeen: number;
}

export interface EstateQuery {
  readonly filter: DeviceFilter;
  /** The caller's key's devices (ids, `prefix*`): only these. Absent: every device. */
  readonly devices?: readonly string[];
  /** When status and silence are measured: the first page's time, which its token carries on. */
  readonly at: number;
  readonly timeouts: OfflineTimeouts;
  /** `lastSeen` ties are broken by device id, so the order is total. */
  readonly sort: EstateSort;
  readonly order: SortOrder;
  /** Records in the page, 1 or more. */
  readonly limit: number;
  readonly after?: EstatePosition;
  /** Also count every device the filter keeps, on all pages. */
  readonly count: boolean;
}

export interface EstatePage {
  readonly records: readonly DeviceRecord[];
  /** More devices follow the last one. */
  readonly more: boolean;
  /** With `count`: how many devices the filter keeps in all. */
  readonly total?: number;
}

/**
 * A range of `lastSeen` for some device types: `from <= lastSeen < before`. Types are
 * `types` when given, else every type but `otherThan`.
 */
export interface SeenRange {
  readonly types?: readonly string[];
  readonly otherThan?: readonly string[];
  readonly from?: number;
  readonly before?: number;
}

/**
 * The status and silence of a filter as `lastSeen` ranges at `at`, one per group of types
 * sharing a timeout: a device matches when one range holds for its type. Undefined when
 * the filter says nothing of status or silence; empty when nothing can match (offline
 * where no type has a timeout). `lastSeen` is whole milliseconds (reading times are), so
 * "silent at least S" is `lastSeen < floor(at - S) + 1` and "offline" `lastSeen < ceil(at - T)`.
 */
export function seenRanges(
  filter: Pick<DeviceFilter, 'type' | 'status' | 'silentForMs'>,
  at: number,
  timeouts: OfflineTimeouts,
): readonly SeenRange[] | undefined {
  const { status, silentForMs } = filter;
  if (status === undefined && silentForMs === undefined) return undefined;
  const groups: { types?: string[]; otherThan?: string[]; timeout: number | undefined }[] = [];
  if (filter.type !== undefined)
    groups.push({ types: [filter.type], timeout: timeoutOf(timeouts, filter.type) });
  else {
    const own = Object.keys(timeouts.byType).sort();
    const byTimeout = new Map<number, string[]>();
    for (const type of own) {
      const ms = timeouts.byType[type] as number;
      byTimeout.set(ms, [...(byTimeout.get(ms) ?? []), type]);
    }
    for (const [timeout, types] of byTimeout) {
      if (timeout === timeouts.defaultMs) continue;
      groups.push({ types, timeout });
    }
    const others = own.filter((type) => timeouts.byType[type] !== timeouts.defaultMs);
    groups.push({ ...(others.length > 0 ? { otherThan: others } : {}), timeout: timeouts.defaultMs });
  }
  const silence = silentForMs === undefined ? {} : { from: 1, before: Math.floor(at - silentForMs) + 1 };
  const ranges: SeenRange[] = [];
  for (const { timeout, ...types } of groups) {
    const bounds =
      status === undefined
        ? {}
        : status === 'never'
          ? { before: NEVER_SEEN + 1 }
          : status === 'online'
            ? { from: timeout === undefined ? 1 : Math.max(1, Math.ceil(at - timeout)) }
            : timeout === undefined
              ? undefined
              : { from: 1, before: Math.ceil(at - timeout) };
    if (!bounds) continue;
    const range = intersect(bounds, silence);
    if (range.from !== undefined && range.before !== undefined && range.from >= range.before) continue;
    ranges.push({ ...types, ...range });
  }
  // One range for every type (no status differs by type: never, silence alone): no type condition.
  const [first] = ranges;
  if (
    first &&
    ranges.length === groups.length &&
    filter.type === undefined &&
    ranges.every((r) => r.from === first.from && r.before === first.before)
  )
    return [
      {
        ...(first.from === undefined ? {} : { from: first.from }),
        ...(first.before === undefined ? {} : { before: first.before }),
      },
    ];
  return ranges;
}

function intersect(
  a: { from?: number; before?: number },
  b: { from?: number; before?: number },
): { from?: number; before?: number } {
  const from = a.from === undefined ? b.from : b.from === undefined ? a.from : Math.max(a.from, b.from);
  const before =
    a.before === undefined ? b.before : b.before === undefined ? a.before : Math.min(a.before, b.before);
  return { ...(from === undefined ? {} : { from }), ...(before === undefined ? {} : { before }) };
}

/** Whether a record's type and `lastSeen` fall in a range. */
export function inSeenRange(
  record: Pick<DeviceRecord, 'deviceType' | 'lastSeen'>,
  range: SeenRange,
): boolean {
  if (range.types && !range.types.includes(record.deviceType)) return false;
  if (range.otherThan?.includes(record.deviceType)) return false;
  if (range.from !== undefined && !(record.lastSeen >= range.from)) return false;
  if (range.before !== undefined && !(record.lastSeen < range.before)) return false;
  return true;
}

/** Whether a record is one the query lists (on any page). */
export function matchesQuery(
  record: DeviceRecord,
  query: Pick<EstateQuery, 'filter' | 'devices' | 'at' | 'timeouts'>,
  ranges: readonly SeenRange[] | undefined = seenRanges(query.filter, query.at, query.timeouts),
): boolean {
  const { filter } = query;
  if (filter.type !== undefined && record.deviceType !== filter.type) return false;
  if (filter.prefix !== undefined && !record.deviceId.startsWith(filter.prefix)) return false;
  if (filter.tag && own(record.attributes, filter.tag.key) !== filter.tag.value) return false;
  if (!coversDevice(query.devices, record.deviceId)) return false;
  return ranges === undefined || ranges.some((range) => inSeenRange(record, range));
}

/**
 * The query's order: device ids compared by code unit (device ids are ASCII, so this is
 * the byte order of DynamoDB keys and DuckDB's VARCHAR); `lastSeen`, then the id.
 */
export function compareInOrder(
  a: EstatePosition,
  b: EstatePosition,
  sort: EstateSort,
  order: SortOrder,
): number {
  const byId = a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0;
  const ascending =
    sort === 'lastSeen' && a.lastSeen !== b.lastSeen ? Math.sign(a.lastSeen - b.lastSeen) : byId;
  return order === 'asc' ? ascending : -ascending;
}

/** The page the query asks for, from records in memory (the fakes, the CLI's file reads, the reference in tests). */
export function queryRecords(records: Iterable<DeviceRecord>, query: EstateQuery): EstatePage {
  const ranges = seenRanges(query.filter, query.at, query.timeouts);
  const matching = [...records].filter((r) => matchesQuery(r, query, ranges));
  const { sort, order, after } = query;
  const following = after ? matching.filter((r) => compareInOrder(r, after, sort, order) > 0) : matching;
  following.sort((a, b) => compareInOrder(a, b, sort, order));
  return {
    records: following.slice(0, query.limit),
    more: following.length > query.limit,
    ...(query.count ? { total: matching.length } : {}),
  };
}

/** Devices by status and their open alerts, for `GET /v1/estate`. */
export interface EstateTally {
  readonly devices: number;
  readonly online: number;
  readonly offline: number;
  readonly never: number;
  /**
   * Open (raised) alerts by rule, and for offline alerts by the severity they were
   * raised with (which the record keeps; a threshold rule's severity is in the config).
   */
  readonly alerts: readonly { readonly rule: string; readonly severity?: string; readonly count: number }[];
}

/** What a tally counts: the caller's devices, their status at `at`. */
export type TallyQuery = Pick<EstateQuery, 'devices' | 'at' | 'timeouts'>;

/** A tally made one record at a time (the DynamoDB adapter's scan holds no more than a page). */
export function estateTallier(query: TallyQuery): { add(record: DeviceRecord): void; result(): EstateTally } {
  const counts = { devices: 0, online: 0, offline: 0, never: 0 };
  const alerts = new Map<string, { rule: string; severity?: string; count: number }>();
  return {
    add(record) {
      if (!coversDevice(query.devices, record.deviceId)) return;
      counts.devices++;
      counts[statusAt(record, query.at, query.timeouts)]++;
      for (const [rule, state] of Object.entries(record.alerts)) {
        if (state.state !== 'raised') continue;
        const severity = rule === OFFLINE_RULE && typeof state.value === 'string' ? state.value : undefined;
        const key = JSON.stringify([rule, severity ?? null]);
        const entry = alerts.get(key) ?? { rule, ...(severity === undefined ? {} : { severity }), count: 0 };
        entry.count++;
        alerts.set(key, entry);
      }
    },
    result: () => ({
      ...counts,
      alerts: [...alerts.values()].sort((a, b) =>
        a.rule === b.rule ? (a.severity ?? '').localeCompare(b.severity ?? '') : a.rule < b.rule ? -1 : 1,
      ),
    }),
  };
}

/** The tally of records in memory (fakes, the reference in tests). */
export function tallyRecords(records: Iterable<DeviceRecord>, query: TallyQuery): EstateTally {
  const tallier = estateTallier(query);
  for (const record of records) tallier.add(record);
  return tallier.result();
}

/** A device as listings show it (`GET /v1/devices`, the CLI). */
export interface DeviceSummary {
  readonly deviceId: string;
  readonly deviceType: string;
  /** At the listing's time, by the type's offline timeout. */
  readonly status: DeviceStatus;
  /** ISO-8601; null for a device never heard. */
  readonly lastSeen: string | null;
  readonly firstSeen: string | null;
  readonly attributes: Readonly<Record<string, string>>;
  readonly lastValues: Readonly<Record<string, number | string | boolean>>;
  readonly lostMessages: number;
  readonly openAlerts: { readonly rule: string; readonly since: string }[];
}

export function deviceSummary(record: DeviceRecord, at: number, timeouts: OfflineTimeouts): DeviceSummary {
  const iso = (ms: number) => (ms > NEVER_SEEN ? new Date(ms).toISOString() : null);
  return {
    deviceId: record.deviceId,
    deviceType: record.deviceType,
    status: statusAt(record, at, timeouts),
    lastSeen: iso(record.lastSeen),
    firstSeen: iso(record.firstSeen),
    attributes: record.attributes,
    lastValues: record.lastValues,
    lostMessages: record.lostMessages,
    openAlerts: Object.entries(record.alerts)
      .filter(([, a]) => a.state === 'raised')
      .map(([rule, a]) => ({ rule, since: new Date(a.since).toISOString() })),
  };
}

/** Every device of `records` the filter keeps at `at`, by device id: the whole listing, in memory. */
export function filterDevices(
  records: readonly DeviceRecord[],
  filter: DeviceFilter,
  at: number,
  timeouts: OfflineTimeouts,
): DeviceSummary[] {
  const query: EstateQuery = {
    filter,
    at,
    timeouts,
    sort: 'deviceId',
    order: 'asc',
    limit: records.length,
    count: false,
  };
  return queryRecords(records, query).records.map((r) => deviceSummary(r, at, timeouts));
}
