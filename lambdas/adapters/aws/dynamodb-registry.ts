import {
  type AttributeValue,
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import { coversDevice } from '../../core/access/keys.ts';
import type { DeviceRecord } from '../../core/estate/alerts.ts';
import {
  compareInOrder,
  type EstatePage,
  type EstatePosition,
  type EstateQuery,
  estateTallier,
  matchesQuery,
  type SeenRange,
  seenRanges,
} from '../../core/estate/registry-query.ts';
import type { DeviceRegistry } from '../../core/estate/update.ts';

/**
 * The registry table's index of device ids by type (`deviceType`, then `deviceId`, keys
 * only). Its keys change only when a device is first written or changes type, so it
 * costs no write on the ingest path's updates (lib/constructs/registry.ts says why).
 */
export const REGISTRY_TYPE_INDEX = 'ByType';

/** Segments of a parallel Scan: four requests at a time, each reading its quarter of the table. */
const SCAN_SEGMENTS = 4;
/** A key's devices longer than this are checked in the function, not in a DynamoDB condition (4 KB, 100 IN operands). */
const MAX_SCOPE_TERMS = 100;

type Item = Record<string, AttributeValue>;

export interface DynamodbRegistryOptions {
  /**
   * Told the read capacity units each estate read consumed (`ReturnConsumedCapacity`),
   * for the caller's log; the listing's and the tally's reads only.
   */
  readonly onReadUnits?: (units: number) => void;
}

/** The item a record is stored as: key `deviceId`, the record as JSON, and what conditions and the index read. */
export function registryItem(record: DeviceRecord): Item {
  return {
    deviceId: { S: record.deviceId },
    deviceType: { S: record.deviceType },
    lastSeen: { N: String(record.lastSeen) },
    version: { N: String(record.version) },
    record: { S: JSON.stringify(record) },
  };
}

/**
 * The device registry in DynamoDB: key `deviceId`, the record as JSON, its `version`
 * for conditional writes, and `deviceType`/`lastSeen` as plain attributes that queries
 * filter on and the type index keys. One BatchGetItem per 100 devices, one conditional
 * PutItem per device.
 *
 * A listing (`query`) takes one of three paths, by what it filters on:
 * - a type, an id prefix, the key's devices, by device id: a Query of the type index
 *   from the last position (reads about the page), then a BatchGetItem of the page;
 * - the same without a type: a parallel Scan of the type index (keys only, a tenth of
 *   the table's bytes), the page's ids picked in the function, then a BatchGetItem;
 * - status, silence, an attribute, or by last seen: a parallel Scan of the table with
 *   the filter as its FilterExpression (status and silence as `lastSeen` ranges per type),
 *   the page picked in the function. This reads the whole table on every page: DynamoDB
 *   has no index on `lastSeen` that would not be rewritten by every update (README,
 *   "The estate on DynamoDB").
 * The tally is one parallel Scan of the table.
 */
export function dynamodbRegistry(
  client: DynamoDBClient,
  table: string,
  options: DynamodbRegistryOptions = {},
): DeviceRegistry {
  const parse = (item: Record<string, { S?: string }> | undefined) =>
    item?.record?.S ? (JSON.parse(item.record.S) as DeviceRecord) : undefined;
  const consumed = (result: {
    ConsumedCapacity?: { CapacityUnits?: number } | { CapacityUnits?: number }[];
  }) => {
    if (!options.onReadUnits) return;
    const all = Array.isArray(result.ConsumedCapacity) ? result.ConsumedCapacity : [result.ConsumedCapacity];
    options.onReadUnits(all.reduce((n, c) => n + (c?.CapacityUnits ?? 0), 0));
  };
  const metered = options.onReadUnits ? { ReturnConsumedCapacity: 'TOTAL' as const } : {};

  /** Records by id, 100 keys a call, retrying what DynamoDB leaves unprocessed. */
  async function batchGet(
    deviceIds: readonly string[],
    consistent: boolean,
  ): Promise<Map<string, DeviceRecord>> {
    const records = new Map<string, DeviceRecord>();
    for (let i = 0; i < deviceIds.length; i += 100) {
      let keys: { deviceId: { S: string } }[] | undefined = deviceIds
        .slice(i, i + 100)
        .map((id) => ({ deviceId: { S: id } }));
      for (let attempt = 0; keys && keys.length > 0; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
        if (attempt === 6) throw new Error(`DynamoDB left ${keys.length} registry keys unprocessed`);
        const result = await client.send(
          new BatchGetItemCommand({
            RequestItems: { [table]: { Keys: keys, ConsistentRead: consistent } },
            ...(consistent ? {} : metered),
          }),
        );
        if (!consistent) consumed(result);
        for (const item of result.Responses?.[table] ?? []) {
          const record = parse(item as Record<string, { S?: string }>);
          if (record) records.set(record.deviceId, record);
        }
        keys = result.UnprocessedKeys?.[table]?.Keys as typeof keys;
      }
    }
    return records;
  }

  /** Every item of a parallel Scan (of the table, or of an index), handed over page by page. */
  async function scanAll(
    input: { IndexName?: string; projection: 'deviceId' | 'record'; filter: Term | undefined },
    take: (item: Item) => void,
  ): Promise<void> {
    await Promise.all(
      Array.from({ length: SCAN_SEGMENTS }, async (_, segment) => {
        let start: Item | undefined;
        do {
          const page = await client.send(
            new ScanCommand({
              TableName: table,
              ...(input.IndexName ? { IndexName: input.IndexName } : {}),
              Segment: segment,
              TotalSegments: SCAN_SEGMENTS,
              ...scanExpressions(input.projection, input.filter),
              ExclusiveStartKey: start,
              ...metered,
            }),
          );
          consumed(page);
          for (const item of page.Items ?? []) take(item);
          start = page.LastEvaluatedKey;
        } while (start);
      }),
    );
  }

  /** The page of ids after the position, picked from every id that matches (by device id). */
  async function pageOfIds(
    query: EstateQuery,
    ids: readonly string[],
    total: number | undefined,
  ): Promise<EstatePage> {
    const found = await batchGet(ids.slice(0, query.limit), false);
    // A device deleted between the two reads is left out rather than answered empty.
    const records = ids.slice(0, query.limit).flatMap((id) => {
      const record = found.get(id);
      return record ? [record] : [];
    });
    return { records, more: ids.length > query.limit, ...(total === undefined ? {} : { total }) };
  }

  return {
    get: (deviceIds, options) => batchGet(deviceIds, options?.consistent ?? true),
    async put(record, expectedVersion) {
      try {
        await client.send(
          new PutItemCommand({
            TableName: table,
            Item: registryItem(record),
            ConditionExpression:
              expectedVersion === 0 ? 'attribute_not_exists(deviceId)' : 'version = :expected',
            ...(expectedVersion === 0
              ? {}
              : { ExpressionAttributeValues: { ':expected': { N: String(expectedVersion) } } }),
          }),
        );
        return true;
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return false;
        throw error;
      }
    },
    async list() {
      const records: DeviceRecord[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        const page = await client.send(
          new ScanCommand({
            TableName: table,
            ProjectionExpression: '#r',
            ExpressionAttributeNames: { '#r': 'record' },
            ExclusiveStartKey: start as never,
          }),
        );
        for (const item of page.Items ?? []) {
          const record = parse(item as Record<string, { S?: string }>);
          if (record) records.push(record);
        }
        start = page.LastEvaluatedKey;
      } while (start);
      return records;
    },

    async query(query) {
      const ranges = seenRanges(query.filter, query.at, query.timeouts);
      const scope =
        query.devices !== undefined && query.devices.length <= MAX_SCOPE_TERMS ? query.devices : undefined;
      const onKeys =
        ranges === undefined &&
        !query.filter.tag &&
        query.sort === 'deviceId' &&
        (query.devices === undefined || scope !== undefined);
      const type = query.filter.type;
      // What the index's keys tell, checked here too (as the table's matches are): a condition
      // DynamoDB did not apply must not widen a key's view.
      const keeps = (id: string) =>
        coversDevice(query.devices, id) &&
        (query.filter.prefix === undefined || id.startsWith(query.filter.prefix));
      const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0) * (query.order === 'asc' ? 1 : -1);

      if (onKeys && type !== undefined) {
        // The type's partition of the index, in device id order, from the position on.
        const prefix = query.filter.prefix;
        const after = query.after?.deviceId;
        if (after !== undefined && prefix !== undefined && !after.startsWith(prefix)) {
          // Only a made-up token lands outside the prefix: before it, start over; past it, nothing is left.
          const beforePrefix = after < prefix === (query.order === 'asc');
          if (!beforePrefix)
            return { records: [], more: false, ...(query.count ? { total: await countType() } : {}) };
        }
        const start =
          after !== undefined && (prefix === undefined || after.startsWith(prefix))
            ? { deviceType: { S: type }, deviceId: { S: after } }
            : undefined;
        const ids: string[] = [];
        let next: Item | undefined = start;
        do {
          const page = await client.send(
            new QueryCommand({
              TableName: table,
              IndexName: REGISTRY_TYPE_INDEX,
              ...typeIndexExpressions(type, prefix, scope),
              ScanIndexForward: query.order === 'asc',
              ExclusiveStartKey: next,
              // Without a scope every item read is kept: read the page and one more, no further.
              ...(scope === undefined ? { Limit: query.limit + 1 - ids.length } : {}),
              ...metered,
            }),
          );
          consumed(page);
          for (const item of page.Items ?? []) {
            const id = item.deviceId?.S;
            if (id !== undefined && keeps(id)) ids.push(id);
          }
          next = page.LastEvaluatedKey;
        } while (next && ids.length <= query.limit);
        return pageOfIds(query, ids, query.count ? await countType() : undefined);

        async function countType(): Promise<number> {
          let count = 0;
          let from: Item | undefined;
          do {
            const page = await client.send(
              new QueryCommand({
                TableName: table,
                IndexName: REGISTRY_TYPE_INDEX,
                ...typeIndexExpressions(type as string, prefix, scope),
                Select: 'COUNT',
                ExclusiveStartKey: from,
                ...metered,
              }),
            );
            consumed(page);
            count += page.Count ?? 0;
            from = page.LastEvaluatedKey;
          } while (from);
          return count;
        }
      }

      if (onKeys) {
        // Every id of the index (keys only), the page's picked here.
        const after = query.after?.deviceId;
        const picked = topK<string>(query.limit + 1, byId);
        let total = 0;
        await scanAll(
          {
            IndexName: REGISTRY_TYPE_INDEX,
            projection: 'deviceId',
            filter: allOf(
              query.filter.prefix === undefined ? undefined : idStartsWith(query.filter.prefix),
              scope && inScope(scope),
            ),
          },
          (item) => {
            const id = item.deviceId?.S;
            if (id === undefined || !keeps(id)) return;
            total++;
            if (after === undefined || byId(id, after) > 0) picked.add(id);
          },
        );
        return pageOfIds(query, picked.sorted(), query.count ? total : undefined);
      }

      // The table, filtered by DynamoDB (the attribute's pair narrowed by `contains` on the
      // record's JSON, then checked exactly here, with everything else, on what comes back).
      const picked = topK<DeviceRecord>(query.limit + 1, (a, b) =>
        compareInOrder(a, b, query.sort, query.order),
      );
      let total = 0;
      // Counting needs every match; a page alone only those after the position.
      const position = query.count ? undefined : query.after;
      await scanAll(
        {
          projection: 'record',
          filter: allOf(
            type === undefined ? undefined : typeIs(type),
            query.filter.prefix === undefined ? undefined : idStartsWith(query.filter.prefix),
            query.filter.tag ? recordHasPair(query.filter.tag.key, query.filter.tag.value) : undefined,
            scope && inScope(scope),
            ranges && seenIn(ranges),
            position && afterPosition(position, query),
          ),
        },
        (item) => {
          const record = parse(item as Record<string, { S?: string }>);
          if (!record || !matchesQuery(record, query, ranges)) return;
          total++;
          if (query.after && compareInOrder(record, query.after, query.sort, query.order) <= 0) return;
          picked.add(record);
        },
      );
      const records = picked.sorted();
      return {
        records: records.slice(0, query.limit),
        more: records.length > query.limit,
        ...(query.count ? { total } : {}),
      };
    },

    async tally(query) {
      const tallier = estateTallier(query);
      const scope =
        query.devices !== undefined && query.devices.length <= MAX_SCOPE_TERMS ? query.devices : undefined;
      await scanAll({ projection: 'record', filter: scope && inScope(scope) }, (item) => {
        const record = parse(item as Record<string, { S?: string }>);
        if (record) tallier.add(record);
      });
      return tallier.result();
    },
  };
}

/** The names and values of one request's expressions, each `:vN` numbered in the order used. */
class Expression {
  readonly names: Record<string, string> = {};
  readonly values: Item = {};
  /** `#deviceId` for `deviceId`: the registry's attribute names are plain identifiers. */
  name(attribute: 'deviceId' | 'deviceType' | 'lastSeen' | 'record'): string {
    this.names[`#${attribute}`] = attribute;
    return `#${attribute}`;
  }
  value(v: AttributeValue): string {
    const name = `:v${Object.keys(this.values).length}`;
    this.values[name] = v;
    return name;
  }
  /** What a request carries for these expressions (values only when some are used). */
  attributes() {
    return {
      ExpressionAttributeNames: this.names,
      ...(Object.keys(this.values).length > 0 ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}

/** A condition, written into an {@link Expression}. */
type Term = (e: Expression) => string;

function allOf(...terms: (Term | undefined)[]): Term | undefined {
  const present = terms.filter((t): t is Term => t !== undefined);
  return present.length === 0 ? undefined : (e) => present.map((t) => t(e)).join(' AND ');
}

const typeIs =
  (type: string): Term =>
  (e) =>
    `${e.name('deviceType')} = ${e.value({ S: type })}`;

const idStartsWith =
  (prefix: string): Term =>
  (e) =>
    `begins_with(${e.name('deviceId')}, ${e.value({ S: prefix })})`;

/** A key=value pair of the record's attributes, as the record's JSON spells it: a superset, checked exactly after. */
const recordHasPair =
  (key: string, text: string): Term =>
  (e) =>
    `contains(${e.name('record')}, ${e.value({ S: `${JSON.stringify(key)}:${JSON.stringify(text)}` })})`;

/** The key's devices: ids as `IN` lists of at most 100, prefixes as `begins_with`. */
const inScope =
  (devices: readonly string[]): Term =>
  (e) => {
    const id = e.name('deviceId');
    const terms = devices
      .filter((d) => d.endsWith('*'))
      .map((d) => `begins_with(${id}, ${e.value({ S: d.slice(0, -1) })})`);
    const ids = devices.filter((d) => !d.endsWith('*'));
    if (ids.length > 0) terms.push(`${id} IN (${ids.map((d) => e.value({ S: d })).join(', ')})`);
    if (terms.length === 0) return `attribute_not_exists(${id})`;
    return terms.length === 1 ? (terms[0] as string) : `(${terms.join(' OR ')})`;
  };

/**
 * Status and silence: one arm per group of types, each a `lastSeen` range. Parentheses
 * only where they group something: DynamoDB refuses `((...))` as redundant.
 */
const seenIn =
  (ranges: readonly SeenRange[]): Term =>
  (e) => {
    if (ranges.length === 0) return `attribute_not_exists(${e.name('deviceId')})`;
    const arms = ranges.map((range) => {
      const parts: string[] = [];
      const types = (list: readonly string[]) => list.map((t) => e.value({ S: t })).join(', ');
      if (range.types) parts.push(`${e.name('deviceType')} IN (${types(range.types)})`);
      if (range.otherThan) parts.push(`NOT ${e.name('deviceType')} IN (${types(range.otherThan)})`);
      if (range.from !== undefined)
        parts.push(`${e.name('lastSeen')} >= ${e.value({ N: String(range.from) })}`);
      if (range.before !== undefined)
        parts.push(`${e.name('lastSeen')} < ${e.value({ N: String(range.before) })}`);
      return parts.length === 0 ? [`attribute_exists(${e.name('deviceId')})`] : parts;
    });
    const [only] = arms;
    if (arms.length === 1 && only) return only.join(' AND ');
    return `(${arms.map((parts) => (parts.length > 1 ? `(${parts.join(' AND ')})` : parts[0])).join(' OR ')})`;
  };

/** Strictly after the position in the query's order. */
const afterPosition =
  (position: EstatePosition, query: Pick<EstateQuery, 'sort' | 'order'>): Term =>
  (e) => {
    const op = query.order === 'asc' ? '>' : '<';
    const id = e.name('deviceId');
    const afterId = e.value({ S: position.deviceId });
    if (query.sort === 'deviceId') return `${id} ${op} ${afterId}`;
    const seen = e.name('lastSeen');
    const afterSeen = e.value({ N: String(position.lastSeen) });
    return `(${seen} ${op} ${afterSeen} OR (${seen} = ${afterSeen} AND ${id} ${op} ${afterId}))`;
  };

/** A Scan's projection and FilterExpression. */
function scanExpressions(projection: 'deviceId' | 'record', filter: Term | undefined) {
  const e = new Expression();
  const ProjectionExpression = e.name(projection);
  const FilterExpression = filter?.(e);
  return { ProjectionExpression, ...(FilterExpression ? { FilterExpression } : {}), ...e.attributes() };
}

/** The type index's key condition (the type, an id prefix), and the key's devices as its filter. */
function typeIndexExpressions(
  type: string,
  prefix: string | undefined,
  scope: readonly string[] | undefined,
) {
  const e = new Expression();
  const KeyConditionExpression = (
    allOf(typeIs(type), prefix === undefined ? undefined : idStartsWith(prefix)) as Term
  )(e);
  const FilterExpression = scope && inScope(scope)(e);
  return { KeyConditionExpression, ...(FilterExpression ? { FilterExpression } : {}), ...e.attributes() };
}

/**
 * The `k` first items in an order, from items arriving in any order: kept sorted in
 * batches, so memory stays about `k` whatever the table holds.
 */
function topK<T>(k: number, compare: (a: T, b: T) => number): { add(item: T): void; sorted(): T[] } {
  let items: T[] = [];
  const trim = () => {
    items.sort(compare);
    items = items.slice(0, k);
  };
  return {
    add(item) {
      items.push(item);
      if (items.length >= 4 * k + 1000) trim();
    },
    sorted() {
      trim();
      return items;
    },
  };
}
