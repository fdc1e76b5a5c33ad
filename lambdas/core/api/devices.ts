/**
 * `GET /v1/devices`: the device estate, filtered (`?type=`, `?tag=key=value`,
 * `?status=online|offline`, `?silentFor=1h`), for the CLI and dashboards. Needs a key
 * with the `read` scope; a key made for some devices sees only those. 400 with the
 * reason for a filter it cannot read.
 */

import { coversDevice, READ_SCOPE } from '../access/keys.ts';
import { parseDuration } from '../duration.ts';
import { type DeviceFilter, type DeviceRegistry, filterDevices } from '../estate/update.ts';
import { DEVICE_TYPE_PATTERN } from '../ids.ts';
import { type Gate, isResponse } from './gate.ts';
import { type HttpRequest, type HttpResponse, json } from './http.ts';

export const DEVICES_PATH = '/v1/devices';

export async function handleDevicesRequest(
  request: HttpRequest,
  deps: { readonly gate: Gate; readonly registry: Pick<DeviceRegistry, 'list'>; readonly now?: () => number },
): Promise<HttpResponse> {
  if (request.method !== 'GET')
    return json(
      405,
      { error: 'method_not_allowed', message: `Use GET on ${DEVICES_PATH}` },
      { allow: 'GET' },
    );
  const caller = await deps.gate.admit(request, READ_SCOPE);
  if (isResponse(caller)) return caller;
  const parsed = parseFilter(new URLSearchParams(request.query ?? ''));
  if ('error' in parsed) return json(400, { error: 'invalid_filter', message: parsed.error });
  const visible = (await deps.registry.list()).filter((d) => coversDevice(caller.devices, d.deviceId));
  const devices = filterDevices(visible, parsed, (deps.now ?? Date.now)());
  return json(200, { count: devices.length, devices });
}

export function parseFilter(params: URLSearchParams): DeviceFilter | { error: string } {
  const filter: { -readonly [K in keyof DeviceFilter]: DeviceFilter[K] } = {};
  const type = params.get('type');
  if (type !== null) {
    if (!DEVICE_TYPE_PATTERN.test(type)) return { error: `type must match ${DEVICE_TYPE_PATTERN}` };
    filter.type = type;
  }
  const tag = params.get('tag');
  if (tag !== null) {
    const at = tag.indexOf('=');
    if (at < 1) return { error: `tag "${tag}" must be key=value` };
    filter.tag = { key: tag.slice(0, at), value: tag.slice(at + 1) };
  }
  const status = params.get('status');
  if (status !== null) {
    if (status !== 'online' && status !== 'offline') return { error: 'status must be online or offline' };
    filter.status = status;
  }
  const silentFor = params.get('silentFor');
  if (silentFor !== null) {
    try {
      filter.silentForMs = parseDuration(silentFor);
    } catch (error) {
      return { error: `silentFor: ${(error as Error).message}` };
    }
  }
  return filter;
}
