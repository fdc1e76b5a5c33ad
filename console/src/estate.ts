/**
 * The estate page (`#/`): counts, and the device table filtered and paged by the server
 * (`GET /v1/devices`), sortable, refreshed every few seconds without a reload.
 */
import type { Api } from './api.ts';
import { ago, formatValue, h } from './dom.ts';
import { BATTERY_METRIC, type DeviceList, type DeviceSummary, RADIO_METRIC } from './types.ts';

const PAGE_SIZE = 50;

type SortKey = 'deviceId' | 'deviceType' | 'status' | 'lastSeen' | 'battery' | 'radio';
const COLUMNS: readonly [SortKey, string][] = [
  ['deviceId', 'Device'],
  ['deviceType', 'Type'],
  ['status', 'Status'],
  ['lastSeen', 'Last seen'],
  ['battery', 'Battery'],
  ['radio', 'Radio'],
];

export interface EstateFilters {
  type: string;
  status: string;
  tag: string;
  silentFor: string;
  q: string;
}

interface EstateState {
  filters: EstateFilters;
  sort: { key: SortKey; ascending: boolean };
  /** Tokens of the pages seen so far (server paging); the first page has none. */
  tokens: (string | undefined)[];
  page: number;
}

const state: EstateState = {
  filters: { type: '', status: '', tag: '', silentFor: '', q: '' },
  sort: { key: 'deviceId', ascending: true },
  tokens: [undefined],
  page: 0,
};

function firstMatching(values: DeviceSummary['lastValues'], pattern: RegExp): [string, unknown] | undefined {
  return Object.entries(values).find(([name]) => pattern.test(name));
}

function sortValue(device: DeviceSummary, key: SortKey): string | number {
  switch (key) {
    case 'battery':
    case 'radio': {
      const found = firstMatching(device.lastValues, key === 'battery' ? BATTERY_METRIC : RADIO_METRIC);
      return typeof found?.[1] === 'number' ? found[1] : Number.NEGATIVE_INFINITY;
    }
    case 'lastSeen':
      return device.lastSeen ? Date.parse(device.lastSeen) : 0;
    default:
      return device[key];
  }
}

export async function renderEstate(
  main: HTMLElement,
  api: Api,
  signal: AbortSignal,
): Promise<() => Promise<void>> {
  const counts = h('section', { 'aria-labelledby': 'counts-title', class: 'counts' });
  const form = filterForm();
  const table = h('div', { id: 'estate-table' });
  main.replaceChildren(
    h('h1', { id: 'page-title' }, 'Estate'),
    h('h2', { id: 'counts-title', class: 'visually-hidden' }, 'Counts'),
    counts,
    form,
    table,
  );
  const refresh = async () => {
    const [estateCounts, list] = await Promise.all([loadCounts(api), loadPage(api)]);
    if (signal.aborted) return;
    counts.replaceChildren(...countTiles(estateCounts));
    table.replaceChildren(...deviceTable(list, refresh));
    main.dataset.loaded = 'estate';
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    for (const name of Object.keys(state.filters) as (keyof EstateFilters)[])
      state.filters[name] = String(data.get(name) ?? '').trim();
    state.tokens = [undefined];
    state.page = 0;
    void refresh().catch(showError(table));
  });
  form.addEventListener('reset', () => {
    setTimeout(() => form.requestSubmit(), 0);
  });
  await refresh();
  return refresh;
}

function filterForm(): HTMLFormElement {
  const f = state.filters;
  const field = (name: keyof EstateFilters, label: string, input: HTMLElement) =>
    h('label', { for: `filter-${name}` }, label, input);
  return h(
    'form',
    { role: 'search', 'aria-label': 'Filter devices', class: 'filters' },
    field(
      'q',
      'Id',
      h('input', { id: 'filter-q', name: 'q', type: 'search', value: f.q, placeholder: 'starts with' }),
    ),
    field(
      'type',
      'Type',
      h('input', { id: 'filter-type', name: 'type', value: f.type, placeholder: 'thermo' }),
    ),
    field(
      'status',
      'Status',
      h(
        'select',
        { id: 'filter-status', name: 'status' },
        ...['', 'online', 'offline', 'never'].map((s) =>
          h('option', { value: s, selected: s === f.status }, s === 'never' ? 'never seen' : s || 'any'),
        ),
      ),
    ),
    field(
      'tag',
      'Attribute',
      h('input', { id: 'filter-tag', name: 'tag', value: f.tag, placeholder: 'site=north' }),
    ),
    field(
      'silentFor',
      'Silent for',
      h('input', { id: 'filter-silentFor', name: 'silentFor', value: f.silentFor, placeholder: '1h' }),
    ),
    h('button', { type: 'submit' }, 'Apply'),
    h('button', { type: 'reset' }, 'Clear'),
  );
}

interface Counts {
  readonly devices: number;
  readonly online: number;
  readonly offline: number;
  readonly never: number;
}

/** `GET /v1/estate` (`lambdas/core/api/estate.ts`), what the console shows of it. */
interface EstateAnswer {
  readonly devices: { readonly total: number } & Omit<Counts, 'devices'>;
  readonly alerts: { readonly open: number; readonly bySeverity: Readonly<Record<string, number>> };
  readonly traffic: {
    readonly messagesPerMinute: number;
    readonly quarantineRate: number | null;
  } | null;
  readonly uptime: {
    readonly last24h: { readonly day: string; readonly pct: number } | null;
    readonly last7d: { readonly days: number; readonly pct: number } | null;
  };
}

/** The estate at a glance from `GET /v1/estate`; on an API without it, the counts from `GET /v1/devices`. */
async function loadCounts(api: Api): Promise<{ counts: Counts; estate?: EstateAnswer }> {
  const estate = await api.optional<EstateAnswer>('/v1/estate');
  if (estate) return { counts: { ...estate.devices, devices: estate.devices.total }, estate };
  const [devices, online, offline, never] = await Promise.all(
    [undefined, 'online', 'offline', 'never'].map(async (status) => {
      const answer = await api.get<DeviceList>('/v1/devices', { status, limit: 1, count: 'true' });
      return answer.total ?? 0;
    }),
  );
  return { counts: { devices: devices ?? 0, online: online ?? 0, offline: offline ?? 0, never: never ?? 0 } };
}

function countTiles({ counts: c, estate }: { counts: Counts; estate?: EstateAnswer }) {
  const tile = (name: string, label: string, value: string, note?: string) =>
    h(
      'div',
      { class: 'tile', 'data-count': name },
      h('span', { class: 'figure' }, value),
      h('span', { class: 'label' }, label),
      note ? h('small', {}, note) : null,
    );
  const n = (value: number) => value.toLocaleString('en');
  /** A percentage (uptime's `pct` is one already; the quarantine rate is a share of 1). */
  const pct = (value: number | null | undefined) =>
    value === null || value === undefined ? '–' : `${value.toFixed(1)} %`;
  const tiles = [
    tile('devices', 'devices', n(c.devices)),
    tile('online', 'online', n(c.online)),
    tile('offline', 'offline', n(c.offline)),
    tile('never', 'never seen', n(c.never)),
  ];
  if (!estate) return tiles;
  const severities = Object.entries(estate.alerts.bySeverity)
    .filter(([, count]) => count > 0)
    .map(([severity, count]) => `${count} ${severity}`)
    .join(', ');
  const { last24h, last7d } = estate.uptime;
  return [
    ...tiles,
    tile('alerts', 'open alerts', n(estate.alerts.open), severities || undefined),
    tile(
      'messages',
      'messages a minute (24 h)',
      estate.traffic ? estate.traffic.messagesPerMinute.toFixed(1) : '–',
      estate.traffic ? undefined : 'counted for the whole estate only',
    ),
    tile(
      'quarantine',
      'quarantined (24 h)',
      pct(estate.traffic?.quarantineRate == null ? null : estate.traffic.quarantineRate * 100),
    ),
    tile('uptime-24h', 'uptime, last day', pct(last24h?.pct), last24h ? last24h.day : 'after the daily job'),
    tile(
      'uptime-7d',
      'uptime, 7 days',
      pct(last7d?.pct),
      last7d ? `${last7d.days} days` : 'after the daily job',
    ),
  ];
}

/** Columns the server sorts the whole estate by; the others sort the page shown. */
const SERVER_SORTS: readonly SortKey[] = ['deviceId', 'lastSeen'];

/** One page of devices, filtered, sorted and paged by the server. */
async function loadPage(api: Api): Promise<DeviceList> {
  const f = state.filters;
  const server = SERVER_SORTS.includes(state.sort.key);
  return api.get<DeviceList>('/v1/devices', {
    type: f.type,
    status: f.status,
    tag: f.tag,
    silentFor: f.silentFor,
    q: f.q,
    sort: server ? state.sort.key : undefined,
    order: server ? (state.sort.ascending ? 'asc' : 'desc') : undefined,
    limit: PAGE_SIZE,
    count: 'true',
    next: state.tokens[state.page],
  });
}

function sortDevices(devices: readonly DeviceSummary[]): DeviceSummary[] {
  if (SERVER_SORTS.includes(state.sort.key)) return [...devices];
  const { key, ascending } = state.sort;
  return [...devices].sort((a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return ascending ? order : -order;
  });
}

function deviceTable(list: DeviceList, refresh: () => Promise<void>) {
  const devices = sortDevices(list.devices);
  const header = h(
    'tr',
    {},
    ...COLUMNS.map(([key, label]) => {
      const sorted = state.sort.key === key;
      const button = h(
        'button',
        {
          type: 'button',
          class: 'sort',
          'data-sort': key,
          title: SERVER_SORTS.includes(key) ? 'Sort all devices' : 'Sort this page',
        },
        label,
      );
      button.addEventListener('click', () => {
        state.sort = { key, ascending: sorted ? !state.sort.ascending : true };
        // A server sort starts again from the first page; a page sort keeps the page.
        if (SERVER_SORTS.includes(key)) {
          state.tokens = [undefined];
          state.page = 0;
        }
        void refresh();
      });
      return h(
        'th',
        {
          scope: 'col',
          'aria-sort': sorted ? (state.sort.ascending ? 'ascending' : 'descending') : undefined,
        },
        button,
      );
    }),
  );
  const now = Date.now();
  const rows = devices.map((d) => {
    const battery = firstMatching(d.lastValues, BATTERY_METRIC);
    const radio = firstMatching(d.lastValues, RADIO_METRIC);
    return h(
      'tr',
      { 'data-device': d.deviceId },
      h('td', {}, h('a', { href: `#/device/${encodeURIComponent(d.deviceId)}` }, d.deviceId)),
      h('td', {}, d.deviceType),
      h('td', {}, h('span', { class: `status ${d.status}` }, d.status === 'never' ? 'never seen' : d.status)),
      h('td', { title: d.lastSeen ?? '' }, d.lastSeen ? ago(d.lastSeen, now) : 'never'),
      h('td', {}, battery ? formatValue(battery[1]) : ''),
      h('td', {}, radio ? `${radio[0]} ${formatValue(radio[1])}` : ''),
    );
  });
  const first = state.page * PAGE_SIZE;
  const pager = h(
    'nav',
    { 'aria-label': 'Pages of devices', class: 'pager' },
    h(
      'span',
      { id: 'device-range' },
      devices.length === 0
        ? 'No devices match'
        : `${first + 1}–${first + devices.length} of ${list.total ?? '?'}`,
    ),
  );
  if (state.page > 0) {
    const previous = h('button', { type: 'button' }, 'Previous');
    previous.addEventListener('click', () => {
      state.page--;
      void refresh();
    });
    pager.append(previous);
  }
  if (list.next !== undefined) {
    const next = h('button', { type: 'button', 'data-next': true }, 'Next');
    next.addEventListener('click', () => {
      state.tokens[state.page + 1] = list.next;
      state.page++;
      void refresh();
    });
    pager.append(next);
  }
  return [
    h(
      'table',
      { 'aria-label': 'Devices', 'data-rows': devices.length },
      h('caption', { class: 'visually-hidden' }, 'Devices; column headers sort'),
      h('thead', {}, header),
      h('tbody', {}, ...rows),
    ),
    pager,
  ];
}

export function showError(where: HTMLElement) {
  return (error: Error) => where.replaceChildren(h('p', { role: 'alert', class: 'error' }, error.message));
}
