/**
 * Sigfox callbacks (`POST /v1/sigfox`): the JSON body users configure on a Sigfox
 * device type's callback (`device`, `time` in epoch seconds, `data` hex, `seqNumber`,
 * `deviceTypeId`, `ack`, and optionally `station`, `rssi`, `snr`, `duplicate`,
 * `customData#<name>`). Sigfox renders `{rssi}` and friends as text or numbers
 * depending on the template's quotes, so numeric strings are read as numbers.
 *
 * `data` goes to the device type's decoder (a Sigfox grammar, `?type=<deviceType>`
 * on the callback URL); without one, Sigfox's own `customData#` values are stored.
 * A BIDIR callback (`ack: true`) is answered with the device's downlink, else its
 * type's; this format owns those parts of the config (`sigfoxDownlinks`,
 * `deviceTypes.<type>.sigfoxDownlink`).
 */
import { ConfigError } from '../config-error.ts';
import { parseHex } from '../decoders/hex.ts';
import { DEVICE_ID_PATTERN, isObject, kind, own, setOwn } from '../ids.ts';
import { type Format, isRefusal, type Payload, readBody, type Uplink } from './format.ts';
import { flag, number, show } from './values.ts';

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
    if (n !== undefined) setOwn(customData, name, n);
    else if (raw === true || raw === false || raw === 'true' || raw === 'false')
      setOwn(customData, name, raw === true || raw === 'true');
    else if (typeof raw === 'string') setOwn(customData, name, raw);
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

/** Sigfox downlinks are 8 bytes. */
export const DOWNLINK_PATTERN = /^[0-9a-fA-F]{16}$/;

/** `sigfoxDownlinks` of the config: downlinks by device id, before the device type's. */
export function validateSigfoxDownlinks(value: unknown): Record<string, string> {
  if (!isObject(value))
    throw new ConfigError('sigfoxDownlinks', value, 'an object of downlinks by device id');
  const downlinks: Record<string, string> = {};
  for (const [device, data] of Object.entries(value)) {
    if (typeof data !== 'string' || !DOWNLINK_PATTERN.test(data)) {
      throw new ConfigError(`sigfoxDownlinks.${device}`, data, '8 bytes as 16 hex digits');
    }
    setOwn(downlinks, device, data.toLowerCase());
  }
  return downlinks;
}

/** `deviceTypes.<type>.sigfoxDownlink`: the answer to a BIDIR callback of this type. */
export function validateSigfoxDownlink(key: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !DOWNLINK_PATTERN.test(value)) {
    throw new ConfigError(key, value, '8 bytes as 16 hex digits');
  }
  return value.toLowerCase();
}

interface SigfoxUplink extends Uplink {
  readonly deviceId: string;
  /** The device asks for a downlink (BIDIR). */
  readonly ack: boolean;
}

export const sigfox: Format<SigfoxUplink, 'sigfox'> = {
  source: 'sigfox',
  title: 'Sigfox',
  route: { path: '/v1/sigfox', refusal: 'invalid_callback' },
  // Sigfox retries a callback after 1, 2 and 4 minutes and reports one frame per base station.
  resends: true,
  // seqNumber is 12 bits.
  sequenceWrapsAt: 4096,
  read(message, { decoders }) {
    const callback = readBody<SigfoxCallback>(message, 'sigfox', parseSigfoxCallback);
    if (isRefusal(callback)) return callback;
    const deviceType = message.params.type ?? 'sigfox';
    const decoder = decoders.of(deviceType);
    let payload: Payload;
    if (decoder) payload = { decoder, bytes: callback.data };
    else if (Object.keys(callback.customData).length > 0) payload = { data: { ...callback.customData } };
    else {
      payload = {
        refused: {
          code: 'decode_failed',
          reason: `device type "${deviceType}" has no decoder for the ${callback.data.length} bytes of "data": set deviceTypes.${deviceType}.decoder.sigfox (and ?type=${deviceType} on the callback URL), or send customData# fields`,
        },
      };
    }
    return {
      deviceId: callback.device,
      deviceType,
      payload,
      time: callback.time * 1000,
      ...(callback.seqNumber === undefined ? {} : { seq: callback.seqNumber }),
      metrics: callback.radio,
      ack: callback.ack,
    };
  },
  answer(uplink, { config }) {
    // Sigfox reads a downlink from a 200 with the device id as key; 204 means none.
    // Configured entries only: a device called `__proto__` or `constructor` has none unless set.
    const downlink = uplink.ack
      ? (own(config.sigfoxDownlinks, uplink.deviceId) ??
        own(config.deviceTypes, uplink.deviceType)?.sigfoxDownlink)
      : undefined;
    return downlink
      ? { statusCode: 200, body: { [uplink.deviceId]: { downlinkData: downlink } } }
      : { statusCode: 204 };
  },
};
