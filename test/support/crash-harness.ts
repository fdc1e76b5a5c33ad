/**
 * Crash consistency of the local runtime, measured: the runtime runs in a child process
 * (`runtime-child.ts`) on fixed ports and one data folder; MQTT devices (QoS 1) and
 * HTTP callers (the local ingest key) send to it; at seeded random moments it is killed
 * with SIGKILL and started again on the same folder. The senders note exactly which
 * messages were acknowledged (a PUBACK, a 202); an unacknowledged one is not sent again
 * (a resend is a new message to the pipeline, and its copy would be the sender's, not a
 * loss), so every message is sent once and any copy in the lake is the runtime's.
 *
 * At the end the folder is opened once more, cleanly, everything queued is stored, and
 * each acknowledged message is looked for in `readings/` (through the DuckDB views), in
 * `timeseries`, in `quarantine/` and in the dead-letter file. Every message carries a
 * unique number (metric `n`) and its own device time (`$ts`), which is how it is found.
 *
 * Used by `test/local/crash.test.ts` (asserts) and `bench/local.bench.ts` (`local.crash.lost`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, type FSWatcher, mkdirSync, readFileSync, watch } from 'node:fs';
import { createServer } from 'node:net';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { dataPaths } from '../../local/data-dir.ts';
import { startLocalRuntime } from '../../local/runtime.ts';
import { random } from '../../tools/simulator/fleet.ts';

export interface CrashRunOptions {
  /** The data folder every start uses. */
  readonly dataDir: string;
  /** Seeds the moments of the kills. */
  readonly seed: number;
  /** SIGKILLs, each followed by a start on the same folder. */
  readonly kills: number;
  /** Longest a runtime takes messages before its kill, ms (a timed life is uniform in [0, this]). */
  readonly maxLifeMs?: number;
  /**
   * The share of lives that end as one of their first three `readings/` objects is
   * renamed into place (which one: seeded), the moment a batch is stored and not yet
   * settled in the queue; the others end at a random time.
   *
   * @default 0.5
   */
  readonly killOnWrite?: number;
  /** MQTT devices, each its own connection. */
  readonly devices?: number;
  /** Messages a second from all devices together. */
  readonly rate?: number;
  /** HTTP callers, each sending one reading per request, one request at a time. */
  readonly callers?: number;
  /** Requests a second from each caller. */
  readonly callerRate?: number;
  /** Passed to the child: false turns the queue's journal off. */
  readonly durable?: boolean;
  /** A pipeline config for the child (e.g. HTTP throttles). */
  readonly config?: unknown;
  /** Progress, one line per kill. */
  readonly log?: (line: string) => void;
}

export interface CrashReport {
  readonly seed: number;
  readonly kills: number;
  /** Messages sent, once each. */
  readonly sent: number;
  readonly acknowledged: number;
  /** Acknowledged, and in none of readings/, quarantine/ or the dead-letter file. */
  readonly lost: number;
  /** A few of the lost ones' numbers, to look for. */
  readonly lostSample: readonly number[];
  /** Acknowledged messages with more than one row in readings/. */
  readonly duplicated: number;
  /** Acknowledged messages in readings/ but not in timeseries. */
  readonly missingFromTimeseries: number;
  readonly quarantined: number;
  readonly deadLettered: number;
  /** Sent, not acknowledged, and stored all the same (allowed: the answer died with the runtime). */
  readonly storedUnacknowledged: number;
  /** How each life ended. */
  readonly lives: readonly Life[];
  /** Lost messages by the life they were sent in. */
  readonly lostByLife: readonly number[];
  /** Wall time of the whole run, ms. */
  readonly elapsedMs: number;
}

/** One runtime's life under load, until its SIGKILL. */
export interface Life {
  readonly ms: number;
  /** Killed as its n-th `readings/` object was written; absent: at a random time. */
  readonly onWrite?: number;
}

/** `812 ms`, or `3rd write 340 ms`. */
export function describeLife(life: Life): string {
  return life.onWrite === undefined ? `${life.ms} ms` : `write ${life.onWrite} at ${life.ms} ms`;
}

const CHILD = fileURLToPath(new URL('runtime-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port nobody listens on now (the kernel's pick), for a child that must keep it across restarts. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

export interface RuntimeChild {
  readonly process: ChildProcess;
  readonly ingestKey: string;
  readonly mqttPort: number;
  readonly httpPort: number;
  /** The child's stderr so far (the runtime's log). */
  stderr(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `runtime-child.ts` and resolves once it listens. */
export function startRuntimeChild(options: {
  readonly dataDir: string;
  readonly mqttPort: number;
  readonly httpPort: number;
  readonly durable?: boolean;
  readonly config?: unknown;
}): Promise<RuntimeChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(options)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    err = (err + chunk.toString()).slice(-20_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the runtime did not start within 60 s: ${err.slice(-2000)}`));
    }, 60_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.includes('"ready":true'));
      if (!line) return;
      clearTimeout(timer);
      const ready = JSON.parse(line) as { ingestKey: string; mqttPort: number; httpPort: number };
      out = '';
      resolve({ process: child, ...ready, stderr: () => err, exited });
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the runtime exited (${signal ?? code}) before it listened: ${err.slice(-2000)}`));
    });
  });
}

/** What the senders know: every message sent, and which were acknowledged. */
export class Ledger {
  readonly sent = new Set<number>();
  readonly acknowledged = new Set<number>();
  /** The first message number of each life. */
  readonly lifeStarts: number[] = [];
  private next = 1;
  private readonly lastTs = new Map<string, number>();

  /** A fresh message number, and a device time of its own for `deviceId` (distinct, increasing). */
  newLife(): void {
    this.lifeStarts.push(this.next);
  }

  /** The life (0-based) message `n` was sent in. */
  lifeOf(n: number): number {
    let life = 0;
    while (life + 1 < this.lifeStarts.length && (this.lifeStarts[life + 1] as number) <= n) life++;
    return life;
  }

  message(deviceId: string): { n: number; ts: number } {
    const n = this.next++;
    const last = this.lastTs.get(deviceId) ?? 0;
    const ts = Math.max(Date.now(), last + 1);
    this.lastTs.set(deviceId, ts);
    this.sent.add(n);
    return { n, ts };
  }
}

interface Stop {
  stopped: boolean;
}

/** One MQTT device until its connection drops or `stop`: QoS 1 publishes, up to 16 unacknowledged. */
async function device(port: number, id: string, everyMs: number, ledger: Ledger, stop: Stop): Promise<void> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    clientId: id,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  let alive = true;
  const died = new Promise<void>((resolve) => {
    const down = () => {
      alive = false;
      resolve();
    };
    client.once('close', down);
    // Kept for the client's life: a second 'error' without a listener would throw.
    client.on('error', down);
  });
  await Promise.race([new Promise((resolve) => client.once('connect', resolve)), died]);
  let inFlight = 0;
  const started = Date.now();
  for (let i = 0; alive && !stop.stopped; i++) {
    const due = started + i * everyMs;
    while (alive && !stop.stopped && (inFlight >= 16 || Date.now() < due))
      await sleep(Math.max(1, due - Date.now()));
    if (!alive || stop.stopped) break;
    const { n, ts } = ledger.message(id);
    inFlight++;
    client.publish(`dt/crash/${id}`, JSON.stringify({ $ts: ts, n }), { qos: 1 }, (error) => {
      inFlight--;
      // The callback of a QoS 1 publish without an error is its PUBACK.
      if (!error && alive) ledger.acknowledged.add(n);
    });
  }
  client.end(true);
}

/** One HTTP caller until the runtime stops answering or `stop`: one reading per POST /v1/telemetry. */
async function caller(
  port: number,
  key: string,
  id: string,
  everyMs: number,
  ledger: Ledger,
  stop: Stop,
): Promise<void> {
  const started = Date.now();
  for (let i = 0; !stop.stopped; i++) {
    const due = started + i * everyMs;
    if (due > Date.now()) await sleep(due - Date.now());
    if (stop.stopped) break;
    const { n, ts } = ledger.message(id);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/v1/telemetry`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ $id: id, $ts: ts, n }),
        signal: AbortSignal.timeout(5000),
      });
      await response.arrayBuffer();
      if (response.status === 202) ledger.acknowledged.add(n);
    } catch {
      // Refused or reset (the runtime is gone, or a kept-alive socket died with the last one): not acknowledged.
      if (stop.stopped) return;
      await sleep(50);
    }
  }
}

/** The number `n` of a message, from its base64 payload (quarantine, dead letters). */
function numberOf(base64: string): number | undefined {
  const match = /"n"\s*:\s*(\d+)/.exec(Buffer.from(base64, 'base64').toString('utf8'));
  return match ? Number(match[1]) : undefined;
}

/** Kills the runtime `kills` times under load, starts it cleanly once more, and counts. */
export async function crashRun(options: CrashRunOptions): Promise<CrashReport> {
  const began = Date.now();
  const rand = random(options.seed);
  const maxLifeMs = options.maxLifeMs ?? 1200;
  const devices = options.devices ?? 4;
  const rate = options.rate ?? 800;
  const callers = options.callers ?? 2;
  const callerRate = options.callerRate ?? 40;
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const ledger = new Ledger();
  const lives: Life[] = [];
  const readingsDir = join(dataPaths(options.dataDir).lakeDir, 'readings');
  mkdirSync(readingsDir, { recursive: true });
  for (let kill = 0; kill < options.kills; kill++) {
    const child = await startRuntimeChild({
      dataDir: options.dataDir,
      mqttPort,
      httpPort,
      durable: options.durable,
      config: options.config,
    });
    const stop: Stop = { stopped: false };
    ledger.newLife();
    const load = Promise.all([
      ...Array.from({ length: devices }, (_, i) =>
        device(mqttPort, `crash-${i}`, (1000 * devices) / rate, ledger, stop),
      ),
      ...Array.from({ length: callers }, (_, i) =>
        caller(httpPort, child.ingestKey, `crash-h${i}`, 1000 / callerRate, ledger, stop),
      ),
    ]);
    const born = Date.now();
    const onWrite = rand() < (options.killOnWrite ?? 0.5) ? 1 + Math.floor(rand() * 3) : undefined;
    const timed = Math.round(rand() * maxLifeMs);
    let watcher: FSWatcher | undefined;
    if (onWrite !== undefined) {
      let written = 0;
      // Killed from the watcher's callback: within a millisecond or so of the rename.
      watcher = watch(readingsDir, { recursive: true }, (_event, name) => {
        const file = basename(String(name ?? ''));
        if (file.endsWith('.ndjson.gz') && !file.startsWith('.') && ++written === onWrite)
          child.process.kill('SIGKILL');
      });
    }
    // A life waiting for a write that does not come ends at three times the longest timed one.
    await Promise.race([child.exited, sleep(onWrite === undefined ? timed : 3 * maxLifeMs)]);
    watcher?.close();
    child.process.kill('SIGKILL');
    const { signal } = await child.exited;
    const life: Life = { ms: Date.now() - born, ...(onWrite === undefined ? {} : { onWrite }) };
    lives.push(life);
    stop.stopped = true;
    await load;
    if (signal !== 'SIGKILL')
      throw new Error(`the runtime died before its kill: ${child.stderr().slice(-2000)}`);
    options.log?.(
      `kill ${kill + 1}/${options.kills} (${describeLife(life)}): ${ledger.sent.size} sent, ${ledger.acknowledged.size} acknowledged`,
    );
  }
  return {
    seed: options.seed,
    kills: options.kills,
    ...(await account(options.dataDir, ledger, options.durable)),
    lives,
    elapsedMs: Date.now() - began,
  };
}

export type Accounting = Omit<CrashReport, 'seed' | 'kills' | 'lives' | 'elapsedMs'>;

/**
 * A clean start on `dataDir` (its own free ports), everything queued stored, then each
 * acknowledged message of `ledger` looked for in `readings/`, `timeseries`, `quarantine/`
 * and the dead-letter file.
 */
export async function account(dataDir: string, ledger: Ledger, durable?: boolean): Promise<Accounting> {
  const rt = await startLocalRuntime({
    dataDir,
    mqttPort: 0,
    httpPort: 0,
    ...(durable === undefined ? {} : { queue: { durable } }),
  });
  try {
    // Whatever the start took back (a journal's replay) is stored before counting; twice
    // idle 200 ms apart, in case the replay is queued after the start resolves.
    for (let quiet = 0; quiet < 2; ) {
      await rt.queue.idle();
      await sleep(200);
      quiet = rt.queue.stats().pending === 0 ? quiet + 1 : 0;
    }
    const counts = async (table: string) => {
      const { rows } = await rt.query(
        `SELECT CAST(value AS BIGINT) AS n, count(*)::INT AS c FROM ${table} WHERE metric = 'n' GROUP BY ALL`,
      );
      return new Map(rows.map((r) => [Number(r.n), Number(r.c)]));
    };
    const readings = await counts('readings');
    const timeseries = await counts('timeseries');
    const quarantined = new Set(
      (await rt.query('SELECT payload FROM quarantine')).rows
        .map((r) => numberOf(String(r.payload)))
        .filter((n) => n !== undefined),
    );
    const dead = new Set<number>();
    if (existsSync(rt.deadLetterFile)) {
      for (const line of readFileSync(rt.deadLetterFile, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        const { body } = JSON.parse(line) as { body: string };
        const n = numberOf((JSON.parse(body) as { payload: string }).payload);
        if (n !== undefined) dead.add(n);
      }
    }
    const lost = [...ledger.acknowledged].filter(
      (n) => !readings.has(n) && !quarantined.has(n) && !dead.has(n),
    );
    const acked = [...ledger.acknowledged];
    return {
      sent: ledger.sent.size,
      acknowledged: ledger.acknowledged.size,
      lost: lost.length,
      lostSample: lost.slice(0, 10),
      lostByLife: lost.reduce((byLife, n) => {
        const life = ledger.lifeOf(n);
        byLife[life] = (byLife[life] ?? 0) + 1;
        return byLife;
      }, new Array<number>(ledger.lifeStarts.length).fill(0)),
      duplicated: acked.filter((n) => (readings.get(n) ?? 0) > 1).length,
      missingFromTimeseries: acked.filter((n) => readings.has(n) && !timeseries.has(n)).length,
      quarantined: acked.filter((n) => quarantined.has(n)).length,
      deadLettered: acked.filter((n) => dead.has(n)).length,
      storedUnacknowledged: [...ledger.sent].filter((n) => !ledger.acknowledged.has(n) && readings.has(n))
        .length,
    };
  } finally {
    await rt.close();
  }
}
