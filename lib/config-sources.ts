/**
 * Where the config comes from: CDK context (`cdk synth`) and config files (`start
 * --config`), merged over the defaults and validated by {@link validateConfig}.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../lambdas/core/config-error.ts';
import { buildDecoders } from '../lambdas/core/decoders/registry.ts';
import { isObject, own, setOwn } from '../lambdas/core/ids.ts';
import { type PipelineConfig, validateConfig } from './config.ts';

type ContextReader = (key: string) => unknown;

/**
 * Reads the config from CDK context, in this order (later wins):
 * the defaults; the file named by `-c config=<file.json>`; the `iotPipeline` object in
 * `cdk.json`; then single flags `-c stage=prod`, `-c timestream=false`, `-c alertEmail=ops@example.com`.
 */
export function loadConfig(context: ContextReader): PipelineConfig {
  const file = context('config');
  const fromFile = typeof file === 'string' ? readJson(file) : {};
  const fromContext = context('iotPipeline') ?? {};
  const flags: Record<string, unknown> = {};
  const stage = context('stage');
  if (stage !== undefined) flags.stage = stage;
  const timestream = context('timestream');
  if (timestream !== undefined) flags.timestream = { enabled: parseBooleanFlag('timestream', timestream) };
  const email = context('alertEmail');
  if (email !== undefined) flags.alerts = { email };
  const config = validateConfig(merge(merge(fromFile, fromContext), flags));
  // The synth proves the decoders can be built (codecs load in their sandboxes), then frees them.
  void buildDecoders(config.deviceTypes).close();
  return config;
}

/**
 * Reads a config file (the same file `cdk synth -c config=<file>` takes) over the
 * defaults: what the local runtime's `--config` reads.
 *
 * @throws ConfigError when the file is unreadable or a key is wrong
 */
export function readConfigFile(file: string): PipelineConfig {
  return validateConfig(readJson(file));
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError('config', file, `a readable JSON file (${(error as Error).message})`);
  }
}

function parseBooleanFlag(key: string, value: unknown): boolean {
  // `-c timestream=false` arrives as the string "false".
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new ConfigError(key, value, 'true or false');
}

function merge(base: unknown, override: unknown): unknown {
  if (!isObject(base) || !isObject(override)) return override === undefined ? base : override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) setOwn(out, key, merge(own(base, key), value));
  return out;
}
