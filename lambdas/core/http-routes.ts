import type { Source } from './lake-layout.ts';

/** An HTTP route that accepts telemetry, and the source its messages are recorded under. */
export interface IngestRoute {
  readonly path: string;
  readonly source: Exclude<Source, 'mqtt'>;
}

/**
 * The POST routes of the HTTP API (DESIGN.md, "Contracts"), shared by API Gateway and
 * the local server. `/v1/sigfox` and `/v1/ttn` join when their callback formats are decoded.
 */
export const INGEST_ROUTES: readonly IngestRoute[] = [{ path: '/v1/telemetry', source: 'http' }];
