/**
 * The local runtime compacts its lake on a timer, as the stack's schedule does on AWS
 * (`lambdas/core/lake/compaction.ts`): small `readings/` objects of today merged into
 * one per hour, a copy across objects dropped, a corrupt object left where it is, and
 * ingest going on meanwhile.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { lakeTimestamp } from '../../lambdas/core/lake/tables.ts';
import { folderStore } from '../../local/adapters/folder-store.ts';
import { dataPaths } from '../../local/data-dir.ts';
import { type LocalRuntime, startLocalRuntime } from '../../local/runtime.ts';

const API_KEY = 'test-key-0123456789';
const NOW = Date.now();
// The seeded objects are the last hour's, closed: an hour still filling is merged into a
// piece per run, and its pieces into one once it has closed (compaction.ts).
const SEEDED = NOW - 3_600_000;
const day = new Date(SEEDED).toISOString().slice(0, 10);
const hour = new Date(SEEDED).toISOString().slice(11, 13);
const today = new Date(NOW).toISOString().slice(0, 10);
const partition = `readings/dt=${day}/hour=${hour}/`;
const other = hour === '00' ? '01' : '00';
const otherHour = `readings/dt=${day}/hour=${other}/`;

const line = (device: string, minute: number, message: string) =>
  JSON.stringify({
    device_id: device,
    device_type: 'thermo',
    time: `${day} ${hour}:${String(minute).padStart(2, '0')}:00.000`,
    metric: 'temp',
    value: minute,
    source: 'http',
    received_at: lakeTimestamp(SEEDED),
    message_id: message,
  });
const gz = (lines: string[]) => gzipSync(`${lines.join('\n')}\n`);

describe('local runtime: compaction on a timer', () => {
  let dir: string;
  let rt: LocalRuntime;
  const logged: string[] = [];
  const corrupt = Buffer.from('not gzip at all');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iot-compaction-'));
    // What the ingest path left in earlier batches: three small objects, one row in two of them.
    const lake = folderStore(dataPaths(dir).lakeDir);
    await lake.put(`${partition}a.ndjson.gz`, gz([line('d1', 0, 'm1'), line('d1', 1, 'm1')]), '', 'gzip');
    await lake.put(`${partition}b.ndjson.gz`, gz([line('d1', 1, 'm1'), line('d2', 1, 'm2')]), '', 'gzip');
    await lake.put(`${partition}c.ndjson.gz`, gz([line('d3', 2, 'm3')]), '', 'gzip');
    await lake.put(`${otherHour}bad.ndjson.gz`, corrupt, '', 'gzip');
    await lake.put(`${otherHour}good1.ndjson.gz`, gz([line('d4', 3, 'm4')]), '', 'gzip');
    await lake.put(`${otherHour}good2.ndjson.gz`, gz([line('d4', 4, 'm5')]), '', 'gzip');
    rt = await startLocalRuntime({
      dataDir: dir,
      mqttPort: 0,
      httpPort: 0,
      apiKey: API_KEY,
      queue: { batchWindowMs: 20, retryDelayMs: 20 },
      compaction: { everyMs: 100, minAgeMs: 0 },
      log: (l) => logged.push(l),
    });
  }, 60_000);

  afterAll(async () => {
    await rt?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('merges each partition into one object, each reading once, and leaves the corrupt one in place', async () => {
    // Ingest goes on beside it: two batches of today's readings.
    for (const temp of [1, 2]) {
      const response = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/telemetry`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ $id: `live-${temp}`, temp }),
      });
      expect(response.status).toBe(202);
    }
    const lake = folderStore(rt.lakeDir);
    await vi.waitFor(
      async () => {
        const keys = await lake.list(partition);
        expect(keys.filter((k) => !k.includes('/compacted-'))).toEqual([]);
        expect(keys).toHaveLength(1);
        // The corrupt object stays, the other two merged into one.
        expect(await lake.list(otherHour)).toHaveLength(2);
        const { rows } = await rt.query(
          `SELECT count(*)::INTEGER AS n, count(DISTINCT device_id || time::VARCHAR)::INTEGER AS distinct_n FROM readings WHERE dt = '${day}' AND hour = '${hour}' AND metric = 'temp' AND device_id LIKE 'd%'`,
        );
        // Four seeded readings in this hour, the copy dropped (the corrupt hour is not opened).
        expect(rows[0]).toEqual({ n: 4, distinct_n: 4 });
        // The live readings are stored once each, whichever object holds them now.
        const live = await rt.query(
          `SELECT device_id, count(*)::INTEGER AS n FROM readings WHERE dt = '${today}'${today === day ? ` AND hour <> '${other}'` : ''} AND device_id LIKE 'live-%' GROUP BY device_id ORDER BY device_id`,
        );
        expect(live.rows).toEqual([
          { device_id: 'live-1', n: 1 },
          { device_id: 'live-2', n: 1 },
        ]);
      },
      { timeout: 20_000, interval: 100 },
    );
    expect((await lake.get(`${otherHour}bad.ndjson.gz`)).equals(corrupt)).toBe(true);
    expect(logged.some((l) => l.includes(`compaction left ${otherHour}bad.ndjson.gz in place`))).toBe(true);
  }, 30_000);
});
