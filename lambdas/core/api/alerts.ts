/**
 * `GET /v1/alerts?state=open|all&severity=&rule=&type=&device=&from=&to=&limit=&next=`:
 * open alerts from the device registry (each record's raised alerts: what is open now),
 * or the history of alert events (raised and cleared) from the lake table `alerts`
 * through the query engine (Athena, DuckDB locally), paged with tokens bound to their
 * query. Read scope; a key made for some devices sees only theirs.
 */
import { coversDevice, READ_SCOPE } from '../access/keys.ts';
import { type AlertRule, OFFLINE_RULE, type Severity } from '../estate/alerts.ts';
import type { DeviceRegistry } from '../estate/update.ts';
import { lakeTimestamp } from '../lake/tables.ts';
import { type Gate, isResponse } from './gate.ts';
import { type HttpRequest, type HttpResponse, json } from './http.ts';
import {
  apiToken,
  DAY_MS,
  devicesClause,
  isoTime,
  numberOf,
  ParameterError,
  parseChoice,
  parseDevice,
  parseLimit,
  parseName,
  parseRange,
  readApiToken,
  textOf,
} from './list-params.ts';
import { decodePageToken, encodePageToken, NOT_A_TOKEN, queryDigest } from './page-token.ts';
import { InvalidTokenError, type PagedQueries, type QueryParam, type QueryPlan } from './query.ts';

export const ALERTS_PATH = '/v1/alerts';
const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];
const DEFAULT_PAGE = 100;
/** History without `from`: the last week. */
const DEFAULT_HISTORY_MS = 7 * DAY_MS;

/** What the alert list filters on; every value already checked. */
export interface AlertFilter {
  readonly severity?: Severity;
  readonly rule?: string;
  readonly type?: string;
  readonly device?: string;
  /** The caller's key's devices (`--devices`): only these are listed. */
  readonly devices?: readonly string[];
}

/** An open alert, as the registry holds it. */
export interface OpenAlert {
  readonly deviceId: string;
  readonly deviceType: string;
  readonly rule: string;
  /** From the rule in the config (offline: the severity it was raised with); null for a rule no longer configured. */
  readonly severity: Severity | null;
  readonly since: string;
  readonly metric: string | null;
  readonly value: number | string | boolean | null;
  readonly comparison: string | null;
  readonly threshold: number | null;
}

/**
 * The open alerts of the registry's records that pass the filter, newest first (then
 * by device and rule, so pages are stable).
 */
export function openAlerts(
  records: Awaited<ReturnType<DeviceRegistry['list']>>,
  rules: readonly AlertRule[],
  filter: AlertFilter,
): OpenAlert[] {
  const byName = new Map(rules.map((rule) => [rule.name, rule]));
  const open: OpenAlert[] = [];
  for (const record of records) {
    if (filter.device !== undefined && record.deviceId !== filter.device) continue;
    if (filter.type !== undefined && record.deviceType !== filter.type) continue;
    if (!coversDevice(filter.devices, record.deviceId)) continue;
    for (const [name, state] of Object.entries(record.alerts)) {
      if (state.state !== 'raised') continue;
      if (filter.rule !== undefined && name !== filter.rule) continue;
      const offline = name === OFFLINE_RULE;
      const rule = offline ? undefined : byName.get(name);
      const severity = offline
        ? (SEVERITIES.find((s) => s === state.value) ?? 'warning')
        : (rule?.severity ?? null);
      if (filter.severity !== undefined && severity !== filter.severity) continue;
      open.push({
        deviceId: record.deviceId,
        deviceType: record.deviceType,
        rule: name,
        severity,
        since: new Date(state.since).toISOString(),
        metric: rule?.metric ?? null,
        value: offline ? null : (state.value ?? null),
        comparison: rule?.comparison ?? null,
        threshold: rule?.threshold ?? null,
      });
    }
  }
  return open.sort(
    (a, b) =>
      b.since.localeCompare(a.since) || a.deviceId.localeCompare(b.deviceId) || a.rule.localeCompare(b.rule),
  );
}

/** The history query: alert events in a range, newest first, every value a parameter. */
export function alertsHistoryPlan(from: number, to: number, filter: AlertFilter): QueryPlan {
  const params: QueryParam[] = [
    { type: 'varchar', value: lakeTimestamp(from).slice(0, 10) },
    { type: 'varchar', value: lakeTimestamp(to).slice(0, 10) },
    { type: 'timestamp', value: lakeTimestamp(from) },
    { type: 'timestamp', value: lakeTimestamp(to) },
  ];
  const where = ['dt BETWEEN ? AND ?', 'time >= ?', 'time < ?'];
  const equal = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    where.push(`${column} = ?`);
    params.push({ type: 'varchar', value });
  };
  equal('severity', filter.severity);
  equal('rule', filter.rule);
  equal('device_type', filter.type);
  equal('device_id', filter.device);
  if (filter.devices !== undefined) {
    const clause = devicesClause(filter.devices);
    where.push(clause.sql);
    params.push(...clause.params);
  }
  return {
    sql: `SELECT alert_id, time, device_id, device_type, rule, state, severity, metric, value, comparison, threshold, last_seen, message
FROM alerts
WHERE ${where.join(' AND ')}
ORDER BY time DESC, device_id, rule, state
LIMIT 100000`,
    params,
  };
}

/** A row of the history query in the API's shape: ISO times, numbers as numbers. */
export function historyRow(row: Record<string, unknown>): Record<string, unknown> {
  return {
    alertId: textOf(row.alert_id),
    time: isoTime(row.time),
    deviceId: textOf(row.device_id),
    deviceType: textOf(row.device_type),
    rule: textOf(row.rule),
    state: textOf(row.state),
    severity: textOf(row.severity),
    metric: textOf(row.metric),
    value: numberOf(row.value),
    comparison: textOf(row.comparison),
    threshold: numberOf(row.threshold),
    lastSeen: isoTime(row.last_seen),
    message: textOf(row.message),
  };
}

export interface AlertsApiDeps {
  readonly gate: Gate;
  readonly registry: Pick<DeviceRegistry, 'list'>;
  readonly engine: PagedQueries;
  /** The configured rules: the severity, metric and threshold of an open alert. */
  readonly rules: readonly AlertRule[];
  /** How long a request waits for a running history query before answering 202 with a token. */
  readonly waitMs?: number;
  readonly now?: () => number;
}

export async function handleAlertsRequest(request: HttpRequest, deps: AlertsApiDeps): Promise<HttpResponse> {
  if (request.path !== ALERTS_PATH)
    return json(404, { error: 'not_found', message: `No route ${request.path}` });
  if (request.method !== 'GET')
    return json(405, { error: 'method_not_allowed', message: 'Use GET' }, { allow: 'GET' });
  const caller = await deps.gate.admit(request, READ_SCOPE);
  if (isResponse(caller)) return caller;
  const params = new URLSearchParams(request.query ?? '');
  try {
    const state = parseChoice(params, 'state', ['open', 'all'] as const) ?? 'open';
    const filter: AlertFilter = {
      severity: parseChoice(params, 'severity', SEVERITIES),
      rule: parseName(params, 'rule'),
      type: parseName(params, 'type'),
      device: parseDevice(params),
      ...(caller.devices === undefined ? {} : { devices: caller.devices }),
    };
    if (filter.device !== undefined && !coversDevice(caller.devices, filter.device))
      return json(403, {
        error: 'forbidden_device',
        message: `Key "${caller.name}" may not read device "${filter.device}": it was created for ${caller.devices?.join(', ')}`,
      });
    const pageSize = parseLimit(params, DEFAULT_PAGE);
    return state === 'open'
      ? await openPage(params, filter, pageSize, deps)
      : await historyPage(params, filter, pageSize, deps);
  } catch (error) {
    if (error instanceof ParameterError)
      return json(400, { error: 'invalid_parameter', message: error.message });
    if (error instanceof InvalidTokenError)
      return json(400, { error: 'invalid_token', message: error.message });
    throw error;
  }
}

async function openPage(
  params: URLSearchParams,
  filter: AlertFilter,
  pageSize: number,
  deps: AlertsApiDeps,
): Promise<HttpResponse> {
  if (params.has('from') || params.has('to'))
    throw new ParameterError('from and to are for state=all (the history); open alerts are those open now');
  // An offset into the filtered list, bound to the filter: another filter's token is refused.
  const digest = queryDigest(['alerts-open', filter]);
  const next = params.get('next');
  const offset = next === null ? 0 : decodePageToken(next, digest).o;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
    throw new InvalidTokenError(NOT_A_TOKEN);
  const all = openAlerts(await deps.registry.list(), deps.rules, filter);
  const rows = all.slice(offset, offset + pageSize);
  return json(200, {
    state: 'open',
    source: 'registry',
    rows,
    ...(offset + pageSize < all.length ? { next: encodePageToken(digest, { o: offset + pageSize }) } : {}),
  });
}

async function historyPage(
  params: URLSearchParams,
  filter: AlertFilter,
  pageSize: number,
  deps: AlertsApiDeps,
): Promise<HttpResponse> {
  const resumed = readApiToken(params.get('next'));
  const range = parseRange(params, resumed, (deps.now ?? Date.now)(), DEFAULT_HISTORY_MS);
  const plan = alertsHistoryPlan(range.from, range.to, filter);
  const page = await deps.engine.page(plan, resumed?.inner, { waitMs: deps.waitMs ?? 20_000, pageSize });
  return json(page.running ? 202 : 200, {
    state: 'all',
    source: 'lake',
    from: new Date(range.from).toISOString(),
    to: new Date(range.to).toISOString(),
    rows: page.rows.map(historyRow),
    ...(page.running ? { running: true } : {}),
    ...(page.next === undefined ? {} : { next: apiToken(range, page.next) }),
  });
}
