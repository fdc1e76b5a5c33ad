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

export function show(value: unknown): string {
  return value === undefined ? 'nothing' : truncate(JSON.stringify(value) ?? String(value));
}
