/**
 * The devices to provision, from `--attr key=value` flags or a CSV file of
 * `thingName,deviceType[,key=value ...]` lines (a `thingName,...` header and `#` comments skipped).
 */
import { readFileSync } from 'node:fs';
import { ProvisionError } from './provisioning.ts';

export interface DeviceLine {
  readonly thingName: string;
  readonly deviceType: string;
  readonly attributes: Record<string, string>;
}

/** `key=value` pairs as attributes; a pair without a key is a ProvisionError. */
export function parseAttributes(pairs: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    pairs.map((pair) => {
      const at = pair.indexOf('=');
      if (at < 1) throw new ProvisionError(`attribute "${pair}" must be key=value`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  );
}

/** The CSV text's devices; a line without a thing name and a type is a ProvisionError naming the line. */
export function parseDeviceCsv(text: string, name: string): DeviceLine[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#') && !/^thingName,/i.test(line))
    .map((line, i) => {
      const [thingName = '', deviceType = '', ...pairs] = line.split(',').map((f) => f.trim());
      if (!thingName || !deviceType)
        throw new ProvisionError(`${name} line ${i + 1}: want thingName,deviceType[,key=value ...]`);
      return { thingName, deviceType, attributes: parseAttributes(pairs) };
    });
}

export function readDeviceCsv(file: string): DeviceLine[] {
  return parseDeviceCsv(readFileSync(file, 'utf8'), file);
}
