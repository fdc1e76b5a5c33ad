/**
 * `local.e2e.*`: the local runtime end to end. DEVICES MQTT clients, in a process of
 * their own (`local-load.ts`), publish QoS 1 readings at RATE messages a second in all
 * for DURATION_MS. Measured: messages/s stored while they send,
 * p50/p99 publish-to-stored latency (from the reading's device time, set at publish,
 * to the moment its `readings/` object is written) and messages lost.
 * Targets: >= 5,000 msg/s, p99 < 1 s, 0 lost. The runtime runs with its defaults (the
 * default config: batches of up to 2,000 messages when they wait, a 100 ms window). A second run lets
 * the devices send as fast as they can: `local.e2e.max_throughput`, the ceiling on this
 * machine, where the devices' process takes one of its cores.
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
import type { BenchResult } from './types.ts';

const DEVICES = 20;
const DURATION_MS = 8000;
/** Offered load: 10% above the target, so a pipeline that keeps up shows it. */
const RATE = 5500;
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

/** A fresh runtime with its defaults, DEVICES devices sending at `rate` (0: as fast as they can) for DURATION_MS. */
async function load(rate: number): Promise<LoadRun> {
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
  });
  try {
    const script = fileURLToPath(new URL('local-load.ts', import.meta.url));
    const { stdout } = await exec(
      process.execPath,
      ['--import', 'tsx', script, String(rt.mqttPort), String(DEVICES), String(DURATION_MS), String(rate)],
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

export async function run(): Promise<BenchResult[]> {
  const paced = await load(RATE);
  const flat = await load(0);
  const p50 = paced.pct(0.5);
  const p99 = paced.pct(0.99);
  return [
    {
      name: 'local.e2e.throughput',
      value: Math.round(paced.stored),
      unit: 'msg/s stored',
      // The offered load, as the devices managed to send it.
      baseline: Math.round(paced.offered),
      ratio: paced.stored / paced.offered,
      target: '>= 5000 msg/s',
      met: paced.stored >= 5000,
    },
    {
      name: 'local.e2e.p50_ms',
      value: p50,
      unit: 'ms publish to stored',
      baseline: 1000,
      ratio: p50 / 1000,
      target: 'none (see p99)',
      met: true,
    },
    {
      name: 'local.e2e.p99_ms',
      value: p99,
      unit: 'ms publish to stored',
      baseline: 1000,
      ratio: p99 / 1000,
      target: '< 1000 ms',
      met: p99 < 1000,
    },
    {
      name: 'local.e2e.lost',
      value: paced.lost + flat.lost,
      unit: `messages of ${paced.sent + flat.sent}`,
      baseline: 0,
      ratio: paced.lost + flat.lost === 0 ? 0 : 1,
      target: '0',
      met: paced.lost + flat.lost === 0,
    },
    {
      name: 'local.e2e.max_throughput',
      value: Math.round(flat.stored),
      unit: 'msg/s stored',
      baseline: Math.round(flat.offered),
      ratio: flat.stored / flat.offered,
      target: `none (devices as fast as they can; p99 ${flat.pct(0.99)} ms)`,
      met: true,
    },
  ];
}
