/**
 * The DynamoDB registry's estate queries against moto's server: the type index (keys
 * only, as lib/constructs/registry.ts makes it), Query and parallel Scan requests with
 * their key conditions and FilterExpressions, BatchGetItem of a page, checked against
 * the reference over the same records, and which requests each path sends.
 */
import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamodbRegistry, REGISTRY_TYPE_INDEX } from '../../lambdas/adapters/aws/dynamodb-registry.ts';
import type { DeviceRecord } from '../../lambdas/core/estate/alerts.ts';
import { type EstateQuery, tallyRecords } from '../../lambdas/core/estate/registry-query.ts';
import { skipWithout } from '../support/aws-tools.ts';
import {
  AT,
  estateRecord,
  expectPagesLikeReference,
  HOUR,
  QUERIES,
  RECORDS,
  TIMEOUTS,
} from '../support/estate.ts';
import { createRegistryTable, type Moto, startMoto } from '../support/moto.ts';

describe.skipIf(skipWithout('moto_server', 'botocore'))(
  'DynamoDB registry estate queries against moto',
  () => {
    let moto: Moto;
    let client: DynamoDBClient;
    /** Requests sent, by command, with the index they read; what each answered with (items kept, items read). */
    const sent: string[] = [];
    const answered: { Count?: number; ScannedCount?: number }[] = [];
    beforeAll(async () => {
      moto = await startMoto();
      client = new DynamoDBClient(moto.clientConfig);
      client.middlewareStack.add(
        (next, context) => async (args) => {
          const input = args.input as { IndexName?: string };
          sent.push(
            `${context.commandName?.replace(/Command$/, '')}${input.IndexName ? `:${input.IndexName}` : ''}`,
          );
          const result = await next(args);
          answered.push(result.output as { Count?: number; ScannedCount?: number });
          return result;
        },
        { step: 'initialize', name: 'countRequests' },
      );
    }, 60_000);
    afterAll(() => moto?.stop());

    let tables = 0;
    /** A fresh table holding these records, and the registry over it. */
    async function registryWith(records: readonly DeviceRecord[]) {
      const name = `registry-${++tables}`;
      await createRegistryTable(client, name);
      const registry = dynamodbRegistry(client, name);
      for (const r of records) expect(await registry.put(r, 0)).toBe(true);
      return { registry, drop: () => client.send(new DeleteTableCommand({ TableName: name })) };
    }

    it('pages every query as the reference does: each device once, in order, counted (property)', async () => {
      await fc.assert(
        fc.asyncProperty(
          RECORDS,
          fc.array(QUERIES, { minLength: 1, maxLength: 4 }),
          async (records, queries) => {
            const { registry, drop } = await registryWith(records);
            try {
              for (const query of queries) await expectPagesLikeReference(registry, records, query);
            } finally {
              await drop();
            }
          },
        ),
        { numRuns: 12 },
      );
    }, 120_000);

    it('tallies devices by status and open alerts by rule as the reference does', async () => {
      await fc.assert(
        fc.asyncProperty(RECORDS, async (records) => {
          const { registry, drop } = await registryWith(records);
          try {
            for (const devices of [undefined, ['a*'], ['b*', 'A']]) {
              const query = { at: AT, timeouts: TIMEOUTS, ...(devices ? { devices } : {}) };
              expect(await registry.tally(query)).toEqual(tallyRecords(records, query));
            }
          } finally {
            await drop();
          }
        }),
        { numRuns: 6 },
      );
    }, 120_000);

    describe('which requests each path sends', () => {
      const records = Array.from({ length: 60 }, (_, i) =>
        estateRecord(
          `d-${String(i).padStart(2, '0')}`,
          i % 3 === 0 ? 'tracker' : 'thermo',
          AT - (i % 5) * HOUR,
          {
            site: i % 2 === 0 ? 'north' : 'south',
          },
        ),
      );
      let registry: Awaited<ReturnType<typeof registryWith>>['registry'];
      beforeAll(async () => {
        ({ registry } = await registryWith(records));
      }, 60_000);
      const base: EstateQuery = {
        filter: {},
        at: AT,
        timeouts: TIMEOUTS,
        sort: 'deviceId',
        order: 'asc',
        limit: 5,
        count: false,
      };
      const requests = async (query: Partial<EstateQuery>) => {
        sent.length = 0;
        answered.length = 0;
        const page = await registry.query({ ...base, ...query });
        return { page, sent: [...sent] };
      };

      it('a type by id: one Query of the type index for the page and one more, then a BatchGetItem', async () => {
        const { page, sent } = await requests({ filter: { type: 'tracker', prefix: 'd-' } });
        expect(page.records.map((r) => r.deviceId)).toEqual(['d-00', 'd-03', 'd-06', 'd-09', 'd-12']);
        expect(sent).toEqual([`Query:${REGISTRY_TYPE_INDEX}`, 'BatchGetItem']);
        // The page and one more read from the index, no further.
        expect(answered[0]?.ScannedCount).toBe(6);
      });

      it('a type by id, resumed and counted: the Query starts at the position; the count is a Select COUNT', async () => {
        const { page, sent } = await requests({
          filter: { type: 'tracker' },
          after: { deviceId: 'd-12', lastSeen: 0 },
          order: 'desc',
          count: true,
        });
        expect(page.records.map((r) => r.deviceId)).toEqual(['d-09', 'd-06', 'd-03', 'd-00']);
        expect(page).toMatchObject({ more: false, total: 20 });
        expect(sent).toEqual([
          `Query:${REGISTRY_TYPE_INDEX}`,
          `Query:${REGISTRY_TYPE_INDEX}`,
          'BatchGetItem',
        ]);
      });

      it('every type by id: a parallel Scan of the keys-only index, then a BatchGetItem', async () => {
        const { page, sent } = await requests({ filter: { prefix: 'd-5' }, count: true });
        expect(page.records.map((r) => r.deviceId)).toEqual(['d-50', 'd-51', 'd-52', 'd-53', 'd-54']);
        expect(page.total).toBe(10);
        expect(sent.sort()).toEqual(['BatchGetItem', ...Array(4).fill(`Scan:${REGISTRY_TYPE_INDEX}`)]);
      });

      it('status, attribute or last seen: a parallel Scan of the table with the filter, no index', async () => {
        const { page, sent } = await requests({
          filter: { status: 'offline', tag: { key: 'site', value: 'north' } },
          sort: 'lastSeen',
          order: 'desc',
          count: true,
        });
        const expected = records
          .filter(
            (r) =>
              r.attributes.site === 'north' &&
              AT - r.lastSeen > (r.deviceType === 'tracker' ? 6 * HOUR : 30 * 60_000),
          )
          .sort((a, b) => b.lastSeen - a.lastSeen || (a.deviceId < b.deviceId ? 1 : -1));
        expect(page.records.map((r) => r.deviceId)).toEqual(expected.slice(0, 5).map((r) => r.deviceId));
        expect(page.total).toBe(expected.length);
        expect(sent).toEqual(Array(4).fill('Scan'));
      });

      it('filters in DynamoDB: the Scan hands back only the matches (status as lastSeen ranges per type)', async () => {
        const { page } = await requests({ filter: { status: 'offline' }, count: true });
        const matching = records.filter(
          (r) => AT - r.lastSeen > (r.deviceType === 'tracker' ? 6 * HOUR : 30 * 60_000),
        ).length;
        expect(page.total).toBe(matching);
        expect(answered.reduce((n, a) => n + (a.Count ?? 0), 0)).toBe(matching);
        expect(answered.reduce((n, a) => n + (a.ScannedCount ?? 0), 0)).toBe(records.length);
      });

      it('a made-up position outside the id prefix: nothing after it, or from the start', async () => {
        const query = { filter: { type: 'thermo', prefix: 'd-1' } };
        expect((await requests({ ...query, after: { deviceId: 'z', lastSeen: 0 } })).page.records).toEqual(
          [],
        );
        const restart = await requests({ ...query, after: { deviceId: 'a', lastSeen: 0 } });
        expect(restart.page.records.map((r) => r.deviceId)).toEqual(['d-10', 'd-11', 'd-13', 'd-14', 'd-16']);
      });
    });
  },
);
