/**
 * Readings posted as JSON (`POST /v1/telemetry`): the property-value format of MQTT,
 * each reading naming its device with `$id`. `?mapping=<name>` reads devices that
 * cannot change what they send: the mapping says which field is the device id, which
 * the time, and the type. This format owns that part of the config (`httpMappings`).
 */
import { ConfigError } from '../config-error.ts';
import { jsonDecoder } from '../decoders/json.ts';
import { DEVICE_TYPE_PATTERN, isObject, own, setOwn, truncate } from '../ids.ts';
import { type Format, refuse, type Uplink } from './format.ts';

export interface HttpMapping {
  /** Field holding the device id (instead of `$id`). */
  readonly id: string;
  /** Field holding the device time (instead of `$ts`). */
  readonly time?: string;
  /** Device type of these readings (else `http`). */
  readonly type?: string;
}

/** Device type of readings posted to `/v1/telemetry` with neither `?type=` nor a mapping's type. */
export const DEFAULT_HTTP_DEVICE_TYPE = 'http';

const FIELD_PATTERN = /^[^$\s][^\s]{0,127}$/;

/** `httpMappings` of the config. */
export function validateHttpMappings(value: unknown): Record<string, HttpMapping> {
  if (!isObject(value)) throw new ConfigError('httpMappings', value, 'an object of mappings by name');
  const mappings: Record<string, HttpMapping> = {};
  for (const [name, mapping] of Object.entries(value)) {
    const key = `httpMappings.${name}`;
    if (!DEVICE_TYPE_PATTERN.test(name))
      throw new ConfigError(key, name, `a name matching ${DEVICE_TYPE_PATTERN}`);
    if (!isObject(mapping))
      throw new ConfigError(key, mapping, '{ "id": "<field>", "time": "<field>", "type": "<deviceType>" }');
    const { id, time, type } = mapping;
    if (typeof id !== 'string' || !FIELD_PATTERN.test(id))
      throw new ConfigError(`${key}.id`, id, 'the name of the field holding the device id');
    if (time !== undefined && (typeof time !== 'string' || !FIELD_PATTERN.test(time)))
      throw new ConfigError(`${key}.time`, time, 'the name of the field holding the time');
    if (type !== undefined && (typeof type !== 'string' || !DEVICE_TYPE_PATTERN.test(type)))
      throw new ConfigError(`${key}.type`, type, `a device type matching ${DEVICE_TYPE_PATTERN}`);
    setOwn(mappings, name, {
      id,
      ...(time === undefined ? {} : { time }),
      ...(type === undefined ? {} : { type }),
    });
  }
  return mappings;
}

export const httpJson: Format<Uplink, 'http'> = {
  source: 'http',
  title: 'HTTP',
  route: { path: '/v1/telemetry', mapping: true, refusal: 'invalid_json' },
  resends: false,
  read(message, { config, json }) {
    const name = message.params.mapping;
    const mapping = name === undefined ? undefined : own(config.httpMappings, name);
    if (name !== undefined && !mapping) {
      const known = Object.keys(config.httpMappings);
      return refuse(
        'invalid_topic',
        `no mapping "${truncate(name)}" in the config (httpMappings; configured: ${known.length ? known.join(', ') : 'none'})`,
        'unknown_mapping',
      );
    }
    return {
      deviceType: message.params.type ?? mapping?.type ?? DEFAULT_HTTP_DEVICE_TYPE,
      payload: { decoder: mapping ? jsonDecoder(config.validation, mapping) : json, bytes: message.bytes },
    };
  },
};
