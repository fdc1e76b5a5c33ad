/**
 * Sigfox callbacks (`/v1/sigfox`), as Sigfox sends them: POST with a JSON, form
 * (Sigfox's default) or plain text body, or GET with the variables in the query string
 * (sigfox-body.ts reads each into one object of variables); BATCH_URL bodies, one line
 * per message, split at the edge so each line is queued, stored or quarantined alone.
 *
 * The kind of callback is told by its variables:
 * - DATA (UPLINK, BIDIR): `device`, `time` in epoch seconds, `data` hex, `seqNumber`,
 *   `deviceTypeId`, `ack`, and optionally `station`, `rssi`, `snr`, `duplicate`,
 *   `customData#<name>`. Sigfox renders `{rssi}` and friends as text or numbers
 *   depending on the template's quotes, so numeric strings are read as numbers.
 * - DATA_ADVANCED (`computedLocation`, `duplicates`, `linkQuality`, `lqi`,
 *   `operatorName`, `countryCode`): the location and link quality of a DATA message,
 *   sent about 30 s after it. Stored at that message's device and time as `location.*`
 *   and `radio.*` metrics, with no sequence number: not a message of its own, so it is
 *   neither counted by lost-message detection nor claimed as a resend of the DATA message.
 * - SERVICE STATUS (`temp`, `batt`, no `data`): the out-of-band status frame, stored as
 *   `status.temperature` (°C) and `status.battery` (V), with no sequence number.
 * - ERROR (`severity`, `info`, no `data`): kept in the raw archive only; Sigfox's
 *   communication-loss error ("No message received since ...") raises the device's
 *   offline alert, as the scheduled offline check would.
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
import {
  FORM_TYPE,
  type Format,
  type FormatRefusal,
  type Inbound,
  isRefusal,
  JSON_TYPE,
  type OfflineSignal,
  type Payload,
  refuse,
  TEXT_TYPE,
  type Uplink,
} from './format.ts';
import { parseForm, parseText, splitBatch } from './sigfox-body.ts';
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
  const radio = radioOf(value);
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

/** The variables of a callback, whatever its content type: a JSON object, a form, text, a GET query. */
export function readVariables(message: Inbound): Record<string, unknown> | FormatRefusal {
  const text = () => message.bytes.toString('utf8');
  let value: unknown;
  switch (message.contentType) {
    case JSON_TYPE: {
      const body = message.json();
      if ('error' in body)
        return refuse('invalid_callback', `the sigfox callback is not JSON: ${body.error}`);
      value = body.value;
      break;
    }
    case FORM_TYPE:
    case TEXT_TYPE: {
      const read = message.contentType === FORM_TYPE ? parseForm(text()) : parseText(text());
      if ('fields' in read) return read.fields;
      return refuse('invalid_callback', `the Sigfox callback cannot be read: ${read.error}`);
    }
    default:
      return refuse('invalid_callback', `a Sigfox callback is not ${show(message.contentType)}`);
  }
  if (!isObject(value))
    return refuse('invalid_callback', `the Sigfox callback body must be a JSON object, got ${kind(value)}`);
  return value;
}

/** Variables only DATA_ADVANCED has. */
const ADVANCED = ['computedLocation', 'duplicates', 'linkQuality', 'lqi', 'operatorName', 'countryCode'];

export type SigfoxKind = 'data' | 'advanced' | 'status' | 'error';

/** Which callback the variables are (see the module's comment). */
export function kindOf(value: Record<string, unknown>): SigfoxKind {
  const has = (key: string) => Object.hasOwn(value, key);
  if (!has('data') && (has('severity') || has('info'))) return 'error';
  if (ADVANCED.some(has)) return 'advanced';
  if (!has('data') && (has('temp') || has('batt'))) return 'status';
  return 'data';
}

/** The device and time every callback kind carries (`devices`: the key in Sigfox's own ERROR example). */
function deviceAndTime(
  value: Record<string, unknown>,
  time: 'required' | 'optional',
): { device: string; time?: number } | { error: string } {
  const device = value.device ?? value.devices;
  if (typeof device !== 'string' || !DEVICE_ID_PATTERN.test(device)) {
    return {
      error: `"device" must be the Sigfox device id (e.g. "1A2B3C"), got ${show(device)}; put {device} in the callback body`,
    };
  }
  const seconds = number(value.time);
  if (seconds === undefined && (time === 'required' || value.time !== undefined)) {
    return {
      error: `"time" must be epoch seconds, got ${show(value.time)}; put {time} in the callback body`,
    };
  }
  if (seconds !== undefined && seconds < 0)
    return { error: `"time" must be epoch seconds, got ${show(value.time)}` };
  return { device, ...(seconds === undefined ? {} : { time: seconds * 1000 }) };
}

/** Duplicates reported per base station at most: more is not a Sigfox callback. */
const MAX_DUPLICATES = 100;

/** A DATA_ADVANCED callback: the location and radio metrics of the DATA message at the same device and time. */
export function parseAdvanced(
  value: Record<string, unknown>,
): { device: string; time: number; data: Record<string, unknown> } | { error: string } {
  const who = deviceAndTime(value, 'required');
  if ('error' in who) return who;
  const location: Record<string, number> = {};
  const computed = value.computedLocation;
  if (computed !== undefined && computed !== null) {
    if (!isObject(computed))
      return { error: `"computedLocation" must be an object, got ${show(computed)}; put {computedLocation}` };
    for (const [key, low, high] of [
      ['lat', -90, 90],
      ['lng', -180, 180],
      ['radius', 0, 1e8],
      ['source', 0, 1000],
      ['status', 0, 1000],
    ] as const) {
      if (computed[key] === undefined) continue;
      const n = number(computed[key]);
      if (n === undefined || n < low || n > high)
        return {
          error: `"computedLocation.${key}" must be a number from ${low} to ${high}, got ${show(computed[key])}`,
        };
      location[key] = n;
    }
  }
  const radio: Record<string, number | string> = {};
  if (typeof value.lqi === 'string' && value.lqi !== '') radio.lqi = value.lqi.slice(0, 16);
  const quality = number(value.linkQuality);
  if (quality !== undefined) radio.linkQuality = quality;
  if (typeof value.operatorName === 'string' && value.operatorName !== '')
    radio.operator = value.operatorName.slice(0, 64);
  const country = number(value.countryCode);
  if (country !== undefined) radio.countryCode = country;
  if (value.duplicates !== undefined && value.duplicates !== null) {
    if (!Array.isArray(value.duplicates))
      return { error: `"duplicates" must be a list, got ${show(value.duplicates)}; put {duplicates}` };
    if (value.duplicates.length > MAX_DUPLICATES)
      return {
        error: `"duplicates" lists ${value.duplicates.length} base stations; at most ${MAX_DUPLICATES}`,
      };
    let best: number | undefined;
    let repetitions = 0;
    for (const [i, station] of value.duplicates.entries()) {
      if (!isObject(station) || typeof station.bsId !== 'string')
        return { error: `"duplicates[${i}]" must be {bsId, rssi, nbRep}, got ${show(station)}` };
      const rssi = number(station.rssi);
      if (rssi !== undefined) best = best === undefined ? rssi : Math.max(best, rssi);
      repetitions += number(station.nbRep) ?? 0;
    }
    radio.stations = value.duplicates.length;
    radio.repetitions = repetitions;
    if (best !== undefined) radio.bestRssi = best;
  }
  const data: Record<string, unknown> = {};
  if (Object.keys(location).length > 0) data.location = location;
  if (Object.keys(radio).length > 0) data.radio = radio;
  return { device: who.device, time: who.time as number, data };
}

/** A SERVICE STATUS callback: the device's temperature and battery, when it sends them. */
export function parseStatus(
  value: Record<string, unknown>,
):
  | { device: string; time: number; data: Record<string, unknown>; radio: Record<string, number | string> }
  | { error: string } {
  const who = deviceAndTime(value, 'required');
  if ('error' in who) return who;
  const status: Record<string, number> = {};
  const temperature = number(value.temp);
  const battery = number(value.batt);
  if (temperature !== undefined) status.temperature = temperature;
  if (battery !== undefined) status.battery = battery;
  return {
    device: who.device,
    time: who.time as number,
    data: Object.keys(status).length > 0 ? { status } : {},
    radio: radioOf(value),
  };
}

/** Sigfox's communication-loss error, in its `info`: "No message received since <date>". */
const COMMUNICATION_LOSS = /^no message received since\b/i;

/** An ERROR callback: what it says, and whether it says the device went silent. */
export function parseError(
  value: Record<string, unknown>,
  receivedAt: number,
): { device: string; kept: string; offline?: OfflineSignal } | { error: string } {
  const who = deviceAndTime(value, 'optional');
  if ('error' in who) return who;
  const info = typeof value.info === 'string' ? value.info.slice(0, 512) : '';
  const severity = typeof value.severity === 'string' ? value.severity.slice(0, 16) : '';
  const kept = `Sigfox ${severity || 'ERROR'} callback: ${info || 'no info'}`;
  const silent = severity.toUpperCase() !== 'WARN' && COMMUNICATION_LOSS.test(info);
  return {
    device: who.device,
    kept,
    ...(silent ? { offline: { at: who.time ?? receivedAt, reason: info } } : {}),
  };
}

function radioOf(value: Record<string, unknown>): Record<string, number | string> {
  const radio: Record<string, number | string> = {};
  for (const key of ['rssi', 'snr', 'avgSnr'] as const) {
    const n = number(value[key]);
    if (n !== undefined) radio[`radio.${key}`] = n;
  }
  if (typeof value.station === 'string' && value.station !== '') radio['radio.station'] = value.station;
  return radio;
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

const invalid = (parsed: { error: string }) => refuse('invalid_callback', parsed.error);

export const sigfox: Format<SigfoxUplink, 'sigfox'> = {
  source: 'sigfox',
  title: 'Sigfox',
  route: {
    path: '/v1/sigfox',
    refusal: 'invalid_callback',
    // Sigfox's callback medium: GET, or POST with one of its three content types.
    methods: ['POST', 'GET'],
    contentTypes: [JSON_TYPE, FORM_TYPE, TEXT_TYPE],
  },
  // Sigfox retries a callback after 1, 2 and 4 minutes and reports one frame per base station.
  resends: true,
  // seqNumber is 12 bits.
  sequenceWrapsAt: 4096,
  split(message) {
    // A JSON body that parses whole is one callback, however it is laid out.
    if (message.contentType === JSON_TYPE && !('error' in message.json())) return undefined;
    const lines = splitBatch(message.bytes);
    return lines !== undefined && 'error' in lines
      ? refuse('invalid_callback', lines.error, 'batch_too_large')
      : lines;
  },
  read(message, { decoders }) {
    const variables = readVariables(message);
    if (isRefusal(variables)) return variables;
    const deviceType = message.params.type ?? 'sigfox';
    const kind = kindOf(variables);
    if (kind === 'advanced') {
      const advanced = parseAdvanced(variables);
      if ('error' in advanced) return invalid(advanced);
      // No `seq`: it completes the DATA message at this device and time, and is not one.
      return {
        deviceId: advanced.device,
        deviceType,
        payload:
          Object.keys(advanced.data).length > 0
            ? { data: advanced.data }
            : { kept: 'Sigfox DATA_ADVANCED callback with no location or link quality' },
        time: advanced.time,
        ack: false,
      };
    }
    if (kind === 'status') {
      const status = parseStatus(variables);
      if ('error' in status) return invalid(status);
      return {
        deviceId: status.device,
        deviceType,
        payload:
          Object.keys(status.data).length > 0
            ? { data: status.data }
            : { kept: 'Sigfox STATUS callback with no temperature or battery' },
        time: status.time,
        metrics: status.radio,
        ack: false,
      };
    }
    if (kind === 'error') {
      const error = parseError(variables, message.receivedAt);
      if ('error' in error) return invalid(error);
      return {
        deviceId: error.device,
        deviceType,
        payload: { kept: error.kept },
        ...(error.offline ? { offline: error.offline } : {}),
        ack: false,
      };
    }
    const callback = parseSigfoxCallback(variables);
    if ('error' in callback) return invalid(callback);
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
