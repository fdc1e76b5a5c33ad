/**
 * Limits a reading must respect; a message that breaks one is quarantined with the
 * limit's name. Validated here, for the config to combine.
 */
import { ConfigError } from '../config-error.ts';
import { isObject } from '../ids.ts';

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

export const DEFAULT_VALIDATION: ValidationLimits = {
  maxFutureSeconds: 300,
  maxAgeDays: 365,
  maxPayloadBytes: 128 * 1024,
  maxMetrics: 200,
  maxDepth: 8,
};

/** Longest string value kept: Timestream's VARCHAR measure limit is 2 KB. */
export const MAX_STRING_BYTES = 2048;

const BOUNDS: Record<keyof ValidationLimits, [number, number]> = {
  maxFutureSeconds: [0, 31 * 86_400],
  maxAgeDays: [1, 36_500],
  maxPayloadBytes: [16, 256 * 1024], // 256 KiB: the SQS message size limit
  maxMetrics: [1, 10_000],
  maxDepth: [1, 64],
};

/** `validation` of the config, defaults filled in. */
export function validateLimits(limits: unknown): ValidationLimits {
  if (!isObject(limits)) throw new ConfigError('validation', limits, 'an object');
  const validation = { ...DEFAULT_VALIDATION };
  for (const [key, value] of Object.entries(limits)) {
    const range = Object.hasOwn(BOUNDS, key) ? BOUNDS[key as keyof ValidationLimits] : undefined;
    if (!range) throw new ConfigError(`validation.${key}`, value, `one of ${Object.keys(BOUNDS).join(', ')}`);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < range[0] || value > range[1]) {
      throw new ConfigError(`validation.${key}`, value, `an integer from ${range[0]} to ${range[1]}`);
    }
    validation[key as keyof ValidationLimits] = value;
  }
  return validation;
}
