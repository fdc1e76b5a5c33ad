/**
 * `local.e2e.*`: the local runtime end to end, each run twice, with the queue's journal
 * (the default: a message is acknowledged once it is on disk) and without it
 * (`queue: { durable: false }`), the baseline. DEVICES MQTT clients, in a process of
 * their own (`local-load.ts`), publish QoS 1 readings at a rate in all for DURATION_MS,
 * each with up to IN_FLIGHT publishes awaiting their PUBACK: 160 messages in flight,
 * what a fleet of a few hundred devices that each wait for their acknowledgement keeps
 * (20 devices waiting each time measure the acknowledgement's latency instead:
 * `local.e2e.serial_throughput`). Measured: messages/s stored while they send, p50/p99 publish-to-stored latency (from
 * the reading's device time, set at publish, to the moment its `readings/` object is
 * written) and messages lost. Throughput is offered at THROUGHPUT_RATE, latency at
 * LATENCY_RATE; a third pair of runs lets the devices send as fast as they can
 * (`local.e2e.max_throughput`, the ceiling on this machine, where the devices' process
 * takes one of its cores). Targets: the journal keeps >= 0.8x of the throughput without
 * it, p99 <= 1 s at 2,000 msg/s, 0 lost. The runtime otherwise runs with its defaults
 * (batches of up to 2,000 messages when they wait, a 100 ms window).
 *
 * `local.crash.lost`: the runtime in a child process killed with SIGKILL CRASH_KILLS times
 * at seeded moments under MQTT and HTTP load (`test/support/crash-harness.ts`):
 * acknowledged messages never stored, with the journal; the baseline the same run without.
 */

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import type { ObjectStore } from '../lambdas/core/ingest/ports.ts';
import { startLocalRuntime } from '../local/runtime.ts';
import { type CrashReport, crashRun } from '../test/support/crash-harness.ts';
import type { BenchResult } from './types.ts';

const DEVICES = 20;
/** Publishes per device awaiting their PUBACK. */
const IN_FLIGHT = 8;
const DURATION_MS = 8000;
/** Offered load for `local.e2e.throughput`: 10% above the earlier 5,000 msg/s target. */
const THROUGHPUT_RATE = 5500;
/** Offered load for `local.e2e.p50_ms` and `p99_ms`. */
const LATENCY_RATE = 2000;
const CRASH_KILLS = 10;
const CRASH_SEED = 7;
const exec = promisify(execFile);

interface LoadRun {
  readonly sent: number;
  /** Messages a second the devices sent. */
  readonly offered: number;
  /** Messages a second stored while they sent. */
  readonly stored: number;
  readonly lost: number;
  /** Publish-to-stored latency at a percentile, ms. */
  readonly pct: (p: number) => number;
}

/**
 * A fresh runtime with its defaults (`durable` false: the journal off), DEVICES devices
 * sending at `rate` (0: as fast as they can) for DURATION_MS, `inFlight` publishes each
 * awaiting their PUBACK.
 */
async function load(rate: number, durable: boolean, inFlight = IN_FLIGHT): Promise<LoadRun> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-local-'));
  // The recorder only notes when each readings object was stored; reading them back
  // waits until the run is over, so it takes no CPU from the runtime being measured.
  const written: { at: number; body: Buffer }[] = [];
  const recorder = (store: ObjectStore): ObjectStore => ({
    async put(key, body, contentType, encoding) {
      await store.put(key, body, contentType, encoding);
      if (key.startsWith('readings/')) written.push({ at: Date.now(), body });
    },
  });
  const rt = await startLocalRuntime({
    dataDir: dir,
    mqttPort: 0,
    httpPort: 0,
    apiKey: 'bench',
    wrapLake: recorder,
    queue: { durable },
  });
  try {
    const script = fileURLToPath(new URL('local-load.ts', import.meta.url));
    const { stdout } = await exec(
      process.execPath,
      ['--import', 'tsx', script, ...[rt.mqttPort, DEVICES, DURATION_MS, rate, inFlight].map(String)],
      { maxBuffer: 1024 * 1024 },
    );
    const { sent, startedAt, publishMs } = JSON.parse(stdout) as {
      sent: number;
      startedAt: number;
      publishMs: number;
    };
    await rt.queue.idle();
    const loadEnd = startedAt + publishMs;
    let storedDuringLoad = 0;
    const latencies: number[] = [];
    const stored = new Set<string>();
    for (const { at, body } of written) {
      for (const line of gunzipSync(body).toString('utf8').split('\n')) {
        if (!line) continue;
        const row = JSON.parse(line) as { device_id: string; time: string; metric: string };
        if (row.metric !== 'seq') continue;
        const key = `${row.device_id}@${row.time}`;
        if (stored.has(key)) continue;
        stored.add(key);
        if (at <= loadEnd) storedDuringLoad++;
        latencies.push(at - Date.parse(`${row.time.replace(' ', 'T')}Z`));
      }
    }
    latencies.sort((a, b) => a - b);
    return {
      sent,
      offered: sent / (publishMs / 1000),
      // What is still on its way when the devices stop does not count: keeping up shows just below the offered rate.
      stored: storedDuringLoad / (publishMs / 1000),
      lost: sent - stored.size,
      pct: (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0,
    };
  } finally {
    await rt.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The crash run on a fresh folder. */
async function crash(durable: boolean): Promise<CrashReport> {
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-crash-'));
  try {
    return await crashRun({ dataDir, seed: CRASH_SEED, kills: CRASH_KILLS, maxLifeMs: 1500, durable });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult[]> {
  // Each pair back to back, the journal first, so that drift on a noisy machine touches both alike.
  const latency = { durable: await load(LATENCY_RATE, true), plain: await load(LATENCY_RATE, false) };
  const paced = { durable: await load(THROUGHPUT_RATE, true), plain: await load(THROUGHPUT_RATE, false) };
  const flat = { durable: await load(0, true), plain: await load(0, false) };
  const serial = {
    durable: await load(THROUGHPUT_RATE, true, 1),
    plain: await load(THROUGHPUT_RATE, false, 1),
  };
  const crashed = { durable: await crash(true), plain: await crash(false) };
  const runs = [latency, paced, flat, serial].flatMap((pair) => [pair.durable, pair.plain]);
  const lost = runs.reduce((sum, r) => sum + r.lost, 0);
  const sent = runs.reduce((sum, r) => sum + r.sent, 0);
  const percentile = (p: number) => ({ value: latency.durable.pct(p), baseline: latency.plain.pct(p) });
  const p50 = percentile(0.5);
  const p99 = percentile(0.99);
  return [
    {
      name: 'local.e2e.throughput',
      value: Math.round(paced.durable.stored),
      unit: 'msg/s stored',
      // The same run with the journal off.
      baseline: Math.round(paced.plain.stored),
      ratio: paced.durable.stored / paced.plain.stored,
      target: `>= 0.8x without the journal (offered ${Math.round(paced.durable.offered)} and ${Math.round(paced.plain.offered)} msg/s)`,
      met: paced.durable.stored >= 0.8 * paced.plain.stored,
    },
    {
      name: 'local.e2e.p50_ms',
      value: p50.value,
      unit: `ms publish to stored at ${LATENCY_RATE} msg/s`,
      baseline: p50.baseline,
      ratio: p50.value / Math.max(1, p50.baseline),
      target: 'none (see p99)',
      met: true,
    },
    {
      name: 'local.e2e.p99_ms',
      value: p99.value,
      unit: `ms publish to stored at ${LATENCY_RATE} msg/s`,
      baseline: p99.baseline,
      ratio: p99.value / Math.max(1, p99.baseline),
      target: '<= 1000 ms',
      met: p99.value <= 1000,
    },
    {
      name: 'local.e2e.lost',
      value: lost,
      unit: `messages of ${sent}, all eight runs`,
      baseline: 0,
      ratio: lost === 0 ? 0 : 1,
      target: '0',
      met: lost === 0,
    },
    {
      name: 'local.e2e.max_throughput',
      value: Math.round(flat.durable.stored),
      unit: 'msg/s stored',
      baseline: Math.round(flat.plain.stored),
      ratio: flat.durable.stored / flat.plain.stored,
      target: `none (devices as fast as they can; p99 ${flat.durable.pct(0.99)} ms, ${flat.plain.pct(0.99)} ms without the journal)`,
      met: true,
    },
    {
      name: 'local.e2e.serial_throughput',
      value: Math.round(serial.durable.stored),
      unit: 'msg/s stored',
      baseline: Math.round(serial.plain.stored),
      ratio: serial.durable.stored / serial.plain.stored,
      target: `none (each device waits for its PUBACK; offered ${Math.round(serial.durable.offered)} and ${Math.round(serial.plain.offered)} msg/s)`,
      met: true,
    },
    {
      name: 'local.crash.lost',
      value: crashed.durable.lost,
      unit: 'acknowledged, never stored',
      baseline: crashed.plain.lost,
      ratio: crashed.plain.lost === 0 ? 0 : crashed.durable.lost / crashed.plain.lost,
      target:
        `0 (${CRASH_KILLS} SIGKILLs, seed ${CRASH_SEED}; ${crashed.durable.acknowledged} and ` +
        `${crashed.plain.acknowledged} acknowledged; twice in readings/ ${crashed.durable.duplicated} and ${crashed.plain.duplicated})`,
      met: crashed.durable.lost === 0,
    },
  ];
}
