/**
 * The part of the configuration the Lambdas and the local runtime need at run time,
 * combined from the rooms that own each part: the decoders (`deviceTypes.<type>.decoder`),
 * the formats (`httpMappings`, Sigfox downlinks), the estate (`alertRules`, `offline`)
 * and the readings' limits (`validation`). The Lambdas read it from an environment
 * variable, the local runtime from the config file. Pure data: decoders are built from
 * it by `buildDecoders`, where they are used.
 */
import { ConfigError } from './config-error.ts';
import { type DecoderConfig, validateDecoderConfig } from './decoders/registry.ts';
import type { AlertRule } from './estate/alerts.ts';
import { durationOf, type OfflineConfig, validateOffline, validateRules } from './estate/rules-config.ts';
import { type HttpMapping, validateHttpMappings } from './formats/http-json.ts';
import { type IotLorawanConfig, validateIotLorawanConfig } from './formats/iot-lorawan.ts';
import { validateSigfoxDownlink, validateSigfoxDownlinks } from './formats/sigfox.ts';
import { DEVICE_TYPE_PATTERN, isObject, setOwn } from './ids.ts';
import { type ValidationLimits, validateLimits } from './readings/limits.ts';

export interface RuntimeConfig {
  /** Device types by name (the `<deviceType>` topic segment). A type not listed is decoded as JSON. */
  readonly deviceTypes: Readonly<Record<string, DeviceTypeConfig>>;
  readonly validation: ValidationLimits;
  /**
   * Field mappings for `POST /v1/telemetry?mapping=<name>`, for devices that cannot
   * change what they send: which field is the device id, which the time, and the type.
   */
  readonly httpMappings: Readonly<Record<string, HttpMapping>>;
  /** Sigfox downlinks by device id (8 bytes, 16 hex digits), before the device type's. */
  readonly sigfoxDownlinks: Readonly<Record<string, string>>;
  /** Threshold rules, evaluated on every reading in the ingest path. */
  readonly alertRules: readonly AlertRule[];
  /** Offline detection: silent longer than this (per type, else the default) raises an alert. */
  readonly offline: OfflineConfig;
  /** AWS IoT Core for LoRaWAN: each wireless device's type and name. */
  readonly iotLorawan: IotLorawanConfig;
}

export interface DeviceTypeConfig {
  /** Free text shown in `devices` listings. */
  readonly description?: string;
  /** How the type's payload bytes become readings; JSON when absent. */
  readonly decoder?: DecoderConfig;
  /** Thing attributes IoT Core indexes for search on this type's thing type (at most 3). */
  readonly searchableAttributes?: readonly string[];
  /** Silence after which a device of this type is offline, in ms (from `"offlineAfter": "30m"`). */
  readonly offlineAfterMs?: number;
  /** Answer to a Sigfox BIDIR callback (`ack: true`) of this type: 8 bytes as 16 hex digits. */
  readonly sigfoxDownlink?: string;
  /**
   * The LoRaWAN port this type's codec gets over MQTT when the topic names none
   * (`dt/<type>/<id>/<fPort>` does); 0 to 255.
   */
  readonly fPort?: number;
}

/**
 * Validates the run-time part of the config (filling defaults), so the synth, the
 * local runtime and a Lambda cold start reject the same mistakes with the same words.
 * Codecs are loaded, and so proven, by `buildDecoders`.
 */
export function validateRuntimeConfig(input: {
  deviceTypes?: unknown;
  validation?: unknown;
  httpMappings?: unknown;
  sigfoxDownlinks?: unknown;
  alertRules?: unknown;
  offline?: unknown;
  iotLorawan?: unknown;
}): RuntimeConfig {
  const deviceTypes = validateDeviceTypes(input.deviceTypes ?? {});
  const iotLorawan = validateIotLorawanConfig(input.iotLorawan ?? {});
  // A LoRaWAN payload is bytes: a type named for it must be one the config decodes.
  const named: [string, string | undefined][] = [
    ['iotLorawan.deviceType', iotLorawan.deviceType],
    ...Object.entries(iotLorawan.devices).map(([id, d]): [string, string | undefined] => [
      `iotLorawan.devices.${id}.type`,
      d.type,
    ]),
  ];
  for (const [key, type] of named) {
    if (type !== undefined && !Object.hasOwn(deviceTypes, type))
      throw new ConfigError(
        key,
        type,
        `a device type of deviceTypes (${Object.keys(deviceTypes).join(', ') || 'none'})`,
      );
  }
  return {
    deviceTypes,
    validation: validateLimits(input.validation ?? {}),
    httpMappings: validateHttpMappings(input.httpMappings ?? {}),
    sigfoxDownlinks: validateSigfoxDownlinks(input.sigfoxDownlinks ?? {}),
    alertRules: validateRules(input.alertRules ?? []),
    offline: validateOffline(input.offline ?? {}),
    iotLorawan,
  };
}

function validateDeviceTypes(types: unknown): Record<string, DeviceTypeConfig> {
  if (!isObject(types)) throw new ConfigError('deviceTypes', types, 'an object of device types');
  const deviceTypes: Record<string, DeviceTypeConfig> = {};
  for (const [name, value] of Object.entries(types)) {
    const key = `deviceTypes.${name}`;
    if (!DEVICE_TYPE_PATTERN.test(name)) {
      throw new ConfigError(key, name, `a name matching ${DEVICE_TYPE_PATTERN}`);
    }
    if (!isObject(value)) throw new ConfigError(key, value, 'an object');
    const description = value.description;
    if (description !== undefined && typeof description !== 'string') {
      throw new ConfigError(`${key}.description`, description, 'a string');
    }
    const decoder =
      value.decoder === undefined ? undefined : validateDecoderConfig(`${key}.decoder`, value.decoder);
    const downlink = validateSigfoxDownlink(`${key}.sigfoxDownlink`, value.sigfoxDownlink);
    const fPort = value.fPort;
    if (
      fPort !== undefined &&
      (typeof fPort !== 'number' || !Number.isInteger(fPort) || fPort < 0 || fPort > 255)
    ) {
      throw new ConfigError(`${key}.fPort`, fPort, 'a LoRaWAN port, an integer from 0 to 255');
    }
    const offlineAfterMs =
      value.offlineAfter === undefined
        ? value.offlineAfterMs === undefined
          ? undefined
          : durationOf(`${key}.offlineAfterMs`, `${value.offlineAfterMs}ms`)
        : durationOf(`${key}.offlineAfter`, value.offlineAfter);
    const searchable = value.searchableAttributes;
    if (
      searchable !== undefined &&
      (!Array.isArray(searchable) ||
        searchable.length > 3 ||
        !searchable.every((a) => typeof a === 'string' && /^[a-zA-Z0-9_.,@/:#-]{1,128}$/.test(a)))
    ) {
      throw new ConfigError(`${key}.searchableAttributes`, searchable, 'at most 3 attribute names');
    }
    setOwn(deviceTypes, name, {
      ...(description === undefined ? {} : { description }),
      ...(searchable === undefined ? {} : { searchableAttributes: searchable as string[] }),
      ...(offlineAfterMs === undefined ? {} : { offlineAfterMs }),
      ...(decoder === undefined ? {} : { decoder }),
      ...(downlink === undefined ? {} : { sigfoxDownlink: downlink }),
      ...(fPort === undefined ? {} : { fPort }),
    });
  }
  return deviceTypes;
}
