// Temporary profiling script (not committed): request timeline of the device page.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRuntime } from '../local/runtime.ts';
import { chromiumPath, launchChromium } from '../test/support/chromium.ts';

const KEY = 'bench-key-0123456789';
const MINUTE = 60_000;
const DEVICES = Number(process.env.DEVICES ?? 10000);
const dataDir = await mkdtemp(join(tmpdir(), 'iot-prof-console-'));
const rt = await startLocalRuntime({ dataDir, mqttPort: 0, httpPort: 0, apiKey: KEY });
const base = `http://127.0.0.1:${rt.httpPort}`;
const post = async (readings: object[], type: string) => {
  const r = await fetch(`${base}/v1/telemetry?type=${type}`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(readings) });
  if (r.status !== 202) throw new Error(String(r.status));
};
try {
  const now = Date.now();
  for (let i = 0; i < DEVICES; i += 1000)
    await post(Array.from({ length: 1000 }, (_, j) => ({ $id: `dev-${String(i + j).padStart(5, '0')}`, temp: 18, battery: 3, rssi: -70 })), i % 2000 === 0 ? 'thermo' : 'meter');
  const minutes = 7 * 1440;
  for (let i = 0; i < minutes; i += 1000)
    await post(Array.from({ length: Math.min(1000, minutes - i) }, (_, j) => ({ $id: 'chart-1', $ts: now - (minutes - i - j) * MINUTE, temp: 20 + Math.sin((i + j) / 200) * 3, battery: 3.6 - (i + j) / minutes })), 'thermo');
  while ((await rt.registry.list()).length < DEVICES + 1 || rt.queue.stats().pending > 0) await new Promise((r) => setTimeout(r, 250));
  await fetch(`${base}/console/main.js`);
  const browser = await launchChromium(chromiumPath() as string);
  for (let run = 0; run < Number(process.env.RUNS ?? 3); run++) {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    let t0 = 0;
    const starts = new Map<object, number>();
    const log: string[] = [];
    page.on('request', (r) => starts.set(r, performance.now()));
    page.on('requestfinished', (r) => {
      const s = starts.get(r) ?? 0;
      if (t0) log.push(`${Math.round(s - t0)}..${Math.round(performance.now() - t0)} ${r.url().replace(base, '').slice(0, 110)}`);
    });
    await page.goto(`${base}/`);
    await page.waitForSelector('#estate-table tbody tr');
    t0 = performance.now();
    const wall = Date.now();
    await page.goto(`${base}/#/device/chart-1`);
    await page.waitForSelector('#charts[data-drawn] figure[data-metric=temp]', { timeout: 60_000 });
    const total = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 1500));
    const drawnAt = Number(await page.getAttribute('#charts', 'data-drawn'));
    console.log(`run ${run}: ${Math.round(total)} ms; data-drawn set at ${drawnAt - wall} ms`);
    for (const l of log) console.log('  ', l);
    console.log('  points', await page.$$eval('figure.chart', (fs) => fs.map((f) => `${f.dataset.metric}:${f.dataset.points}`)));
    await page.close();
  }
  await browser.close();
} finally {
  await rt.close();
  await rm(dataDir, { recursive: true, force: true });
}
