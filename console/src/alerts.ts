/**
 * Alerts and quarantine (`#/alerts`): open alerts and their history from `GET /v1/alerts`
 * (`state=open`, `state=all`) and quarantined messages from `GET /v1/quarantine` (counts by
 * reason and the latest examples). On an API without them: the open alerts the device
 * registry holds, and a note that history needs the newer API.
 */
import type { Api } from './api.ts';
import { ago, formatValue, h } from './dom.ts';
import type { DeviceList } from './types.ts';

interface AlertRow {
  readonly deviceId: string;
  readonly rule: string;
  readonly severity?: string | null;
  readonly state?: string | null;
  readonly time?: string | null;
  readonly since?: string | null;
  readonly metric?: string | null;
  readonly value?: number | string | boolean | null;
}

interface AlertsAnswer {
  readonly rows: readonly AlertRow[];
  readonly running?: boolean;
}

interface QuarantineAnswer {
  readonly counts?: readonly {
    readonly bucket: string;
    readonly reasonCode: string;
    readonly count: number;
  }[];
  readonly examples?: readonly {
    readonly receivedAt?: string | null;
    readonly deviceId?: string | null;
    readonly source?: string | null;
    readonly reasonCode?: string | null;
    readonly reason?: string | null;
  }[];
  readonly running?: boolean;
}

export async function renderAlerts(main: HTMLElement, api: Api, signal: AbortSignal) {
  const open = h('section', { 'aria-labelledby': 'open-title', id: 'open-alerts' });
  const history = h('section', { 'aria-labelledby': 'history-title', id: 'alert-history' });
  const quarantine = h('section', { 'aria-labelledby': 'quarantine-title', id: 'quarantine' });
  main.replaceChildren(
    h('h1', { id: 'page-title' }, 'Alerts and quarantine'),
    h('h2', { id: 'open-title' }, 'Open alerts'),
    open,
    h('h2', { id: 'history-title' }, 'Alert history (7 days)'),
    history,
    h('h2', { id: 'quarantine-title' }, 'Quarantined messages (24 h)'),
    quarantine,
  );
  const refresh = async () => {
    const [opened, past, quarantined] = await Promise.all([
      api.optional<AlertsAnswer>('/v1/alerts', { state: 'open', limit: 100 }),
      api.optional<AlertsAnswer>('/v1/alerts', { state: 'all', limit: 100 }),
      api.optional<QuarantineAnswer>('/v1/quarantine', { limit: 25 }),
    ]);
    const fallback = opened === undefined ? await openFromRegistry(api) : undefined;
    if (signal.aborted) return;
    open.replaceChildren(alertTable('Open alerts', opened?.rows ?? fallback ?? [], 'since'));
    history.replaceChildren(
      past === undefined
        ? h('p', { class: 'note' }, 'Alert history needs the newer API (GET /v1/alerts?state=all).')
        : past.running
          ? h('p', { class: 'note' }, 'The history query is still running; it shows at the next refresh.')
          : alertTable('Alert history', past.rows, 'time'),
    );
    quarantine.replaceChildren(
      ...(quarantined === undefined
        ? [
            h(
              'p',
              { class: 'note' },
              'Quarantined messages need the newer API (GET /v1/quarantine); the local runtime prints each one with its reason.',
            ),
          ]
        : quarantined.running
          ? [
              h(
                'p',
                { class: 'note' },
                'The quarantine query is still running; it shows at the next refresh.',
              ),
            ]
          : quarantineTables(quarantined)),
    );
    main.dataset.loaded = 'alerts';
  };
  await refresh();
  return refresh;
}

/** An API without `/v1/alerts`: the open alerts in the device records. */
async function openFromRegistry(api: Api): Promise<AlertRow[]> {
  const list = await api.get<DeviceList>('/v1/devices');
  return list.devices.flatMap((d) =>
    (d.openAlerts ?? []).map((a) => ({
      deviceId: d.deviceId,
      rule: a.rule,
      state: 'raised',
      since: a.since,
    })),
  );
}

function alertTable(label: string, rows: readonly AlertRow[], when: 'since' | 'time') {
  if (rows.length === 0) return h('p', { 'data-empty': label }, 'None.');
  return h(
    'table',
    { 'aria-label': label, 'data-rows': rows.length },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['Device', 'Rule', 'Severity', 'State', 'Value', when === 'since' ? 'Since' : 'When'].map((c) =>
          h('th', { scope: 'col' }, c),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      ...rows.map((a) =>
        h(
          'tr',
          { 'data-alert': `${a.deviceId}/${a.rule}`, 'data-state': a.state ?? 'raised' },
          h('td', {}, h('a', { href: `#/device/${encodeURIComponent(a.deviceId)}` }, a.deviceId)),
          h('td', {}, a.rule),
          h('td', {}, a.severity ?? ''),
          h('td', {}, a.state ?? 'raised'),
          h(
            'td',
            {},
            a.value === null || a.value === undefined ? '' : `${a.metric ?? ''} ${formatValue(a.value)}`,
          ),
          h('td', { title: a[when] ?? '' }, a[when] ? ago(a[when] as string) : ''),
        ),
      ),
    ),
  );
}

function quarantineTables(answer: QuarantineAnswer) {
  const totals = new Map<string, number>();
  for (const c of answer.counts ?? []) totals.set(c.reasonCode, (totals.get(c.reasonCode) ?? 0) + c.count);
  const examples = answer.examples ?? [];
  if (totals.size === 0 && examples.length === 0) return [h('p', { 'data-empty': 'quarantine' }, 'None.')];
  return [
    h(
      'table',
      { 'aria-label': 'Quarantined messages by reason' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Reason'), h('th', { scope: 'col' }, 'Messages'))),
      h(
        'tbody',
        {},
        ...[...totals].map(([reason, count]) =>
          h('tr', { 'data-reason': reason }, h('td', {}, reason), h('td', {}, count)),
        ),
      ),
    ),
    h('h3', {}, 'Latest'),
    h(
      'table',
      { 'aria-label': 'Latest quarantined messages', 'data-rows': examples.length },
      h(
        'thead',
        {},
        h('tr', {}, ...['When', 'Device', 'Way in', 'Reason'].map((c) => h('th', { scope: 'col' }, c))),
      ),
      h(
        'tbody',
        {},
        ...examples.map((q) =>
          h(
            'tr',
            { 'data-quarantine': q.reasonCode ?? '' },
            h('td', { title: q.receivedAt ?? '' }, q.receivedAt ? ago(q.receivedAt) : ''),
            h('td', {}, q.deviceId ?? '?'),
            h('td', {}, q.source ?? ''),
            h('td', {}, `${q.reasonCode ?? ''}: ${q.reason ?? ''}`),
          ),
        ),
      ),
    ),
  ];
}
