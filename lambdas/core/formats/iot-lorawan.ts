/**
 * AWS IoT Core for LoRaWAN uplinks, as a destination delivers them to its IoT rule
 * (`iot_pipeline_<stage>_lorawan`): `WirelessDeviceId`, `PayloadData` (the FRMPayload,
 * decrypted, base64) and `WirelessMetadata.LoRaWAN` (`DevEui`, `FPort`, `FCnt`,
 * `Timestamp`, `Gateways[]` with `GatewayEui`, `Rssi`, `Snr`, and the radio settings).
 *
 * The message names neither its destination nor the device's profile, so the config
 * (`iotLorawan`) says, per device (by `WirelessDeviceId` or `DevEui`), its type and
 * name, with a type for every other device; the payload goes to that type's codec with
 * `FPort`. The rule, defined here once, is rendered into IoT SQL by the CDK construct
 * and applied by the local broker to what is published on `$aws/rules/<rule>`.
 */
import { ConfigError } from '../config-error.ts';
import { DEVICE_ID_PATTERN, DEVICE_TYPE_PATTERN, isObject, kind, own, setOwn, truncate } from '../ids.ts';
import { RejectError } from '../readings/rejection.ts';
import { readIsoTime } from '../readings/timestamp.ts';
import {
  type Envelope,
  type Format,
  isRefusal,
  type Payload,
  readBody,
  refuse,
  type Uplink,
} from './format.ts';
import type { Publish } from './mqtt-topic.ts';
import { number, show } from './values.ts';

export const IOT_LORAWAN_SOURCE = 'iot-lorawan';

/** Device type of uplinks from a device the config does not type (`iotLorawan.deviceType` unset). */
export const DEFAULT_IOT_LORAWAN_DEVICE_TYPE = 'iot-lorawan';

/** IoT Core for LoRaWAN names each wireless device with a UUID. */
const WIRELESS_DEVICE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A DevEUI: 8 bytes, 16 hex digits. */
const DEV_EUI = /^[0-9a-f]{16}$/i;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * More gateways than one uplink is ever heard by: past it the body is not one IoT Core
 * for LoRaWAN sent. (A 128 KB body holds about 3,000 gateway entries at most.)
 */
export const MAX_GATEWAYS = 256;

// ---------------------------------------------------------------------------------------
// Config

/** `iotLorawan` of the config: who each wireless device is, and how its payload is decoded. */
export interface IotLorawanConfig {
  /**
   * What names a device not given a `name`: its `WirelessDeviceId` (IoT Core's UUID) or
   * its `DevEui` (16 lowercase hex digits, what the label on the device says).
   *
   * @default 'wirelessDeviceId'
   */
  readonly deviceId: 'wirelessDeviceId' | 'devEui';
  /**
   * The device type (its codec) of uplinks from devices not in {@link devices}.
   *
   * @default 'iot-lorawan' (no codec: such uplinks are quarantined with the reason)
   */
  readonly deviceType?: string;
  /**
   * Devices by `WirelessDeviceId` or `DevEui` (either case): their type and/or the
   * device id to store them under.
   */
  readonly devices: Readonly<Record<string, IotLorawanDevice>>;
}

export interface IotLorawanDevice {
  readonly type?: string;
  readonly name?: string;
}

export const DEFAULT_IOT_LORAWAN: IotLorawanConfig = { deviceId: 'wirelessDeviceId', devices: {} };

/** Validates `iotLorawan`, keying `devices` in lowercase (ids and EUIs are looked up so). */
export function validateIotLorawanConfig(value: unknown): IotLorawanConfig {
  if (!isObject(value)) throw new ConfigError('iotLorawan', value, '{ "deviceId", "deviceType", "devices" }');
  for (const key of Object.keys(value)) {
    if (!['deviceId', 'deviceType', 'devices'].includes(key))
      throw new ConfigError(`iotLorawan.${key}`, value[key], 'one of deviceId, deviceType, devices');
  }
  const deviceId = value.deviceId ?? 'wirelessDeviceId';
  if (deviceId !== 'wirelessDeviceId' && deviceId !== 'devEui')
    throw new ConfigError('iotLorawan.deviceId', deviceId, '"wirelessDeviceId" or "devEui"');
  const deviceType = value.deviceType;
  if (deviceType !== undefined && (typeof deviceType !== 'string' || !DEVICE_TYPE_PATTERN.test(deviceType)))
    throw new ConfigError(
      'iotLorawan.deviceType',
      deviceType,
      `a device type matching ${DEVICE_TYPE_PATTERN}`,
    );
  const listed = value.devices ?? {};
  if (!isObject(listed))
    throw new ConfigError('iotLorawan.devices', listed, 'an object of devices by WirelessDeviceId or DevEui');
  const devices: Record<string, IotLorawanDevice> = {};
  const names = new Map<string, string>();
  for (const [id, device] of Object.entries(listed)) {
    const key = `iotLorawan.devices.${id}`;
    if (!WIRELESS_DEVICE_ID.test(id) && !DEV_EUI.test(id))
      throw new ConfigError(key, id, 'a WirelessDeviceId (a UUID) or a DevEui (16 hex digits)');
    if (!isObject(device))
      throw new ConfigError(key, device, '{ "type": "<deviceType>", "name": "<deviceId>" }');
    for (const field of Object.keys(device)) {
      if (field !== 'type' && field !== 'name')
        throw new ConfigError(`${key}.${field}`, device[field], 'one of type, name');
    }
    const { type, name } = device;
    if (type !== undefined && (typeof type !== 'string' || !DEVICE_TYPE_PATTERN.test(type)))
      throw new ConfigError(`${key}.type`, type, `a device type matching ${DEVICE_TYPE_PATTERN}`);
    if (name !== undefined && (typeof name !== 'string' || !DEVICE_ID_PATTERN.test(name)))
      throw new ConfigError(`${key}.name`, name, `a device id matching ${DEVICE_ID_PATTERN}`);
    const lower = id.toLowerCase();
    if (Object.hasOwn(devices, lower))
      throw new ConfigError(key, id, 'each device listed once (ids ignore case)');
    // Two devices stored under one id would mix their readings.
    if (name !== undefined) {
      const other = names.get(name);
      if (other !== undefined)
        throw new ConfigError(`${key}.name`, name, `a name no other device has (${other} has it)`);
      names.set(name, id);
    }
    setOwn(devices, lower, {
      ...(type === undefined ? {} : { type }),
      ...(name === undefined ? {} : { name }),
    });
  }
  return { deviceId, ...(deviceType === undefined ? {} : { deviceType }), devices };
}

// ---------------------------------------------------------------------------------------
// The message

export interface IotLorawanUplink {
  readonly wirelessDeviceId: string;
  /** Lowercase, when the message has one. */
  readonly devEui?: string;
  /** Absent in a frame that carries no application payload. */
  readonly fPort?: number;
  readonly fCnt?: number;
  readonly payload: Buffer;
  /** ISO-8601, as IoT Core for LoRaWAN wrote it. */
  readonly timestamp?: string;
  readonly radio: Readonly<Record<string, number>>;
  /** What the message gave that could not be used (a malformed `DevEui`). */
  readonly warnings: readonly string[];
}

/** Reads an uplink message, or says why it is not one; never throws. */
export function parseIotLorawanUplink(value: unknown): IotLorawanUplink | { error: string } {
  if (!isObject(value)) return { error: `the uplink must be a JSON object, got ${kind(value)}` };
  const id = value.WirelessDeviceId;
  if (typeof id !== 'string')
    return {
      error: `no "WirelessDeviceId" string (got ${kind(id)}): the rule takes AWS IoT Core for LoRaWAN uplinks`,
    };
  if (!WIRELESS_DEVICE_ID.test(id))
    return { error: `"WirelessDeviceId" ${show(id)} is not an IoT Core for LoRaWAN id (a UUID)` };
  const data = value.PayloadData ?? '';
  if (typeof data !== 'string' || !BASE64.test(data) || data.length % 4 !== 0)
    return { error: `"PayloadData" must be base64, got ${show(value.PayloadData)}` };
  const metadata = value.WirelessMetadata;
  if (!isObject(metadata)) return { error: `"WirelessMetadata" must be an object, got ${kind(metadata)}` };
  const lorawan = metadata.LoRaWAN;
  if (!isObject(lorawan))
    return {
      error: `"WirelessMetadata.LoRaWAN" must be an object, got ${kind(lorawan)}: a Sidewalk uplink?`,
    };
  // Metadata beside the payload: a malformed EUI (AWS's own example has 15 digits) loses
  // the EUI, not the reading.
  const warnings: string[] = [];
  let devEui = lorawan.DevEui;
  if (devEui !== undefined && (typeof devEui !== 'string' || !DEV_EUI.test(devEui))) {
    warnings.push(`"WirelessMetadata.LoRaWAN.DevEui" ${show(devEui)} is not 16 hex digits: not used`);
    devEui = undefined;
  }
  // AWS's own format page spells it "Fport" once; the service and every recorded message, "FPort".
  const port = lorawan.FPort ?? lorawan.Fport;
  if (port !== undefined && (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 255))
    return { error: `"WirelessMetadata.LoRaWAN.FPort" must be 0 to 255, got ${show(port)}` };
  const fCnt = lorawan.FCnt;
  if (fCnt !== undefined && (typeof fCnt !== 'number' || !Number.isSafeInteger(fCnt) || fCnt < 0))
    return { error: `"WirelessMetadata.LoRaWAN.FCnt" must be a non-negative integer, got ${show(fCnt)}` };
  const timestamp = lorawan.Timestamp;
  if (timestamp !== undefined && typeof timestamp !== 'string')
    return { error: `"WirelessMetadata.LoRaWAN.Timestamp" must be ISO-8601 text, got ${kind(timestamp)}` };
  const radio = radioOf(lorawan.Gateways);
  if ('error' in radio) return radio;
  return {
    wirelessDeviceId: id.toLowerCase(),
    ...(typeof devEui === 'string' ? { devEui: devEui.toLowerCase() } : {}),
    ...(port === undefined ? {} : { fPort: port }),
    ...(fCnt === undefined ? {} : { fCnt }),
    payload: Buffer.from(data, 'base64'),
    ...(timestamp === undefined ? {} : { timestamp }),
    radio: radio.metrics,
    warnings,
  };
}

/** The gateways as TTN's are stored: the strongest one's `Rssi` and `Snr`, and how many heard the frame. */
function radioOf(gateways: unknown): { metrics: Record<string, number> } | { error: string } {
  if (gateways === undefined) return { metrics: {} };
  if (!Array.isArray(gateways))
    return { error: `"WirelessMetadata.LoRaWAN.Gateways" must be an array, got ${kind(gateways)}` };
  if (gateways.length > MAX_GATEWAYS)
    return {
      error: `"WirelessMetadata.LoRaWAN.Gateways" lists ${gateways.length} gateways, more than the ${MAX_GATEWAYS} an uplink is heard by`,
    };
  let best: { rssi: number; snr?: number } | undefined;
  let heard = 0;
  for (const gateway of gateways) {
    if (!isObject(gateway)) continue;
    heard++;
    const rssi = number(gateway.Rssi);
    if (rssi === undefined || (best && rssi <= best.rssi)) continue;
    const snr = number(gateway.Snr);
    best = snr === undefined ? { rssi } : { rssi, snr };
  }
  const metrics: Record<string, number> = {};
  if (best) metrics['radio.rssi'] = best.rssi;
  if (best?.snr !== undefined) metrics['radio.snr'] = best.snr;
  if (heard > 0) metrics['radio.gateways'] = heard;
  return { metrics };
}

export const iotLorawan: Format<Uplink, typeof IOT_LORAWAN_SOURCE> = {
  source: IOT_LORAWAN_SOURCE,
  title: 'AWS IoT Core for LoRaWAN',
  // The IoT rule may run its SQS action again for one message, and a device that got no
  // ACK repeats a confirmed uplink; the same device + FCnt + Timestamp is stored once.
  resends: true,
  read(message, { config, decoders }) {
    const uplink = readBody<IotLorawanUplink>(message, 'IoT Core for LoRaWAN', parseIotLorawanUplink);
    if (isRefusal(uplink)) return uplink;
    const settings = config.iotLorawan ?? DEFAULT_IOT_LORAWAN;
    const listed =
      own(settings.devices, uplink.wirelessDeviceId) ??
      (uplink.devEui === undefined ? undefined : own(settings.devices, uplink.devEui));
    const deviceType = listed?.type ?? settings.deviceType ?? DEFAULT_IOT_LORAWAN_DEVICE_TYPE;
    const deviceId =
      listed?.name ?? (settings.deviceId === 'devEui' ? uplink.devEui : uplink.wirelessDeviceId);
    if (deviceId === undefined) {
      return refuse(
        'invalid_callback',
        `no "WirelessMetadata.LoRaWAN.DevEui" to name device ${uplink.wirelessDeviceId} by (iotLorawan.deviceId is "devEui"): give it a name in iotLorawan.devices`,
      );
    }
    let payload: Payload;
    const decoder = decoders.of(deviceType);
    if (uplink.fPort === undefined && uplink.payload.length === 0)
      payload = { kept: 'no application payload' };
    // Port 0 carries MAC commands, the network server's business, never a reading.
    else if (uplink.fPort === 0) payload = { kept: 'MAC commands (FPort 0)' };
    else if (decoder) {
      payload =
        uplink.fPort === undefined
          ? { decoder, bytes: uplink.payload }
          : { decoder, bytes: uplink.payload, fPort: uplink.fPort };
    } else {
      payload = {
        refused: {
          code: 'decode_failed',
          reason: `device type "${truncate(deviceType)}" has no codec: set deviceTypes.${truncate(deviceType)}.decoder.codec, and the device's type in iotLorawan.devices (or iotLorawan.deviceType)`,
        },
      };
    }
    let time: number | undefined;
    if (uplink.timestamp !== undefined && !('refused' in payload)) {
      try {
        time = readIsoTime(uplink.timestamp, '"WirelessMetadata.LoRaWAN.Timestamp"');
      } catch (error) {
        if (!(error instanceof RejectError)) throw error;
        payload = { refused: { code: error.code, reason: error.message } };
      }
    }
    const metrics: Record<string, number | string> = { ...uplink.radio };
    if (uplink.devEui !== undefined) metrics['lorawan.devEui'] = uplink.devEui;
    return {
      deviceId,
      deviceType,
      payload,
      ...(time === undefined ? {} : { time }),
      ...(uplink.fCnt === undefined ? {} : { seq: uplink.fCnt }),
      metrics,
      ...(uplink.warnings.length > 0 ? { warnings: uplink.warnings } : {}),
    };
  },
};

// ---------------------------------------------------------------------------------------
// The rule

/**
 * The LoRaWAN rule, defined once, as `TELEMETRY_RULE_FIELDS` is for devices: each
 * envelope field with its IoT SQL and the same derivation for the local broker. The
 * whole message is base64-encoded, as the telemetry rule does, so the raw archive keeps
 * it byte for byte; `source` and `topic` are literals, since a destination invokes the
 * rule with no topic of its own.
 */
export function lorawanRuleFields(ruleName: string): readonly {
  readonly field: keyof Envelope;
  readonly sql: string;
  readonly local: (publish: Publish) => string | number;
}[] {
  const topic = `$aws/rules/${ruleName}`;
  return [
    { field: 'payload', sql: "encode(*, 'base64')", local: (p) => p.payload.toString('base64') },
    { field: 'source', sql: `'${IOT_LORAWAN_SOURCE}'`, local: () => IOT_LORAWAN_SOURCE },
    { field: 'topic', sql: `'${topic}'`, local: () => topic },
    { field: 'receivedAt', sql: 'timestamp()', local: (p) => p.timestamp },
  ];
}

/**
 * The rule's SQL: no FROM clause, so only Basic Ingest reaches it, that is the
 * destination (whose role may publish to `$aws/rules/<rule>`), never the message broker.
 */
export function lorawanRuleSql(ruleName: string): string {
  checkRuleName(ruleName);
  return `SELECT ${lorawanRuleFields(ruleName)
    .map((f) => `${f.sql} AS ${f.field}`)
    .join(', ')}`;
}

/** True when `topic` reaches the LoRaWAN rule: `$aws/rules/<rule>`, or under it (Basic Ingest with no FROM takes any). */
export function reachesLorawanRule(ruleName: string, topic: string): boolean {
  const prefix = `$aws/rules/${ruleName}`;
  return topic === prefix || topic.startsWith(`${prefix}/`);
}

/** The local broker's LoRaWAN rule: the envelope IoT Core's would enqueue, or undefined for another topic. */
export function applyLorawanRule(ruleName: string, publish: Publish): Envelope | undefined {
  if (!reachesLorawanRule(ruleName, publish.topic)) return undefined;
  const envelope: Record<string, string | number> = {};
  for (const { field, local } of lorawanRuleFields(ruleName)) envelope[field] = local(publish);
  return envelope as unknown as Envelope;
}

function checkRuleName(ruleName: string): void {
  // It is quoted into the SQL: only a rule name's own characters.
  if (!/^[A-Za-z0-9_]{1,128}$/.test(ruleName))
    throw new RangeError(`rule name "${truncate(ruleName)}" is not one`);
}
