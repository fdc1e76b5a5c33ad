/**
 * The Things Stack v3 webhook uplinks (`POST /v1/ttn`): `end_device_ids`,
 * `uplink_message` with `decoded_payload` or `frm_payload`, `f_port`, `f_cnt`,
 * `received_at`, `rx_metadata`. The Things Stack leaves out fields whose value is
 * zero (`f_cnt`, `f_port`, an empty `frm_payload`): absent means 0 or empty.
 *
 * A `decoded_payload` (the application's payload formatter) is stored as it is;
 * without one, `frm_payload` goes to the device type's codec (`?type=<deviceType>`).
 */
import { DEVICE_ID_PATTERN, isObject, kind } from '../ids.ts';
import { RejectError } from '../readings/rejection.ts';
import { readIsoTime } from '../readings/timestamp.ts';
import { type Format, isRefusal, type Payload, readBody, type Uplink } from './format.ts';
import { number, show } from './values.ts';

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

export const ttn: Format<Uplink, 'ttn'> = {
  source: 'ttn',
  title: 'The Things Stack',
  route: { path: '/v1/ttn', refusal: 'invalid_webhook' },
  // The Things Stack retries webhooks that fail.
  resends: true,
  read(message, { decoders }) {
    const uplink = readBody<TtnUplink>(message, 'ttn', parseTtnUplink);
    if (isRefusal(uplink)) return uplink;
    const deviceType = message.params.type ?? 'ttn';
    const decoder = decoders.of(deviceType);
    let payload: Payload;
    if (uplink.decodedPayload) payload = { data: uplink.decodedPayload };
    else if (decoder) payload = { decoder, bytes: uplink.frmPayload, fPort: uplink.fPort };
    else {
      payload = {
        refused: {
          code: 'decode_failed',
          reason: `no decoded_payload and device type "${deviceType}" has no codec: set deviceTypes.${deviceType}.decoder.codec (and ?type=${deviceType} on the webhook URL), or a payload formatter in The Things Stack`,
        },
      };
    }
    let time: number | undefined;
    if (uplink.receivedAt !== undefined && !('refused' in payload)) {
      try {
        time = readIsoTime(uplink.receivedAt, '"received_at"');
      } catch (error) {
        if (!(error instanceof RejectError)) throw error;
        payload = { refused: { code: error.code, reason: error.message } };
      }
    }
    return {
      deviceId: uplink.deviceId,
      deviceType,
      payload,
      ...(time === undefined ? {} : { time }),
      seq: uplink.fCnt,
      metrics: uplink.radio,
    };
  },
};
