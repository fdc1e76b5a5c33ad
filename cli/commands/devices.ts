/**
 * `iot-pipeline devices`: the device estate, from a running pipeline or the local DuckDB
 * file; `devices add <id>` and `devices remove <id>`: a device's password for the local
 * broker (`start --mqtt-auth`).
 */
import { DEVICES_PATH, parseFilter } from '../../lambdas/core/api/devices.ts';
import { MAX_LIST_PAGE } from '../../lambdas/core/api/list-params.ts';
import {
  type DeviceSummary,
  filterDevices,
  offlineTimeouts,
} from '../../lambdas/core/estate/registry-query.ts';
import { DEVICE_ID_PATTERN, truncate } from '../../lambdas/core/ids.ts';
import { DEFAULT_CONFIG } from '../../lib/config.ts';
import { readConfigFile } from '../../lib/config-sources.ts';
import { DEFAULT_DATA_DIR, dataPaths, localKey } from '../../local/data-dir.ts';
import {
  addDeviceCredential,
  CredentialsFileError,
  DEVICE_CREDENTIALS_FILE,
  removeDeviceCredential,
} from '../../local/device-credentials.ts';
import { LOCAL_HOST } from '../../local/host.ts';
import { parse, port, UsageError } from '../args.ts';
import { CliError } from '../errors.ts';
import { formatTable } from '../table.ts';

export const options = {
  type: { type: 'string' },
  tag: { type: 'string' },
  status: { type: 'string' },
  'silent-for': { type: 'string' },
  q: { type: 'string' },
  config: { type: 'string' },
  url: { type: 'string' },
  'http-port': { type: 'string' },
  data: { type: 'string', default: DEFAULT_DATA_DIR },
  json: { type: 'boolean', default: false },
} as const;

export const usage = `Usage: iot-pipeline devices [filters] [options]
       iot-pipeline devices add <deviceId> [--data <dir>] [--json]
       iot-pipeline devices remove <deviceId> [--data <dir>]

List the device estate: from a running pipeline's HTTP API (GET ${DEVICES_PATH}), or, when no
local runtime answers, from the local data folder: its DuckDB file (read only) when start is not
running, else the snapshot start refreshes every 5 s (say so on stderr, with its age).

add creates a password for a device to connect to the local broker started with
start --mqtt-auth (client id = username = device id): 32 random bytes, printed once on
stdout (--json: {"deviceId", "password"}); only its SHA-256 is kept, in
<data>/${DEVICE_CREDENTIALS_FILE} (mode 0600). remove deletes it. A running broker
picks up either within a second, and disconnects a removed device.

Filters:
  --type <deviceType>      devices of this type
  --tag <key=value>        devices with this attribute
  --status <status>        online, offline (silent past its type's offlineAfter) or never (never heard)
  --silent-for <1h>        devices silent at least this long
  --q <prefix>             devices whose id starts with this

Options:
  --url <HttpApiUrl>       a deployed pipeline (the HttpApiUrl stack output); a read key from IOT_PIPELINE_READ_KEY
                           (or IOT_PIPELINE_API_KEY); locally the read key in <data>/local-keys.env
  --http-port <n>          the local runtime's HTTP port (default 3000)
  --data <dir>             the local data folder: its read key, DuckDB file and device credentials (default ${DEFAULT_DATA_DIR})
  --config <file>          reading the data folder: the config whose offline timeouts status is measured by
  --json                   print the devices (add: the device id and password) as one JSON document on stdout
  -h, --help               show this help

Examples:
  iot-pipeline devices --status offline
  iot-pipeline devices --url https://abc123.execute-api.eu-west-1.amazonaws.com --tag site=north --json
  iot-pipeline devices add dev-1
  mosquitto_pub -p 1883 -i dev-1 -u dev-1 -P <password> -t dt/thermo/dev-1 -m '{"temp": 21.5}'
  iot-pipeline devices remove dev-1`;

export async function run(args: string[]): Promise<number> {
  if (args[0] === 'add' || args[0] === 'remove') return credentials(args[0], args.slice(1));
  const { values } = parse({ args, options });
  const params = new URLSearchParams();
  if (values.type) params.set('type', values.type);
  if (values.tag) params.set('tag', values.tag);
  if (values.status) params.set('status', values.status);
  if (values['silent-for']) params.set('silentFor', values['silent-for']);
  if (values.q) params.set('q', values.q);
  const filter = parseFilter(params);
  if ('error' in filter) throw new UsageError(filter.error);
  const url = values.url ?? `http://${LOCAL_HOST}:${port(values['http-port'], 3000, '--http-port')}`;
  const paths = dataPaths(values.data);
  let list: DeviceSummary[];
  try {
    list = await fetchDevices(url, params, localKey(values.data, 'read'));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    if (values.url)
      throw new CliError(
        `cannot list devices from ${url}: ${reason(error)}: check --url (the HttpApiUrl stack output)`,
      );
    // No local runtime answered: read the data folder (its snapshot, when a runtime holds the file).
    const { registryFromDataFolder } = await import('../duckdb.ts');
    const found = await registryFromDataFolder(paths);
    if (!found)
      throw new UsageError(
        `No local runtime answered and ${paths.databaseFile} does not exist: start one with npm start, or pass --url`,
      );
    if (found.pipeline.from === 'snapshot') {
      const age = Math.max(0, Math.round((Date.now() - Date.parse(found.pipeline.info.currentAt)) / 1000));
      process.stderr.write(
        `devices: ${url} did not answer (${reason(error)}), but a runtime holds ${paths.databaseFile}: listing its snapshot, current as of ${found.pipeline.info.currentAt} (${age} s ago); pass its --http-port for the live list\n`,
      );
    }
    const config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
    list = filterDevices(found.records, filter, Date.now(), offlineTimeouts(config));
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(list)}\n`);
    return 0;
  }
  const columns = ['device', 'type', 'status', 'last seen', 'lost', 'open alerts', 'attributes'];
  const rows = list.map((d) => ({
    device: d.deviceId,
    type: d.deviceType,
    status: d.status,
    'last seen': d.lastSeen ?? '',
    lost: d.lostMessages,
    'open alerts': d.openAlerts.map((a) => a.rule).join(' '),
    attributes: Object.entries(d.attributes)
      .map(([k, v]) => `${k}=${v}`)
      .join(' '),
  }));
  process.stdout.write(formatTable({ columns, rows }));
  process.stderr.write(`(${list.length} device${list.length === 1 ? '' : 's'})\n`);
  return 0;
}

const CREDENTIAL_OPTIONS = { data: options.data, json: options.json } as const;

/** `devices add <id>` and `devices remove <id>`: the local broker's device credentials. */
function credentials(action: 'add' | 'remove', args: string[]): number {
  const { values, positionals } = parse({ args, options: CREDENTIAL_OPTIONS, allowPositionals: true });
  const [deviceId, ...extra] = positionals;
  if (deviceId === undefined) throw new UsageError(`devices ${action} needs a device id`, true);
  if (extra.length > 0)
    throw new UsageError(`devices ${action} takes one device id, got ${positionals.length}`, true);
  if (!DEVICE_ID_PATTERN.test(deviceId))
    throw new UsageError(`device id "${truncate(deviceId)}" must match ${DEVICE_ID_PATTERN}`);
  try {
    if (action === 'remove') {
      const { file, removed } = removeDeviceCredential(values.data, deviceId);
      if (!removed) throw new CliError(`${deviceId} has no credentials in ${file}: nothing to remove`);
      if (values.json) process.stdout.write(`${JSON.stringify({ deviceId, removed: true })}\n`);
      process.stderr.write(
        `devices: removed ${deviceId} from ${file}; the local broker (--mqtt-auth) refuses it now\n`,
      );
      return 0;
    }
    const added = addDeviceCredential(values.data, deviceId);
    if ('exists' in added)
      throw new CliError(
        `${deviceId} has credentials already (in ${added.file}): remove them first with iot-pipeline devices remove ${deviceId}`,
      );
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ deviceId, password: added.password })}\n`);
    } else {
      process.stderr.write(
        `devices: added ${deviceId}; its password follows, shown this once (${added.file} keeps only its hash).\n` +
          `Connect with client id and username ${deviceId} (iot-pipeline start --mqtt-auth), e.g.\n` +
          `  mosquitto_pub -i ${deviceId} -u ${deviceId} -P <password> -t dt/<deviceType>/${deviceId} -m '{"temp": 21.5}'\n`,
      );
      process.stdout.write(`${added.password}\n`);
    }
    return 0;
  } catch (error) {
    if (error instanceof CredentialsFileError)
      throw new CliError(`${error.message}: fix it, or delete it and add the devices again`);
    throw error;
  }
}

/** GET /v1/devices, every page; an answer other than 2xx is a UsageError with the API's message. */
async function fetchDevices(
  url: string,
  params: URLSearchParams,
  apiKey: string | undefined,
): Promise<DeviceSummary[]> {
  const devices: DeviceSummary[] = [];
  const query = new URLSearchParams(params);
  query.set('limit', String(MAX_LIST_PAGE));
  for (;;) {
    const response = await fetch(`${url.replace(/\/$/, '')}${DEVICES_PATH}?${query}`, {
      headers: { authorization: `Bearer ${apiKey ?? ''}` },
    });
    const body = (await response.json()) as { devices?: DeviceSummary[]; next?: string; message?: string };
    if (!response.ok) throw new UsageError(`${url} answered ${response.status}: ${body.message ?? ''}`);
    devices.push(...(body.devices ?? []));
    if (body.next === undefined) return devices;
    query.set('next', body.next);
  }
}

/** Why a fetch failed, in a few words: `connect ECONNREFUSED 127.0.0.1:9`, not `fetch failed`. */
function reason(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error) return cause.message;
  return error instanceof Error ? error.message : String(error);
}
