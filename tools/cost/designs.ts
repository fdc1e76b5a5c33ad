/**
 * The designs a user would pick instead of the pipeline, priced from the messages the
 * cost run counted and the same price list: IoT rule -> Firehose -> S3 (no logic), IoT
 * rule -> Kinesis Data Streams (provisioned) -> Lambda (the pipeline's own logic, the
 * stream in place of the queue), the Basic Ingest floor; where Kinesis becomes cheaper
 * than SQS; and the lake objects a day the ingest path writes. Pure functions: the
 * counts come in, dollars come out.
 */
import type { DesignCost } from './model.ts';
import {
  type AwsPrices,
  type CostLine,
  emptyUsage,
  type Fleet,
  MINUTES_PER_MONTH,
  messagesPerMonth,
  meteredUnits,
  perMillionMessages,
  priceUsage,
  totalDollars,
  type UnpricedLine,
  type Usage,
} from './model.ts';

/**
 * Firehose's default buffering hints, the first reached delivers an object to S3: 5 MiB
 * or 300 s (Amazon Data Firehose API Reference, BufferingHints: "SizeInMBs ... The
 * default value is 5", "IntervalInSeconds ... The default value is 300";
 * https://docs.aws.amazon.com/firehose/latest/APIReference/API_BufferingHints.html).
 */
export const FIREHOSE_BUFFER = { bytes: 5 * 1024 * 1024, seconds: 300 } as const;

/**
 * What one provisioned shard takes in writes: 1,000 records and 1 MiB a second
 * (Kinesis Data Streams Developer Guide, "Create and manage Kinesis data streams": "A
 * shard supports 1 MB/s and 1000 records per second for writes",
 * https://docs.aws.amazon.com/streams/latest/dev/working-with-streams.html; the SDK's
 * CreateStream reference says 1 MiB).
 */
export const SHARD_WRITES = { recordsPerSecond: 1000, bytesPerSecond: 1024 * 1024 } as const;

/** Where a prices file puts the Kinesis Data Streams prices (see {@link AwsPrices.kinesisDataStreams}). */
export const KINESIS_PRICE_KEYS = {
  shardHour: 'kinesisDataStreams.shardHour',
  putPayloadUnits: 'kinesisDataStreams.putPayloadUnitsPerMillion',
} as const;
export const FIREHOSE_PRICE_KEY = 'firehose.ingestPerGb';

const HOURS_PER_MONTH = MINUTES_PER_MONTH / 60;
const GB = 1024 ** 3;
const DAY_MS = 86_400_000;

/** What the run counted that the designs are priced from. */
export interface DesignInputs {
  readonly fleet: Fleet;
  /** Messages the run put through. */
  readonly messages: number;
  /** The records the IoT rule's action hands on (its SQL's output, one a message): bytes -> how many. */
  readonly records: ReadonlyMap<number, number>;
  /** The front door's units for the run's messages: the rule and its action (and the LoRaWAN uplink), as the floor. */
  readonly frontDoor: Usage;
  /** The pipeline's units over the run: the logic the Kinesis design keeps (its Lambda, S3, DynamoDB, SNS, Timestream lines). */
  readonly pipeline: Usage;
  /**
   * The ingest queue's SQS requests over the run (the rule's sends, the event source
   * mapping's receives and deletes): the part of `pipeline.sqsRequests` a stream replaces
   * (the rest, such as the estate queue's, stays in the Kinesis design).
   */
  readonly queueRequests: number;
  /** Monthly costs every design pays alike (MQTT connectivity). */
  readonly fixedMonthly: number;
}

/** A design next to the pipeline: its bill, whether every line of it has a price, and what it leaves out. */
export interface AlternativeDesign extends DesignCost {
  /** False when the price list lacks a price the design needs: its totals leave those lines out. */
  readonly priced: boolean;
  /** What the design does and does not do, next to the pipeline. */
  readonly note: string;
  /** Kinesis: the provisioned shards the fleet's rate needs. */
  readonly shards?: number;
  /** Firehose: the S3 objects it delivers a day and their mean size. */
  readonly lake?: { readonly objectsPerDay: number; readonly averageBytes: number };
}

/** Records and bytes a second the fleet sends, from the run's record sizes. */
function rates(inputs: DesignInputs): {
  recordsPerSecond: number;
  bytesPerSecond: number;
  meanBytes: number;
} {
  const recordsPerSecond = (inputs.fleet.devices * 1000) / inputs.fleet.intervalMs;
  let records = 0;
  let bytes = 0;
  for (const [size, count] of inputs.records) {
    records += count;
    bytes += size * count;
  }
  const meanBytes = records === 0 ? 0 : bytes / records;
  return { recordsPerSecond, bytesPerSecond: recordsPerSecond * meanBytes, meanBytes };
}

/** The records' units of `unitBytes` each (every record at least one), per message run. */
function unitsPerMessage(inputs: DesignInputs, unitBytes: number): number {
  let units = 0;
  for (const [size, count] of inputs.records) units += count * meteredUnits(size, unitBytes);
  return units / inputs.messages;
}

function design(
  name: string,
  note: string,
  inputs: DesignInputs,
  lines: CostLine[],
  notPriced: UnpricedLine[],
  extra: Partial<Pick<AlternativeDesign, 'shards' | 'lake'>> = {},
): AlternativeDesign {
  const perMillion = totalDollars(lines);
  return {
    design: name,
    lines,
    ...(notPriced.length > 0 ? { notPriced } : {}),
    perMillion,
    perMonth: (perMillion * messagesPerMonth(inputs.fleet)) / 1e6 + inputs.fixedMonthly,
    priced: notPriced.length === 0,
    note,
    ...extra,
  };
}

/** The front door's lines per million messages (the rule and its action, as the floor has them). */
function frontDoorLines(inputs: DesignInputs, prices: AwsPrices): CostLine[] {
  return priceUsage(perMillionMessages(inputs.frontDoor, inputs.messages), prices);
}

/**
 * IoT rule -> Firehose -> S3: the rule's Firehose action per message, Firehose's
 * ingestion (each record rounded up to 5 KB, priced per GB) and one S3 PUT per buffer
 * it delivers (5 MiB or 300 s, whichever first, at the fleet's rate). Nothing is decoded,
 * validated, deduplicated or alerted on, and there is no device registry.
 */
export function firehoseDesign(inputs: DesignInputs, prices: AwsPrices): AlternativeDesign {
  const { recordsPerSecond, bytesPerSecond } = rates(inputs);
  const scale = 1e6;
  const lines = frontDoorLines(inputs, prices);
  const notPriced: UnpricedLine[] = [];
  const firehose = prices.firehose;
  const rounding = firehose?.recordRoundingBytes;
  // Billed bytes a million messages: each record rounded up to the 5 KB step.
  const billedGb = rounding === undefined ? 0 : (unitsPerMessage(inputs, rounding) * rounding * scale) / GB;
  if (firehose?.ingestPerGb === undefined || rounding === undefined) {
    notPriced.push({
      line: 'Firehose ingestion (records in 5 KB steps)',
      units: scale,
      missing: FIREHOSE_PRICE_KEY,
    });
  } else {
    lines.push({
      line: 'Firehose ingestion (GB, records in 5 KB steps)',
      units: billedGb,
      dollars: billedGb * firehose.ingestPerGb,
    });
  }
  // A buffer is delivered when it holds 5 MiB or is 300 s old; never more objects than records.
  const objectsPerSecond = Math.min(
    recordsPerSecond,
    Math.max(1 / FIREHOSE_BUFFER.seconds, bytesPerSecond / FIREHOSE_BUFFER.bytes),
  );
  const putsPerMillion = recordsPerSecond === 0 ? 0 : (objectsPerSecond / recordsPerSecond) * scale;
  lines.push({
    line: 'S3 PUT (Firehose buffers)',
    units: putsPerMillion,
    dollars: (putsPerMillion * prices.s3.putPerThousand) / 1000,
  });
  return design(
    'IoT rule -> Firehose -> S3',
    'raw payloads to S3 only: no decoding, validation, alerts, device registry or dedupe',
    inputs,
    lines,
    notPriced,
    {
      lake: {
        objectsPerDay: (objectsPerSecond * DAY_MS) / 1000,
        averageBytes: objectsPerSecond === 0 ? 0 : bytesPerSecond / objectsPerSecond,
      },
    },
  );
}

/** Provisioned shards for a write rate: max(records/s / 1000, bytes/s / 1 MiB), rounded up, at least one. */
export function shardsNeeded(recordsPerSecond: number, bytesPerSecond: number): number {
  return Math.max(
    1,
    Math.ceil(recordsPerSecond / SHARD_WRITES.recordsPerSecond),
    Math.ceil(bytesPerSecond / SHARD_WRITES.bytesPerSecond),
  );
}

/**
 * IoT rule -> Kinesis Data Streams (provisioned) -> Lambda with the pipeline's logic:
 * the rule's Kinesis action per message, PUT payload units (25 KB each), the shard hours
 * the fleet's rate needs spread over its messages, and the pipeline's own Lambda, S3,
 * DynamoDB, SNS and Timestream lines from the run (its batches as the run's), and its
 * SQS lines but the ingest queue's.
 */
export function kinesisDesign(inputs: DesignInputs, prices: AwsPrices): AlternativeDesign {
  const { recordsPerSecond, bytesPerSecond } = rates(inputs);
  const shards = shardsNeeded(recordsPerSecond, bytesPerSecond);
  const lines = frontDoorLines(inputs, prices);
  // The pipeline's logic without its front door and its ingest queue (any other queue stays).
  const logic: Usage = {
    ...inputs.pipeline,
    iotMessages: 0,
    iotRulesTriggered: 0,
    iotActions: 0,
    lorawanUplinks: 0,
    apiRequests: 0,
    sqsRequests: Math.max(0, inputs.pipeline.sqsRequests - inputs.queueRequests),
  };
  const kinesis = prices.kinesisDataStreams;
  const notPriced: UnpricedLine[] = [];
  const unitBytes = kinesis?.putPayloadUnitBytes;
  const putUnits = unitBytes === undefined ? 1e6 : unitsPerMessage(inputs, unitBytes) * 1e6;
  if (kinesis?.putPayloadUnitsPerMillion === undefined || unitBytes === undefined) {
    notPriced.push({
      line: 'Kinesis PUT payload units (25 KB)',
      units: putUnits,
      missing: KINESIS_PRICE_KEYS.putPayloadUnits,
    });
  } else {
    lines.push({
      line: 'Kinesis PUT payload units (25 KB)',
      units: putUnits,
      dollars: (putUnits * kinesis.putPayloadUnitsPerMillion) / 1e6,
    });
  }
  const shardHours = ((shards * HOURS_PER_MONTH) / messagesPerMonth(inputs.fleet)) * 1e6;
  const shardLine = `Kinesis shard hours (${shards} shard${shards === 1 ? '' : 's'})`;
  if (kinesis?.shardHour === undefined) {
    notPriced.push({ line: shardLine, units: shardHours, missing: KINESIS_PRICE_KEYS.shardHour });
  } else {
    lines.push({ line: shardLine, units: shardHours, dollars: shardHours * kinesis.shardHour });
  }
  lines.push(...priceUsage(perMillionMessages(logic, inputs.messages), prices));
  return design(
    'IoT rule -> Kinesis (provisioned) -> Lambda',
    "the pipeline's logic with a provisioned stream in place of the queue: shards are billed by the hour, used or not",
    inputs,
    lines,
    notPriced,
    { shards },
  );
}

/** The Basic Ingest floor: the rule and its action per message, no messaging charge. */
export function basicIngestFloor(inputs: DesignInputs, prices: AwsPrices): AlternativeDesign {
  const usage = emptyUsage();
  usage.iotRulesTriggered = inputs.messages;
  usage.iotActions = inputs.messages;
  return design(
    'Basic Ingest floor',
    'what any pipeline behind an IoT rule pays: the rule and its action',
    inputs,
    priceUsage(perMillionMessages(usage, inputs.messages), prices),
    [],
  );
}

/** Where a provisioned stream costs less than the queue: the queue's and the stream's own lines only. */
export interface Crossover {
  /** The ingest queue's SQS dollars per million messages in the run (the rule's send, the event source mapping's receive and delete). */
  readonly sqsPerMillion: number;
  /** Kinesis PUT payload units per million messages. */
  readonly kinesisPerMillion: number;
  /** One shard a month. */
  readonly shardMonthly: number;
  /** The rate above which one shard costs less than SQS; undefined when it never does (or Kinesis is not priced). */
  readonly messagesPerSecond?: number;
  /** That rate as devices at the fleet's interval. */
  readonly devices?: number;
  readonly reason?: string;
}

/**
 * The fleet size above which Kinesis (provisioned) is cheaper than SQS for the queue:
 * SQS costs `s` a message, the stream `k` a message plus a shard's month `F`, so one shard
 * pays off at F / (s - k) messages a month, if one shard still carries that rate (more
 * shards only add `F` for each shard's worth of messages, which pays off likewise).
 */
export function kinesisCrossover(inputs: DesignInputs, prices: AwsPrices): Crossover {
  const sqsPerMillion = (inputs.queueRequests / inputs.messages) * prices.sqs.requestsPerMillion;
  const kinesis = prices.kinesisDataStreams;
  if (
    kinesis?.shardHour === undefined ||
    kinesis.putPayloadUnitsPerMillion === undefined ||
    kinesis.putPayloadUnitBytes === undefined
  ) {
    return {
      sqsPerMillion,
      kinesisPerMillion: 0,
      shardMonthly: 0,
      reason: `not priced: the price list has no ${KINESIS_PRICE_KEYS.shardHour} and ${KINESIS_PRICE_KEYS.putPayloadUnits}`,
    };
  }
  const kinesisPerMillion =
    unitsPerMessage(inputs, kinesis.putPayloadUnitBytes) * kinesis.putPayloadUnitsPerMillion;
  const shardMonthly = kinesis.shardHour * HOURS_PER_MONTH;
  const base = { sqsPerMillion, kinesisPerMillion, shardMonthly };
  const saving = (sqsPerMillion - kinesisPerMillion) / 1e6;
  if (!(saving > 0)) return { ...base, reason: 'a Kinesis record costs as much as SQS or more: never' };
  const perSecond = shardMonthly / saving / (MINUTES_PER_MONTH * 60);
  const { meanBytes } = rates(inputs);
  const capacity = Math.min(
    SHARD_WRITES.recordsPerSecond,
    meanBytes === 0 ? Number.POSITIVE_INFINITY : SHARD_WRITES.bytesPerSecond / meanBytes,
  );
  if (perSecond > capacity)
    return { ...base, reason: "a shard's month costs more than SQS at its full rate: never" };
  return { ...base, messagesPerSecond: perSecond, devices: (perSecond * inputs.fleet.intervalMs) / 1000 };
}

/** The S3 objects the ingest path writes a day, all and by folder, and their mean size. */
export interface LakeWrites {
  readonly objectsPerDay: number;
  readonly averageBytes: number;
  readonly byPrefix: Readonly<
    Record<string, { readonly objectsPerDay: number; readonly averageBytes: number }>
  >;
}

/** PutObject calls counted over `messages` messages, scaled to a day of the fleet. */
export function lakeWrites(
  puts: ReadonlyMap<string, { readonly objects: number; readonly bytes: number }>,
  messages: number,
  fleet: Fleet,
): LakeWrites {
  const perDay = (fleet.devices * DAY_MS) / fleet.intervalMs / messages;
  let objects = 0;
  let bytes = 0;
  const byPrefix: Record<string, { objectsPerDay: number; averageBytes: number }> = {};
  for (const [prefix, put] of [...puts].sort(([a], [b]) => a.localeCompare(b))) {
    objects += put.objects;
    bytes += put.bytes;
    byPrefix[prefix] = { objectsPerDay: put.objects * perDay, averageBytes: put.bytes / put.objects };
  }
  return { objectsPerDay: objects * perDay, averageBytes: objects === 0 ? 0 : bytes / objects, byPrefix };
}
