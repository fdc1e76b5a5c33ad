/**
 * Real AWS SDK v3 clients that never leave the process: a middleware at the front of
 * each client's stack records every command with its input, meters it the way AWS
 * bills it, waits the service's typical latency (so Lambda durations come out as they
 * would) and answers in place of the service. DynamoDB is answered from an in-memory
 * table with the conditional writes the registry and the claims use, so optimistic
 * locking and duplicate detection behave as on AWS. The cost model runs the ingest
 * Lambda over these clients.
 */
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { TimestreamWriteClient } from '@aws-sdk/client-timestream-write';
import { REGISTRY_TYPE_INDEX } from '../../lambdas/adapters/aws/dynamodb-registry.ts';
import {
  type AwsPrices,
  type DynamoValue,
  dynamodbItemBytes,
  dynamodbReadUnits,
  dynamodbWriteUnits,
  meteredUnits,
  type TimestreamRecordShape,
  timestreamWriteUnits,
  type Usage,
} from './model.ts';

/** Typical in-region latency of one call, in ms, by service (what a Lambda waits for). */
export interface ServiceLatency {
  readonly s3: number;
  readonly timestream: number;
  readonly dynamodb: number;
  readonly sns: number;
  readonly sqs: number;
}

/**
 * Assumed round trips from a Lambda in the same region: an S3 PutObject of a few KB
 * ~25 ms, a Timestream WriteRecords ~30 ms, a DynamoDB single-item call ~6 ms, an
 * SNS publish ~20 ms, an SQS SendMessage ~10 ms. Only Lambda GB-seconds depend on them.
 */
export const DEFAULT_LATENCY: ServiceLatency = { s3: 25, timestream: 30, dynamodb: 6, sns: 20, sqs: 10 };

/** Calls seen, by `Service.Command`: what the run sent. */
export type CallCounts = Map<string, number>;

export interface Meter {
  readonly usage: Usage;
  readonly calls: CallCounts;
  /** The S3 objects put, by key (the last body written under each). */
  readonly objects: Map<string, Buffer>;
  /**
   * Every PutObject call, by the key's first folder (`readings/`, `raw/`, ...): how many
   * and their body bytes, rewrites of a key included (each is a PUT on the bill).
   */
  readonly puts: Map<string, { objects: number; bytes: number }>;
  /** Timestream writes the same records would have cost written one per call. */
  readonly singleRecordWrites: { units: number };
  /**
   * The SQS messages sent (SendMessage, SendMessageBatch), in order, with the queue and
   * id: what a consumer downstream (the estate function) is handed. A run takes them out.
   */
  readonly sent: { queueUrl: string; messageId: string; body: string }[];
  /**
   * Waits not slept but counted: while `on`, a call returns at once and its latency is
   * added to `ms`. For a caller whose calls are one after another (the http function's
   * request), `ms` is then the time it would have waited, without waiting it.
   */
  readonly virtualWait: { on: boolean; ms: number };
  /**
   * The in-memory DynamoDB tables, by name, items by key: what a run left there, and
   * where a measurement puts items without metering their writes.
   */
  readonly tables: Map<string, Map<string, Record<string, DynamoValue>>>;
  readonly clients: {
    readonly s3: S3Client;
    readonly timestream: TimestreamWriteClient;
    readonly dynamodb: DynamoDBClient;
    readonly sns: SNSClient;
    readonly sqs: SQSClient;
  };
}

interface Answer {
  readonly output: Record<string, unknown>;
  readonly latency: number;
}

type Responder = (command: string, input: Record<string, unknown>) => Answer;

/**
 * Clients for S3, Timestream, DynamoDB, SNS and SQS whose calls add to `usage`. `keys` names
 * the key attribute of each DynamoDB table the run uses.
 */
export function meteredClients(
  usage: Usage,
  prices: AwsPrices,
  keys: Readonly<Record<string, string>>,
  latency: ServiceLatency = DEFAULT_LATENCY,
  /**
   * Fault injection: an error to throw instead of answering a call (as the SDK throws it
   * once its own retries are spent), decided before the call has any effect.
   */
  fault?: (service: string, command: string) => Error | undefined,
): Meter {
  const calls: CallCounts = new Map();
  const objects = new Map<string, Buffer>();
  const puts = new Map<string, { objects: number; bytes: number }>();
  const singleRecordWrites = { units: 0 };
  let sqsMessages = 0;
  const sent: Meter['sent'] = [];
  const virtualWait = { on: false, ms: 0 };
  const tables = new Map<string, Map<string, Item>>();
  const dynamodb = memoryDynamo(keys, usage, tables);
  const responders: Record<string, Responder> = {
    S3: (command, input) => {
      if (command !== 'PutObject') throw new Error(`the cost model does not answer S3 ${command}`);
      usage.s3Puts++;
      const key = String(input.Key);
      const body = Buffer.from(input.Body as Uint8Array);
      objects.set(key, body);
      const folder = key.includes('/') ? `${key.slice(0, key.indexOf('/'))}/` : key;
      const put = puts.get(folder) ?? { objects: 0, bytes: 0 };
      put.objects++;
      put.bytes += body.length;
      puts.set(folder, put);
      return { output: { ETag: '"metered"' }, latency: latency.s3 };
    },
    'Timestream Write': (command, input) => {
      if (command !== 'WriteRecords') throw new Error(`the cost model does not answer Timestream ${command}`);
      const unit = prices.timestreamLiveAnalytics.writeMeteringBytes;
      usage.timestreamWrites += timestreamWriteUnits(input, unit);
      for (const record of (input.Records ?? []) as TimestreamRecordShape[]) {
        singleRecordWrites.units += timestreamWriteUnits(
          { CommonAttributes: input.CommonAttributes as TimestreamRecordShape, Records: [record] },
          unit,
        );
      }
      const total = (input.Records as unknown[] | undefined)?.length ?? 0;
      return {
        output: { RecordsIngested: { Total: total, MemoryStore: total } },
        latency: latency.timestream,
      };
    },
    SQS: (command, input) => {
      const queueUrl = String(input.QueueUrl);
      if (command === 'SendMessage') {
        const body = String(input.MessageBody);
        usage.sqsRequests += meteredUnits(Buffer.byteLength(body), prices.sqs.requestChunkBytes);
        const messageId = `sqs-${++sqsMessages}`;
        sent.push({ queueUrl, messageId, body });
        return { output: { MessageId: messageId }, latency: latency.sqs };
      }
      if (command === 'SendMessageBatch') {
        // One request per 64 KB chunk of the batch's messages together.
        const entries = input.Entries as { Id: string; MessageBody: string }[];
        const bytes = entries.reduce((n, e) => n + Buffer.byteLength(e.MessageBody), 0);
        usage.sqsRequests += meteredUnits(bytes, prices.sqs.requestChunkBytes);
        const successful = entries.map((e) => {
          const messageId = `sqs-${++sqsMessages}`;
          sent.push({ queueUrl, messageId, body: e.MessageBody });
          return { Id: e.Id, MessageId: messageId };
        });
        return { output: { Successful: successful, Failed: [] }, latency: latency.sqs };
      }
      throw new Error(`the cost model does not answer SQS ${command}`);
    },
    DynamoDB: (command, input) => ({ output: dynamodb(command, input), latency: latency.dynamodb }),
    SNS: (command, input) => {
      if (command !== 'PublishBatch') throw new Error(`the cost model does not answer SNS ${command}`);
      const entries = input.PublishBatchRequestEntries as { Id: string; Message: string }[];
      // A request is billed per 64 KB chunk of its messages together: a batch of small alerts costs one publish.
      const bytes = entries.reduce((n, e) => n + Buffer.byteLength(e.Message), 0);
      usage.snsPublishes += meteredUnits(bytes, 65_536);
      return {
        output: { Successful: entries.map((e) => ({ Id: e.Id, MessageId: `metered-${e.Id}` })), Failed: [] },
        latency: latency.sns,
      };
    },
  };
  const config = {
    region: 'us-east-1',
    credentials: { accessKeyId: 'metered', secretAccessKey: 'metered' },
  };
  const clients = {
    s3: new S3Client(config),
    timestream: new TimestreamWriteClient(config),
    dynamodb: new DynamoDBClient(config),
    sns: new SNSClient(config),
    sqs: new SQSClient(config),
  };
  const services = {
    s3: 'S3',
    timestream: 'Timestream Write',
    dynamodb: 'DynamoDB',
    sns: 'SNS',
    sqs: 'SQS',
  } as const;
  for (const [name, client] of Object.entries(clients) as [
    keyof typeof clients,
    (typeof clients)[keyof typeof clients],
  ][]) {
    const service = services[name];
    const respond = responders[service] as Responder;
    // biome-ignore lint/suspicious/noExplicitAny: each client's stack has its own input/output types; this middleware serves them all.
    (client.middlewareStack as any).add(
      (_next: unknown, context: { commandName?: string }) =>
        async (args: { input: Record<string, unknown> }) => {
          const command = (context.commandName ?? 'Unknown').replace(/Command$/, '');
          calls.set(`${service}.${command}`, (calls.get(`${service}.${command}`) ?? 0) + 1);
          const error = fault?.(service, command);
          if (error) throw error;
          const answer = respond(command, args.input);
          if (virtualWait.on) virtualWait.ms += answer.latency;
          else await new Promise((resolve) => setTimeout(resolve, answer.latency));
          return { output: { $metadata: { httpStatusCode: 200 }, ...answer.output }, response: {} };
        },
      { step: 'initialize', name: 'costModelMeter', priority: 'high' },
    );
  }
  return { usage, calls, objects, puts, singleRecordWrites, sent, virtualWait, tables, clients };
}

type Item = Record<string, DynamoValue>;

/**
 * An in-memory DynamoDB for the calls the registry and the claims make: PutItem with
 * the conditions they use, BatchGetItem, GetItem, UpdateItem (the keys table), and the
 * estate's reads: Scan (of the table or the type index, in segments) and Query (of the
 * type index), each request reading at most 1 MB. Metering follows DynamoDB on-demand: a
 * put costs the larger of the old and new item per 1 KB, failed or not; a read 4 KB
 * units, halved when eventually consistent.
 */
function memoryDynamo(
  keys: Readonly<Record<string, string>>,
  usage: Usage,
  tables: Map<string, Map<string, Item>>,
): (command: string, input: Record<string, unknown>) => Record<string, unknown> {
  const table = (name: string) => {
    const key = keys[name];
    if (!key) throw new Error(`the cost model knows no key for DynamoDB table ${name}`);
    const items = tables.get(name) ?? new Map<string, Item>();
    tables.set(name, items);
    return { key, items };
  };
  const keyOf = (item: Item, key: string) => {
    const value = item[key];
    if (typeof value?.S !== 'string') throw new Error(`item without its string key ${key}`);
    return value.S;
  };
  /** A put or update: metered on the larger of the old and new item, failed or not; then its condition. */
  const write = (items: Map<string, Item>, id: string, item: Item, input: Record<string, unknown>) => {
    const old = items.get(id);
    usage.dynamodbWriteUnits += dynamodbWriteUnits(dynamodbItemBytes(item), old ? dynamodbItemBytes(old) : 0);
    const condition = input.ConditionExpression as string | undefined;
    if (condition && !holds(condition, old, (input.ExpressionAttributeValues ?? {}) as Item)) {
      throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    }
    items.set(id, item);
    // Scans read the table as it is now.
    scanOrders.delete(items);
    return {};
  };
  return (command, input) => {
    if (command === 'PutItem') {
      const { key, items } = table(String(input.TableName));
      const item = input.Item as Item;
      const id = keyOf(item, key);
      return write(items, id, item, input);
    }
    if (command === 'BatchGetItem') {
      const requests = input.RequestItems as Record<string, { Keys: Item[]; ConsistentRead?: boolean }>;
      const responses: Record<string, Item[]> = {};
      const consumed: { TableName: string; CapacityUnits: number }[] = [];
      for (const [name, request] of Object.entries(requests)) {
        const { key, items } = table(name);
        responses[name] = [];
        let units = 0;
        for (const k of request.Keys) {
          const found = items.get(keyOf(k, key));
          units += dynamodbReadUnits(found ? dynamodbItemBytes(found) : 0, request.ConsistentRead === true);
          if (found) responses[name].push(found);
        }
        usage.dynamodbReadUnits += units;
        consumed.push({ TableName: name, CapacityUnits: units });
      }
      return {
        Responses: responses,
        UnprocessedKeys: {},
        ...(input.ReturnConsumedCapacity === 'TOTAL' ? { ConsumedCapacity: consumed } : {}),
      };
    }
    if (command === 'GetItem') {
      const { key, items } = table(String(input.TableName));
      const found = items.get(keyOf(input.Key as Item, key));
      usage.dynamodbReadUnits += dynamodbReadUnits(
        found ? dynamodbItemBytes(found) : 0,
        input.ConsistentRead === true,
      );
      return found ? { Item: found } : {};
    }
    if (command === 'UpdateItem') {
      // The keys table's form: `SET a = :v`, on an item that exists.
      const { key, items } = table(String(input.TableName));
      const id = keyOf(input.Key as Item, key);
      const old = items.get(id);
      const values = (input.ExpressionAttributeValues ?? {}) as Item;
      const set = /^SET (\w+) = (:\w+)$/.exec(String(input.UpdateExpression));
      if (!set?.[1] || !set[2]) throw new Error(`the cost model does not apply "${input.UpdateExpression}"`);
      return write(
        items,
        id,
        { ...(old ?? { [key]: { S: id } }), [set[1]]: values[set[2]] as DynamoValue },
        input,
      );
    }
    if (command === 'Scan' || command === 'Query') {
      const { key, items } = table(String(input.TableName));
      const read = command === 'Scan' ? scanPage(key, items, input) : queryPage(key, items, input);
      const bytes = read.items.reduce((n, item) => n + dynamodbItemBytes(item), 0);
      // One request bills the bytes it read (before any filter) in 4 KB units: a page of a few small keys costs one.
      const units = dynamodbReadUnits(bytes, input.ConsistentRead === true);
      usage.dynamodbReadUnits += units;
      const last = read.items[read.items.length - 1];
      return {
        ...(input.Select === 'COUNT' ? {} : { Items: read.items }),
        Count: read.items.length,
        ScannedCount: read.items.length,
        ...(read.more && last ? { LastEvaluatedKey: keyOfItem(last, key, read.index) } : {}),
        ...(input.ReturnConsumedCapacity === 'TOTAL'
          ? { ConsumedCapacity: { TableName: input.TableName, CapacityUnits: units } }
          : {}),
      };
    }
    throw new Error(`the cost model does not answer DynamoDB ${command}`);
  };
}

/** What DynamoDB reads at most for one Scan or Query request, before any filter: 1 MB. */
const PAGE_BYTES = 1024 * 1024;

/**
 * The registry's index as the stack makes it (lib/constructs/registry.ts): keys only, so
 * an index item is its partition and sort key (the table's key among them).
 */
export const INDEXES: Readonly<Record<string, { readonly partition: string; readonly sort: string }>> = {
  [REGISTRY_TYPE_INDEX]: { partition: 'deviceType', sort: 'deviceId' },
};

/** What one request read: its items (index items projected), and whether more follow. */
interface Read {
  readonly items: Item[];
  readonly more: boolean;
  readonly index?: { readonly partition: string; readonly sort: string };
}

function indexOf(input: Record<string, unknown>) {
  if (input.IndexName === undefined) return undefined;
  const index = INDEXES[String(input.IndexName)];
  if (!index) throw new Error(`the cost model knows no index ${String(input.IndexName)}`);
  return index;
}

/** The items of a table or of an index (its keys only, the items without them left out). */
function itemsOf(items: Map<string, Item>, key: string, index: Read['index']): Item[] {
  if (!index) return [...items.values()];
  return [...items.values()].flatMap((item) => {
    const partition = item[index.partition];
    const sort = item[index.sort];
    if (!partition || !sort) return [];
    return [{ [index.partition]: partition, [index.sort]: sort, [key]: item[key] as DynamoValue }];
  });
}

/**
 * The items a Scan reads, in its order, kept until the next write to the table: a Scan
 * of 100,000 items in 1 MB pages must not cost the model a copy of the table per page.
 */
const scanOrders = new WeakMap<Map<string, Item>, { orders: Map<string, Item[]> }>();

function scanOrder(items: Map<string, Item>, name: string, make: () => Item[]): Item[] {
  let cached = scanOrders.get(items);
  if (!cached) {
    cached = { orders: new Map() };
    scanOrders.set(items, cached);
  }
  let order = cached.orders.get(name);
  if (!order) {
    order = make();
    cached.orders.set(name, order);
  }
  return order;
}

/** Reads items in order from just after the start key, up to Limit items or 1 MB. */
function readFrom(ordered: Item[], key: string, input: Record<string, unknown>, index: Read['index']): Read {
  const start = input.ExclusiveStartKey as Item | undefined;
  let from = 0;
  if (start) {
    const at = positions(ordered, key).get(String(start[key]?.S));
    from = at === undefined ? ordered.length : at + 1;
  }
  const limit = typeof input.Limit === 'number' ? input.Limit : Number.POSITIVE_INFINITY;
  const items: Item[] = [];
  let bytes = 0;
  let i = from;
  for (; i < ordered.length && items.length < limit && bytes < PAGE_BYTES; i++) {
    const item = ordered[i] as Item;
    items.push(item);
    bytes += dynamodbItemBytes(item);
  }
  return { items, more: i < ordered.length, ...(index ? { index } : {}) };
}

/**
 * A Scan page: the items of the request's segment (by a hash of the table key), in a
 * fixed order. FilterExpressions are not evaluated: they change what comes back, not
 * what is read, which is what DynamoDB bills (the adapters check their matches again).
 */
function scanPage(key: string, items: Map<string, Item>, input: Record<string, unknown>): Read {
  const index = indexOf(input);
  const segments = typeof input.TotalSegments === 'number' ? input.TotalSegments : 1;
  const segment = typeof input.Segment === 'number' ? input.Segment : 0;
  const all = scanOrder(items, `${String(input.IndexName ?? '')}|${segment}/${segments}`, () =>
    itemsOf(items, key, index).filter((item) => hashOf(String(item[key]?.S)) % segments === segment),
  );
  return readFrom(all, key, input, index);
}

const positionsOf = new WeakMap<Item[], Map<string, number>>();

/** Where each key is in an order (built once per order). */
function positions(ordered: Item[], key: string): Map<string, number> {
  let found = positionsOf.get(ordered);
  if (!found) {
    found = new Map(ordered.map((item, i) => [String(item[key]?.S), i]));
    positionsOf.set(ordered, found);
  }
  return found;
}

/** A Query page: one partition of the key condition (`#a = :v`, `AND begins_with(#b, :p)`), by sort key. */
function queryPage(key: string, items: Map<string, Item>, input: Record<string, unknown>): Read {
  const index = indexOf(input);
  if (!index) throw new Error('the cost model answers Query on an index only');
  const names = (input.ExpressionAttributeNames ?? {}) as Record<string, string>;
  const values = (input.ExpressionAttributeValues ?? {}) as Item;
  let partition: string | undefined;
  let prefix = '';
  for (const term of String(input.KeyConditionExpression).split(/\s+AND\s+/)) {
    const equals = /^(#\w+) = (:\w+)$/.exec(term.trim());
    const begins = /^begins_with\((#\w+), (:\w+)\)$/.exec(term.trim());
    if (equals?.[1] && equals[2] && names[equals[1]] === index.partition)
      partition = String(values[equals[2]]?.S);
    else if (begins?.[1] && begins[2] && names[begins[1]] === index.sort)
      prefix = String(values[begins[2]]?.S);
    else throw new Error(`the cost model does not apply the key condition "${term}"`);
  }
  const sortOf = (item: Item) => String(item[index.sort]?.S);
  const forward = input.ScanIndexForward !== false;
  const ordered = scanOrder(
    items,
    `query|${String(input.IndexName)}|${partition}|${prefix}|${forward}`,
    () => {
      const found = itemsOf(items, key, index)
        .filter((item) => item[index.partition]?.S === partition && sortOf(item).startsWith(prefix))
        .sort((a, b) => (sortOf(a) < sortOf(b) ? -1 : sortOf(a) > sortOf(b) ? 1 : 0));
      return forward ? found : found.reverse();
    },
  );
  const start = input.ExclusiveStartKey as Item | undefined;
  // A start key is a position: the items strictly after its sort key, whether or not it is an item.
  const after = start?.[index.sort]?.S as string | undefined;
  let from = 0;
  if (after !== undefined) {
    let high = ordered.length;
    while (from < high) {
      const mid = (from + high) >>> 1;
      const sort = sortOf(ordered[mid] as Item);
      if (forward ? sort <= after : sort >= after) from = mid + 1;
      else high = mid;
    }
  }
  const rest = ordered.slice(from);
  return readFrom(rest, key, { ...input, ExclusiveStartKey: undefined }, index);
}

function keyOfItem(item: Item, key: string, index: Read['index']): Item {
  return index
    ? {
        [key]: item[key] as DynamoValue,
        [index.partition]: item[index.partition] as DynamoValue,
        [index.sort]: item[index.sort] as DynamoValue,
      }
    : { [key]: item[key] as DynamoValue };
}

/** FNV-1a: a stable spread of keys over Scan segments. */
function hashOf(text: string): number {
  let hash = 2166136261;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 16777619) >>> 0;
  return hash;
}

/** The condition forms the adapters write: `attribute_(not_)exists(a)`, `a = :v`, joined by OR or AND. */
function holds(condition: string, item: Item | undefined, values: Item): boolean {
  if (/\s+AND\s+/.test(condition))
    return condition.split(/\s+AND\s+/).every((term) => holds(term, item, values));
  return condition.split(/\s+OR\s+/).some((term) => {
    const exists = /^attribute_exists\((\w+)\)$/.exec(term.trim());
    if (exists?.[1]) return item?.[exists[1]] !== undefined;
    const notExists = /^attribute_not_exists\((\w+)\)$/.exec(term.trim());
    if (notExists?.[1]) return item?.[notExists[1]] === undefined;
    const equals = /^(\w+)\s*=\s*(:\w+)$/.exec(term.trim());
    if (equals?.[1] && equals[2]) {
      const actual = item?.[equals[1]];
      const expected = values[equals[2]];
      return actual !== undefined && JSON.stringify(actual) === JSON.stringify(expected);
    }
    throw new Error(`the cost model does not evaluate the condition "${term}"`);
  });
}
