/**
 * The cost model (`iot-pipeline cost`, `npm run bench -- cost`): a simulated fleet's
 * messages go through the telemetry rule, are batched the way the SQS event source
 * mapping batches them (batch size or batching window, whichever comes first) and are
 * handed to the ingest Lambda's own handler, built over metered SDK clients
 * (`local/metered-aws.ts`). Every S3, Timestream, DynamoDB and SNS call it makes is
 * counted and metered as AWS bills it; the IoT Core, SQS and Lambda units follow from
 * the messages and the batches. Then the public prices turn units into dollars, per
 * million messages and per month, next to the naive design and the IoT Core floor.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Rows } from '../../cli/table.ts';
import { dynamodbRegistry } from '../../lambdas/adapters/aws/dynamodb-registry.ts';
import { awsIngestDeps, sqsIngestHandler } from '../../lambdas/adapters/aws/ingest-lambda.ts';
import { sqsEnqueue } from '../../lambdas/adapters/aws/queue.ts';
import { snsAlerts } from '../../lambdas/adapters/aws/sns-alerts.ts';
import { handleIngress } from '../../lambdas/core/api/ingress.ts';
import type { DecoderConfig } from '../../lambdas/core/config.ts';
import { compileCodec } from '../../lambdas/core/decoders/codec.ts';
import { detectOffline } from '../../lambdas/core/estate/update.ts';
import { applyTelemetryRule } from '../../lambdas/core/topics.ts';
import type { PipelineConfig } from '../../lib/config.ts';
import { createFleet, nextReading, random, type SimulatedDevice } from '../simulator/fleet.ts';
import { httpBody } from '../simulator/run.ts';
import { DEFAULT_LATENCY, meteredClients, type ServiceLatency } from './metered-aws.ts';
import {
  type AwsPrices,
  type CostLine,
  connectivityLine,
  emptyUsage,
  type Fleet,
  iotFloorUsage,
  lambdaGbSeconds,
  MINUTES_PER_MONTH,
  messagesPerMonth,
  meteredUnits,
  perMillionMessages,
  priceUsage,
  totalDollars,
  type Usage,
} from './model.ts';

/** How messages arrive: MQTT through IoT Core, or an HTTP POST through API Gateway (our JSON, a Sigfox callback, a The Things Stack uplink). */
export type CostSource = 'mqtt' | 'http' | 'sigfox' | 'ttn';

export interface CostRunOptions {
  readonly fleet: Fleet;
  /** Payload bytes of each message (JSON): the simulator's readings, padded with more metrics. Sigfox and The Things Stack bodies have their networks' shape. */
  readonly messageBytes: number;
  /** Default `mqtt`. */
  readonly source?: CostSource;
  readonly config: PipelineConfig;
  readonly prices: AwsPrices;
  /** Messages run through the pipeline; figures are per message, so a few thousand suffice. */
  readonly messages?: number;
  /** Assumed service latencies (they only move Lambda GB-seconds). */
  readonly latency?: ServiceLatency;
  /** Minutes between scheduled offline checks (the stack's default is 5). */
  readonly offlineCheckMinutes?: number;
  /** Memory of the naive design's per-message function. */
  readonly naiveMemoryMb?: number;
  /** When the simulated messages end (epoch ms); default now. */
  readonly endAt?: number;
  /**
   * The Things Stack only: uplinks carry these LoRaWAN frames (`frm_payload`, `f_port`)
   * in turn instead of a `decoded_payload`, so the ingest function runs the codec
   * configured for the run's device type (`sensor`) on every message.
   */
  readonly frames?: readonly { readonly bytes: readonly number[]; readonly fPort?: number }[];
}

/** The device type the cost run's messages have: give it a decoder in `config` to price one. */
export const COST_DEVICE_TYPE = 'sensor';

/**
 * A config and frames that price a codec: the run's device type decodes with it, and
 * the uplinks carry the frames of its own examples that decode without errors.
 *
 * @throws CodecError when the codec does not load; Error when no example decodes
 */
export function withCodec(
  config: PipelineConfig,
  file: string,
  source: string,
): { config: PipelineConfig; frames: NonNullable<CostRunOptions['frames']> } {
  const codec = compileCodec(source, file);
  void codec.close();
  const frames = codec.examples
    .filter((example) => !example.output.errors?.length)
    .map((example) => ({ bytes: example.input.bytes, fPort: example.input.fPort }));
  if (frames.length === 0) {
    throw new Error(
      `codec ${file} has no example that decodes without errors to send (var examples = [...])`,
    );
  }
  const decoder: DecoderConfig = { codec: file, source };
  return {
    config: { ...config, deviceTypes: { ...config.deviceTypes, [COST_DEVICE_TYPE]: { decoder } } },
    frames,
  };
}

/** A design's bill: the lines per million messages, their total, and a month of the fleet. */
export interface DesignCost {
  readonly design: string;
  readonly lines: CostLine[];
  readonly perMillion: number;
  readonly perMonth: number;
}

export interface CostReport {
  readonly fleet: Fleet;
  readonly source: CostSource;
  /** Mean bytes of the messages run (MQTT payloads, HTTP request bodies). */
  readonly messageBytes: number;
  readonly messagesRun: number;
  readonly batches: number;
  readonly messagesPerMonth: number;
  /** SDK calls the ingest Lambda made, per message (`S3.PutObject`, `DynamoDB.PutItem`, ...). */
  readonly callsPerMessage: Record<string, number>;
  /** Mean billed duration of one ingest invocation, ms. */
  readonly ingestDurationMs: number;
  readonly pipeline: DesignCost;
  /** MQTT only: the same pipeline with devices publishing on the Basic Ingest topic. */
  readonly basicIngest?: DesignCost;
  readonly naive: DesignCost;
  /** What any pipeline behind the same front door pays: IoT Core's message, rule and action, or one API Gateway request. */
  readonly floor: DesignCost;
  /** Monthly costs that do not grow with messages: MQTT connectivity (the same for every design), offline checks. */
  readonly fixedMonthly: CostLine[];
  /** The pipeline (with Basic Ingest for MQTT) per million messages over the floor: the target is <= 1. */
  readonly ratioToFloor: number;
}

const DEVICE_TYPE = COST_DEVICE_TYPE;
/** Table names for the run; their key attributes (`pk`, `deviceId`) are those of lib/constructs/claims.ts and registry.ts. */
const TABLES = { claims: 'iot-pipeline-claims', registry: 'iot-pipeline-registry' };
const RESOURCES = {
  lakeBucket: 'iot-pipeline-lake',
  claimsTable: TABLES.claims,
  registryTable: TABLES.registry,
  alertTopicArn: 'arn:aws:sns:us-east-1:123456789012:iot-pipeline-alerts',
};
/** A certificate id as IoT Core's `principal()` gives it: 64 hex characters. */
const PRINCIPAL = 'c'.repeat(64);
const SQS_BATCH_CALL = 10;
const API_KEY = 'cost-model';
const ROUTES = { http: '/v1/telemetry', sigfox: '/v1/sigfox', ttn: '/v1/ttn' } as const;
/** The http function's memory (lib/constructs/http-api.ts). */
const HTTP_MEMORY_MB = 256;
/** The offline check function's memory (PipelineFunction's default). */
const OFFLINE_MEMORY_MB = 256;
/** What the event source mapping can hand one invocation (6 MB). */
const MAX_EVENT_BYTES = 6 * 1024 * 1024;

export async function runCostModel(options: CostRunOptions): Promise<CostReport> {
  const { fleet, config, prices } = options;
  const latency = options.latency ?? DEFAULT_LATENCY;
  // Enough messages for every device to report five times and for three batching windows.
  const perSecond = (fleet.devices * 1000) / fleet.intervalMs;
  const total =
    options.messages ??
    Math.round(
      Math.min(
        50_000,
        Math.max(2_000, fleet.devices * 5, 3 * perSecond * config.ingest.maxBatchingWindowSeconds),
      ),
    );
  const usage = emptyUsage();
  const meter = meteredClients(
    usage,
    prices,
    { [TABLES.claims]: 'pk', [TABLES.registry]: 'deviceId' },
    latency,
  );
  const logger = new Logger({ logLevel: 'SILENT' });
  const timestream = config.timestream.enabled;
  const handler = sqsIngestHandler(
    awsIngestDeps(
      config,
      {
        s3: meter.clients.s3,
        dynamodb: meter.clients.dynamodb,
        sns: meter.clients.sns,
        ...(timestream ? { timestream: meter.clients.timestream } : {}),
      },
      {
        ...RESOURCES,
        ...(timestream ? { timestream: { database: 'iot_pipeline', table: 'telemetry' } } : {}),
      },
      logger,
    ),
    logger,
  );

  const messages = simulate(fleet, options.messageBytes, total, options.endAt ?? Date.now());
  let payloadBytes = 0;
  let batches = 0;
  let billedMs = 0;
  const windowMs = config.ingest.maxBatchingWindowSeconds * 1000;
  let batch: SQSRecord[] = [];
  let batchBytes = 0;
  let opened = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const records = batch;
    batch = [];
    batchBytes = 0;
    // The event source mapping receives and deletes up to ten messages a call.
    for (let i = 0; i < records.length; i += SQS_BATCH_CALL) {
      const bytes = records.slice(i, i + SQS_BATCH_CALL).reduce((n, r) => n + Buffer.byteLength(r.body), 0);
      usage.sqsRequests += meteredUnits(bytes, prices.sqs.requestChunkBytes) + 1;
    }
    const started = performance.now();
    const result = await handler({ Records: records } as SQSEvent, lambdaContext(batches));
    const ms = Math.ceil(performance.now() - started);
    if (result.batchItemFailures.length > 0) {
      throw new Error(
        `the cost run's ingest failed ${result.batchItemFailures.length} messages: the model counts a pipeline that works`,
      );
    }
    batches++;
    billedMs += ms;
    usage.lambdaRequests++;
    usage.lambdaGbSeconds += lambdaGbSeconds(ms, config.ingest.memorySizeMb);
  };
  const source = options.source ?? 'mqtt';
  const queueUrl = 'https://sqs.us-east-1.amazonaws.com/123456789012/iot-pipeline-ingest';
  const sendToQueue = sqsEnqueue(meter.clients.sqs, queueUrl);
  /** The front door: what one message costs before the queue, and the body it puts there. */
  const arrive = async (message: SimulatedMessage): Promise<{ id: string; body: string }> => {
    if (source === 'mqtt') {
      payloadBytes += message.payload.length;
      const body = JSON.stringify(
        applyTelemetryRule({
          topic: `dt/${DEVICE_TYPE}/${message.deviceId}`,
          payload: message.payload,
          clientId: message.deviceId,
          principal: PRINCIPAL,
          timestamp: message.time,
        }),
      );
      // IoT Core: one message (5 KB units), the rule, its SQS action; the action is one SendMessage.
      usage.iotMessages += meteredUnits(message.payload.length, prices.iotCore.messageMeteringBytes);
      usage.iotRulesTriggered++;
      usage.iotActions++;
      usage.sqsRequests += meteredUnits(Buffer.byteLength(body), prices.sqs.requestChunkBytes);
      return { id: `m-${message.index}`, body };
    }
    // API Gateway, then the http function: the same request handling as the Lambda, enqueueing through SQS.
    const frame = options.frames?.[message.index % options.frames.length];
    const requestBody = Buffer.from(
      JSON.stringify(
        frame && source === 'ttn'
          ? withFrame(httpBody(source, message.device, message.values), frame)
          : httpBody(source, message.device, message.values),
      ),
    );
    payloadBytes += requestBody.length;
    usage.apiRequests += meteredUnits(requestBody.length, prices.apiGatewayHttpApi.requestMeteringBytes);
    let queued: { id: string; body: string } | undefined;
    const started = performance.now();
    const response = await handleIngress(
      {
        method: 'POST',
        path: ROUTES[source],
        query: source === 'http' ? '' : `type=${DEVICE_TYPE}`,
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: requestBody,
        requestId: `req-${message.index}`,
        receivedAt: message.time,
      },
      {
        apiKey: API_KEY,
        enqueue: async (envelope) => {
          const id = await sendToQueue(envelope);
          queued = { id, body: JSON.stringify(envelope) };
          return id;
        },
        maxBodyBytes: config.validation.maxPayloadBytes,
        config,
      },
    );
    usage.lambdaRequests++;
    usage.lambdaGbSeconds += lambdaGbSeconds(performance.now() - started, HTTP_MEMORY_MB);
    if (response.statusCode >= 300 || !queued) {
      throw new Error(`the cost run's ${ROUTES[source]} answered ${response.statusCode}: ${response.body}`);
    }
    return queued;
  };
  for (const message of messages) {
    const { id, body } = await arrive(message);
    if (
      batch.length > 0 &&
      (batch.length >= config.ingest.batchSize ||
        message.time - opened >= windowMs ||
        batchBytes + body.length > MAX_EVENT_BYTES)
    ) {
      await flush();
    }
    if (batch.length === 0) opened = message.time;
    batch.push(sqsRecord(id, body, message.time));
    batchBytes += body.length;
  }
  await flush();
  const callsPerMessage = Object.fromEntries(
    [...meter.calls].sort(([a], [b]) => a.localeCompare(b)).map(([call, n]) => [call, n / messages.length]),
  );

  const ingestUsage: Usage = { ...usage };

  // The scheduled offline check over the registry the run filled: one Scan, scaled to a month.
  const checksPerMonth = MINUTES_PER_MONTH / (options.offlineCheckMinutes ?? 5);
  const offlineStarted = performance.now();
  await detectOffline(
    {
      config,
      registry: dynamodbRegistry(meter.clients.dynamodb, TABLES.registry),
      publisher: snsAlerts(meter.clients.sns, RESOURCES.alertTopicArn),
    },
    messages[messages.length - 1]?.time ?? 0,
  );
  const offlineMs = Math.ceil(performance.now() - offlineStarted);
  const scanUnits = usage.dynamodbReadUnits - ingestUsage.dynamodbReadUnits;
  const monthly = messagesPerMonth(fleet);
  const meanBytes = payloadBytes / messages.length;

  const design = (name: string, runUsage: Usage, fixed: number): DesignCost => {
    const lines = priceUsage(perMillionMessages(runUsage, messages.length), prices);
    const perMillion = totalDollars(lines);
    return { design: name, lines, perMillion, perMonth: (perMillion * monthly) / 1e6 + fixed };
  };
  // The floor behind the same front door: IoT Core's message, rule and action, or one API Gateway request.
  const floorUsage = (): Usage => {
    if (source === 'mqtt') return iotFloorUsage(messages.length, meanBytes, prices);
    const usage = emptyUsage();
    usage.apiRequests =
      messages.length * meteredUnits(meanBytes, prices.apiGatewayHttpApi.requestMeteringBytes);
    return usage;
  };
  // The naive design: the front door invokes a function per message, which writes one S3
  // object and one Timestream record; it waits for both, and bills at least a millisecond more.
  const naiveUsage = floorUsage();
  naiveUsage.lambdaRequests = messages.length;
  naiveUsage.lambdaGbSeconds =
    messages.length * lambdaGbSeconds(latency.s3 + latency.timestream + 1, options.naiveMemoryMb ?? 128);
  naiveUsage.s3Puts = messages.length;
  naiveUsage.timestreamWrites = meter.singleRecordWrites.units;

  const offlineUsage = emptyUsage();
  offlineUsage.lambdaRequests = checksPerMonth;
  offlineUsage.lambdaGbSeconds = checksPerMonth * lambdaGbSeconds(offlineMs, OFFLINE_MEMORY_MB);
  offlineUsage.dynamodbReadUnits = checksPerMonth * scanUnits;
  const connectivity = source === 'mqtt' ? [connectivityLine(fleet, prices)] : [];
  const offlineLines: CostLine[] = [
    ...connectivity,
    {
      line: `offline checks (${Math.round(checksPerMonth)} a month: Lambda + registry Scan)`,
      units: checksPerMonth,
      dollars: totalDollars(priceUsage(offlineUsage, prices)),
    },
  ];
  const fixed = totalDollars(offlineLines);
  const label = { mqtt: 'MQTT', http: 'HTTP', sigfox: 'Sigfox', ttn: 'The Things Stack' }[source];
  const pipeline = design(`pipeline (${label})`, ingestUsage, fixed);
  const basicIngest =
    source === 'mqtt'
      ? design('pipeline (Basic Ingest)', { ...ingestUsage, iotMessages: 0 }, fixed)
      : undefined;
  const naive = design('naive (Lambda per message)', naiveUsage, totalDollars(connectivity));
  const floor = design(
    source === 'mqtt' ? 'IoT Core floor' : 'API Gateway floor',
    floorUsage(),
    totalDollars(connectivity),
  );
  return {
    fleet,
    source,
    messageBytes: Math.round(meanBytes),
    messagesRun: messages.length,
    batches,
    messagesPerMonth: Math.round(monthly),
    callsPerMessage,
    ingestDurationMs: billedMs / batches,
    pipeline,
    ...(basicIngest ? { basicIngest } : {}),
    naive,
    floor,
    fixedMonthly: offlineLines,
    ratioToFloor: (basicIngest ?? pipeline).perMillion / floor.perMillion,
  };
}

/** A The Things Stack uplink carrying a raw frame for the codec, not a decoded payload. */
function withFrame(
  uplink: ReturnType<typeof httpBody>,
  frame: NonNullable<CostRunOptions['frames']>[number],
): object {
  const { uplink_message: message, ...rest } = uplink as {
    uplink_message: Record<string, unknown>;
  } & Record<string, unknown>;
  const { decoded_payload: _, ...radio } = message;
  return {
    ...rest,
    uplink_message: {
      ...radio,
      f_port: frame.fPort ?? 1,
      frm_payload: Buffer.from(frame.bytes).toString('base64'),
    },
  };
}

interface SimulatedMessage {
  readonly index: number;
  readonly deviceId: string;
  readonly device: SimulatedDevice;
  readonly time: number;
  /** The reading, padded with extra metrics to the wanted size. */
  readonly values: ReturnType<typeof nextReading>;
  /** The reading as an MQTT JSON payload. */
  readonly payload: Buffer;
}

/**
 * `total` messages of the fleet in time order, each device once per interval (spread
 * evenly over it), ending at `endAt`. Readings are the simulator's, with extra sensor
 * metrics until their JSON reaches `bytes`.
 */
function simulate(fleet: Fleet, bytes: number, total: number, endAt: number): SimulatedMessage[] {
  const rand = random(7);
  const devices = createFleet(
    { devices: fleet.devices, type: DEVICE_TYPE, silentShare: 0, silentWithin: 0, seed: 7 },
    rand,
  );
  const step = fleet.intervalMs / fleet.devices;
  const start = endAt - Math.ceil(total * step) - 1000;
  return Array.from({ length: total }, (_, index) => {
    const device = devices[index % devices.length] as SimulatedDevice;
    const time = Math.floor(start + index * step);
    const values: ReturnType<typeof nextReading> & Record<string, number> = nextReading(device, time, rand);
    for (let n = 1; JSON.stringify(values).length < bytes; n++) {
      values[`s${String(n).padStart(2, '0')}`] = Math.round(rand() * 100_000) / 100;
    }
    return { index, deviceId: device.id, device, time, values, payload: Buffer.from(JSON.stringify(values)) };
  });
}

function sqsRecord(messageId: string, body: string, sentAt: number): SQSRecord {
  return {
    messageId,
    receiptHandle: messageId,
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(sentAt),
      SenderId: 'iot',
      ApproximateFirstReceiveTimestamp: String(sentAt),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:iot-pipeline-ingest',
    awsRegion: 'us-east-1',
  };
}

function lambdaContext(invocation: number): Context {
  return {
    functionName: 'iot-pipeline-ingest',
    awsRequestId: `cost-${invocation}`,
    getRemainingTimeInMillis: () => 60_000,
  } as Context;
}

/** The prices the repository carries: a copy of the public us-east-1 list prices (a test keeps it equal to `../shared/aws-prices.json`). */
export const PRICES_FILE = new URL('./aws-prices.json', import.meta.url);

/** The report as one table: each bill line per million messages, for the four designs side by side. */
export function costTable(report: CostReport): Rows {
  const designs = [report.pipeline, report.basicIngest, report.naive, report.floor].filter(
    (d): d is DesignCost => d !== undefined,
  );
  const columns = ['line', 'per message', ...designs.map((d) => `${d.design} $/M`)];
  const names = [...new Set(designs.flatMap((d) => d.lines.map((l) => l.line)))];
  const money = (n: number) => (n === 0 ? '-' : n < 0.01 ? n.toFixed(4) : n.toFixed(2));
  const rows: Record<string, string>[] = names.map((name) => {
    const row: Record<string, string> = { line: name };
    const ours =
      report.pipeline.lines.find((l) => l.line === name) ?? report.naive.lines.find((l) => l.line === name);
    row['per message'] = ours ? formatUnits(ours.units / 1e6) : '';
    for (const d of designs)
      row[`${d.design} $/M`] = money(d.lines.find((l) => l.line === name)?.dollars ?? 0);
    return row;
  });
  const total = (label: string, pick: (d: DesignCost) => number) => {
    const row: Record<string, string> = { line: label, 'per message': '' };
    for (const d of designs) row[`${d.design} $/M`] = pick(d).toFixed(2);
    return row;
  };
  rows.push(total('total per million messages', (d) => d.perMillion));
  rows.push(
    total(`total per month (${formatUnits(report.messagesPerMonth)} messages + fixed)`, (d) => d.perMonth),
  );
  rows.push(total(`ratio to the ${report.floor.design}`, (d) => d.perMillion / report.floor.perMillion));
  return { columns, rows };
}

function formatUnits(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  return n >= 1 ? n.toFixed(2) : n.toPrecision(2);
}
