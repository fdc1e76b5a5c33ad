/**
 * The cost model's arithmetic: how AWS meters each call (Timestream's 1 KiB writes,
 * DynamoDB's request units, IoT Core's 5 KB messages, SQS's 64 KB chunks) and what the
 * metered units cost at public list prices (`../shared/aws-prices.json`). The calls
 * themselves are counted in a real run of the pipeline (`local/cost.ts`).
 */

/** The public prices the model uses: the shape of `aws-prices.json` (USD, us-east-1). */
export interface AwsPrices {
  readonly iotCore: {
    readonly messagingPerMillion: number;
    readonly messageMeteringBytes: number;
    readonly connectivityPerMillionMinutes: number;
    readonly rulesTriggeredPerMillion: number;
    readonly actionsExecutedPerMillion: number;
  };
  readonly lambda: {
    readonly requestsPerMillion: number;
    readonly gbSecondArm64: number;
  };
  readonly sqs: {
    readonly requestsPerMillion: number;
    readonly requestChunkBytes: number;
    readonly maxMessagesPerBatchCall: number;
  };
  readonly apiGatewayHttpApi: { readonly requestsPerMillion: number; readonly requestMeteringBytes: number };
  readonly timestreamLiveAnalytics: {
    readonly writesPerMillion: number;
    readonly writeMeteringBytes: number;
  };
  readonly s3: { readonly putPerThousand: number; readonly getPerThousand: number };
  readonly sns: { readonly publishesPerMillion: number };
  readonly dynamodbOnDemand: {
    readonly writeRequestUnitsPerMillion: number;
    readonly readRequestUnitsPerMillion: number;
  };
  /**
   * AWS IoT Core for LoRaWAN's charge per uplink message: not in the shared price list,
   * so optional; a `--prices` file may add it. Without it that line is reported as not priced.
   */
  readonly iotCoreLorawan?: { readonly uplinkMessagesPerMillion?: number };
  /**
   * Amazon Data Firehose ingestion, for the Firehose design next to the pipeline
   * (`tools/cost/designs.ts`): optional; without it that design is reported as not priced.
   */
  readonly firehose?: { readonly ingestPerGb?: number; readonly recordRoundingBytes?: number };
  /**
   * Kinesis Data Streams in provisioned mode, for the Kinesis design next to the pipeline:
   * not in the shared price list, so optional (our copy has it, with its source); without
   * it that design is reported as not priced.
   */
  readonly kinesisDataStreams?: {
    readonly shardHour?: number;
    readonly putPayloadUnitsPerMillion?: number;
    readonly putPayloadUnitBytes?: number;
  };
}

/** Where a prices file puts the IoT Core for LoRaWAN uplink price (see {@link AwsPrices.iotCoreLorawan}). */
export const LORAWAN_UPLINK_PRICE = 'iotCoreLorawan.uplinkMessagesPerMillion';

/** Every key of {@link AwsPrices} the model reads, for a clear message when the price file lacks one. */
export function checkPrices(value: unknown): AwsPrices {
  const shape: Record<string, readonly string[]> = {
    iotCore: [
      'messagingPerMillion',
      'messageMeteringBytes',
      'connectivityPerMillionMinutes',
      'rulesTriggeredPerMillion',
      'actionsExecutedPerMillion',
    ],
    lambda: ['requestsPerMillion', 'gbSecondArm64'],
    sqs: ['requestsPerMillion', 'requestChunkBytes', 'maxMessagesPerBatchCall'],
    apiGatewayHttpApi: ['requestsPerMillion', 'requestMeteringBytes'],
    timestreamLiveAnalytics: ['writesPerMillion', 'writeMeteringBytes'],
    s3: ['putPerThousand', 'getPerThousand'],
    sns: ['publishesPerMillion'],
    dynamodbOnDemand: ['writeRequestUnitsPerMillion', 'readRequestUnitsPerMillion'],
  };
  const prices = value as Record<string, Record<string, unknown> | undefined>;
  for (const [service, keys] of Object.entries(shape)) {
    for (const key of keys) {
      const price = prices?.[service]?.[key];
      if (typeof price !== 'number' || !(price >= 0)) {
        throw new Error(`the price file has no number at ${service}.${key}`);
      }
    }
  }
  const lorawan = prices?.iotCoreLorawan;
  if (lorawan !== undefined) {
    const price = lorawan?.uplinkMessagesPerMillion;
    if (price !== undefined && (typeof price !== 'number' || !(price >= 0)))
      throw new Error(`${LORAWAN_UPLINK_PRICE} must be a number of dollars per million uplinks, or left out`);
  }
  // The optional sections the alternative designs read: a number where given.
  const optional: Record<string, readonly string[]> = {
    firehose: ['ingestPerGb', 'recordRoundingBytes'],
    kinesisDataStreams: ['shardHour', 'putPayloadUnitsPerMillion', 'putPayloadUnitBytes'],
  };
  for (const [service, keys] of Object.entries(optional)) {
    for (const key of keys) {
      const price = prices?.[service]?.[key];
      if (price !== undefined && (typeof price !== 'number' || !(price >= 0)))
        throw new Error(`${service}.${key} must be a number, or left out`);
    }
  }
  return value as AwsPrices;
}

/**
 * Each unit the model meters, in the order of the bill: its line and its list price
 * per unit (undefined when the price list lacks it: the line is then not priced, see
 * {@link unpricedUsage}). {@link Usage} has a count for each.
 */
interface BillEntry {
  readonly line: string;
  readonly price: (p: AwsPrices) => number | undefined;
  /** The price list key of a price the list may lack. */
  readonly missing?: string;
}

const BILL = {
  /** AWS IoT Core for LoRaWAN's uplink messages: a price the shared list does not have. */
  lorawanUplinks: {
    line: 'IoT Core for LoRaWAN uplinks',
    price: (p: AwsPrices) => {
      const price = p.iotCoreLorawan?.uplinkMessagesPerMillion;
      return price === undefined ? undefined : price / 1e6;
    },
    missing: LORAWAN_UPLINK_PRICE,
  },
  /** IoT Core messages, in 5 KB units (none for Basic Ingest topics). */
  iotMessages: { line: 'IoT Core messaging', price: (p: AwsPrices) => p.iotCore.messagingPerMillion / 1e6 },
  iotRulesTriggered: {
    line: 'IoT rules triggered',
    price: (p: AwsPrices) => p.iotCore.rulesTriggeredPerMillion / 1e6,
  },
  iotActions: {
    line: 'IoT rule actions',
    price: (p: AwsPrices) => p.iotCore.actionsExecutedPerMillion / 1e6,
  },
  /** API Gateway HTTP API requests, in 512 KB units. */
  apiRequests: {
    line: 'API Gateway requests',
    price: (p: AwsPrices) => p.apiGatewayHttpApi.requestsPerMillion / 1e6,
  },
  /** SQS requests, in 64 KB chunks. */
  sqsRequests: { line: 'SQS requests', price: (p: AwsPrices) => p.sqs.requestsPerMillion / 1e6 },
  lambdaRequests: { line: 'Lambda requests', price: (p: AwsPrices) => p.lambda.requestsPerMillion / 1e6 },
  /** The functions run on arm64. */
  lambdaGbSeconds: { line: 'Lambda GB-s (arm64)', price: (p: AwsPrices) => p.lambda.gbSecondArm64 },
  /** PUT, COPY, POST and LIST requests are priced alike. */
  s3Puts: { line: 'S3 PUT', price: (p: AwsPrices) => p.s3.putPerThousand / 1000 },
  s3Gets: { line: 'S3 GET', price: (p: AwsPrices) => p.s3.getPerThousand / 1000 },
  /** Timestream writes, in 1 KiB units. */
  timestreamWrites: {
    line: 'Timestream writes (1 KiB)',
    price: (p: AwsPrices) => p.timestreamLiveAnalytics.writesPerMillion / 1e6,
  },
  dynamodbWriteUnits: {
    line: 'DynamoDB write units',
    price: (p: AwsPrices) => p.dynamodbOnDemand.writeRequestUnitsPerMillion / 1e6,
  },
  dynamodbReadUnits: {
    line: 'DynamoDB read units',
    price: (p: AwsPrices) => p.dynamodbOnDemand.readRequestUnitsPerMillion / 1e6,
  },
  snsPublishes: { line: 'SNS publishes', price: (p: AwsPrices) => p.sns.publishesPerMillion / 1e6 },
} satisfies Record<string, BillEntry>;

type Unit = keyof typeof BILL;

const UNITS = Object.keys(BILL) as Unit[];

/** Metered units, counted over a run: what the bill is made of (see {@link BILL}). */
export type Usage = Record<Unit, number>;

export function emptyUsage(): Usage {
  return Object.fromEntries(UNITS.map((unit) => [unit, 0])) as Usage;
}

/** One line of the bill: a metered unit, how many of it, and what they cost. */
export interface CostLine {
  readonly line: string;
  readonly units: number;
  readonly dollars: number;
}

const bill = (unit: Unit): BillEntry => BILL[unit];

/** The usage priced, one line per unit that occurred and has a price, in the order of the bill. */
export function priceUsage(usage: Usage, prices: AwsPrices): CostLine[] {
  return UNITS.flatMap((unit) => {
    const price = bill(unit).price(prices);
    return usage[unit] > 0 && price !== undefined
      ? [{ line: bill(unit).line, units: usage[unit], dollars: usage[unit] * price }]
      : [];
  });
}

/** A design's bill: the lines per million messages, their total, and a month of the fleet. */
export interface DesignCost {
  readonly design: string;
  readonly lines: CostLine[];
  /** Lines per million messages the price list has no price for: not in the totals. */
  readonly notPriced?: UnpricedLine[];
  readonly perMillion: number;
  readonly perMonth: number;
}

/** A line of the bill the price list has no price for: its units, and the key a prices file would give. */
export interface UnpricedLine {
  readonly line: string;
  readonly units: number;
  /** The price list key that would price it (`iotCoreLorawan.uplinkMessagesPerMillion`). */
  readonly missing: string;
}

/** The usage {@link priceUsage} leaves out for want of a price. */
export function unpricedUsage(usage: Usage, prices: AwsPrices): UnpricedLine[] {
  return UNITS.flatMap((unit) =>
    usage[unit] > 0 && bill(unit).price(prices) === undefined
      ? [{ line: bill(unit).line, units: usage[unit], missing: bill(unit).missing ?? unit }]
      : [],
  );
}

export function totalDollars(lines: readonly CostLine[]): number {
  return lines.reduce((sum, l) => sum + l.dollars, 0);
}

/** Units of a size: `ceil(bytes / unit)`, at least one (every metered call counts once). */
export function meteredUnits(bytes: number, unitBytes: number): number {
  return Math.max(1, Math.ceil(bytes / unitBytes));
}

const utf8 = (text: string) => Buffer.byteLength(text, 'utf8');

/** A Timestream record or its common attributes, as WriteRecords takes them. */
export interface TimestreamRecordShape {
  readonly Dimensions?: readonly { readonly Name?: string; readonly Value?: string }[];
  readonly MeasureName?: string;
  readonly MeasureValue?: string;
  readonly MeasureValueType?: string;
  readonly MeasureValues?: readonly {
    readonly Name?: string;
    readonly Value?: string;
    readonly Type?: string;
  }[];
  readonly Time?: string;
}

/**
 * Bytes Timestream meters for a record: 8 for the time, then the UTF-8 length of each
 * dimension name and value and each measure name, and the measure values (8 bytes for
 * a double or bigint, 1 for a boolean, the UTF-8 length of a string).
 */
export function timestreamRecordBytes(record: TimestreamRecordShape): number {
  let bytes = record.Time === undefined ? 0 : 8;
  for (const d of record.Dimensions ?? []) bytes += utf8(d.Name ?? '') + utf8(d.Value ?? '');
  if (record.MeasureName !== undefined) bytes += utf8(record.MeasureName);
  if (record.MeasureValue !== undefined) bytes += valueBytes(record.MeasureValue, record.MeasureValueType);
  for (const m of record.MeasureValues ?? []) bytes += utf8(m.Name ?? '') + valueBytes(m.Value ?? '', m.Type);
  return bytes;
}

function valueBytes(value: string, type: string | undefined): number {
  if (type === 'BOOLEAN') return 1;
  if (type === 'VARCHAR') return utf8(value);
  return 8;
}

/**
 * Writes one WriteRecords call is billed for: its events' bytes in 1 KiB units, the
 * common attributes counted once for the call (that is what they are for: "use common
 * attributes with batching to batch more time series events per write").
 */
export function timestreamWriteUnits(
  request: {
    readonly CommonAttributes?: TimestreamRecordShape;
    readonly Records?: readonly TimestreamRecordShape[];
  },
  writeMeteringBytes: number,
): number {
  const common = request.CommonAttributes;
  let bytes = common ? timestreamRecordBytes(common) : 0;
  for (const record of request.Records ?? []) {
    bytes += timestreamRecordBytes(record);
    // The time is 8 bytes whether it is the record's or the common one.
    if (record.Time === undefined && common?.Time !== undefined) bytes += 8;
  }
  return meteredUnits(bytes, writeMeteringBytes);
}

/** A DynamoDB attribute value in the low-level form (`{ S }`, `{ N }`, ...). */
export type DynamoValue = Readonly<Record<string, unknown>>;

/**
 * DynamoDB item size: each attribute's name (UTF-8) plus its value: strings and
 * binaries by length, numbers by about one byte per two significant digits plus one,
 * booleans and nulls one byte, lists and maps 3 bytes plus their elements.
 */
export function dynamodbItemBytes(item: Readonly<Record<string, DynamoValue>>): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(item)) bytes += utf8(name) + dynamodbValueBytes(value);
  return bytes;
}

function dynamodbValueBytes(value: DynamoValue): number {
  if (typeof value.S === 'string') return utf8(value.S);
  if (typeof value.N === 'string') {
    const digits = value.N.replace(/^-/, '').replace('.', '').replace(/^0+/, '').length;
    return Math.ceil(Math.max(1, digits) / 2) + 1;
  }
  if (value.B instanceof Uint8Array) return value.B.length;
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (Array.isArray(value.L))
    return 3 + value.L.reduce((n: number, v: DynamoValue) => n + 1 + dynamodbValueBytes(v), 0);
  if (value.M && typeof value.M === 'object')
    return 3 + dynamodbItemBytes(value.M as Record<string, DynamoValue>);
  if (Array.isArray(value.SS)) return value.SS.reduce((n: number, s: string) => n + utf8(s), 0);
  if (Array.isArray(value.NS)) return value.NS.length * 21;
  return 0;
}

/** Write request units of a PutItem: the larger of the old and new item, per 1 KB (a failed condition still costs them). */
export function dynamodbWriteUnits(newBytes: number, oldBytes = 0): number {
  return meteredUnits(Math.max(newBytes, oldBytes), 1024);
}

/** Read request units of reading an item (a missing one still costs the minimum): 4 KB each, half for eventually consistent reads. */
export function dynamodbReadUnits(bytes: number, consistent: boolean): number {
  const units = meteredUnits(bytes, 4096);
  return consistent ? units : units / 2;
}

/** Lambda bills duration rounded up to the millisecond, times the memory in GB. */
export function lambdaGbSeconds(durationMs: number, memoryMb: number): number {
  return (Math.ceil(durationMs) / 1000) * (memoryMb / 1024);
}

/** What a run covered, to turn its usage into dollars per million messages and per month. */
export interface Fleet {
  readonly devices: number;
  /** One message per device every this many milliseconds. */
  readonly intervalMs: number;
}

/** A month as the prices count it: 30 days. */
export const MINUTES_PER_MONTH = 30 * 24 * 60;

export function messagesPerMonth(fleet: Fleet): number {
  return (fleet.devices * MINUTES_PER_MONTH * 60_000) / fleet.intervalMs;
}

/** IoT Core connectivity for the fleet kept connected all month (not per message: it is the same for any design). */
export function connectivityLine(fleet: Fleet, prices: AwsPrices): CostLine {
  const minutes = fleet.devices * MINUTES_PER_MONTH;
  return {
    line: 'IoT Core connectivity (every device connected all month)',
    units: minutes,
    dollars: (minutes * prices.iotCore.connectivityPerMillionMinutes) / 1e6,
  };
}

/** The usage of a run scaled to one million messages. */
export function perMillionMessages(usage: Usage, messages: number): Usage {
  const scale = 1e6 / messages;
  return Object.fromEntries(UNITS.map((unit) => [unit, usage[unit] * scale])) as Usage;
}

/**
 * The IoT Core floor: what any pipeline behind IoT Core pays per message at the least,
 * one message (5 KB units), one rule and one action.
 */
export function iotFloorUsage(messages: number, messageBytes: number, prices: AwsPrices): Usage {
  const usage = emptyUsage();
  usage.iotMessages = messages * meteredUnits(messageBytes, prices.iotCore.messageMeteringBytes);
  usage.iotRulesTriggered = messages;
  usage.iotActions = messages;
  return usage;
}
