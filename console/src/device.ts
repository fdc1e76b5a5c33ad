/**
 * The device page (`#/device/<id>`): the latest value of each metric, a line chart of each
 * chosen metric over a chosen range (`GET /v1/devices/{id}/readings`, paged), the daily
 * min/max/avg band (`/daily`), the radio metrics, and the device's last raw messages and
 * quarantined ones with their reason (messages.ts). Refreshed every few seconds.
 */
import type { Api } from './api.ts';
import { type ChartElement, lineChart } from './chart.ts';
import { ago, formatValue, h } from './dom.ts';
import { showError } from './estate.ts';
import { deviceMessages } from './messages.ts';
import {
  type DailyRow,
  type DeviceList,
  type DeviceSummary,
  type QueryPage,
  RADIO_METRIC,
  type ReadingRow,
} from './types.ts';

const RANGES: readonly [string, number][] = [
  ['1 h', 3_600_000],
  ['6 h', 6 * 3_600_000],
  ['24 h', 86_400_000],
  ['7 d', 7 * 86_400_000],
  ['30 d', 30 * 86_400_000],
];
/** A range as a link gives it (`?range=7d`): its label without the space. */
const rangeOf = (text: string | undefined) => RANGES.find(([label]) => label.replace(' ', '') === text)?.[1];
/** Pages of readings at most per chart (1,000 rows each): 30 days at one a minute. */
const MAX_PAGES = 50;
/** Ranges longer than this are drawn from `/series` (min, max and average per bucket) where the API has it. */
const RAW_UP_TO_MS = 86_400_000;
const SERIES_POINTS = 1500;

interface Series {
  readonly times: number[];
  /** The line, and for buckets the band around it (min, max). */
  readonly values: (number | null)[][];
  readonly names: string[];
  readonly bucketed: boolean;
}

interface SeriesAnswer {
  readonly bucketMs: number;
  readonly buckets: readonly { time: string; min: number; max: number; avg: number; count: number }[];
  readonly running?: boolean;
}

/** One metric over [from, to): every reading for short ranges, else buckets from `/series` when present. */
async function metricSeries(api: Api, id: string, metric: string, from: number, to: number): Promise<Series> {
  if (to - from > RAW_UP_TO_MS) {
    const answer = await api.optional<SeriesAnswer>(`/v1/devices/${encodeURIComponent(id)}/series`, {
      metric,
      from,
      to,
      points: SERIES_POINTS,
    });
    if (answer && !answer.running) {
      const buckets = answer.buckets.filter((b) => b.count > 0);
      return {
        times: buckets.map((b) => Date.parse(b.time) / 1000),
        values: [buckets.map((b) => b.avg), buckets.map((b) => b.min), buckets.map((b) => b.max)],
        names: [metric, 'min', 'max'],
        bucketed: true,
      };
    }
  }
  const rows = (await readings(api, id, metric, from, to)).filter((r) => typeof r.value === 'number');
  return {
    times: rows.map((r) => Date.parse(r.time) / 1000),
    values: [rows.map((r) => r.value)],
    names: [metric],
    bucketed: false,
  };
}

const chosen = { rangeMs: 86_400_000, metrics: new Set<string>() };

async function findDevice(api: Api, id: string): Promise<DeviceSummary | undefined> {
  const list = await api.get<DeviceList>('/v1/devices', { q: id, limit: 100 });
  return list.devices.find((d) => d.deviceId === id);
}

async function readings(
  api: Api,
  id: string,
  metric: string,
  from: number,
  to: number,
): Promise<ReadingRow[]> {
  const rows: ReadingRow[] = [];
  let next: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const answer = await api.get<QueryPage<ReadingRow>>(`/v1/devices/${encodeURIComponent(id)}/readings`, {
      metric,
      limit: 1000,
      ...(next === undefined ? { from, to } : { next }),
    });
    rows.push(...answer.rows);
    next = answer.next;
    if (next === undefined) break;
  }
  return rows;
}

export async function renderDevice(
  main: HTMLElement,
  api: Api,
  id: string,
  signal: AbortSignal,
  options: { readonly range?: string } = {},
) {
  chosen.rangeMs = rangeOf(options.range) ?? chosen.rangeMs;
  const device = await findDevice(api, id);
  if (signal.aborted) return async () => {};
  if (!device) {
    main.replaceChildren(
      h('h1', { id: 'page-title' }, id),
      h('p', { role: 'alert' }, 'No such device in the registry.'),
    );
    return async () => {};
  }
  const numeric = Object.entries(device.lastValues)
    .filter(([, v]) => typeof v === 'number')
    .map(([name]) => name)
    .sort();
  if (chosen.metrics.size === 0 || ![...chosen.metrics].every((m) => numeric.includes(m)))
    chosen.metrics = new Set(numeric.filter((m) => !RADIO_METRIC.test(m)).slice(0, 2));
  const latest = h('section', { 'aria-labelledby': 'latest-title' });
  const controls = h('form', { 'aria-label': 'Chart options', class: 'filters' });
  const charts = h('section', { 'aria-labelledby': 'charts-title', id: 'charts' });
  const daily = h('section', { 'aria-labelledby': 'daily-title', id: 'daily' });
  const messages = h('section', { 'aria-labelledby': 'messages-title', id: 'messages' });
  const quarantined = h('section', { 'aria-labelledby': 'quarantined-title', id: 'device-quarantine' });
  main.replaceChildren(
    h('p', {}, h('a', { href: '#/' }, '← Estate')),
    h('h1', { id: 'page-title' }, `Device ${id}`),
    h(
      'p',
      {},
      `${device.deviceType} · ${device.status} · last seen ${device.lastSeen ? ago(device.lastSeen) : 'never'}`,
    ),
    latest,
    h('h2', { id: 'charts-title' }, 'Readings'),
    controls,
    charts,
    h('h2', { id: 'daily-title' }, 'Daily min, max and average'),
    daily,
    h('h2', { id: 'messages-title' }, 'Last messages'),
    messages,
    h('h2', { id: 'quarantined-title' }, 'Quarantined (24 h)'),
    quarantined,
  );
  const drawMessages = deviceMessages(api, id, messages, quarantined, signal);
  const range = h(
    'select',
    { id: 'range', name: 'range' },
    ...RANGES.map(([label, ms]) => h('option', { value: ms, selected: ms === chosen.rangeMs }, label)),
  );
  controls.append(
    h('label', { for: 'range' }, 'Range', range),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Metrics'),
      ...numeric.map((m) =>
        h(
          'label',
          {},
          h('input', { type: 'checkbox', name: 'metric', value: m, checked: chosen.metrics.has(m) }),
          m,
        ),
      ),
    ),
  );
  const refresh = async () => {
    const fresh = (await findDevice(api, id)) ?? device;
    if (signal.aborted) return;
    latest.replaceChildren(...latestValues(fresh));
    await Promise.all([drawCharts(api, id, charts, daily, signal), drawMessages(fresh.lastSeen)]);
  };
  controls.addEventListener('change', () => {
    chosen.rangeMs = Number(range.value);
    // The range in the link, without a new route (replaceState fires no hashchange).
    const label = RANGES.find(([, ms]) => ms === chosen.rangeMs)?.[0].replace(' ', '');
    if (label) history.replaceState(null, '', `#/device/${encodeURIComponent(id)}?range=${label}`);
    chosen.metrics = new Set(
      [...controls.querySelectorAll<HTMLInputElement>('input[name=metric]:checked')].map((i) => i.value),
    );
    void drawCharts(api, id, charts, daily, signal).catch(showError(charts));
  });
  latest.replaceChildren(...latestValues(device));
  await Promise.all([
    drawCharts(api, id, charts, daily, signal),
    drawMessages(device.lastSeen).catch(showError(messages)),
  ]);
  return refresh;
}

function latestValues(device: DeviceSummary) {
  const entries = Object.entries(device.lastValues).sort(([a], [b]) => a.localeCompare(b));
  const table = (title: string, id: string, list: [string, unknown][]) => [
    h('h2', { id }, title),
    list.length === 0
      ? h('p', {}, 'None reported.')
      : h(
          'table',
          { 'aria-labelledby': id, class: 'values' },
          h(
            'thead',
            {},
            h('tr', {}, h('th', { scope: 'col' }, 'Metric'), h('th', { scope: 'col' }, 'Value')),
          ),
          h(
            'tbody',
            {},
            ...list.map(([name, value]) =>
              h(
                'tr',
                { 'data-metric': name },
                h('th', { scope: 'row' }, name),
                h('td', {}, formatValue(value)),
              ),
            ),
          ),
        ),
  ];
  return [
    ...table(
      'Latest values',
      'latest-title',
      entries.filter(([n]) => !RADIO_METRIC.test(n)),
    ),
    ...table(
      'Radio',
      'radio-title',
      entries.filter(([n]) => RADIO_METRIC.test(n)),
    ),
  ];
}

/**
 * The charts of the chosen metrics, each drawn as soon as its series arrives (in place of
 * the metric's chart as drawn before, so a refresh does not flicker), and the daily band
 * when its figures arrive. `#charts[data-drawn]` is set when every metric's chart is drawn.
 */
async function drawCharts(
  api: Api,
  id: string,
  charts: HTMLElement,
  daily: HTMLElement,
  signal: AbortSignal,
) {
  const to = Date.now();
  const from = to - chosen.rangeMs;
  const metrics = [...chosen.metrics].sort();
  const days = api
    .get<QueryPage<DailyRow>>(`/v1/devices/${encodeURIComponent(id)}/daily`, {
      from: to - 30 * 86_400_000,
      to,
      limit: 1000,
    })
    .then((answer) => {
      if (!signal.aborted) drawDaily(daily, metrics, answer.rows);
    });
  const drawn = new Map<string, ChartElement>();
  for (const chart of charts.querySelectorAll<ChartElement>('figure.chart'))
    if (chart.dataset.metric !== undefined) drawn.set(chart.dataset.metric, chart);
  for (const [metric, chart] of drawn)
    if (!metrics.includes(metric)) {
      chart.chart?.destroy();
      drawn.delete(metric);
    }
  // A metric not drawn yet holds its place until its series arrives.
  const slots = metrics.map((m) => drawn.get(m) ?? h('figure', { class: 'chart', 'aria-busy': 'true' }));
  charts.replaceChildren(...(metrics.length === 0 ? [h('p', {}, 'Choose a metric.')] : []), ...slots);
  const lines = Promise.all(
    metrics.map(async (metric, i) => {
      const line = await metricSeries(api, id, metric, from, to);
      const slot = slots[i] as ChartElement;
      // Aborted, or another draw took the place (a refresh and a change at once): its chart is drawn there.
      if (signal.aborted || !slot.isConnected) return;
      const chart = lineChart(line.bucketed ? `${metric} (min, max and average per bucket)` : metric, {
        label: metric,
        ...line,
      });
      chart.dataset.source = line.bucketed ? 'series' : 'readings';
      slot.replaceWith(chart);
      slot.chart?.destroy();
      slots[i] = chart;
    }),
  ).then(() => {
    if (!signal.aborted) charts.dataset.drawn = String(Date.now());
  });
  await Promise.all([lines, days]);
}

function drawDaily(daily: HTMLElement, metrics: readonly string[], rows: readonly DailyRow[]) {
  for (const chart of daily.querySelectorAll<ChartElement>('.chart')) chart.chart?.destroy();
  const byMetric = new Map<string, DailyRow[]>();
  for (const row of rows) byMetric.set(row.metric, [...(byMetric.get(row.metric) ?? []), row]);
  daily.replaceChildren(
    ...(byMetric.size === 0 ? [h('p', {}, 'No daily figures yet.')] : []),
    ...metrics
      .filter((m) => byMetric.has(m))
      .map((metric) => {
        const rows = byMetric.get(metric) ?? [];
        return lineChart(`${metric}, daily`, {
          label: `${metric}-daily`,
          names: ['max', 'min', 'avg'],
          band: true,
          times: rows.map((r) => Date.parse(`${r.day}T00:00:00Z`) / 1000),
          values: [rows.map((r) => r.max), rows.map((r) => r.min), rows.map((r) => r.avg)],
        });
      }),
  );
}
