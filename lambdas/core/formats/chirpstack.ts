/**
 * ChirpStack v4 HTTP integration (`POST /v1/chirpstack?event=<kind>`), JSON marshaler.
 * ChirpStack posts every event of an application to one URL and names its kind in
 * `?event=`: `up` (an uplink), `status` (the device's battery and link margin),
 * `location` (a geolocation result), and `join`, `ack`, `txack`, `log`, `integration`,
 * which carry no reading and are kept in the raw archive only.
 *
 * The bodies are the Protocol Buffers JSON mapping of `integration.proto` (pbjson):
 * camelCase names; 64-bit integers may be written as strings (so any integer is read
 * as a number or its decimal text); and depending on the ChirpStack version, fields
 * with their default value (`fCnt: 0`, `fPort: 0`, an empty `data`, `margin: 0`) are
 * left out or written, and unset messages (`object`) are left out or `null`: absent
 * and `null` read as the default.
 *
 * The device is `deviceInfo.devEui` (16 hex digits, lower case). Its type is `?type=`
 * when the URL names one, else {@link deviceTypeOfProfile} of `deviceInfo.deviceProfileName`,
 * else `chirpstack`. An `object` (ChirpStack's codec ran) is stored as it is; without one,
 * `data` goes to the device type's codec with `fPort`. `deviceInfo.tags` become the
 * device's attributes in the registry.
 */
import { readAttributes } from '../estate/attributes.ts';
import { isObject, kind } from '../ids.ts';
import { RejectError } from '../readings/rejection.ts';
import { readIsoTime } from '../readings/timestamp.ts';
import { type Format, isRefusal, type Payload, readBody, refuse, type Uplink } from './format.ts';
import { number, show } from './values.ts';

/** The `?event=` kinds ChirpStack's HTTP integration posts (`chirpstack/src/integration/http.rs`). */
export const CHIRPSTACK_EVENTS = [
  'up',
  'status',
  'location',
  'join',
  'ack',
  'txack',
  'log',
  'integration',
] as const;
export type ChirpstackEventKind = (typeof CHIRPSTACK_EVENTS)[number];

/** Events that carry no reading: what each is, for the raw archive's `kept`. */
const KEPT: Readonly<Record<string, string>> = {
  join: 'ChirpStack join event (the device activated)',
  ack: 'ChirpStack ack event (a confirmed downlink acknowledged, or not)',
  txack: 'ChirpStack txack event (a gateway took a downlink for transmission)',
  log: 'ChirpStack log event',
  integration: 'ChirpStack integration event',
};

/** Gateways of one uplink: ChirpStack deduplicates an uplink into one event, with every gateway that heard it. */
export const MAX_GATEWAYS = 1000;

const DEV_EUI = /^[0-9A-Fa-f]{16}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** One ChirpStack event, read. */
export interface ChirpstackEvent {
  readonly event: ChirpstackEventKind;
  /** `deviceInfo.devEui`, lower case. */
  readonly devEui: string;
  readonly deviceProfileName?: string;
  /** `deviceInfo.tags` that may be kept; absent when there are none. */
  readonly tags?: Readonly<Record<string, string>>;
  /** The tags left out, and why. */
  readonly warnings?: readonly string[];
  /** RFC 3339 as ChirpStack wrote it (nanoseconds, `+00:00`). */
  readonly time?: string;
  /** `up`: the frame counter, port, payload bytes, ChirpStack's decoded object, and radio metrics. */
  readonly fCnt?: number;
  readonly fPort?: number;
  readonly data?: Buffer;
  readonly object?: Record<string, unknown>;
  readonly radio?: Readonly<Record<string, number>>;
  /** `status`, `location`: the values they report, as a reading's data. */
  readonly values?: Readonly<Record<string, unknown>>;
  /** Events with no reading: what they are. */
  readonly kept?: string;
}

/**
 * The device type a ChirpStack device-profile name stands for. Profile names are free
 * text (`Dragino LHT65N`, `Milesight EM300-SLD waterleakage sensor`); a device type is
 * `^[A-Za-z0-9_-]{1,64}$`. The name is lower-cased, accents dropped (`é` is `e`), every
 * run of other characters made one `-`, leading and trailing `-` removed, cut to 64:
 * `Dragino LHT65N` is `dragino-lht65n`. A name with nothing left (only symbols or a
 * script without Latin letters) gives undefined: the type is then `chirpstack`, unless
 * the URL names one with `?type=`.
 */
export function deviceTypeOfProfile(name: string): string | undefined {
  const type = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+/, '')
    .slice(0, 64)
    .replace(/-+$/, '');
  return type.length > 0 ? type : undefined;
}

/** An integer as protobuf JSON writes it: a number or its decimal text; absent or null is 0. */
function integer(value: unknown): number | undefined {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value === 'string' && /^-?\d{1,16}$/.test(value)) {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

/** A boolean as protobuf JSON writes it; absent or null is false. */
function boolean(value: unknown): boolean | undefined {
  if (value === undefined || value === null) return false;
  return typeof value === 'boolean' ? value : undefined;
}

/** The strongest gateway's rssi and snr, and how many gateways heard the uplink. */
function radioOf(rxInfo: unknown): { readonly radio: Record<string, number> } | { readonly error: string } {
  if (rxInfo === undefined || rxInfo === null) return { radio: {} };
  if (!Array.isArray(rxInfo)) return { error: `"rxInfo" must be an array, got ${kind(rxInfo)}` };
  if (rxInfo.length > MAX_GATEWAYS) {
    return { error: `"rxInfo" has ${rxInfo.length} gateways; at most ${MAX_GATEWAYS} are read` };
  }
  const gateways = rxInfo.filter(isObject);
  if (gateways.length === 0) return { radio: {} };
  const rssiOf = (g: Record<string, unknown>) => number(g.rssi) ?? Number.NEGATIVE_INFINITY;
  const best = gateways.reduce((a, b) => (rssiOf(b) > rssiOf(a) ? b : a));
  const radio: Record<string, number> = {};
  const rssi = rssiOf(best);
  if (Number.isFinite(rssi)) radio['radio.rssi'] = rssi;
  const snr = number(best.snr);
  if (snr !== undefined) radio['radio.snr'] = snr;
  radio['radio.gateways'] = gateways.length;
  return { radio };
}

/** A `status` event's values: link margin (dB), battery level (%) unless unknown or on external power. */
function statusOf(value: Record<string, unknown>): Values | { readonly error: string } {
  const margin = integer(value.margin);
  if (margin === undefined) return { error: `"margin" must be an integer, got ${show(value.margin)}` };
  const external = boolean(value.externalPowerSource);
  if (external === undefined)
    return { error: `"externalPowerSource" must be true or false, got ${show(value.externalPowerSource)}` };
  const unavailable = boolean(value.batteryLevelUnavailable);
  if (unavailable === undefined) {
    return {
      error: `"batteryLevelUnavailable" must be true or false, got ${show(value.batteryLevelUnavailable)}`,
    };
  }
  const battery =
    value.batteryLevel === undefined || value.batteryLevel === null ? 0 : number(value.batteryLevel);
  if (battery === undefined)
    return { error: `"batteryLevel" must be a number, got ${show(value.batteryLevel)}` };
  const status: Record<string, unknown> = { margin, external_power: external };
  if (!external && !unavailable) status.battery_level = battery;
  return { values: { status } };
}

/** A `location` event's location, or undefined when it has none. */
function locationOf(value: unknown): Values | undefined | { readonly error: string } {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) return { error: `"location" must be an object, got ${kind(value)}` };
  const location: Record<string, unknown> = {};
  for (const name of ['latitude', 'longitude', 'altitude', 'accuracy'] as const) {
    const field = value[name];
    // Latitude, longitude and altitude default to 0 when left out; accuracy is only written when known.
    if (field === undefined || field === null) {
      if (name !== 'accuracy') location[name] = 0;
      continue;
    }
    const n = number(field);
    if (n === undefined) return { error: `"location.${name}" must be a number, got ${show(field)}` };
    location[name] = n;
  }
  if (typeof value.source === 'string' && value.source !== 'UNKNOWN')
    location.source = value.source.slice(0, 64);
  return { values: { location } };
}

/** What every event says: which one, the device, and when. */
type Head = Pick<ChirpstackEvent, 'event' | 'devEui' | 'deviceProfileName' | 'tags' | 'warnings' | 'time'>;

/** A `status` or `location` event's data, for the normalizer. */
interface Values {
  readonly values: Record<string, unknown>;
}

/** Reads a ChirpStack event body of the given kind; the error says what is wrong with it. */
export function parseChirpstackEvent(event: string, value: unknown): ChirpstackEvent | { error: string } {
  if (!(CHIRPSTACK_EVENTS as readonly string[]).includes(event)) {
    return { error: `unknown ChirpStack event ${show(event)}: expected ${CHIRPSTACK_EVENTS.join(', ')}` };
  }
  const kindOf = event as ChirpstackEventKind;
  if (!isObject(value)) return { error: `the ${event} event must be a JSON object, got ${kind(value)}` };
  const info = value.deviceInfo;
  if (!isObject(info) || info.devEui === undefined) {
    return {
      error: `no "deviceInfo.devEui": this route takes ChirpStack v4 events (HTTP integration, JSON marshaler)`,
    };
  }
  if (typeof info.devEui !== 'string' || !DEV_EUI.test(info.devEui)) {
    return { error: `"deviceInfo.devEui" must be 16 hex digits, got ${show(info.devEui)}` };
  }
  const profile = info.deviceProfileName;
  if (profile !== undefined && profile !== null && typeof profile !== 'string') {
    return { error: `"deviceInfo.deviceProfileName" must be a string, got ${kind(profile)}` };
  }
  let tags: Readonly<Record<string, string>> | undefined;
  let tagWarnings: readonly string[] = [];
  if (info.tags !== undefined && info.tags !== null) {
    const read = readAttributes(info.tags, 'deviceInfo.tags');
    if (Object.keys(read.attributes).length > 0) tags = read.attributes;
    tagWarnings = read.warnings;
  }
  if (value.time !== undefined && value.time !== null && typeof value.time !== 'string') {
    return { error: `"time" must be an RFC 3339 string, got ${kind(value.time)}` };
  }
  const head: Head = {
    event: kindOf,
    devEui: info.devEui.toLowerCase(),
    ...(typeof profile === 'string' ? { deviceProfileName: profile } : {}),
    ...(tags === undefined ? {} : { tags }),
    ...(tagWarnings.length === 0 ? {} : { warnings: tagWarnings }),
    ...(typeof value.time === 'string' ? { time: value.time } : {}),
  };
  switch (kindOf) {
    case 'up':
      return readUp(value, head);
    case 'status': {
      const status = statusOf(value);
      return 'error' in status ? status : { ...head, values: status.values };
    }
    case 'location': {
      const location = locationOf(value.location);
      if (location === undefined) return { ...head, kept: 'ChirpStack location event without a location' };
      return 'error' in location ? location : { ...head, values: location.values };
    }
    default:
      return { ...head, kept: logWords(kindOf, value) };
  }
}

function logWords(event: ChirpstackEventKind, value: Record<string, unknown>): string {
  const words = KEPT[event] ?? `ChirpStack ${event} event`;
  if (event !== 'log') return words;
  // `level` and `code` are enum names (`ERROR`, `UPLINK_MIC`); absent is the first of each.
  const level = typeof value.level === 'string' ? value.level : 'INFO';
  const code = typeof value.code === 'string' ? value.code : 'UNKNOWN';
  return `${words}: ${level.slice(0, 32)} ${code.slice(0, 64)}`;
}

function readUp(value: Record<string, unknown>, head: Head): ChirpstackEvent | { error: string } {
  const fCnt = integer(value.fCnt);
  if (fCnt === undefined || fCnt < 0 || fCnt > 0xffff_ffff) {
    return { error: `"fCnt" must be a 32-bit frame counter, got ${show(value.fCnt)}` };
  }
  const fPort = integer(value.fPort);
  if (fPort === undefined || fPort < 0 || fPort > 255) {
    return { error: `"fPort" must be 0 to 255, got ${show(value.fPort)}` };
  }
  const data = value.data === undefined || value.data === null ? '' : value.data;
  if (typeof data !== 'string' || !BASE64.test(data) || data.length % 4 !== 0) {
    return { error: `"data" must be base64, got ${show(value.data)}` };
  }
  const object = value.object === null ? undefined : value.object;
  if (object !== undefined && !isObject(object)) {
    return { error: `"object" must be an object, got ${kind(object)}` };
  }
  const gateways = radioOf(value.rxInfo);
  if ('error' in gateways) return gateways;
  return {
    ...head,
    fCnt,
    fPort,
    data: Buffer.from(data, 'base64'),
    ...(object === undefined ? {} : { object }),
    radio: gateways.radio,
  };
}

export const chirpstack: Format<Uplink, 'chirpstack'> = {
  source: 'chirpstack',
  title: 'ChirpStack',
  route: { path: '/v1/chirpstack', events: CHIRPSTACK_EVENTS, refusal: 'invalid_event' },
  // The same uplink can arrive twice: more than one integration URL, or an event posted again.
  resends: true,
  read(message, { decoders }) {
    const event = message.params.event;
    if (event === undefined) {
      return refuse(
        'invalid_topic',
        'no ?event=: ChirpStack names the event kind in the URL',
        'unknown_event',
      );
    }
    const read = readBody<ChirpstackEvent>(message, 'chirpstack', (value) =>
      parseChirpstackEvent(event, value),
    );
    if (isRefusal(read)) return read;
    const named =
      read.deviceProfileName === undefined ? undefined : deviceTypeOfProfile(read.deviceProfileName);
    const deviceType = message.params.type ?? named ?? 'chirpstack';
    let payload: Payload;
    if (read.kept !== undefined) payload = { kept: read.kept };
    else if (read.values !== undefined) payload = { data: read.values };
    else if (read.object !== undefined) payload = { data: read.object };
    else if (read.data !== undefined && read.data.length === 0) {
      // No application payload (a MAC-only frame on port 0): the device was heard, with its radio.
      payload =
        read.radio && Object.keys(read.radio).length > 0
          ? { data: {} }
          : { kept: 'ChirpStack uplink without a payload' };
    } else {
      const decoder = decoders.of(deviceType);
      payload = decoder
        ? { decoder, bytes: read.data ?? Buffer.alloc(0), fPort: read.fPort }
        : {
            refused: {
              code: 'decode_failed',
              reason: `no "object" and device type "${deviceType}" has no codec: set deviceTypes.${deviceType}.decoder.codec (or ?type= on the integration URL), or a codec in the ChirpStack device profile`,
            },
          };
    }
    let time: number | undefined;
    if (read.time !== undefined && !('refused' in payload)) {
      try {
        time = readIsoTime(read.time, '"time"');
      } catch (error) {
        if (!(error instanceof RejectError)) throw error;
        payload = { refused: { code: error.code, reason: error.message } };
      }
    }
    return {
      deviceId: read.devEui,
      deviceType,
      payload,
      ...(time === undefined ? {} : { time }),
      ...(read.event === 'up' ? { seq: read.fCnt } : {}),
      ...(read.radio === undefined ? {} : { metrics: read.radio }),
      ...(read.tags === undefined ? {} : { attributes: read.tags }),
      ...(read.warnings === undefined ? {} : { warnings: read.warnings }),
    };
  },
};
