/**
 * Every way in, in one list: the HTTP routes, the ingest path, the lake's `source`
 * partitions, the simulator and the cost model read it. A new network is one module
 * in this folder implementing {@link Format}, and one line here.
 */
import { chirpstack } from './chirpstack.ts';
import type { Format } from './format.ts';
import { httpJson } from './http-json.ts';
import { iotLorawan } from './iot-lorawan.ts';
import { mqtt } from './mqtt.ts';
import { sigfox } from './sigfox.ts';
import { ttn } from './ttn.ts';

export const FORMATS = [mqtt, httpJson, sigfox, ttn, iotLorawan, chirpstack] as const;

/** Sources a message can arrive from; the `source=` partition of `raw/`. */
export type Source = (typeof FORMATS)[number]['source'];

export const SOURCES: readonly Source[] = FORMATS.map((f) => f.source);

const BY_SOURCE = new Map<string, Format>(FORMATS.map((f) => [f.source, f as unknown as Format]));

/** The format of a source, or undefined for a source no format has. */
export function formatOf(source: string): Format | undefined {
  return BY_SOURCE.get(source);
}

/** The formats that arrive over HTTP, with their routes. */
export const HTTP_FORMATS: readonly (Format & { readonly route: NonNullable<Format['route']> })[] =
  FORMATS.filter((f) => f.route !== undefined) as unknown as (Format & {
    readonly route: NonNullable<Format['route']>;
  })[];
