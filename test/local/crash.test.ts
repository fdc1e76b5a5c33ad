/**
 * Crash consistency: the local runtime, in a process of its own, killed with SIGKILL at
 * seeded random moments while MQTT devices (QoS 1) and HTTP callers send to it, and
 * started again on the same data folder each time (`test/support/crash-harness.ts`).
 * Afterwards, with one clean start to store what was queued: every acknowledged message
 * (PUBACK, 202) is stored once in `readings/` and in `timeseries`, or quarantined, or
 * dead-lettered. Lost 0, duplicates 0.
 *
 * And a full disk, end to end: the data folder on a 20 MB tmpfs, filled while messages
 * arrive. The runtime stays up, answers 503 with Retry-After instead of acknowledging,
 * takes messages again once space is freed, and loses nothing it acknowledged. (The
 * queue's and the journal's own disk-full cases are unit tests: `queue.test.ts`, `journal.test.ts`.)
 */
import { execFileSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import {
  account,
  type CrashReport,
  crashRun,
  describeLife,
  freePort,
  Ledger,
  type RuntimeChild,
  startRuntimeChild,
} from '../support/crash-harness.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function summary(report: CrashReport): string {
  return (
    `seed ${report.seed}, ${report.kills} kills (lives ${report.lives.map(describeLife).join(', ')}), ${report.sent} sent, ` +
    `${report.acknowledged} acknowledged: lost ${report.lost}` +
    `${report.lost > 0 ? ` (by life ${report.lostByLife.join(', ')}; e.g. n = ${report.lostSample.join(', ')})` : ''}, ` +
    `in readings/ twice ${report.duplicated}, missing from timeseries ${report.missingFromTimeseries}, ` +
    `quarantined ${report.quarantined}, dead-lettered ${report.deadLettered}, ` +
    `stored though unacknowledged ${report.storedUnacknowledged}; ${Math.round(report.elapsedMs / 1000)} s`
  );
}

describe('crash consistency: SIGKILL under load loses nothing acknowledged', () => {
  // Two seeds, 22 kills in all, half of them timed (long lives: amid batches being written;
  // short ones: while the last life's messages are taken back and stored on start), half
  // as a `readings/` object is renamed into place, before the queue has settled its batch.
  it.each([
    { seed: 19, kills: 11, maxLifeMs: 1500 },
    { seed: 1919, kills: 11, maxLifeMs: 400 },
  ])(
    'seed $seed: $kills SIGKILLs, lives up to $maxLifeMs ms: nothing acknowledged lost or stored twice',
    { timeout: 120_000 },
    async ({ seed, kills, maxLifeMs }) => {
      const dataDir = await mkdtemp(join(tmpdir(), 'crash-'));
      try {
        const report = await crashRun({ dataDir, seed, kills, maxLifeMs });
        console.log(`crash: ${summary(report)}`);
        expect(report.acknowledged, 'the load reached the runtime').toBeGreaterThan(kills * 20);
        expect({
          lost: report.lost,
          duplicated: report.duplicated,
          missingFromTimeseries: report.missingFromTimeseries,
        }).toEqual({ lost: 0, duplicated: 0, missingFromTimeseries: 0 });
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  );
});

describe('a full disk under load', () => {
  it('answers 503 with Retry-After while full, stays up, takes messages again once space is freed, and loses nothing acknowledged', {
    timeout: 90_000,
  }, async ({ skip }) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'disk-full-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', dataDir], { stdio: 'pipe' });
    } catch (error) {
      await rm(dataDir, { recursive: true, force: true });
      const why = String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim();
      console.log(`disk full: skipped, cannot mount a 20 MB tmpfs here (${why})`);
      return skip();
    }
    let child: RuntimeChild | undefined;
    try {
      const [mqttPort, httpPort] = [await freePort(), await freePort()];
      // Throttles out of the way: the callers are to fill the disk, not to meet the 429s.
      const config = {
        http: {
          throttleRateLimit: 10_000,
          throttleBurstLimit: 5000,
          keyRateLimit: 10_000,
          keyBurstLimit: 5000,
        },
      };
      child = await startRuntimeChild({ dataDir, mqttPort, httpPort, config });
      const { ingestKey } = child;
      // All but 2 MB taken at once: messages fill the rest within seconds.
      const filler = join(dataDir, 'filler');
      const { bavail, bsize } = statfsSync(dataDir);
      const handle = await open(filler, 'w');
      await handle.write(Buffer.alloc(Math.max(0, bavail * bsize - 2 * 1024 * 1024)));
      await handle.close();

      const ledger = new Ledger();
      ledger.newLife();
      const statuses = new Map<number, number>();
      let retryAfter: string | null = null;
      let lastStatus = 0;
      let sending = true;
      const callers = Array.from({ length: 4 }, async (_, i) => {
        const id = `full-h${i}`;
        while (sending) {
          const { n, ts } = ledger.message(id);
          // A string makes each message about 1 KB: the disk fills sooner.
          const body = JSON.stringify({ $id: id, $ts: ts, n, note: 'x'.repeat(900) });
          try {
            const response = await fetch(`http://127.0.0.1:${httpPort}/v1/telemetry`, {
              method: 'POST',
              headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/json' },
              body,
              signal: AbortSignal.timeout(10_000),
            });
            await response.arrayBuffer();
            statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
            lastStatus = response.status;
            if (response.status === 202) ledger.acknowledged.add(n);
            if (response.status === 503) {
              retryAfter = response.headers.get('retry-after');
              await sleep(100);
            }
          } catch {
            await sleep(100);
          }
        }
      });
      const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
        clientId: 'full-0',
        reconnectPeriod: 200,
      });
      device.on('error', () => {});
      const publishing = (async () => {
        while (sending) {
          const { n, ts } = ledger.message('full-0');
          const sent = device.publishAsync('dt/crash/full-0', JSON.stringify({ $ts: ts, n }), { qos: 1 });
          // A PUBACK that does not come within a second is not counted; the next message goes.
          const acked = await Promise.race([
            sent.then(
              () => true,
              () => false,
            ),
            sleep(1000).then(() => false),
          ]);
          if (acked) ledger.acknowledged.add(n);
          else await sleep(50);
        }
      })();
      const until = async (what: string, done: () => boolean, ms: number) => {
        for (const end = Date.now() + ms; !done(); await sleep(50))
          if (Date.now() > end)
            throw new Error(`${what} within ${ms} ms; statuses ${JSON.stringify([...statuses])}`);
      };

      await until('no 503 while the disk filled', () => statuses.has(503), 30_000);
      // Full for a while longer: still up, still refusing.
      await sleep(2000);
      expect(child.process.exitCode, child.stderr()).toBeNull();
      expect(retryAfter).toMatch(/^\d+$/);
      const acknowledgedWhileFull = ledger.acknowledged.size;

      await rm(filler);
      const before202 = statuses.get(202) ?? 0;
      await until(
        'no 202 after space was freed',
        () => (statuses.get(202) ?? 0) > before202 + 20 && lastStatus === 202,
        20_000,
      );
      sending = false;
      await Promise.all([...callers, publishing]);
      await device.endAsync(true);
      child.process.kill('SIGTERM');
      const exit = await Promise.race([child.exited, sleep(30_000).then(() => undefined)]);
      if (!exit) child.process.kill('SIGKILL');
      expect(exit, `a clean stop after the disk was full: ${child.stderr().slice(-2000)}`).toEqual({
        code: 0,
        signal: null,
      });

      const report = await account(dataDir, ledger);
      console.log(
        `disk full: statuses ${JSON.stringify(Object.fromEntries(statuses))}, Retry-After ${retryAfter}, ` +
          `${acknowledgedWhileFull} acknowledged before space was freed, ${report.acknowledged} in all of ${report.sent}: ` +
          `lost ${report.lost}, twice ${report.duplicated}, missing from timeseries ${report.missingFromTimeseries}, ` +
          `dead-lettered ${report.deadLettered}`,
      );
      expect({
        lost: report.lost,
        duplicated: report.duplicated,
        missingFromTimeseries: report.missingFromTimeseries,
      }).toEqual({ lost: 0, duplicated: 0, missingFromTimeseries: 0 });
    } finally {
      if (child && child.process.exitCode === null && child.process.signalCode === null) {
        child.process.kill('SIGKILL');
        await child.exited;
      }
      execFileSync('umount', ['-l', dataDir], { stdio: 'pipe' });
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
