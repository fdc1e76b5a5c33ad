/** `iot-pipeline devices`: the device estate, from a running pipeline or the local DuckDB file. */
import { DEVICES_PATH, parseFilter } from '../../lambdas/core/api/devices.ts';
import { type DeviceSummary, filterDevices } from '../../lambdas/core/estate/update.ts';
import { DEFAULT_DATA_DIR, dataPaths, localApiKey } from '../../local/data-dir.ts';
import { LOCAL_HOST } from '../../local/host.ts';
import { parse, port, UsageError } from '../args.ts';
import { CliError } from '../errors.ts';
import { formatTable } from '../table.ts';

export const options = {
  type: { type: 'string' },
  tag: { type: 'string' },
  status: { type: 'string' },
  'silent-for': { type: 'string' },
  url: { type: 'string' },
  'http-port': { type: 'string' },
  data: { type: 'string', default: DEFAULT_DATA_DIR },
  json: { type: 'boolean', default: false },
} as const;

export const usage = `Usage: iot-pipeline devices [filters] [options]

List the device estate: from a running pipeline's HTTP API (GET ${DEVICES_PATH}), or, when no
local runtime answers, from the local DuckDB file directly.

Filters:
  --type <deviceType>      devices of this type
  --tag <key=value>        devices with this attribute
  --status <status>        online or offline
  --silent-for <1h>        devices silent at least this long

Options:
  --url <HttpApiUrl>       a deployed pipeline (the HttpApiUrl stack output); key from IOT_PIPELINE_API_KEY
  --http-port <n>          the local runtime's HTTP port (default 3000)
  --data <dir>             the local data folder: its API key and DuckDB file (default ${DEFAULT_DATA_DIR})
  --json                   print the devices as one JSON document on stdout
  -h, --help               show this help

Examples:
  iot-pipeline devices --status offline
  iot-pipeline devices --url https://abc123.execute-api.eu-west-1.amazonaws.com --tag site=north --json`;

export async function run(args: string[]): Promise<number> {
  const { values } = parse({ args, options });
  const params = new URLSearchParams();
  if (values.type) params.set('type', values.type);
  if (values.tag) params.set('tag', values.tag);
  if (values.status) params.set('status', values.status);
  if (values['silent-for']) params.set('silentFor', values['silent-for']);
  const filter = parseFilter(params);
  if ('error' in filter) throw new UsageError(filter.error);
  const url = values.url ?? `http://${LOCAL_HOST}:${port(values['http-port'], 3000, '--http-port')}`;
  const paths = dataPaths(values.data);
  let list: DeviceSummary[];
  try {
    list = await fetchDevices(url, params, localApiKey(values.data));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    if (values.url)
      throw new CliError(
        `cannot list devices from ${url}: ${reason(error)}: check --url (the HttpApiUrl stack output)`,
      );
    // No local runtime running: read its registry file.
    const { registryFromFile } = await import('../duckdb.ts');
    const records = await registryFromFile(paths.databaseFile);
    if (!records)
      throw new UsageError(
        `No local runtime answered and ${paths.databaseFile} does not exist: start one with npm start, or pass --url`,
      );
    list = filterDevices(records, filter, Date.now());
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
    'last seen': d.lastSeen,
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

/** GET /v1/devices; an answer other than 2xx is a UsageError with the API's message. */
async function fetchDevices(
  url: string,
  params: URLSearchParams,
  apiKey: string | undefined,
): Promise<DeviceSummary[]> {
  const response = await fetch(`${url.replace(/\/$/, '')}${DEVICES_PATH}?${params}`, {
    headers: { authorization: `Bearer ${apiKey ?? ''}` },
  });
  const body = (await response.json()) as { devices?: DeviceSummary[]; message?: string };
  if (!response.ok) throw new UsageError(`${url} answered ${response.status}: ${body.message ?? ''}`);
  return body.devices ?? [];
}

/** Why a fetch failed, in a few words: `connect ECONNREFUSED 127.0.0.1:9`, not `fetch failed`. */
function reason(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error) return cause.message;
  return error instanceof Error ? error.message : String(error);
}
