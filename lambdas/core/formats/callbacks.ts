/**
 * Network operators' callbacks, read once with the same rules by the HTTP handler
 * (which answers 400 with the reason for a body it cannot use) and by the ingest path
 * (which turns it into readings):
 *
 * - Sigfox: the JSON body users configure on a Sigfox device type's callback
 *   (`device`, `time` in epoch seconds, `data` hex, `seqNumber`, `deviceTypeId`, `ack`,
 *   and optionally `station`, `rssi`, `snr`, `duplicate`, `customData#<name>`). Sigfox
 *   renders `{rssi}` and friends as text or numbers depending on the template's quotes,
 *   so numeric strings are read as numbers.
 * - The Things Stack v3 webhook uplinks (`end_device_ids`, `uplink_message` with
 *   `decoded_payload` or `frm_payload`, `f_port`, `f_cnt`, `received_at`,
 *   `rx_metadata`). The Things Stack leaves out fields whose value is zero (`f_cnt`,
 *   `f_port`, an empty `frm_payload`): absent means 0 or empty.
 */
import { parseHex } from '../decoders/hex.ts';
import { DEVICE_ID_PATTERN, truncate } from '../topics.ts';

export interface SigfoxCallback {
  readonly device: string;
  /** Epoch seconds. */
  readonly time: number;
  readonly data: Buffer;
  readonly seqNumber?: number;
  readonly deviceTypeId?: string;
  /** The device asks for a downlink (BIDIR). */
  readonly ack: boolean;
  readonly duplicate: boolean;
  readonly radio: Readonly<Record<string, number | string>>;
  /** What Sigfox decoded itself with the device type's custom payload config. */
  readonly customData: Readonly<Record<string, number | string | boolean>>;
}

export interface TtnUplink {
  readonly deviceId: string;
  readonly applicationId?: string;
  readonly devEui?: string;
  readonly fPort: number;
  readonly fCnt: number;
  readonly frmPayload: Buffer;
  readonly decodedPayload?: Record<string, unknown>;
  /** ISO-8601 as The Things Stack wrote it (nanoseconds included). */
  readonly receivedAt?: string;
  readonly radio: Readonly<Record<string, number | string>>;
}

/** Sigfox uplink frames carry at most 12 bytes. */
export const SIGFOX_MAX_BYTES = 12;

export function parseSigfoxCallback(value: unknown): SigfoxCallback | { error: string } {
  if (!isObject(value))
    return { error: `the Sigfox callback body must be a JSON object, got ${kind(value)}` };
  const device = value.device;
  if (typeof device !== 'string' || !DEVICE_ID_PATTERN.test(device)) {
    return {
      error: `"device" must be the Sigfox device id (e.g. "1A2B3C"), got ${show(device)}; put {device} in the callback body`,
    };
  }
  const time = number(value.time);
  if (time === undefined || time < 0) {
    return {
      error: `"time" must be epoch seconds, got ${show(value.time)}; put {time} in the callback body`,
    };
  }
  if (typeof value.data !== 'string') {
    return {
      error: `"data" must be the frame in hex, got ${show(value.data)}; put "{data}" in the callback body`,
    };
  }
  const data = parseHex(value.data);
  if ('error' in data) return { error: `"data": ${data.error}` };
  if (data.length > SIGFOX_MAX_BYTES) {
    return { error: `"data" has ${data.length} bytes; Sigfox frames carry at most ${SIGFOX_MAX_BYTES}` };
  }
  let seqNumber: number | undefined;
  if (value.seqNumber !== undefined) {
    seqNumber = number(value.seqNumber);
    if (seqNumber === undefined || !Number.isSafeInteger(seqNumber) || seqNumber < 0) {
      return { error: `"seqNumber" must be a non-negative integer, got ${show(value.seqNumber)}` };
    }
  }
  const ack = flag(value.ack);
  const duplicate = flag(value.duplicate);
  if (ack === undefined) return { error: `"ack" must be true or false, got ${show(value.ack)}` };
  if (duplicate === undefined)
    return { error: `"duplicate" must be true or false, got ${show(value.duplicate)}` };
  const radio: Record<string, number | string> = {};
  for (const key of ['rssi', 'snr', 'avgSnr'] as const) {
    const n = number(value[key]);
    if (n !== undefined) radio[`radio.${key}`] = n;
  }
  if (typeof value.station === 'string' && value.station !== '') radio['radio.station'] = value.station;
  const customData: Record<string, number | string | boolean> = {};
  for (const [key, raw] of Object.entries(value)) {
    if (!key.startsWith('customData#')) continue;
    const name = key.slice('customData#'.length);
    if (name === '') continue;
    const n = number(raw);
    if (n !== undefined) customData[name] = n;
    else if (raw === true || raw === false || raw === 'true' || raw === 'false')
      customData[name] = raw === true || raw === 'true';
    else if (typeof raw === 'string') customData[name] = raw;
  }
  const deviceTypeId = typeof value.deviceTypeId === 'string' ? value.deviceTypeId : undefined;
  return {
    device,
    time,
    data,
    ...(seqNumber === undefined ? {} : { seqNumber }),
    ...(deviceTypeId === undefined ? {} : { deviceTypeId }),
    ack,
    duplicate,
    radio,
    customData,
  };
}

export function parseTtnUplink(value: unknown): TtnUplink | { error: string } {
  if (!isObject(value)) return { error: `the webhook body must be a JSON object, got ${kind(value)}` };
  const ids = value.end_device_ids;
  if (!isObject(ids) || typeof ids.device_id !== 'string') {
    return { error: 'no "end_device_ids.device_id": this route takes The Things Stack v3 webhook messages' };
  }
  if (!DEVICE_ID_PATTERN.test(ids.device_id)) {
    return { error: `"end_device_ids.device_id" ${show(ids.device_id)} must match ${DEVICE_ID_PATTERN}` };
  }
  const uplink = value.uplink_message;
  if (!isObject(uplink)) {
    return {
      error: 'no "uplink_message": enable only "Uplink message" for this path in the webhook settings',
    };
  }
  const fPort = uplink.f_port === undefined ? 0 : uplink.f_port;
  const fCnt = uplink.f_cnt === undefined ? 0 : uplink.f_cnt;
  if (typeof fPort !== 'number' || !Number.isInteger(fPort) || fPort < 0 || fPort > 255) {
    return { error: `"uplink_message.f_port" must be 0 to 255, got ${show(uplink.f_port)}` };
  }
  if (typeof fCnt !== 'number' || !Number.isSafeInteger(fCnt) || fCnt < 0) {
    return { error: `"uplink_message.f_cnt" must be a non-negative integer, got ${show(uplink.f_cnt)}` };
  }
  const payload = uplink.frm_payload ?? '';
  if (typeof payload !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(payload) || payload.length % 4 !== 0) {
    return { error: `"uplink_message.frm_payload" must be base64, got ${show(uplink.frm_payload)}` };
  }
  const decoded = uplink.decoded_payload;
  if (decoded !== undefined && !isObject(decoded)) {
    return { error: `"uplink_message.decoded_payload" must be an object, got ${kind(decoded)}` };
  }
  const receivedAt =
    typeof uplink.received_at === 'string'
      ? uplink.received_at
      : typeof value.received_at === 'string'
        ? value.received_at
        : undefined;
  const radio: Record<string, number | string> = {};
  const gateways = Array.isArray(uplink.rx_metadata) ? uplink.rx_metadata.filter(isObject) : [];
  if (gateways.length > 0) {
    // The gateway that heard the device best.
    const rssiOf = (g: Record<string, unknown>) =>
      number(g.rssi) ?? number(g.channel_rssi) ?? Number.NEGATIVE_INFINITY;
    const best = gateways.reduce((a, b) => (rssiOf(b) > rssiOf(a) ? b : a));
    const rssi = rssiOf(best);
    if (Number.isFinite(rssi)) radio['radio.rssi'] = rssi;
    const snr = number(best.snr);
    if (snr !== undefined) radio['radio.snr'] = snr;
    radio['radio.gateways'] = gateways.length;
  }
  const applicationId =
    isObject(ids.application_ids) && typeof ids.application_ids.application_id === 'string'
      ? ids.application_ids.application_id
      : undefined;
  return {
    deviceId: ids.device_id,
    ...(applicationId === undefined ? {} : { applicationId }),
    ...(typeof ids.dev_eui === 'string' ? { devEui: ids.dev_eui } : {}),
    fPort,
    fCnt,
    frmPayload: Buffer.from(payload, 'base64'),
    ...(decoded === undefined ? {} : { decodedPayload: decoded }),
    ...(receivedAt === undefined ? {} : { receivedAt }),
    radio,
  };
}

/** A number, or a string that is one (Sigfox templates render values as text when quoted). */
function number(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  return undefined;
}

function flag(value: unknown): boolean | undefined {
  if (value === undefined || value === false || value === 'false') return false;
  if (value === true || value === 'true') return true;
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function kind(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function show(value: unknown): string {
  return value === undefined ? 'nothing' : truncate(JSON.stringify(value) ?? String(value));
}
