/**
 * The permission matrix both servers are held to (the local runtime over real HTTP, the
 * Lambda handlers against moto): every route, by every kind of key, with what it must
 * answer. One table, so the two can never disagree.
 */
import type { KeySpec } from '../../lambdas/core/access/keys.ts';

/** The keys of the matrix: every scope alone, both, one for other devices, one revoked. */
export const MATRIX_KEYS = {
  ingest: { name: 'ingest', scopes: ['ingest'] },
  sigfox: { name: 'sigfox', scopes: ['ingest:sigfox'] },
  telemetry: { name: 'telemetry', scopes: ['ingest:telemetry'] },
  read: { name: 'read', scopes: ['read'] },
  both: { name: 'both', scopes: ['ingest', 'read'] },
  otherDevices: { name: 'other-devices', scopes: ['ingest', 'read'], devices: ['x-*', 'other-1'] },
  revoked: { name: 'revoked', scopes: ['ingest', 'read'] },
} satisfies Record<string, KeySpec>;
export type MatrixKey = keyof typeof MATRIX_KEYS;

const sigfox = JSON.stringify({
  device: '1A2B3C',
  time: 1795586398,
  data: '0992a0',
  seqNumber: 7,
  ack: false,
});
const ttn = JSON.stringify({
  end_device_ids: { device_id: 'eui-70b3d57ed0051234', application_ids: { application_id: 'a' } },
  received_at: '2026-11-25T05:59:58Z',
  uplink_message: { f_port: 2, f_cnt: 1, decoded_payload: { temperature: 20 } },
});

const chirpstack = JSON.stringify({
  time: '2026-11-25T05:59:58Z',
  deviceInfo: { devEui: '0101010101010101', deviceProfileName: 'Test device-profile' },
  fCnt: 1,
  fPort: 1,
  object: { temperature: 20 },
});

/** Every route: method, path (with the query string it needs), a body it accepts. */
export const ROUTES = {
  telemetry: ['POST', '/v1/telemetry', JSON.stringify({ $id: 'h-1', temp: 20 })],
  sigfox: ['POST', '/v1/sigfox', sigfox],
  ttn: ['POST', '/v1/ttn', ttn],
  chirpstack: ['POST', '/v1/chirpstack?event=up', chirpstack],
  devices: ['GET', '/v1/devices', ''],
  readings: ['GET', '/v1/devices/h-1/readings', ''],
  daily: ['GET', '/v1/devices/h-1/daily', ''],
  estate: ['GET', '/v1/estate', ''],
} as const;
export type Route = keyof typeof ROUTES;

/** A key shaped like ours that no store holds. */
export const UNKNOWN_KEY = `iotp_0123456789abcdef_${'A'.repeat(43)}`;

/** 2: allowed (2xx); 401: not a valid key; 403: a key without the scope, or not for these devices. */
export const EXPECTED: Record<MatrixKey | 'unknown', Record<Route, 2 | 401 | 403>> = {
  ingest: {
    telemetry: 2,
    sigfox: 2,
    ttn: 2,
    chirpstack: 2,
    devices: 403,
    readings: 403,
    daily: 403,
    estate: 403,
  },
  sigfox: {
    telemetry: 403,
    sigfox: 2,
    ttn: 403,
    chirpstack: 403,
    devices: 403,
    readings: 403,
    daily: 403,
    estate: 403,
  },
  telemetry: {
    telemetry: 2,
    sigfox: 403,
    ttn: 403,
    chirpstack: 403,
    devices: 403,
    readings: 403,
    daily: 403,
    estate: 403,
  },
  read: {
    telemetry: 403,
    sigfox: 403,
    ttn: 403,
    chirpstack: 403,
    devices: 2,
    readings: 2,
    daily: 2,
    estate: 2,
  },
  both: { telemetry: 2, sigfox: 2, ttn: 2, chirpstack: 2, devices: 2, readings: 2, daily: 2, estate: 2 },
  // Made for x-* and other-1: it lists (and counts, in the estate) only those devices and writes or reads no other.
  otherDevices: {
    telemetry: 403,
    sigfox: 403,
    ttn: 403,
    chirpstack: 403,
    devices: 2,
    readings: 403,
    daily: 403,
    estate: 2,
  },
  revoked: {
    telemetry: 401,
    sigfox: 401,
    ttn: 401,
    chirpstack: 401,
    devices: 401,
    readings: 401,
    daily: 401,
    estate: 401,
  },
  unknown: {
    telemetry: 401,
    sigfox: 401,
    ttn: 401,
    chirpstack: 401,
    devices: 401,
    readings: 401,
    daily: 401,
    estate: 401,
  },
};

/** The test's title for a row: `read: telemetry 403, …, devices 2xx`. */
export function rowTitle(key: string, row: Record<string, number>): string {
  return `${key}: ${Object.entries(row)
    .map(([route, status]) => `${route} ${status === 2 ? '2xx' : status}`)
    .join(', ')}`;
}

/** What the matrix compares: 2 for any 2xx, else the status. */
export function matrixStatus(status: number): number {
  return status >= 200 && status < 300 ? 2 : status;
}
