/**
 * Readings posted as JSON (`POST /v1/telemetry`): the property-value format of MQTT,
 * each reading naming its device with `$id`. `?mapping=<name>` reads devices that
 * cannot change what they send: the mapping says which field is the device id, which
 * the time, and the type. This format owns that part of the config (`httpMappings`).
 *
 * The device type is `?type=`, else the mapping's `type`, else `http`. A body in which
 * no reading names its device (no `$id`, or no field the mapping names) cannot be
 * stored: it is refused here, at the edge as a 400, rather than queued to be
 * quarantined. A body some of whose readings name no device is queued: those readings
 * alone are quarantined.
 */
import { ConfigError } from '../config-error.ts';
import { jsonDecoder, mapped } from '../decoders/json.ts';
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
    const deviceType = message.params.type ?? mapping?.type ?? DEFAULT_HTTP_DEVICE_TYPE;
    const decoder = mapping ? jsonDecoder(config.validation, mapping) : json;
    const body = message.json();
    // Too large or not JSON: the decoder refuses it, in the words it has for any payload.
    if ('error' in body || message.bytes.length > config.validation.maxPayloadBytes) {
      return { deviceType, payload: { decoder, bytes: message.bytes } };
    }
    const idField = mapping?.id ?? '$id';
    if (!namesADevice(body.value, idField)) {
      return refuse(
        'invalid_device_id',
        mapping
          ? `no reading has "${truncate(idField)}", the device id field of mapping "${truncate(name ?? '')}": say which device each reading is from`
          : 'no reading has "$id": say which device each reading is from ({"$id": "<device>", ...}), or post with ?mapping=<name> naming the id field',
        'missing_device_id',
      );
    }
    // Parsed once (the edge's check and this one share it): the data, its mapping applied.
    const value = body.value;
    const data = !mapping
      ? value
      : Array.isArray(value)
        ? value.map((v) => mapped(v, mapping))
        : mapped(value, mapping);
    return { deviceType, payload: { data } };
  },
};

/** Whether at least one reading of the body (an object, or an array of them) has the id field. */
function namesADevice(value: unknown, idField: string): boolean {
  const items = Array.isArray(value) ? value : [value];
  for (const item of items) {
    if (isObject(item) && Object.hasOwn(item, idField) && item[idField] !== undefined) return true;
  }
  return false;
}
