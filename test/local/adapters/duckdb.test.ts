import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeviceRecord } from '../../../lambdas/core/estate/alerts.ts';
import type { Reading } from '../../../lambdas/core/reading.ts';
import { duckdbRegistry, duckdbTimeSeries, TIME_SERIES_TABLE } from '../../../local/adapters/duckdb.ts';

let instance: DuckDBInstance;
let connection: DuckDBConnection;
beforeEach(async () => {
  instance = await DuckDBInstance.create(':memory:');
  connection = await instance.connect();
});
afterEach(() => {
  connection.closeSync();
  instance.closeSync();
});

const record = (deviceId: string, version: number, lastSeen = 1000): DeviceRecord => ({
  deviceId,
  deviceType: 'thermo',
  attributes: {},
  firstSeen: 1000,
  lastSeen,
  lastValues: { temp: 20 },
  lostMessages: 0,
  alerts: {},
  version,
});

describe('duckdbRegistry', () => {
  it('writes a record only if nobody wrote since it was read (0: only if none is stored)', async () => {
    const registry = await duckdbRegistry(connection);
    expect(await registry.put(record('a', 1), 0)).toBe(true);
    expect(await registry.put(record('a', 1, 2000), 0)).toBe(false);
    expect(await registry.put(record('a', 2, 3000), 1)).toBe(true);
    expect(await registry.put(record('a', 2, 4000), 1)).toBe(false);
    expect((await registry.get(['a', 'missing'])).get('a')).toEqual(record('a', 2, 3000));
  });

  it('applies the puts of one moment together, each on its own condition', async () => {
    const registry = await duckdbRegistry(connection);
    await registry.put(record('b', 1), 0);
    const results = await Promise.all([
      registry.put(record('a', 1), 0),
      registry.put(record('b', 2, 2000), 1),
      registry.put(record('c', 5), 4), // c was never stored: version 4 is stale
      // The same device twice at once: the first wins, the second finds version 1 gone.
      registry.put(record('d', 1, 1000), 0),
      registry.put(record('d', 1, 9000), 0),
    ]);
    expect(results).toEqual([true, true, false, true, false]);
    const stored = await registry.list();
    expect(stored.map((r) => [r.deviceId, r.version, r.lastSeen])).toEqual([
      ['a', 1, 1000],
      ['b', 2, 2000],
      ['d', 1, 1000],
    ]);
  });

  it('fails every put of a round when the database does, and stores none of them', async () => {
    const registry = await duckdbRegistry(connection);
    await connection.run('DROP TABLE devices');
    await expect(
      Promise.all([registry.put(record('a', 1), 0), registry.put(record('b', 1), 0)]),
    ).rejects.toThrow();
    await connection.run(
      'CREATE TABLE devices (device_id VARCHAR PRIMARY KEY, device_type VARCHAR, last_seen TIMESTAMP, version BIGINT, record JSON)',
    );
    // The staging table is clean again: the next round is not polluted by the failed one.
    expect(await registry.put(record('c', 1), 0)).toBe(true);
    expect((await registry.list()).map((r) => r.deviceId)).toEqual(['c']);
  });
});

describe('duckdbTimeSeries', () => {
  const reading = (time: number, metrics: Reading['metrics']): Reading => ({
    deviceId: 'dev-1',
    deviceType: 'thermo',
    source: 'mqtt',
    time,
    receivedAt: time,
    messageId: `m-${time}`,
    key: `ts:${time}`,
    metrics,
  });

  it('stores one row per metric, typed, and a reading written twice once', async () => {
    const sink = await duckdbTimeSeries(connection);
    const first = reading(Date.parse('2026-11-25T06:00:00Z'), { temp: 21.5, door: true, fw: '1.2' });
    expect(await sink.write([first])).toEqual([]);
    expect(await sink.write([first, reading(first.time + 1000, { temp: 22 })])).toEqual([]);
    const rows = (
      await connection.runAndReadAll(
        `SELECT strftime(time, '%H:%M:%S') AS t, metric, value, value_str, value_bool FROM ${TIME_SERIES_TABLE} ORDER BY time, metric`,
      )
    ).getRowObjectsJson();
    expect(rows).toEqual([
      { t: '06:00:00', metric: 'door', value: null, value_str: null, value_bool: true },
      { t: '06:00:00', metric: 'fw', value: null, value_str: '1.2', value_bool: null },
      { t: '06:00:00', metric: 'temp', value: 21.5, value_str: null, value_bool: null },
      { t: '06:00:01', metric: 'temp', value: 22, value_str: null, value_bool: null },
    ]);
  });
});
