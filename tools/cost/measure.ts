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
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { dynamodbKeyStore } from '../../lambdas/adapters/aws/dynamodb-keys.ts';
import { dynamodbRegistry } from '../../lambdas/adapters/aws/dynamodb-registry.ts';
import { KEY_CACHE_MS } from '../../lambdas/adapters/aws/gate.ts';
import {
  awsEstateDeps,
  awsIngestDeps,
  sqsEstateHandler,
  sqsIngestHandler,
} from '../../lambdas/adapters/aws/ingest-lambda.ts';
import { sqsEnqueue } from '../../lambdas/adapters/aws/queue.ts';
import { snsAlerts } from '../../lambdas/adapters/aws/sns-alerts.ts';
import { createKey } from '../../lambdas/core/access/keys.ts';
import { cachedKeys, createGate, usageRecorder } from '../../lambdas/core/api/gate.ts';
import { handleIngress } from '../../lambdas/core/api/ingress.ts';
import { compileCodec } from '../../lambdas/core/decoders/codec.ts';
import type { Decoders } from '../../lambdas/core/decoders/decoder.ts';
import { buildDecoders, type DecoderConfig } from '../../lambdas/core/decoders/registry.ts';
import type { DeviceRecord } from '../../lambdas/core/estate/alerts.ts';
import { MAX_SHARDS, shardOf } from '../../lambdas/core/estate/delta.ts';
import { registrySources } from '../../lambdas/core/estate/sources.ts';
import { detectOffline } from '../../lambdas/core/estate/update.ts';
import { formatOf } from '../../lambdas/core/formats/index.ts';
import { applyLorawanRule } from '../../lambdas/core/formats/iot-lorawan.ts';
import { applyTelemetryRule } from '../../lambdas/core/formats/mqtt-topic.ts';
import { lorawanRuleName } from '../../lambdas/core/iot-names.ts';
import { COMPACTION_LIMITS, compactionUsage } from '../../lambdas/core/lake/compaction.ts';
import { ENV } from '../../lambdas/env.ts';
import type { PipelineConfig } from '../../lib/config.ts';
import { NETWORKS, networkRequest, type SimulatedFormat } from '../simulator/bodies.ts';
import { athenaPrices, chartViewBytes, chartViewDollars } from './chart.ts';
import {
  type AlternativeDesign,
  basicIngestFloor,
  type Crossover,
  firehoseDesign,
  kinesisCrossover,
  kinesisDesign,
  type LakeWrites,
  lakeWrites,
} from './designs.ts';
import { CONSOLE_VIEW, consoleViewUsage, type EstateCall, measureEstateCalls } from './estate.ts';
import { DEFAULT_LATENCY, meteredClients, type ServiceLatency } from './metered-aws.ts';
import {
  type AwsPrices,
  type CostLine,
  connectivityLine,
  type DesignCost,
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
  unpricedUsage,
} from './model.ts';
import {
  COST_DEVICE_TYPE,
  type CodecFrame,
  lambdaContext,
  type SimulatedMessage,
  simulate,
  sqsRecord,
} from './traffic.ts';

/**
 * How messages arrive: MQTT through IoT Core, an IoT Core for LoRaWAN uplink through its
 * rule, or an HTTP POST through API Gateway (our JSON, a Sigfox callback as JSON or a
 * form, a The Things Stack uplink, a ChirpStack event): MQTT and every format the
 * simulator has a message for (`tools/simulator/bodies.ts`).
 */
export type CostSource = 'mqtt' | SimulatedFormat;

/** The sources whose uplinks can carry a codec's frames (`frames`, `--codec`). */
export const CODEC_SOURCES = (Object.keys(NETWORKS) as SimulatedFormat[]).filter((f) => NETWORKS[f].frames);

export interface CostRunOptions {
  readonly fleet: Fleet;
  /** Payload bytes of each message (JSON): the simulator's readings, padded with more metrics. The networks' bodies (Sigfox, The Things Stack, ChirpStack, IoT Core for LoRaWAN) have their own shape and size. */
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
  /**
   * Device charts viewed a day (the console's 7-day series, one Athena query each,
   * `tools/cost/chart.ts`), priced as a fixed monthly line; two metrics a message assumed.
   */
  readonly chartViewsPerDay?: number;
  /**
   * Console views of the estate a day (`GET /v1/estate` and a page of `GET /v1/devices`,
   * `tools/cost/estate.ts`), measured over the fleet's registry and priced as a fixed monthly line.
   */
  readonly estateCallsPerDay?: number;
  /** Memory of the naive design's per-message function. */
  readonly naiveMemoryMb?: number;
  /** When the simulated messages end (epoch ms); default now. */
  readonly endAt?: number;
  /**
   * LoRaWAN sources ({@link CODEC_SOURCES}): uplinks carry these frames in turn
   * (`frm_payload`, `data`, `PayloadData`, with their port) instead of the network's
   * decoded payload or the simulator's LHT65 frame, so the ingest function runs the
   * codec configured for the run's device type (`sensor`) on every message.
   */
  readonly frames?: readonly CodecFrame[];
  /** The codec file the run's device type decodes with, named in the report's notes. */
  readonly codec?: string;
}

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
  return { config: withDeviceCodec(config, file, source), frames };
}

/**
 * A config whose run device type (`sensor`) decodes with the codec: what IoT Core for
 * LoRaWAN uplinks need, whose frames are the simulator's own (LHT65) unless `frames` are given.
 */
export function withDeviceCodec(config: PipelineConfig, file: string, source: string): PipelineConfig {
  const decoder: DecoderConfig = { codec: file, source };
  return { ...config, deviceTypes: { ...config.deviceTypes, [COST_DEVICE_TYPE]: { decoder } } };
}

export type { DesignCost };

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
  /** The codec the run decoded with, when one did. */
  readonly codec?: string;
  /** What a reader of the figures must know: lines not priced and how to price them, the codec used. */
  readonly notes: string[];
  /** With `estateCallsPerDay`: each estate call's registry reads at the fleet's size, and a console view's price. */
  readonly estate?: {
    readonly devices: number;
    readonly callsPerDay: number;
    readonly calls: readonly EstateCall[];
    /** One console view: `GET /v1/estate` and a page of `GET /v1/devices` (API Gateway, Lambda, registry reads). */
    readonly dollarsPerView: number;
  };
  /** The S3 objects the ingest path writes a day (PutObject calls counted, scaled to the fleet), all and by folder. */
  readonly lake: LakeWrites;
  /**
   * Seconds from a message's arrival to its readings in the lake (the ingest window and
   * invocation) and to its device's record and alerts (then the estate window and its
   * invocation), over the messages run, as the event sources close batches.
   */
  readonly latency: { readonly lake: Percentiles; readonly estate: Percentiles };
  /**
   * The intraday compaction at this fleet (`lambdas/core/lake/compaction.ts`): the
   * objects a day it leaves in `readings/` and `raw/` (an hour partition is merged in
   * groups of at most 6 MiB stored), their average bytes, and one run's Lambda time.
   */
  readonly compaction: {
    readonly objectsPerDay: number;
    readonly averageBytes: number;
    readonly runSeconds: number;
  };
  /**
   * IoT rule sources (MQTT, IoT Core for LoRaWAN): the designs a user would pick instead,
   * priced from the same messages (`tools/cost/designs.ts`), and where a provisioned stream
   * becomes cheaper than the queue.
   */
  readonly alternatives?: {
    readonly firehose: AlternativeDesign;
    readonly kinesis: AlternativeDesign;
    /** MQTT: the rule and action without the messaging charge. */
    readonly basicIngestFloor?: AlternativeDesign;
    readonly crossover: Crossover;
  };
}

export interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** p50, p99 and the largest of durations in ms, in seconds. */
function percentiles(ms: readonly number[]): Percentiles {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) =>
    (sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0) / 1000;
  return { p50: at(0.5), p99: at(0.99), max: (sorted[sorted.length - 1] ?? 0) / 1000 };
}

/** Table names for the run; their key attributes (`pk`, `deviceId`, `id`) are those of lib/constructs/claims.ts, registry.ts and api-keys.ts. */
const TABLES = {
  claims: 'iot-pipeline-claims',
  registry: 'iot-pipeline-registry',
  keys: 'iot-pipeline-keys',
};
const ALERT_TOPIC_ARN = 'arn:aws:sns:us-east-1:123456789012:iot-pipeline-alerts';
/** The estate queues, one per shard (`estate.shards`), as the stack names them in order. */
const ESTATE_QUEUE_URLS = Array.from(
  { length: MAX_SHARDS },
  (_, shard) => `https://sqs.us-east-1.amazonaws.com/123456789012/iot-pipeline-estate-${shard}`,
);
/** The ingest and estate functions' environments as the stack sets them (names from `lambdas/env.ts`). */
const RESOURCES = {
  [ENV.lakeBucket]: 'iot-pipeline-lake',
  [ENV.claimsTable]: TABLES.claims,
  [ENV.registryTable]: TABLES.registry,
  [ENV.alertTopicArn]: ALERT_TOPIC_ARN,
};
/** The estate function's memory and its event source's batch size (lib/constructs/estate-updates.ts). */
const ESTATE_MEMORY_MB = 512;
const ESTATE_BATCH_SIZE = 10_000;
/**
 * Devices a run simulates at most. A larger fleet is run as a sample of this many at the
 * same interval: the ingest batches still fill to their batch size (at 1,000 a batch and
 * a 20 s window, 3,000 devices at one message a minute fill them) and the estate
 * function's 6 MB invocations are scaled by the sample's share, so both see per message
 * what the whole fleet's would; what is per fleet (connectivity, the offline Scan, the
 * estate's listings) is scaled back to the fleet.
 */
export const SAMPLE_DEVICES = 3000;
/** A certificate id as IoT Core's `principal()` gives it: 64 hex characters. */
const PRINCIPAL = 'c'.repeat(64);
const SQS_BATCH_CALL = 10;
/** The http function's memory (lib/constructs/http-api.ts). */
const HTTP_MEMORY_MB = 256;
/** The offline check function's memory (PipelineFunction's default). */
const OFFLINE_MEMORY_MB = 256;
/** What the event source mapping can hand one invocation (6 MB). */
const MAX_EVENT_BYTES = 6 * 1024 * 1024;

/** Runs the fleet through the ingest Lambda's handler over metered clients, and prices what it counted. */
export async function runCostModel(options: CostRunOptions): Promise<CostReport> {
  const source = options.source ?? 'mqtt';
  if (options.frames && !CODEC_SOURCES.some((s) => s === source)) {
    throw new RangeError(
      `${source} messages carry no codec frames: frames apply to ${CODEC_SOURCES.join(', ')}`,
    );
  }
  let config = options.config;
  if (source === 'iot-lorawan') {
    // The uplinks name no type: the config gives the run's devices theirs, and its codec decodes them.
    if (!config.deviceTypes[COST_DEVICE_TYPE]?.decoder) {
      throw new RangeError(
        `iot-lorawan uplinks need a codec: give device type "${COST_DEVICE_TYPE}" one (withCodec, or cost --codec <file>)`,
      );
    }
    config = { ...config, iotLorawan: { ...config.iotLorawan, deviceType: COST_DEVICE_TYPE } };
  }
  const decoders = buildDecoders(config.deviceTypes);
  try {
    return await meteredRun({ ...options, config }, decoders);
  } finally {
    await decoders.close();
  }
}

async function meteredRun(options: CostRunOptions, decoders: Decoders): Promise<CostReport> {
  const { fleet, config, prices } = options;
  const latency = options.latency ?? DEFAULT_LATENCY;
  // A fleet past SAMPLE_DEVICES runs as a sample of it: `share` of the fleet.
  const sample: Fleet = { ...fleet, devices: Math.min(fleet.devices, SAMPLE_DEVICES) };
  const share = sample.devices / fleet.devices;
  // Enough messages for every device to report five times, and for three windows of
  // the ingest batching and of the estate's.
  const perSecond = (sample.devices * 1000) / sample.intervalMs;
  const longestWindow = Math.max(
    config.ingest.maxBatchingWindowSeconds,
    config.estate.maxBatchingWindowSeconds,
  );
  const total =
    options.messages ??
    Math.round(Math.min(60_000, Math.max(2_000, sample.devices * 5, 3 * perSecond * longestWindow)));
  const usage = emptyUsage();
  const meter = meteredClients(
    usage,
    prices,
    { [TABLES.claims]: 'pk', [TABLES.registry]: 'deviceId', [TABLES.keys]: 'id' },
    latency,
  );
  // The key the callbacks hold, stored before the run (its two calls are not the messages' cost).
  const keys = dynamodbKeyStore(meter.clients.dynamodb, TABLES.keys);
  const made = createKey({ name: 'cost-model', scopes: ['ingest'] }, 0);
  await keys.add(made.record);
  Object.assign(usage, emptyUsage());
  meter.calls.clear();
  // The http function's caches run on the fleet's clock: a key read per 30 s, a device's way in per 5 min.
  let clock = 0;
  const gate = createGate({
    find: cachedKeys(
      (id) => keys.find(id),
      KEY_CACHE_MS,
      () => clock,
    ),
    // What AWS bills is the question here, not who is throttled.
    limits: { keyRateLimit: 1e9, keyBurstLimit: 1e9, anonymousRateLimit: 1, anonymousBurstLimit: 1 },
    onUse: usageRecorder(
      (used) => keys.touch(used),
      (error) => {
        throw error;
      },
    ),
    now: () => clock,
    clock: () => clock,
  });
  const sources = registrySources(dynamodbRegistry(meter.clients.dynamodb, TABLES.registry), {
    now: () => clock,
  });
  const logger = new Logger({ logLevel: 'SILENT' });
  const timestream = config.timestream.enabled;
  const handler = sqsIngestHandler(
    awsIngestDeps(
      config,
      meter.clients,
      {
        ...RESOURCES,
        [ENV.estateQueueUrls]: ESTATE_QUEUE_URLS.slice(0, config.estate.shards).join(','),
        ...(timestream
          ? { [ENV.timestreamDatabase]: 'iot_pipeline', [ENV.timestreamTable]: 'telemetry' }
          : {}),
      },
      logger,
      undefined,
      decoders,
    ),
    logger,
  );

  const estateHandler = sqsEstateHandler(awsEstateDeps(config, meter.clients, RESOURCES), logger);

  const messages = simulate(sample, options.messageBytes, total, options.endAt ?? Date.now());
  let payloadBytes = 0;
  let batches = 0;
  let billedMs = 0;
  const windowMs = config.ingest.maxBatchingWindowSeconds * 1000;
  let batch: SQSRecord[] = [];
  let batchBytes = 0;
  let opened = 0;
  // The estate queue's event source: its deltas gathered for the estate window, or until
  // 10,000 messages or the 6 MB an invocation takes (scaled to the sample's share).
  const estateWindowMs = config.estate.maxBatchingWindowSeconds * 1000;
  /** What an event source mapping bills for a batch: a receive and a delete per ten messages, the receive in 64 KB chunks. */
  const receiveAndDelete = (records: readonly SQSRecord[]) => {
    let requests = 0;
    for (let i = 0; i < records.length; i += SQS_BATCH_CALL) {
      const bytes = records.slice(i, i + SQS_BATCH_CALL).reduce((n, r) => n + Buffer.byteLength(r.body), 0);
      requests += meteredUnits(bytes, prices.sqs.requestChunkBytes) + 1;
    }
    return requests;
  };
  const estateRun = { invocations: 0, bytes: 0, cutShort: 0 };
  const toLake: number[] = [];
  const toEstate: number[] = [];
  /**
   * One shard's event source: its deltas, gathered for the estate window, or until 10,000
   * messages or the 6 MB an invocation takes (scaled to the sample's share); and the
   * arrival times of the messages whose readings wait in them, to measure how long each
   * took to reach the registry (a batch closes when its window runs out, or when full).
   */
  const estateSource = () => {
    let deltas: SQSRecord[] = [];
    let bytes = 0;
    let openedAt = 0;
    let lastAt = 0;
    let waiting: number[] = [];
    const flushShard = async (trigger = Number.POSITIVE_INFINITY) => {
      if (deltas.length === 0) return;
      const records = deltas;
      const times = waiting;
      const full = records.length >= ESTATE_BATCH_SIZE || trigger === lastAt;
      const closedAt = full ? lastAt : Math.min(trigger, openedAt + estateWindowMs);
      deltas = [];
      waiting = [];
      bytes = 0;
      usage.sqsRequests += receiveAndDelete(records);
      const started = performance.now();
      const result = await estateHandler(
        { Records: records } as SQSEvent,
        lambdaContext(estateRun.invocations),
      );
      const ms = Math.ceil(performance.now() - started);
      if (result.batchItemFailures.length > 0) {
        throw new Error(
          `the cost run's estate function failed ${result.batchItemFailures.length} updates: the model counts a pipeline that works`,
        );
      }
      estateRun.invocations++;
      for (const t of times) toEstate.push(closedAt + ms - t);
      usage.lambdaRequests++;
      usage.lambdaGbSeconds += lambdaGbSeconds(ms, ESTATE_MEMORY_MB);
    };
    return {
      flush: flushShard,
      /** A delta sent at `at`, carrying (first of its batch's for this shard) messages that arrived at `times`. */
      async take(at: number, delta: { messageId: string; body: string }, times: readonly number[]) {
        const size = Buffer.byteLength(delta.body);
        const over = bytes + size > MAX_EVENT_BYTES * share;
        estateRun.bytes += size;
        if (deltas.length > 0 && over && at - openedAt < estateWindowMs) estateRun.cutShort++;
        if (deltas.length > 0 && (at - openedAt >= estateWindowMs || over))
          await flushShard(over ? lastAt : at);
        if (deltas.length === 0) openedAt = at;
        deltas.push(sqsRecord(delta.messageId, delta.body, at));
        bytes += size;
        lastAt = at;
        waiting.push(...times);
        if (deltas.length >= ESTATE_BATCH_SIZE) await flushShard(at);
      },
    };
  };
  const shards = ESTATE_QUEUE_URLS.slice(0, config.estate.shards);
  const estateSources = new Map(shards.map((url) => [url, estateSource()] as const));
  /** The deltas the ingest function sent at `at` for messages of these devices that arrived at these times. */
  const takeDeltas = async (at: number, messages: readonly { device: string; time: number }[]) => {
    const sent = meter.sent.splice(0, meter.sent.length).filter((m) => estateSources.has(m.queueUrl));
    const counted = new Set<string>();
    for (const delta of sent) {
      const shard = shards.indexOf(delta.queueUrl);
      // Each message's wait counted once, with the first delta of its device's shard.
      const times = counted.has(delta.queueUrl)
        ? []
        : messages.filter((m) => shardOf(m.device, shards.length) === shard).map((m) => m.time);
      counted.add(delta.queueUrl);
      await estateSources.get(delta.queueUrl)?.take(at, delta, times);
    }
  };
  const flushEstate = async () => {
    for (const source of estateSources.values()) await source.flush();
  };
  /** The ingest queue's SQS requests (the rule's sends, the event source mapping's receives and deletes): what a stream would replace. */
  let ingestQueueRequests = 0;
  let batchTimes: { device: string; time: number }[] = [];
  const flush = async (at: number) => {
    if (batch.length === 0) return;
    const records = batch;
    const times = batchTimes;
    const full = records.length >= config.ingest.batchSize;
    const closedAt = full ? (times[times.length - 1]?.time ?? at) : Math.min(at, opened + windowMs);
    batch = [];
    batchTimes = [];
    batchBytes = 0;
    const polled = receiveAndDelete(records);
    usage.sqsRequests += polled;
    ingestQueueRequests += polled;
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
    for (const t of times) toLake.push(closedAt + ms - t.time);
    await takeDeltas(closedAt + ms, times);
  };
  const source = options.source ?? 'mqtt';
  const lorawanRule = lorawanRuleName(config.stage);
  const queueUrl = 'https://sqs.us-east-1.amazonaws.com/123456789012/iot-pipeline-ingest';
  const sendToQueue = sqsEnqueue(meter.clients.sqs, queueUrl);
  /** The front door: what one message costs before the queue, and the body it puts there. */
  const arrive = async (message: SimulatedMessage): Promise<{ id: string; body: string }> => {
    if (source === 'mqtt') {
      payloadBytes += message.payload.length;
      const body = JSON.stringify(
        applyTelemetryRule({
          topic: `dt/${COST_DEVICE_TYPE}/${message.deviceId}`,
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
      ingestQueueRequests += meteredUnits(Buffer.byteLength(body), prices.sqs.requestChunkBytes);
      return { id: `m-${message.index}`, body };
    }
    const frame = options.frames?.[message.index % options.frames.length];
    const request = networkRequest(source, message.device, message.values, {
      stage: config.stage,
      ...(frame ? { frame } : {}),
    });
    if (request.via === 'mqtt') {
      // IoT Core for LoRaWAN hands the uplink to its rule as Basic Ingest does (no messaging
      // charge): the rule, its SQS action, one SendMessage; and the LoRaWAN uplink itself.
      payloadBytes += request.body.length;
      const body = JSON.stringify(
        applyLorawanRule(lorawanRule, {
          topic: request.topic,
          payload: request.body,
          clientId: lorawanRule,
          timestamp: message.time,
        }),
      );
      usage.lorawanUplinks++;
      usage.iotRulesTriggered++;
      usage.iotActions++;
      usage.sqsRequests += meteredUnits(Buffer.byteLength(body), prices.sqs.requestChunkBytes);
      ingestQueueRequests += meteredUnits(Buffer.byteLength(body), prices.sqs.requestChunkBytes);
      return { id: `m-${message.index}`, body };
    }
    // API Gateway, then the http function: the same request handling as the Lambda, enqueueing through SQS.
    const requestBody = request.body;
    payloadBytes += requestBody.length;
    usage.apiRequests += meteredUnits(requestBody.length, prices.apiGatewayHttpApi.requestMeteringBytes);
    let queued: { id: string; body: string } | undefined;
    clock = message.time;
    // The request's calls are one after another: their latency added, not slept (a run of
    // 15,000 callbacks would otherwise wait minutes).
    meter.virtualWait.on = true;
    meter.virtualWait.ms = 0;
    const started = performance.now();
    let response: Awaited<ReturnType<typeof handleIngress>>;
    try {
      response = await handleIngress(
        {
          method: 'POST',
          path: request.path,
          query: new URLSearchParams(request.query).toString(),
          headers: { authorization: `Bearer ${made.key}`, 'content-type': request.contentType },
          body: requestBody,
          requestId: `req-${message.index}`,
          receivedAt: message.time,
        },
        {
          gate,
          sources,
          enqueue: async (envelope) => {
            const id = await sendToQueue(envelope);
            queued = { id, body: JSON.stringify(envelope) };
            return id;
          },
          maxBodyBytes: config.validation.maxPayloadBytes,
          config,
        },
      );
    } finally {
      meter.virtualWait.on = false;
    }
    usage.lambdaRequests++;
    usage.lambdaGbSeconds += lambdaGbSeconds(
      performance.now() - started + meter.virtualWait.ms,
      HTTP_MEMORY_MB,
    );
    if (response.statusCode >= 300 || !queued) {
      throw new Error(`the cost run's ${request.path} answered ${response.statusCode}: ${response.body}`);
    }
    return queued;
  };
  /** The bodies the front door hands the queue, by size: what an IoT rule's action would hand another service. */
  const records = new Map<number, number>();
  for (const message of messages) {
    const { id, body } = await arrive(message);
    const recordBytes = Buffer.byteLength(body);
    records.set(recordBytes, (records.get(recordBytes) ?? 0) + 1);
    if (
      batch.length > 0 &&
      (batch.length >= config.ingest.batchSize ||
        message.time - opened >= windowMs ||
        batchBytes + body.length > MAX_EVENT_BYTES)
    ) {
      await flush(message.time);
    }
    if (batch.length === 0) opened = message.time;
    batch.push(sqsRecord(id, body, message.time));
    batchTimes.push({ device: message.deviceId, time: message.time });
    batchBytes += body.length;
  }
  const end = messages[messages.length - 1]?.time ?? 0;
  await flush(end);
  // What the estate queue holds at the end goes in one last invocation (a window cut short: it coalesces less).
  await flushEstate();
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
      publisher: snsAlerts(meter.clients.sns, ALERT_TOPIC_ARN),
    },
    messages[messages.length - 1]?.time ?? 0,
  );
  const offlineMs = Math.ceil(performance.now() - offlineStarted);
  // The sample's registry scanned; the fleet's is larger by the sample's share.
  const scanUnits = (usage.dynamodbReadUnits - ingestUsage.dynamodbReadUnits) / share;
  const monthly = messagesPerMonth(fleet);
  const meanBytes = payloadBytes / messages.length;
  // The intraday compaction of readings/ and raw/ (every 10 minutes, lib/constructs/compaction.ts),
  // from the objects the run wrote: it grows with the messages, so its month is spread over them.
  const lake = lakeWrites(meter.puts, messages.length, fleet);
  const hourly = (prefix: string) => (lake.byPrefix[prefix]?.objectsPerDay ?? 0) / 24;
  const storedPerHour = (prefix: string) =>
    ((lake.byPrefix[prefix]?.objectsPerDay ?? 0) * (lake.byPrefix[prefix]?.averageBytes ?? 0)) / 24;
  const compaction = compactionUsage({
    batchesPerHour: hourly('readings/'),
    bytesPerHour: storedPerHour('readings/') + storedPerHour('raw/'),
    sourcesInUse: 1,
  });
  const ofRun = messages.length / monthly;
  const storedPerDay = 24 * (storedPerHour('readings/') + storedPerHour('raw/'));
  const compactedPerDay =
    24 *
    (Math.ceil(storedPerHour('readings/') / COMPACTION_LIMITS.maxInputBytes) +
      Math.ceil(storedPerHour('raw/') / COMPACTION_LIMITS.maxInputBytes));
  ingestUsage.s3Puts += (compaction.put + compaction.list) * ofRun;
  ingestUsage.s3Gets += compaction.get * ofRun;
  ingestUsage.lambdaRequests += compaction.runs * ofRun;
  ingestUsage.lambdaGbSeconds += compaction.lambdaGbSeconds * ofRun;

  const design = (name: string, runUsage: Usage, fixed: number): DesignCost => {
    const perMillionUsage = perMillionMessages(runUsage, messages.length);
    const lines = priceUsage(perMillionUsage, prices);
    const notPriced = unpricedUsage(perMillionUsage, prices);
    const perMillion = totalDollars(lines);
    return {
      design: name,
      lines,
      ...(notPriced.length > 0 ? { notPriced } : {}),
      perMillion,
      perMonth: (perMillion * monthly) / 1e6 + fixed,
    };
  };
  // The floor behind the same front door: IoT Core's message, rule and action; the
  // LoRaWAN uplink, its rule and action; or one API Gateway request.
  const floorUsage = (): Usage => {
    if (source === 'mqtt') return iotFloorUsage(messages.length, meanBytes, prices);
    if (source === 'iot-lorawan') {
      const usage = emptyUsage();
      usage.lorawanUplinks = messages.length;
      usage.iotRulesTriggered = messages.length;
      usage.iotActions = messages.length;
      return usage;
    }
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
  if (options.chartViewsPerDay) {
    const view = { devices: fleet.devices, readingsPerMinute: (2 * 60_000) / fleet.intervalMs };
    const bytes = chartViewBytes(view);
    const views = options.chartViewsPerDay * 30;
    offlineLines.push({
      line: `chart views (${options.chartViewsPerDay} a day, 7 days each: Athena scans ${Math.round((bytes.curated + bytes.ndjson) / 1e6)} MB a view)`,
      units: views,
      dollars: views * chartViewDollars(view, athenaPrices(prices)),
    });
  }
  let estate: CostReport['estate'];
  if (options.estateCallsPerDay) {
    // The registry the run filled, grown to the fleet's size with records like its own.
    const templates = [...(meter.tables.get(TABLES.registry)?.values() ?? [])].map(
      (item) => JSON.parse(String(item.record?.S)) as DeviceRecord,
    );
    const calls = await measureEstateCalls({
      devices: fleet.devices,
      templates,
      prices,
      at: messages[messages.length - 1]?.time ?? 0,
      latency,
    });
    const dollarsPerView = totalDollars(priceUsage(consoleViewUsage(calls), prices));
    const views = options.estateCallsPerDay * 30;
    estate = { devices: fleet.devices, callsPerDay: options.estateCallsPerDay, calls, dollarsPerView };
    offlineLines.push({
      line: `console views of the estate (${options.estateCallsPerDay} a day: ${CONSOLE_VIEW.join(' + ')}, ${consoleViewUsage(calls).dynamodbReadUnits} registry read units each)`,
      units: views,
      dollars: views * dollarsPerView,
    });
  }
  const fixed = totalDollars(offlineLines);
  // The designs a user would pick instead, behind the same IoT rule (Basic Ingest for MQTT).
  const ruleInputs =
    source === 'mqtt' || source === 'iot-lorawan'
      ? {
          fleet,
          messages: messages.length,
          records,
          frontDoor: { ...floorUsage(), iotMessages: 0 },
          pipeline: ingestUsage,
          queueRequests: ingestQueueRequests,
          fixedMonthly: totalDollars(connectivity),
        }
      : undefined;
  const alternatives: CostReport['alternatives'] = ruleInputs && {
    firehose: firehoseDesign(ruleInputs, prices),
    kinesis: kinesisDesign(ruleInputs, prices),
    ...(source === 'mqtt' ? { basicIngestFloor: basicIngestFloor(ruleInputs, prices) } : {}),
    crossover: kinesisCrossover(ruleInputs, prices),
  };
  const network = source === 'mqtt' ? undefined : NETWORKS[source];
  const title = formatOf(network?.source ?? source)?.title ?? source;
  const label = source === 'sigfox-form' ? `${title}, form body` : title;
  const pipeline = design(`pipeline (${label})`, ingestUsage, fixed);
  const basicIngest =
    source === 'mqtt'
      ? design('pipeline (Basic Ingest)', { ...ingestUsage, iotMessages: 0 }, fixed)
      : undefined;
  const naive = design('naive (Lambda per message)', naiveUsage, totalDollars(connectivity));
  const floor = design(
    source === 'mqtt'
      ? 'IoT Core floor'
      : source === 'iot-lorawan'
        ? 'IoT Core for LoRaWAN floor'
        : 'API Gateway floor',
    floorUsage(),
    totalDollars(connectivity),
  );
  const notes: string[] = [];
  // The compaction function's timeout (lib/constructs/compaction.ts): 5 minutes.
  const compactionSeconds = compaction.lambdaMs / compaction.runs / 1000;
  if (compactionSeconds > 300)
    notes.push(
      `intraday compaction: a run would take about ${Math.round(compactionSeconds)} s at ${fleet.devices.toLocaleString('en-US')} devices, ` +
        'past its 5 minute timeout: runs are cut off (safely: each group is written before its inputs go), and the hours they do not reach keep their small objects until the daily job; the compaction line prices whole runs',
    );
  if (estateRun.cutShort > 0) {
    // A window's updates, per shard, against what one invocation takes.
    const span = Math.max(1, end - (messages[0]?.time ?? end));
    const perWindow = (estateRun.bytes * Math.max(1, estateWindowMs)) / span / share;
    const needed = Math.min(MAX_SHARDS, Math.ceil((perWindow / MAX_EVENT_BYTES) * 1.2));
    notes.push(
      `the estate's ${config.estate.maxBatchingWindowSeconds} s window was cut short ${estateRun.cutShort} times by the 6 MB an invocation takes ` +
        `(${(perWindow / 1e6).toFixed(1)} MB of updates a window at ${fleet.devices.toLocaleString('en-US')} devices): ` +
        `with estate.shards ${needed} each shard's window holds its devices' whole window`,
    );
  }
  for (const missing of pipeline.notPriced ?? []) {
    notes.push(
      `not priced: ${missing.line} (${(missing.units / 1e6).toFixed(2)} per message, in every design): ` +
        `the price list has no ${missing.missing}; add it to a prices file (dollars per million) and pass --prices <file>. ` +
        'The totals and the ratio leave it out.',
    );
  }
  if (options.codec !== undefined) notes.push(`decoded with the codec ${options.codec}`);
  if (estate)
    notes.push(
      'console views: GET /v1/estate also reads the ingest counts from CloudWatch (GetMetricData, 2 metrics, $0.01 per 1,000 metrics, at most once a minute per function instance) ' +
        "and the uptime from Athena (daily_uptime, the 10 MB minimum, $0.00005 a query, at most once per 10 minutes per instance): neither is in the price list's lines, nor in the figures",
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
    ...(options.codec === undefined ? {} : { codec: options.codec }),
    notes,
    ...(estate ? { estate } : {}),
    lake,
    latency: { lake: percentiles(toLake), estate: percentiles(toEstate) },
    compaction: {
      objectsPerDay: compactedPerDay,
      averageBytes: compactedPerDay > 0 ? storedPerDay / compactedPerDay : 0,
      runSeconds: compaction.lambdaMs / compaction.runs / 1000,
    },
    ...(alternatives ? { alternatives } : {}),
  };
}
