/**
 * The part of the configuration the ingest path needs at run time, shared by the
 * Lambdas (which read it from an environment variable) and the local runtime (which
 * reads it from the config file). Pure: no AWS import.
 */

import { buildDecoders, DecoderBuildError, rememberDecoders } from './decoders/registry.ts';
import { parseDuration } from './duration.ts';
import { type AlertRule, type Comparison, OFFLINE_RULE, type Severity } from './estate/alerts.ts';

export interface RuntimeConfig {
  /** Device types by name (the `<deviceType>` topic segment). A type not listed is decoded as JSON. */
  readonly deviceTypes: Readonly<Record<string, DeviceTypeConfig>>;
  readonly validation: ValidationLimits;
  /**
   * Field mappings for `POST /v1/telemetry?mapping=<name>`, for devices that cannot
   * change what they send: which field is the device id, which the time, and the type.
   */
  readonly httpMappings: Readonly<Record<string, HttpMapping>>;
  /** Sigfox downlinks by device id (8 bytes, 16 hex digits), before the device type's. */
  readonly sigfoxDownlinks: Readonly<Record<string, string>>;
  /** Threshold rules, evaluated on every reading in the ingest path. */
  readonly alertRules: readonly AlertRule[];
  /** Offline detection: silent longer than this (per type, else the default) raises an alert. */
  readonly offline: { readonly afterMs?: number; readonly severity: Severity };
}

export interface HttpMapping {
  /** Field holding the device id (instead of `$id`). */
  readonly id: string;
  /** Field holding the device time (instead of `$ts`). */
  readonly time?: string;
  /** Device type of these readings (else `http`). */
  readonly type?: string;
}

export interface DeviceTypeConfig {
  /** Free text shown in `devices` listings. */
  readonly description?: string;
  /** How the type's payload bytes become readings; JSON when absent. */
  readonly decoder?: DecoderConfig;
  /** Thing attributes IoT Core indexes for search on this type's thing type (at most 3). */
  readonly searchableAttributes?: readonly string[];
  /** Silence after which a device of this type is offline, in ms (from `"offlineAfter": "30m"`). */
  readonly offlineAfterMs?: number;
  /** Answer to a Sigfox BIDIR callback (`ack: true`) of this type: 8 bytes as 16 hex digits. */
  readonly sigfoxDownlink?: string;
}

/**
 * A Sigfox custom payload grammar (`"temp::int:16*0.01 door::bool:7"`), or a TS013
 * codec file (`"codecs/lht65.js"`, read at synth/start time: `source` is its text).
 */
export type DecoderConfig = { readonly sigfox: string } | CodecConfig;

export interface CodecConfig {
  /** The codec's file, relative to the working directory. */
  readonly codec: string;
  /** Its text, read when the config is loaded. */
  readonly source: string;
  /** Time one message's decode may take, in ms (default 50). */
  readonly timeoutMs?: number;
  /** The codec's heap, in MB (default 16). */
  readonly memoryMb?: number;
  /** Readings from the codec's `normalizeUplink` instead of what `decodeUplink` returned (default false). */
  readonly normalize?: boolean;
}

/** Limits a reading must respect; a message that breaks one is quarantined with the limit's name. */
export interface ValidationLimits {
  /** Seconds a device clock may run ahead of arrival time. */
  readonly maxFutureSeconds: number;
  /** Days a device timestamp may lie in the past. */
  readonly maxAgeDays: number;
  /** Bytes of one message's payload. */
  readonly maxPayloadBytes: number;
  /** Metrics in one reading. */
  readonly maxMetrics: number;
  /** Nesting depth of a JSON reading (nested objects flatten to dotted names). */
  readonly maxDepth: number;
}

/** Device type names travel in topics, keys and Timestream dimensions: keep them plain. */
export const DEVICE_TYPE_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const DEFAULT_VALIDATION: ValidationLimits = {
  maxFutureSeconds: 300,
  maxAgeDays: 365,
  maxPayloadBytes: 128 * 1024,
  maxMetrics: 200,
  maxDepth: 8,
};

/** A config value that is not allowed; the message names the key, the value and what is allowed. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    got: unknown,
    expected: string,
  ) {
    super(`Invalid config "${key}": got ${JSON.stringify(got)}, expected ${expected}`);
    this.name = 'ConfigError';
  }
}

/**
 * Validates the run-time part of the config (filling defaults), so the synth, the
 * local runtime and a Lambda cold start reject the same mistakes with the same words.
 */
export function validateRuntimeConfig(input: {
  deviceTypes?: unknown;
  validation?: unknown;
  httpMappings?: unknown;
  sigfoxDownlinks?: unknown;
  alertRules?: unknown;
  offline?: unknown;
}): RuntimeConfig {
  const deviceTypes: Record<string, DeviceTypeConfig> = {};
  const types = input.deviceTypes ?? {};
  if (!isObject(types)) throw new ConfigError('deviceTypes', types, 'an object of device types');
  for (const [name, value] of Object.entries(types)) {
    if (!DEVICE_TYPE_PATTERN.test(name)) {
      throw new ConfigError(`deviceTypes.${name}`, name, `a name matching ${DEVICE_TYPE_PATTERN}`);
    }
    if (!isObject(value)) throw new ConfigError(`deviceTypes.${name}`, value, 'an object');
    const description = value.description;
    if (description !== undefined && typeof description !== 'string') {
      throw new ConfigError(`deviceTypes.${name}.description`, description, 'a string');
    }
    const decoder =
      value.decoder === undefined ? undefined : validateDecoder(`deviceTypes.${name}.decoder`, value.decoder);
    const downlink = value.sigfoxDownlink;
    if (downlink !== undefined && (typeof downlink !== 'string' || !DOWNLINK_PATTERN.test(downlink))) {
      throw new ConfigError(`deviceTypes.${name}.sigfoxDownlink`, downlink, '8 bytes as 16 hex digits');
    }
    const offlineAfterMs =
      value.offlineAfter === undefined
        ? value.offlineAfterMs === undefined
          ? undefined
          : durationOf(`deviceTypes.${name}.offlineAfterMs`, `${value.offlineAfterMs}ms`)
        : durationOf(`deviceTypes.${name}.offlineAfter`, value.offlineAfter);
    const searchable = value.searchableAttributes;
    if (
      searchable !== undefined &&
      (!Array.isArray(searchable) ||
        searchable.length > 3 ||
        !searchable.every((a) => typeof a === 'string' && /^[a-zA-Z0-9_.,@/:#-]{1,128}$/.test(a)))
    ) {
      throw new ConfigError(
        `deviceTypes.${name}.searchableAttributes`,
        searchable,
        'at most 3 attribute names',
      );
    }
    deviceTypes[name] = {
      ...(description === undefined ? {} : { description }),
      ...(searchable === undefined ? {} : { searchableAttributes: searchable as string[] }),
      ...(offlineAfterMs === undefined ? {} : { offlineAfterMs }),
      ...(decoder === undefined ? {} : { decoder }),
      ...(downlink === undefined ? {} : { sigfoxDownlink: downlink.toLowerCase() }),
    };
  }
  // Grammars parsed and codecs loaded (in their sandboxes) now, so a bad one fails the synth or the start.
  try {
    rememberDecoders(deviceTypes, buildDecoders(deviceTypes));
  } catch (error) {
    if (!(error instanceof DecoderBuildError)) throw error;
    throw new ConfigError(
      `deviceTypes.${error.deviceType}.decoder`,
      'sigfox' in error.decoder ? error.decoder.sigfox : error.decoder.codec,
      `a working decoder: ${error.message}`,
    );
  }

  const limits = input.validation ?? {};
  if (!isObject(limits)) throw new ConfigError('validation', limits, 'an object');
  const bounds: Record<keyof ValidationLimits, [number, number]> = {
    maxFutureSeconds: [0, 31 * 86_400],
    maxAgeDays: [1, 36_500],
    maxPayloadBytes: [16, 256 * 1024], // 256 KiB: the SQS message size limit
    maxMetrics: [1, 10_000],
    maxDepth: [1, 64],
  };
  const validation = { ...DEFAULT_VALIDATION };
  for (const [key, value] of Object.entries(limits)) {
    const range = bounds[key as keyof ValidationLimits];
    if (!range) throw new ConfigError(`validation.${key}`, value, `one of ${Object.keys(bounds).join(', ')}`);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < range[0] || value > range[1]) {
      throw new ConfigError(`validation.${key}`, value, `an integer from ${range[0]} to ${range[1]}`);
    }
    validation[key as keyof ValidationLimits] = value;
  }
  return {
    deviceTypes,
    validation,
    httpMappings: validateMappings(input.httpMappings ?? {}),
    sigfoxDownlinks: validateDownlinks(input.sigfoxDownlinks ?? {}),
    alertRules: validateRules(input.alertRules ?? []),
    offline: validateOffline(input.offline ?? {}),
  };
}

const COMPARISONS: readonly Comparison[] = ['>', '>=', '<', '<=', '==', '!='];
const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

function durationOf(key: string, value: unknown): number {
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

function validateRules(value: unknown): AlertRule[] {
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

function validateOffline(value: unknown): RuntimeConfig['offline'] {
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

/** Sigfox downlinks are 8 bytes. */
export const DOWNLINK_PATTERN = /^[0-9a-fA-F]{16}$/;
const FIELD_PATTERN = /^[^$\s][^\s]{0,127}$/;

function validateMappings(value: unknown): Record<string, HttpMapping> {
  if (!isObject(value)) throw new ConfigError('httpMappings', value, 'an object of mappings by name');
  const mappings: Record<string, HttpMapping> = {};
  for (const [name, mapping] of Object.entries(value)) {
    const key = `httpMappings.${name}`;
    if (!DEVICE_TYPE_PATTERN.test(name))
      throw new ConfigError(key, name, `a name matching ${DEVICE_TYPE_PATTERN}`);
    if (!isObject(mapping))
      throw new ConfigError(key, mapping, '{ "id": "<field>", "time": "<field>", "type": "<deviceType>" }');
    const { id, time, type } = mapping;
    if (typeof id !== 'string' || !FIELD_PATTERN.test(id))
      throw new ConfigError(`${key}.id`, id, 'the name of the field holding the device id');
    if (time !== undefined && (typeof time !== 'string' || !FIELD_PATTERN.test(time)))
      throw new ConfigError(`${key}.time`, time, 'the name of the field holding the time');
    if (type !== undefined && (typeof type !== 'string' || !DEVICE_TYPE_PATTERN.test(type)))
      throw new ConfigError(`${key}.type`, type, `a device type matching ${DEVICE_TYPE_PATTERN}`);
    mappings[name] = { id, ...(time === undefined ? {} : { time }), ...(type === undefined ? {} : { type }) };
  }
  return mappings;
}

function validateDownlinks(value: unknown): Record<string, string> {
  if (!isObject(value))
    throw new ConfigError('sigfoxDownlinks', value, 'an object of downlinks by device id');
  const downlinks: Record<string, string> = {};
  for (const [device, data] of Object.entries(value)) {
    if (typeof data !== 'string' || !DOWNLINK_PATTERN.test(data)) {
      throw new ConfigError(`sigfoxDownlinks.${device}`, data, '8 bytes as 16 hex digits');
    }
    downlinks[device] = data.toLowerCase();
  }
  return downlinks;
}

function validateDecoder(key: string, value: unknown): DecoderConfig | undefined {
  if (value === 'json') return undefined;
  if (isObject(value) && typeof value.sigfox === 'string' && Object.keys(value).length === 1) {
    return { sigfox: value.sigfox };
  }
  if (isObject(value) && typeof value.codec === 'string') {
    if (typeof value.source !== 'string') {
      throw new ConfigError(key, value, `the codec's source: the file ${value.codec} was not read`);
    }
    const allowed = ['codec', 'source', 'timeoutMs', 'memoryMb', 'normalize'];
    for (const option of Object.keys(value)) {
      if (!allowed.includes(option)) {
        throw new ConfigError(`${key}.${option}`, value[option], `one of ${allowed.slice(2).join(', ')}`);
      }
    }
    const { timeoutMs, memoryMb, normalize } = value;
    const within = (option: string, n: unknown, min: number, max: number) => {
      if (n !== undefined && (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max)) {
        throw new ConfigError(`${key}.${option}`, n, `an integer from ${min} to ${max}`);
      }
    };
    // Past 10 s a batch of codec messages could outlast the ingest Lambda; past 256 MB, its memory.
    within('timeoutMs', timeoutMs, 1, 10_000);
    within('memoryMb', memoryMb, 1, 256);
    if (normalize !== undefined && typeof normalize !== 'boolean') {
      throw new ConfigError(`${key}.normalize`, normalize, 'true or false');
    }
    return {
      codec: value.codec,
      source: value.source,
      ...(timeoutMs === undefined ? {} : { timeoutMs: timeoutMs as number }),
      ...(memoryMb === undefined ? {} : { memoryMb: memoryMb as number }),
      ...(normalize === undefined ? {} : { normalize }),
    };
  }
  throw new ConfigError(key, value, '"json", { "sigfox": "<grammar>" } or { "codec": "<file.js>" }');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
