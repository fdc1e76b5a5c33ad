#!/usr/bin/env -S npx tsx
/**
 * `iot-pipeline <command>` (DESIGN.md, "Contracts: CLI"), run as `npm run cli -- <command>`.
 * Messages go to stderr; `--json` puts exactly one JSON document on stdout.
 *
 * Each command is its own module in `cli/commands/`, imported only when it runs: `decode`
 * never loads the AWS SDKs or DuckDB. A new command is one file there and one line below.
 */
import { type Command, UsageError, wantsHelp } from './args.ts';
import { report } from './errors.ts';

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  start: {
    summary: 'run the whole pipeline locally (MQTT broker, HTTP API, lake folder, DuckDB)',
    load: () => import('./commands/start.ts'),
  },
  simulate: {
    summary: 'send readings from simulated devices (MQTT, HTTP, Sigfox, The Things Stack)',
    load: () => import('./commands/simulate.ts'),
  },
  decode: {
    summary: 'try a decoder (device type, Sigfox grammar, LoRaWAN codec) on a payload',
    load: () => import('./commands/decode.ts'),
  },
  redecode: {
    summary: 'decode the raw archive again with the current decoders and replace its readings',
    load: () => import('./commands/redecode.ts'),
  },
  devices: {
    summary: 'list the device estate, from a running pipeline or the local data folder',
    load: () => import('./commands/devices.ts'),
  },
  keys: {
    summary: 'make, list and revoke the HTTP API keys (scopes, devices), locally or on a stage',
    load: () => import('./commands/keys.ts'),
  },
  users: {
    summary: "invite, list and remove the people who may sign in to a stage's web console",
    load: () => import('./commands/users.ts'),
  },
  provision: {
    summary: 'create a device (or a CSV of them) on AWS IoT Core, with its certificate',
    load: () => import('./commands/provision.ts'),
  },
  deprovision: {
    summary: 'detach, deactivate and delete a device on AWS IoT Core',
    load: () => import('./commands/deprovision.ts'),
  },
  daily: {
    summary: 'run the daily job (curated readings, daily metrics, report) on the local lake',
    load: () => import('./commands/daily.ts'),
  },
  cost: {
    summary: 'what the pipeline would cost on AWS, from the calls a local run makes, at list prices',
    load: () => import('./commands/cost.ts'),
  },
  query: {
    summary: 'run SQL on the local lake (DuckDB) or on Athena',
    load: () => import('./commands/query.ts'),
  },
};

const USAGE = `Usage: iot-pipeline <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, { summary }]) => `  ${name.padEnd(12)} ${summary}`)
  .join('\n')}

Run iot-pipeline <command> --help for its flags and an example.
Any command takes --debug: an error is printed with its stack trace.

Examples:
  iot-pipeline start
  iot-pipeline simulate --devices 50 --rate 10/s --count 500
  iot-pipeline query "SELECT device_id, count(*) FROM readings GROUP BY ALL"`;

/** Runs the command `argv` names; resolves to the exit code, having printed any failure. */
async function main(argv: string[]): Promise<number> {
  // --debug is the CLI's, not a command's: taken out before the command parses its flags.
  const end = argv.indexOf('--') === -1 ? argv.length : argv.indexOf('--');
  const debug = argv.slice(0, end).includes('--debug');
  const [name, ...args] = argv.filter((arg, i) => !(i < end && arg === '--debug'));
  let usage = USAGE;
  try {
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      const topic = name === 'help' ? args[0] : undefined;
      const entry = topic === undefined ? undefined : COMMANDS[topic];
      process.stdout.write(`${entry ? (await entry.load()).usage : USAGE}\n`);
      return name === undefined ? 2 : 0;
    }
    const entry = COMMANDS[name];
    if (!entry) throw new UsageError(`Unknown command "${name}".`, true);
    const command = await entry.load();
    usage = command.usage;
    if (wantsHelp(args)) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    return await command.run(args);
  } catch (error) {
    return report(error, { debug, usage });
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
