/**
 * `GET /v1/estate`: the estate at a glance, for the console's first screen. Devices by
 * status (online, offline, never heard) and open alerts by severity, from the registry;
 * messages a minute and the share quarantined over the last 24 hours, from a
 * {@link TrafficCounts} (the lake locally; on AWS the ingest function's CloudWatch
 * metrics, never a scan of the lake per call); and uptime over the last day and the last
 * 7 days from the lake table `daily_uptime` the daily job writes (null until it has). Read
 * scope; a key made for some devices gets their counts and uptime, and no traffic (the
 * pipeline counts messages for the whole estate).
 */

import { READ_SCOPE } from '../access/keys.ts';
import { type AlertRule, OFFLINE_RULE, type Severity } from '../estate/alerts.ts';
import type { OfflineTimeouts } from '../estate/registry-query.ts';
import type { DeviceRegistry } from '../estate/update.ts';
import { lakeTimestamp } from '../lake/tables.ts';
import { type Gate, isResponse } from './gate.ts';
import { type HttpRequest, type HttpResponse, json } from './http.ts';
import { DAY_MS, devicesClause, numberOf } from './list-params.ts';
import { planDigest } from './page-token.ts';
import type { PagedQueries, QueryPage, QueryParam, QueryPlan } from './query.ts';

export const ESTATE_PATH = '/v1/estate';
const HOUR_MS = 3_600_000;
const SEVERITIES: readonly Severity[] = ['critical', 'warning', 'info'];
/** Days of `daily_uptime` the 7-day figure weighs. */
export const UPTIME_DAYS = 7;

/** Messages that arrived and messages quarantined in one hour. */
export interface HourCount {
  /** Start of the hour, epoch ms. */
  readonly hour: number;
  readonly messages: number;
  readonly quarantined: number;
}

/** Where message counts come from: the lake's `raw` and `quarantine` locally, CloudWatch on AWS. */
export interface TrafficCounts {
  /** What the counts are read from, said in the answer (`lake`, `cloudwatch`). */
  readonly source: string;
  /** Counts per hour of the hours that start in `[from, to)`; hours with none may be left out. */
  hourly(from: number, to: number): Promise<readonly HourCount[]>;
}

export interface EstateApiDeps {
  readonly gate: Gate;
  readonly registry: Pick<DeviceRegistry, 'tally'>;
  readonly timeouts: OfflineTimeouts;
  /** The configured rules: an open alert's severity is its rule's. */
  readonly rules: readonly AlertRule[];
  /** The severity of offline alerts raised before theirs was recorded (`offline.severity`). */
  readonly offlineSeverity: Severity;
  readonly traffic: TrafficCounts;
  /** Runs the `daily_uptime` query (Athena, DuckDB locally). */
  readonly engine: PagedQueries;
  /** How long to wait for the uptime query (Athena) before answering without it. */
  readonly waitMs?: number;
  readonly now?: () => number;
}

export interface EstateAnswer {
  readonly at: string;
  readonly devices: {
    readonly total: number;
    readonly online: number;
    readonly offline: number;
    readonly never: number;
  };
  readonly alerts: {
    readonly open: number;
    /** Open alerts by their rule's severity; `unknown` for rules no longer configured. */
    readonly bySeverity: Readonly<Record<Severity | 'unknown', number>>;
  };
  /** Null for a key made for some devices: messages are counted for the whole estate. */
  readonly traffic: {
    readonly source: string;
    readonly from: string;
    readonly to: string;
    readonly messages: number;
    readonly quarantined: number;
    readonly messagesPerMinute: number;
    /** Quarantined over messages; null when none arrived. */
    readonly quarantineRate: number | null;
    readonly hourly: readonly {
      readonly hour: string;
      readonly messages: number;
      readonly quarantined: number;
    }[];
  } | null;
  readonly uptime: {
    /** The last day `daily_uptime` has (the daily job runs for the day before), null without rows. */
    readonly last24h: { readonly day: string; readonly pct: number } | null;
    /** The last 7 days it has, each device weighed by the time it was observed. */
    readonly last7d: {
      readonly from: string;
      readonly to: string;
      readonly days: number;
      readonly pct: number;
    } | null;
    /** True when the query was still running when the answer could wait no longer. */
    readonly pending?: true;
  };
}

export async function handleEstateRequest(request: HttpRequest, deps: EstateApiDeps): Promise<HttpResponse> {
  if (request.method !== 'GET')
    return json(405, { error: 'method_not_allowed', message: `Use GET on ${ESTATE_PATH}` }, { allow: 'GET' });
  const caller = await deps.gate.admit(request, READ_SCOPE);
  if (isResponse(caller)) return caller;
  const params = new URLSearchParams(request.query ?? '');
  const unknown = [...new Set(params.keys())];
  if (unknown.length > 0)
    return json(400, {
      error: 'invalid_parameter',
      message: `${ESTATE_PATH} takes no parameter ${unknown.map((k) => `"${k.slice(0, 40)}"`).join(', ')}: it answers for now`,
    });
  const at = (deps.now ?? Date.now)();
  const devices = caller.devices;
  const [tally, traffic, uptime] = await Promise.all([
    deps.registry.tally({ at, timeouts: deps.timeouts, ...(devices === undefined ? {} : { devices }) }),
    devices === undefined ? trafficOver(deps.traffic, at) : Promise.resolve(null),
    uptimeOf(deps, at, devices),
  ]);
  const bySeverity: Record<Severity | 'unknown', number> = { critical: 0, warning: 0, info: 0, unknown: 0 };
  const ruleSeverity = new Map(deps.rules.map((rule) => [rule.name, rule.severity]));
  let open = 0;
  for (const alert of tally.alerts) {
    const severity =
      alert.rule === OFFLINE_RULE
        ? (SEVERITIES.find((s) => s === alert.severity) ?? deps.offlineSeverity)
        : (ruleSeverity.get(alert.rule) ?? 'unknown');
    bySeverity[severity] += alert.count;
    open += alert.count;
  }
  const answer: EstateAnswer = {
    at: new Date(at).toISOString(),
    devices: { total: tally.devices, online: tally.online, offline: tally.offline, never: tally.never },
    alerts: { open, bySeverity },
    traffic,
    uptime,
  };
  return json(200, answer);
}

/** The last 24 hours, in whole hours from the hour 24 hours ago (its start may be up to an hour before). */
async function trafficOver(source: TrafficCounts, at: number): Promise<EstateAnswer['traffic']> {
  const to = at;
  const from = at - DAY_MS;
  const hours = await source.hourly(Math.floor(from / HOUR_MS) * HOUR_MS, to);
  let messages = 0;
  let quarantined = 0;
  for (const h of hours) {
    messages += h.messages;
    quarantined += h.quarantined;
  }
  return {
    source: source.source,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    messages,
    quarantined,
    messagesPerMinute: messages / (DAY_MS / 60_000),
    quarantineRate: messages === 0 ? null : quarantined / messages,
    hourly: [...hours]
      .sort((a, b) => a.hour - b.hour)
      .map((h) => ({
        hour: new Date(h.hour).toISOString(),
        messages: h.messages,
        quarantined: h.quarantined,
      })),
  };
}

/**
 * `daily_uptime` of the last {@link UPTIME_DAYS} days before today: per day the estate's
 * row (`'*'`), or for a key made for some devices the sums of theirs.
 */
export function uptimePlan(at: number, devices: readonly string[] | undefined): QueryPlan {
  const today = new Date(at).toISOString().slice(0, 10);
  const first = new Date(at - UPTIME_DAYS * DAY_MS).toISOString().slice(0, 10);
  const params: QueryParam[] = [
    { type: 'varchar', value: first },
    { type: 'varchar', value: today },
  ];
  let rows = "device_id = '*'";
  if (devices !== undefined) {
    const scope = devicesClause(devices);
    rows = `device_id <> '*' AND ${scope.sql}`;
    params.push(...scope.params);
  }
  return {
    sql: `SELECT dt AS day, CAST(sum(offline_ms) AS BIGINT) AS offline_ms, CAST(sum(observed_ms) AS BIGINT) AS observed_ms
FROM daily_uptime
WHERE dt >= ? AND dt < ? AND ${rows}
GROUP BY dt
ORDER BY dt`,
    params,
  };
}

async function uptimeOf(
  deps: EstateApiDeps,
  at: number,
  devices: readonly string[] | undefined,
): Promise<EstateAnswer['uptime']> {
  const page = await deps.engine.page(uptimePlan(at, devices), undefined, {
    waitMs: deps.waitMs ?? 10_000,
    pageSize: UPTIME_DAYS + 1,
  });
  if (page.running) return { last24h: null, last7d: null, pending: true };
  const days = page.rows.flatMap((row) => {
    const observed = numberOf(row.observed_ms);
    const offline = numberOf(row.offline_ms);
    return typeof row.day === 'string' && observed !== null && offline !== null && observed > 0
      ? [{ day: row.day, observed, offline }]
      : [];
  });
  const last = days[days.length - 1];
  const first = days[0];
  if (!last || !first) return { last24h: null, last7d: null };
  const pct = (offline: number, observed: number) => ((observed - offline) * 100) / observed;
  const observed = days.reduce((n, d) => n + d.observed, 0);
  const offline = days.reduce((n, d) => n + d.offline, 0);
  return {
    last24h: { day: last.day, pct: pct(last.offline, last.observed) },
    last7d: { from: first.day, to: last.day, days: days.length, pct: pct(offline, observed) },
  };
}

/**
 * Traffic from the lake through the query engine: messages are the `raw` lines (one per
 * message that arrived), quarantined the distinct messages in `quarantine`, per hour of
 * arrival. What the local runtime uses (DuckDB reads its lake folder); on AWS it would be
 * an Athena scan of a day of raw payloads per call, which is why the Lambda reads
 * CloudWatch instead.
 */
export function lakeTraffic(engine: PagedQueries): TrafficCounts {
  return {
    source: 'lake',
    async hourly(from, to) {
      const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
      const range: QueryParam[] = [
        { type: 'varchar', value: day(from) },
        { type: 'varchar', value: day(to) },
        { type: 'timestamp', value: lakeTimestamp(from) },
        { type: 'timestamp', value: lakeTimestamp(to) },
      ];
      const plan: QueryPlan = {
        sql: `SELECT CAST(hour_start AS VARCHAR) AS hour, sum(messages) AS messages, sum(quarantined) AS quarantined FROM (
  SELECT date_trunc('hour', received_at) AS hour_start, count(DISTINCT message_id) AS messages, 0 AS quarantined
  FROM raw WHERE dt BETWEEN ? AND ? AND received_at >= ? AND received_at < ? GROUP BY 1
  UNION ALL
  SELECT date_trunc('hour', received_at) AS hour_start, 0 AS messages, count(DISTINCT message_id) AS quarantined
  FROM quarantine WHERE dt BETWEEN ? AND ? AND received_at >= ? AND received_at < ? GROUP BY 1
) AS counts GROUP BY 1 ORDER BY 1`,
        params: [...range, ...range],
      };
      const page = await engine.page(plan, undefined, { waitMs: 20_000, pageSize: 1000 });
      return page.rows.flatMap((row) => {
        const hour =
          typeof row.hour === 'string' ? Date.parse(`${row.hour.replace(' ', 'T').slice(0, 19)}Z`) : NaN;
        return Number.isNaN(hour)
          ? []
          : [{ hour, messages: numberOf(row.messages) ?? 0, quarantined: numberOf(row.quarantined) ?? 0 }];
      });
    },
  };
}

/**
 * A source read at most once per `ttlMs` for the same range rounded to the minute: a
 * console polling every few seconds costs one CloudWatch (or Athena) read a minute.
 */
export function cachedTraffic(
  source: TrafficCounts,
  ttlMs = 60_000,
  now: () => number = Date.now,
): TrafficCounts {
  let cached: { at: number; key: string; hours: Promise<readonly HourCount[]> } | undefined;
  return {
    source: source.source,
    hourly(from, to) {
      const key = `${Math.floor(from / 60_000)}~${Math.floor(to / 60_000)}`;
      const t = now();
      if (!cached || cached.key !== key || t - cached.at >= ttlMs) {
        const hours = source.hourly(from, to);
        cached = { at: t, key, hours };
        // A failed read is not kept: the next request tries again.
        hours.catch(() => {
          if (cached?.hours === hours) cached = undefined;
        });
      }
      return cached.hours;
    },
  };
}

/**
 * An engine whose finished first pages are kept `ttlMs`, by plan and page size: the
 * uptime figures change once a day (the daily job), so on AWS the estate asks Athena at
 * most once per 10 minutes per function instance, not once per call. A query still
 * running is not kept; at most `max` plans are.
 */
export function cachedFirstPages(
  engine: PagedQueries,
  ttlMs = 600_000,
  now: () => number = Date.now,
  max = 100,
): PagedQueries {
  const cache = new Map<string, { at: number; page: QueryPage }>();
  return {
    async page(plan, token, options) {
      if (token !== undefined) return engine.page(plan, token, options);
      const key = `${planDigest(plan)}~${options.pageSize}`;
      const t = now();
      const hit = cache.get(key);
      if (hit && t - hit.at < ttlMs) return hit.page;
      const page = await engine.page(plan, token, options);
      if (!page.running) {
        cache.delete(key);
        if (cache.size >= max) cache.delete(cache.keys().next().value as string);
        cache.set(key, { at: t, page });
      }
      return page;
    },
  };
}
