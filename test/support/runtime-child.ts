/**
 * The local runtime in a process of its own, for the tests and benchmarks that kill it
 * (`test/local/crash.test.ts`, `local.crash.lost`):
 *
 *   node --import tsx test/support/runtime-child.ts '{"dataDir": "...", "mqttPort": 41883, "httpPort": 43000}'
 *
 * Options (one JSON argument): `dataDir`, `mqttPort`, `httpPort` (fixed ports, so the
 * clients find it again after a restart), `durable` (false turns the queue's journal
 * off; absent: the runtime's default), `config` (a pipeline config, validated as
 * `--config` is). When it listens it prints one JSON line on stdout:
 * `{ "ready": true, "pid", "mqttPort", "httpPort", "ingestKey" }` (the local ingest key,
 * as `<data>/local-keys.env` keeps it). On SIGTERM it stores what is queued, prints
 * `{ "closed": true, "stats" }` and exits 0; SIGKILL is the crash under test.
 */
import { validateConfig } from '../../lib/config.ts';
import { startLocalRuntime } from '../../local/runtime.ts';

interface ChildOptions {
  readonly dataDir: string;
  readonly mqttPort: number;
  readonly httpPort: number;
  readonly durable?: boolean;
  readonly config?: unknown;
}

const options = JSON.parse(process.argv[2] ?? '{}') as ChildOptions;
if (!options.dataDir || !options.mqttPort || !options.httpPort) {
  process.stderr.write(
    `usage: node --import tsx test/support/runtime-child.ts '{"dataDir": "<dir>", "mqttPort": <n>, "httpPort": <n>}'\n`,
  );
  process.exit(2);
}
const say = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

const rt = await startLocalRuntime({
  dataDir: options.dataDir,
  mqttPort: options.mqttPort,
  httpPort: options.httpPort,
  ...(options.config === undefined ? {} : { config: validateConfig(options.config) }),
  // The journal's switch (LocalQueueOptions.durable); left out, the runtime's default.
  ...(options.durable === undefined ? {} : { queue: { durable: options.durable } }),
  log: (line) => process.stderr.write(`${line}\n`),
});
say({
  ready: true,
  pid: process.pid,
  mqttPort: rt.mqttPort,
  httpPort: rt.httpPort,
  ingestKey: rt.keys.ingest,
});
process.once('SIGTERM', () => {
  void rt.close().then(
    () => {
      say({ closed: true, stats: rt.queue.stats() });
      process.exit(0);
    },
    (error: Error) => {
      process.stderr.write(`close failed: ${error.stack ?? error.message}\n`);
      process.exit(1);
    },
  );
});
