/**
 * `local.e2e.*`: the local runtime end to end. DEVICES MQTT clients, in a process of
 * their own (`local-load.ts`), publish QoS 1 readings at RATE messages a second in all
 * for DURATION_MS. Measured: messages/s stored while they send,
 * p50/p99 publish-to-stored latency (from the reading's device time, set at publish,
 * to the moment its `readings/` object is written) and messages lost.
 * Targets: >= 5,000 msg/s, p99 < 1 s, 0 lost. The runtime runs with its defaults (the
 * default config: batches of up to 500 messages, a 100 ms window).
 */

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import type { ObjectStore } from '../lambdas/core/ports.ts';
import { startLocalRuntime } from '../local/runtime.ts';
import type { BenchResult } from './types.ts';

const DEVICES = 20;
const DURATION_MS = 8000;
/** Offered load: 10% above the target, so a pipeline that keeps up shows it. */
const RATE = 5500;
const exec = promisify(execFile);

export async function run(): Promise<BenchResult[]> {
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
    const { stdout } = await exec(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(new URL('local-load.ts', import.meta.url)),
        String(rt.mqttPort),
        String(DEVICES),
        String(DURATION_MS),
        String(RATE),
      ],
      { maxBuffer: 1024 * 1024 },
    );
    const { sent, startedAt, publishMs } = JSON.parse(stdout) as {
      sent: number;
      startedAt: number;
      publishMs: number;
    };
    const publishedIn = publishMs / 1000;
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
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
    // Sustained: what was stored while the devices were sending, over that time (what
    // is still on its way when they stop does not count, so keeping up shows just below the offered rate).
    const throughput = storedDuringLoad / publishedIn;
    const lost = sent - stored.size;
    return [
      {
        name: 'local.e2e.throughput',
        value: Math.round(throughput),
        unit: 'msg/s stored',
        // The offered load, as the devices managed to send it.
        baseline: Math.round(sent / publishedIn),
        ratio: throughput / (sent / publishedIn),
        target: '>= 5000 msg/s',
        met: throughput >= 5000,
      },
      {
        name: 'local.e2e.p50_ms',
        value: pct(0.5),
        unit: 'ms publish to stored',
        baseline: 1000,
        ratio: pct(0.5) / 1000,
        target: 'none (see p99)',
        met: true,
      },
      {
        name: 'local.e2e.p99_ms',
        value: pct(0.99),
        unit: 'ms publish to stored',
        baseline: 1000,
        ratio: pct(0.99) / 1000,
        target: '< 1000 ms',
        met: pct(0.99) < 1000,
      },
      {
        name: 'local.e2e.lost',
        value: lost,
        unit: `messages of ${sent}`,
        baseline: 0,
        ratio: lost === 0 ? 0 : 1,
        target: '0',
        met: lost === 0,
      },
    ];
  } finally {
    await rt.close();
    await rm(dir, { recursive: true, force: true });
  }
}
