/** `iot-pipeline keys create|list|revoke`: the HTTP API's keys, on a deployed stage or the local runtime. */
import { KeySpecError, type KeyStore, keySummary, SCOPES } from '../../lambdas/core/access/keys.ts';
import { KeyFileError } from '../../local/adapters/key-file.ts';
import { DEFAULT_DATA_DIR, dataPaths } from '../../local/data-dir.ts';
import { parse, UsageError, wholeNumber } from '../args.ts';
import { REGION_OPTION, REGION_USAGE } from '../aws.ts';
import { CliError } from '../errors.ts';
import { formatTable } from '../table.ts';

export const options = {
  name: { type: 'string' },
  scope: { type: 'string' },
  devices: { type: 'string' },
  rate: { type: 'string' },
  burst: { type: 'string' },
  stage: { type: 'string' },
  ...REGION_OPTION,
  data: { type: 'string', default: DEFAULT_DATA_DIR },
  json: { type: 'boolean', default: false },
} as const;

export const usage = `Usage: iot-pipeline keys create --name <name> --scope <scope>[,<scope>...] [options]
       iot-pipeline keys list [options]
       iot-pipeline keys revoke <name> [options]

The HTTP API's keys. A key is printed once, when it is made; only its hash is kept. A
revoked key stops working within a minute (at once locally), with no redeploy.

Scopes: ${SCOPES.join(', ')}
  read                     the GET routes (devices, readings, daily)
  ingest                   every POST route; ingest:<route> one of them (ingest:sigfox for Sigfox)
A key does both only if made with both.

Options:
  --name <name>            the key's name (letters, digits, . _ -)
  --scope <s>[,<s>...]     what it may do
  --devices <id,...|p*>    only these devices (ids, or prefixes ending in *), for reading and
                           writing; a key made for a device may write it even when the registry
                           knows it from another way in
  --rate <n>, --burst <n>  its own requests a second and burst (default: http.keyRateLimit/keyBurstLimit)
  --stage <stage>          a deployed stage: the keys table from its stack's outputs (AWS credentials)
${REGION_USAGE}
  --data <dir>             else the local runtime's data folder (default ${DEFAULT_DATA_DIR})
  --json                   create: {"name","scopes","key"}; list: the keys as JSON
  -h, --help               show this help

Examples:
  iot-pipeline keys create --name sigfox-backend --scope ingest:sigfox
  iot-pipeline keys create --name site-north --scope ingest:telemetry,read --devices north-*
  iot-pipeline keys list --stage prod
  iot-pipeline keys revoke sigfox-backend --stage prod`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse({ args, options, allowPositionals: true });
  const [action, ...rest] = positionals;
  const store = async (): Promise<KeyStore> => {
    if (values.stage !== undefined) {
      if (!/^[a-z][a-z0-9-]{0,19}$/.test(values.stage))
        throw new UsageError(`--stage "${values.stage}" is not a stage name (lowercase letters, digits, -)`);
      const { stackKeyStore } = await import('../aws.ts');
      return stackKeyStore(values.stage, values.region);
    }
    const { fileKeyStore } = await import('../../local/adapters/key-file.ts');
    const paths = dataPaths(values.data);
    return fileKeyStore(paths.keysFile, paths.keyUsageFile);
  };
  try {
    if (action === 'create') return await create(await store());
    if (action === 'list') return await list(await store());
    if (action === 'revoke') return await revoke(await store(), rest[0]);
  } catch (error) {
    if (error instanceof KeySpecError) throw new UsageError(error.message);
    if (error instanceof KeyFileError) throw new CliError(error.message);
    throw error;
  }
  throw new UsageError(
    action === undefined
      ? 'say create, list or revoke'
      : `unknown action "${action}": say create, list or revoke`,
    true,
  );

  async function create(keys: KeyStore): Promise<number> {
    if (rest.length > 0) throw new UsageError(`create takes no argument ("${rest[0]}"): use --name`, true);
    if (values.name === undefined) throw new UsageError('create needs --name <name>', true);
    if (values.scope === undefined) throw new UsageError(`create needs --scope (${SCOPES.join(', ')})`, true);
    const list = (text: string) =>
      text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    const { createKey } = await import('../../lambdas/core/access/keys.ts');
    const made = createKey(
      {
        name: values.name,
        scopes: list(values.scope),
        ...(values.devices === undefined ? {} : { devices: list(values.devices) }),
        ...(values.rate === undefined ? {} : { rateLimit: wholeNumber('--rate', values.rate, 1, 10_000) }),
        ...(values.burst === undefined ? {} : { burstLimit: wholeNumber('--burst', values.burst, 1, 5_000) }),
      },
      Date.now(),
    );
    await keys.add(made.record);
    if (values.json) {
      console.log(JSON.stringify({ name: made.record.name, scopes: made.record.scopes, key: made.key }));
    } else {
      console.error(
        `Key "${made.record.name}" made (${made.record.scopes.join(', ')}${made.record.devices ? `; devices ${made.record.devices.join(', ')}` : ''}). It is shown this once:`,
      );
      console.log(made.key);
    }
    return 0;
  }

  async function list(keys: KeyStore): Promise<number> {
    const summaries = (await keys.list()).map(keySummary);
    if (values.json) {
      console.log(JSON.stringify({ keys: summaries }));
      return 0;
    }
    if (summaries.length === 0) {
      console.error('No keys yet: iot-pipeline keys create --name <name> --scope <scope>');
      return 0;
    }
    console.log(
      formatTable({
        columns: ['name', 'scopes', 'devices', 'created', 'last used', 'revoked'],
        rows: summaries.map((k) => ({
          name: k.name,
          scopes: k.scopes.join(','),
          devices: k.devices?.join(',') ?? 'all',
          created: k.created,
          'last used': k.lastUsed ?? 'never',
          revoked: k.revoked ?? '',
        })),
      }),
    );
    return 0;
  }

  async function revoke(keys: KeyStore, name: string | undefined): Promise<number> {
    if (name === undefined) throw new UsageError('revoke needs the key name: keys revoke <name>', true);
    if (!(await keys.revoke(name, Date.now())))
      throw new CliError(`no live key named "${name}": see iot-pipeline keys list`);
    console.error(`Key "${name}" revoked: it stops working within a minute.`);
    return 0;
  }
}
