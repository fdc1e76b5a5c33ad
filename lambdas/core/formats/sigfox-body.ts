/**
 * The bodies a Sigfox callback can have, read into one object of variables before
 * {@link parseSigfoxCallback} sees them. Sigfox renders the callback's template with
 * the variables in place and sends it as the content type chosen for it
 * (support.sigfox.com/docs/callback-medium):
 *
 * - `application/json`: the template is JSON (`{"device":"{device}","time":{time}}`);
 * - `application/x-www-form-urlencoded` (Sigfox's default for POST): `device={device}&time={time}`;
 *   a GET callback's query string is the same, and is kept as such a body;
 * - `text/plain`: the template is free text; we read `name:value` or `name=value` pairs
 *   separated by `;` or `&` (`device:{device}; data:{data}; time:{time}`), or a JSON object.
 *
 * A BATCH_URL callback sends the messages of a second in one POST, one rendered
 * line pattern per line: {@link splitBatch} cuts it into lines, each read on its own.
 *
 * Every reader is total and bounded: hostile bodies (bad percent-encoding, a key given
 * twice, `__proto__` as a name, thousands of fields) come back as `{ error }` with the
 * reason, never as an exception, and names are own properties only (setOwn).
 */
import { setOwn, truncate } from '../ids.ts';

/** Variables in one callback at most: Sigfox's richest callback has about 30. */
export const MAX_FIELDS = 100;

/** Lines in one BATCH_URL body at most: 1,000 lines of Sigfox's line patterns fill the 128 KB body limit. */
export const MAX_BATCH_LINES = 1000;

export type Variables = Record<string, string>;

/** A form body (`a=1&b=2`, `+` for a space, percent-encoded UTF-8): the variables, or why not. */
export function parseForm(text: string): { fields: Variables } | { error: string } {
  const fields: Variables = {};
  let count = 0;
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const equals = pair.indexOf('=');
    const name = decodeFormPart(equals < 0 ? pair : pair.slice(0, equals));
    const value = decodeFormPart(equals < 0 ? '' : pair.slice(equals + 1));
    if (typeof name !== 'string') return { error: name.error };
    if (typeof value !== 'string') return { error: `"${truncate(name)}": ${value.error}` };
    const added = add(fields, name, value, ++count);
    if (added) return added;
  }
  if (count === 0) return { error: 'the form body has no name=value pair' };
  return { fields };
}

/** Plain text: `name:value` / `name=value` pairs separated by `;` or `&` on one line, or a JSON object. */
export function parseText(text: string): { fields: Record<string, unknown> } | { error: string } {
  const line = text.trim();
  if (line.startsWith('{')) {
    try {
      const value: unknown = JSON.parse(line);
      if (typeof value === 'object' && value !== null && !Array.isArray(value))
        return { fields: value as Record<string, unknown> };
      return { error: 'the text body starts like JSON but is not a JSON object' };
    } catch (error) {
      return { error: `the text body starts like JSON but is not JSON: ${(error as Error).message}` };
    }
  }
  if (/[\r\n]/.test(line))
    return { error: 'one callback is one line; a batch is several, split before reading' };
  const fields: Variables = {};
  let count = 0;
  for (const part of line.split(/[;&]/)) {
    const pair = part.trim();
    if (pair === '') continue;
    const at = pair.search(/[:=]/);
    if (at <= 0) {
      return {
        error: `"${truncate(pair)}" is not name:value or name=value; render the template as e.g. device:{device};data:{data};time:{time}`,
      };
    }
    const added = add(fields, pair.slice(0, at).trim(), pair.slice(at + 1).trim(), ++count);
    if (added) return added;
  }
  if (count === 0) return { error: 'the text body has no name:value pair' };
  return { fields };
}

/**
 * The lines of a BATCH_URL body (`\n` or `\r\n`, blank lines left out), or undefined
 * when it holds one message; a refusal past {@link MAX_BATCH_LINES}.
 */
export function splitBatch(bytes: Buffer): Buffer[] | undefined | { error: string } {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== 0x0a) continue;
    let end = i;
    if (end > start && bytes[end - 1] === 0x0d) end--;
    const line = bytes.subarray(start, end);
    start = i + 1;
    if (line.toString('utf8').trim() === '') continue;
    if (lines.length === MAX_BATCH_LINES) {
      return {
        error: `the batch has more than ${MAX_BATCH_LINES} lines; Sigfox sends a batch every second, so this is not one`,
      };
    }
    lines.push(line);
  }
  return lines.length > 1 ? lines : undefined;
}

function add(fields: Variables, name: string, value: string, count: number): { error: string } | undefined {
  if (name === '') return { error: 'a variable has no name' };
  if (count > MAX_FIELDS) return { error: `the callback has more than ${MAX_FIELDS} variables` };
  // A name given twice has no one meaning: which value would the reading take?
  if (Object.hasOwn(fields, name)) return { error: `"${truncate(name)}" is given twice` };
  setOwn(fields, name, value);
  return undefined;
}

function decodeFormPart(part: string): string | { error: string } {
  try {
    return decodeURIComponent(part.replaceAll('+', ' '));
  } catch {
    return { error: `"${truncate(part)}" is not valid percent-encoding (%XX of UTF-8 bytes)` };
  }
}
