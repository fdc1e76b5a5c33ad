/**
 * The DuckDB registry's estate queries (`GET /v1/devices`, `GET /v1/estate` locally):
 * filters, order and position in SQL, checked against the reference over the same
 * records in memory for any records and any query.
 */
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceRecord } from '../../../lambdas/core/estate/alerts.ts';
import { tallyRecords } from '../../../lambdas/core/estate/registry-query.ts';
import type { DeviceRegistry } from '../../../lambdas/core/estate/update.ts';
import { DEVICES_TABLE, duckdbRegistry } from '../../../local/adapters/duckdb.ts';
import {
  AT,
  estateRecord,
  expectPagesLikeReference,
  HOUR,
  QUERIES,
  RECORDS,
  TIMEOUTS,
} from '../../support/estate.ts';

let instance: DuckDBInstance;
let connection: DuckDBConnection;
let registry: DeviceRegistry;
beforeAll(async () => {
  instance = await DuckDBInstance.create(':memory:');
  connection = await instance.connect();
  registry = await duckdbRegistry(connection);
});
afterAll(() => {
  connection.closeSync();
  instance.closeSync();
});

async function load(records: readonly DeviceRecord[]): Promise<void> {
  await connection.run(`DELETE FROM ${DEVICES_TABLE}`);
  await Promise.all(records.map((r) => registry.put(r, 0)));
}

describe('duckdbRegistry estate queries', () => {
  it('pages every query as the reference does: each device once, in order, counted (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        RECORDS,
        fc.array(QUERIES, { minLength: 1, maxLength: 4 }),
        async (records, queries) => {
          await load(records);
          for (const query of queries) await expectPagesLikeReference(registry, records, query);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('tallies devices by status and open alerts by rule as the reference does (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        RECORDS,
        fc.option(fc.constantFrom(['a*'], ['b*', 'A']), { nil: undefined }),
        async (records, devices) => {
          await load(records);
          const query = { at: AT, timeouts: TIMEOUTS, ...(devices ? { devices } : {}) };
          expect(await registry.tally(query)).toEqual(tallyRecords(records, query));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('reads an attribute by any key, as itself: `__proto__`, `$x`, `a/b~c`', async () => {
    const odd = JSON.parse('{"__proto__": "p", "$x": "d", "a/b~c": "s"}');
    const records = [estateRecord('odd', 'thermo', AT, odd), estateRecord('plain', 'thermo', AT)];
    await load(records);
    for (const [key, value] of [
      ['__proto__', 'p'],
      ['$x', 'd'],
      ['a/b~c', 's'],
    ] as const) {
      const page = await registry.query({
        filter: { tag: { key, value } },
        at: AT,
        timeouts: TIMEOUTS,
        sort: 'deviceId',
        order: 'asc',
        limit: 10,
        count: true,
      });
      expect(page).toMatchObject({ total: 1, records: [{ deviceId: 'odd' }] });
    }
  });

  it('counts never-heard devices and those past their own type timeout', async () => {
    await load([
      estateRecord('a', 'tracker', AT - 5 * HOUR),
      estateRecord('b', 'thermo', AT - 5 * HOUR),
      estateRecord('c', 'thermo', 0),
    ]);
    expect(await registry.tally({ at: AT, timeouts: TIMEOUTS })).toMatchObject({
      devices: 3,
      online: 1,
      offline: 1,
      never: 1,
    });
  });
});
