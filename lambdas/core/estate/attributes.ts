/**
 * Device attributes a network carries with its messages (ChirpStack's device and
 * device-profile tags): what a key and a value may be, and how they join the
 * attributes the registry already holds. Attributes reach the registry record, the
 * `?tag=key=value` filter, alert scopes and listings, so they are bounded like any
 * outside input: a device cannot grow its record without limit, one message at a time.
 */
import { isObject, kind, own, setOwn, truncate } from '../ids.ts';

/** At most this many attributes per message, and per device record. */
export const MAX_ATTRIBUTES = 32;
/** Characters of an attribute value. */
export const MAX_ATTRIBUTE_VALUE = 256;
/**
 * An attribute key: a plain name that starts with a letter, so `__proto__` and other
 * names that mean something to JavaScript objects never become one.
 */
export const ATTRIBUTE_KEY_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

// Control characters would break the one-line listings and the `key=value` filter.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * A network's attributes, read: the entries that may be kept (string values, each key
 * matching {@link ATTRIBUTE_KEY_PATTERN}, each value at most {@link MAX_ATTRIBUTE_VALUE}
 * characters without control characters, the first {@link MAX_ATTRIBUTES} of them), and
 * a warning naming each entry left out as `label.<key>`. A bad tag never costs the
 * message: networks such as ChirpStack do not send a refused event again.
 */
export function readAttributes(
  value: unknown,
  label: string,
): { readonly attributes: Readonly<Record<string, string>>; readonly warnings: readonly string[] } {
  if (!isObject(value))
    return {
      attributes: {},
      warnings: [`"${label}" must be an object of strings, got ${kind(value)}: left out`],
    };
  const attributes: Record<string, string> = {};
  const warnings: string[] = [];
  let kept = 0;
  let over = 0;
  for (const key in value) {
    if (!ATTRIBUTE_KEY_PATTERN.test(key)) {
      if (warnings.length < MAX_ATTRIBUTES)
        warnings.push(
          `"${label}" key ${JSON.stringify(truncate(key))} must match ${ATTRIBUTE_KEY_PATTERN}: left out`,
        );
      continue;
    }
    const text = value[key];
    if (typeof text !== 'string' || text.length > MAX_ATTRIBUTE_VALUE || CONTROL.test(text)) {
      if (warnings.length < MAX_ATTRIBUTES)
        warnings.push(
          `"${label}.${key}" must be a string of at most ${MAX_ATTRIBUTE_VALUE} characters without control characters, got ${kind(text)}: left out`,
        );
      continue;
    }
    if (kept >= MAX_ATTRIBUTES) {
      over++;
      continue;
    }
    setOwn(attributes, key, text);
    kept++;
  }
  if (over > 0) warnings.push(`"${label}": ${over} entries past the first ${MAX_ATTRIBUTES} left out`);
  return { attributes, warnings };
}

/**
 * The record's attributes with a message's on top: a key the message carries takes its
 * value, keys it does not carry are kept (a tag removed in the network stays until the
 * record is edited). New keys beyond {@link MAX_ATTRIBUTES} are left out; returns the
 * record's own object when nothing changes, so an unchanged device is not rewritten.
 */
export function mergeAttributes(
  current: Readonly<Record<string, string>>,
  incoming: Readonly<Record<string, string>> | undefined,
): Readonly<Record<string, string>> {
  if (!incoming) return current;
  let merged: Record<string, string> | undefined;
  let count = Object.keys(current).length;
  for (const key of Object.keys(incoming)) {
    const value = incoming[key];
    // Checked by the format already; a record is never the place to find out otherwise.
    if (!ATTRIBUTE_KEY_PATTERN.test(key) || typeof value !== 'string' || value.length > MAX_ATTRIBUTE_VALUE)
      continue;
    const held = Object.hasOwn(current, key);
    if (held && own(current, key) === value) continue;
    if (!held && count >= MAX_ATTRIBUTES) continue;
    merged ??= { ...current };
    setOwn(merged, key, value);
    if (!held) count++;
  }
  return merged ?? current;
}
