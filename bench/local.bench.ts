/**
 * `local.e2e.*`: the local runtime end to end. DEVICES MQTT clients publish MESSAGES
 * readings in all, QoS 1, as fast as their acknowledgements allow. Measured: messages/s
 * stored (all of them, from the first publish until the queue is idle),
 * p50/p99 publish-to-stored latency (from the reading's device time, set at publish,
 * to the moment its `readings/` object is written) and messages lost.
 * Targets: >= 5,000 msg/s, p99 < 1 s, 0 lost.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import mqtt from 'mqtt';
import type { ObjectStore } from '../lambdas/core/ports.ts';
import { startLocalRuntime } from '../local/runtime.ts';
import type { BenchResult } from './types.ts';

const DEVICES = 20;
const MESSAGES = 10_000;

export async function run(): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-local-'));
  const latencies: number[] = [];
  const stored = new Set<string>();
  const recorder = (store: ObjectStore): ObjectStore => ({
    async put(key, body, contentType, encoding) {
      await store.put(key, body, contentType, encoding);
      if (!key.startsWith('readings/')) return;
      const at = Date.now();
      for (const line of gunzipSync(body).toString('utf8').split('\n')) {
        if (!line) continue;
        const row = JSON.parse(line) as { device_id: string; time: string; metric: string };
        if (row.metric !== 'seq') continue;
        const key = `${row.device_id}@${row.time}`;
        if (stored.has(key)) continue;
        stored.add(key);
        latencies.push(at - Date.parse(`${row.time.replace(' ', 'T')}Z`));
      }
    },
  });
  const rt = await startLocalRuntime({
    dataDir: dir,
    mqttPort: 0,
    httpPort: 0,
    apiKey: 'bench',
    queue: { batchSize: 100, batchWindowMs: 20 },
    wrapLake: recorder,
  });
  let sent = 0;
  try {
    const clients = await Promise.all(
      Array.from({ length: DEVICES }, (_, i) =>
        mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: `load-${i}` }),
      ),
    );
    const started = Date.now();
    await Promise.all(
      clients.map(async (client, i) => {
        let seq = 0;
        let last = 0;
        for (let n = 0; n < MESSAGES / DEVICES; n++) {
          // Distinct device times: one message per device per millisecond at most.
          let ts = Date.now();
          if (ts <= last) ts = last + 1;
          last = ts;
          await client.publishAsync(`dt/load/load-${i}`, JSON.stringify({ $ts: ts, seq: seq++, temp: 20 }), {
            qos: 1,
          });
          sent++;
        }
      }),
    );
    const publishedIn = (Date.now() - started) / 1000;
    await Promise.all(clients.map((c) => c.endAsync()));
    await rt.queue.idle();
    const elapsed = (Date.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
    const throughput = stored.size / elapsed;
    const lost = sent - stored.size;
    return [
      {
        name: 'local.e2e.throughput',
        value: Math.round(throughput),
        unit: 'msg/s stored',
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
