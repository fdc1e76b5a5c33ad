/** Reading networks' JSON bodies: values as operators' templates render them, and how to name them in a reason. */
import { truncate } from '../ids.ts';

/** A number, or a string that is one (Sigfox templates render values as text when quoted). */
export function number(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  return undefined;
}

/** A boolean, or its text; absent is false; anything else undefined. */
export function flag(value: unknown): boolean | undefined {
  if (value === undefined || value === false || value === 'false') return false;
  if (value === true || value === 'true') return true;
  return undefined;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function kind(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

export function show(value: unknown): string {
  return value === undefined ? 'nothing' : truncate(JSON.stringify(value) ?? String(value));
}
