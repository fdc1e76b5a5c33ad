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
  /** Timestream writes the same records would have cost written one per call. */
  readonly singleRecordWrites: { units: number };
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
  const singleRecordWrites = { units: 0 };
  let sqsMessages = 0;
  const dynamodb = memoryDynamo(keys, usage);
  const responders: Record<string, Responder> = {
    S3: (command, input) => {
      if (command !== 'PutObject') throw new Error(`the cost model does not answer S3 ${command}`);
      usage.s3Puts++;
      objects.set(String(input.Key), Buffer.from(input.Body as Uint8Array));
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
      if (command !== 'SendMessage') throw new Error(`the cost model does not answer SQS ${command}`);
      usage.sqsRequests += meteredUnits(
        Buffer.byteLength(String(input.MessageBody)),
        prices.sqs.requestChunkBytes,
      );
      return { output: { MessageId: `sqs-${++sqsMessages}` }, latency: latency.sqs };
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
          await new Promise((resolve) => setTimeout(resolve, answer.latency));
          return { output: { $metadata: { httpStatusCode: 200 }, ...answer.output }, response: {} };
        },
      { step: 'initialize', name: 'costModelMeter', priority: 'high' },
    );
  }
  return { usage, calls, objects, singleRecordWrites, clients };
}

type Item = Record<string, DynamoValue>;

/**
 * An in-memory DynamoDB for the calls the registry and the claims make: PutItem with
 * the conditions they use, BatchGetItem, GetItem, UpdateItem (the keys table), Scan. Metering follows DynamoDB on-demand: a
 * put costs the larger of the old and new item per 1 KB, failed or not; a read 4 KB
 * units, halved when eventually consistent.
 */
function memoryDynamo(
  keys: Readonly<Record<string, string>>,
  usage: Usage,
): (command: string, input: Record<string, unknown>) => Record<string, unknown> {
  const tables = new Map<string, Map<string, Item>>();
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
      for (const [name, request] of Object.entries(requests)) {
        const { key, items } = table(name);
        responses[name] = [];
        for (const k of request.Keys) {
          const found = items.get(keyOf(k, key));
          usage.dynamodbReadUnits += dynamodbReadUnits(
            found ? dynamodbItemBytes(found) : 0,
            request.ConsistentRead === true,
          );
          if (found) responses[name].push(found);
        }
      }
      return { Responses: responses, UnprocessedKeys: {} };
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
    if (command === 'Scan') {
      const { items } = table(String(input.TableName));
      const all = [...items.values()];
      const bytes = all.reduce((n, item) => n + dynamodbItemBytes(item), 0);
      usage.dynamodbReadUnits += dynamodbReadUnits(bytes, input.ConsistentRead === true);
      return { Items: all, Count: all.length, ScannedCount: all.length };
    }
    throw new Error(`the cost model does not answer DynamoDB ${command}`);
  };
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
