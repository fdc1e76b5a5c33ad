import type { Source } from '../lake/layout.ts';

/** An HTTP route that accepts telemetry, and the source its messages are recorded under. */
export interface IngestRoute {
  readonly path: string;
  readonly source: Exclude<Source, 'mqtt'>;
}

/**
 * The POST routes of the HTTP API (DESIGN.md, "Contracts"), shared by API Gateway and
 * the local server. Each takes `?type=<deviceType>` to name the device type whose
 * decoder reads the payload; `/v1/telemetry` also takes `?mapping=<name>`.
 */
export const INGEST_ROUTES: readonly IngestRoute[] = [
  { path: '/v1/telemetry', source: 'http' },
  { path: '/v1/sigfox', source: 'sigfox' },
  { path: '/v1/ttn', source: 'ttn' },
];
