/**
 * The estate room's part of the config: threshold rules (`alertRules`) and offline
 * detection (`offline`), validated here with the same words at synth, start and cold
 * start.
 */
import { ConfigError } from '../config-error.ts';
import { parseDuration } from '../duration.ts';
import { DEVICE_TYPE_PATTERN, isObject } from '../ids.ts';
import { type AlertRule, type Comparison, OFFLINE_RULE, type Severity } from './alerts.ts';

/** Offline detection: silent longer than this (per type, else the default) raises an alert. */
export interface OfflineConfig {
  readonly afterMs?: number;
  readonly severity: Severity;
}

const COMPARISONS: readonly Comparison[] = ['>', '>=', '<', '<=', '==', '!='];
const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

export function durationOf(key: string, value: unknown): number {
  if (typeof value !== 'string' && typeof value !== 'number')
    throw new ConfigError(key, value, 'a duration such as "30m"');
  try {
    const ms = parseDuration(String(value));
    if (ms <= 0) throw new Error('not positive');
    return ms;
  } catch {
    throw new ConfigError(key, value, 'a duration such as "30s", "5m", "2h" or "1d"');
  }
}

export function validateRules(value: unknown): AlertRule[] {
  if (!Array.isArray(value)) throw new ConfigError('alertRules', value, 'a list of rules');
  const names = new Set<string>();
  return value.map((rule, i) => {
    const key = `alertRules[${i}]`;
    if (!isObject(rule)) throw new ConfigError(key, rule, '{ name, metric, comparison, threshold, ... }');
    const { name, metric, comparison, threshold, hysteresis = 0, severity = 'warning', scope } = rule;
    if (
      typeof name !== 'string' ||
      !DEVICE_TYPE_PATTERN.test(name) ||
      name === OFFLINE_RULE ||
      names.has(name)
    ) {
      throw new ConfigError(
        `${key}.name`,
        name,
        `a unique name matching ${DEVICE_TYPE_PATTERN} (not "${OFFLINE_RULE}")`,
      );
    }
    names.add(name);
    if (typeof metric !== 'string' || metric === '')
      throw new ConfigError(`${key}.metric`, metric, 'a metric name');
    if (!COMPARISONS.includes(comparison as Comparison))
      throw new ConfigError(`${key}.comparison`, comparison, COMPARISONS.join(' '));
    if (typeof threshold !== 'number' || !Number.isFinite(threshold))
      throw new ConfigError(`${key}.threshold`, threshold, 'a number');
    if (typeof hysteresis !== 'number' || !(hysteresis >= 0))
      throw new ConfigError(`${key}.hysteresis`, hysteresis, 'a number of 0 or more');
    if (!SEVERITIES.includes(severity as Severity))
      throw new ConfigError(`${key}.severity`, severity, SEVERITIES.join(', '));
    // `for` as users write it; `forMs` as the run-time config JSON carries it.
    const forMs =
      rule.for !== undefined
        ? durationOf(`${key}.for`, rule.for)
        : rule.forMs !== undefined && rule.forMs !== 0
          ? durationOf(`${key}.forMs`, `${rule.forMs}ms`)
          : 0;
    let ruleScope: AlertRule['scope'];
    if (scope !== undefined) {
      if (!isObject(scope))
        throw new ConfigError(
          `${key}.scope`,
          scope,
          '{ "deviceType": "...", "attribute": { "key": "...", "value": "..." } }',
        );
      const { deviceType, attribute } = scope;
      if (
        deviceType !== undefined &&
        (typeof deviceType !== 'string' || !DEVICE_TYPE_PATTERN.test(deviceType))
      ) {
        throw new ConfigError(
          `${key}.scope.deviceType`,
          deviceType,
          `a device type matching ${DEVICE_TYPE_PATTERN}`,
        );
      }
      if (
        attribute !== undefined &&
        (!isObject(attribute) || typeof attribute.key !== 'string' || typeof attribute.value !== 'string')
      ) {
        throw new ConfigError(
          `${key}.scope.attribute`,
          attribute,
          '{ "key": "<attribute>", "value": "<value>" }',
        );
      }
      ruleScope = {
        ...(deviceType === undefined ? {} : { deviceType: deviceType as string }),
        ...(attribute === undefined ? {} : { attribute: attribute as { key: string; value: string } }),
      };
    }
    return {
      name,
      metric,
      comparison: comparison as Comparison,
      threshold,
      forMs,
      hysteresis,
      severity: severity as Severity,
      ...(ruleScope ? { scope: ruleScope } : {}),
    };
  });
}

export function validateOffline(value: unknown): OfflineConfig {
  if (!isObject(value)) throw new ConfigError('offline', value, '{ "after": "30m", "severity": "warning" }');
  const severity = value.severity ?? 'warning';
  if (!SEVERITIES.includes(severity as Severity))
    throw new ConfigError('offline.severity', severity, SEVERITIES.join(', '));
  return {
    ...(value.after !== undefined
      ? { afterMs: durationOf('offline.after', value.after) }
      : value.afterMs !== undefined
        ? { afterMs: durationOf('offline.afterMs', `${value.afterMs}ms`) }
        : {}),
    severity: severity as Severity,
  };
}
