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
import { awsIngestDeps, sqsIngestHandler } from '../../lambdas/adapters/aws/ingest-lambda.ts';
import { sqsEnqueue } from '../../lambdas/adapters/aws/queue.ts';
import { snsAlerts } from '../../lambdas/adapters/aws/sns-alerts.ts';
import { createKey } from '../../lambdas/core/access/keys.ts';
import { cachedKeys, createGate, usageRecorder } from '../../lambdas/core/api/gate.ts';
import { handleIngress } from '../../lambdas/core/api/ingress.ts';
import { compileCodec } from '../../lambdas/core/decoders/codec.ts';
import type { Decoders } from '../../lambdas/core/decoders/decoder.ts';
import { buildDecoders, type DecoderConfig } from '../../lambdas/core/decoders/registry.ts';
import type { DeviceRecord } from '../../lambdas/core/estate/alerts.ts';
import { registrySources } from '../../lambdas/core/estate/sources.ts';
import { detectOffline } from '../../lambdas/core/estate/update.ts';
import { formatOf } from '../../lambdas/core/formats/index.ts';
import { applyLorawanRule } from '../../lambdas/core/formats/iot-lorawan.ts';
import { applyTelemetryRule } from '../../lambdas/core/formats/mqtt-topic.ts';
import { lorawanRuleName } from '../../lambdas/core/iot-names.ts';
import { ENV } from '../../lambdas/env.ts';
import type { PipelineConfig } from '../../lib/config.ts';
import { NETWORKS, networkRequest, type SimulatedFormat } from '../simulator/bodies.ts';
import { athenaPrices, chartViewBytes, chartViewDollars } from './chart.ts';
import { CONSOLE_VIEW, consoleViewUsage, type EstateCall, measureEstateCalls } from './estate.ts';
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
  type UnpricedLine,
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

/** A design's bill: the lines per million messages, their total, and a month of the fleet. */
export interface DesignCost {
  readonly design: string;
  readonly lines: CostLine[];
  /** Lines per million messages the price list has no price for: not in the totals. */
  readonly notPriced?: UnpricedLine[];
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
}

/** Table names for the run; their key attributes (`pk`, `deviceId`, `id`) are those of lib/constructs/claims.ts, registry.ts and api-keys.ts. */
const TABLES = {
  claims: 'iot-pipeline-claims',
  registry: 'iot-pipeline-registry',
  keys: 'iot-pipeline-keys',
};
const ALERT_TOPIC_ARN = 'arn:aws:sns:us-east-1:123456789012:iot-pipeline-alerts';
/** The ingest function's environment as the stack sets it (names from `lambdas/env.ts`). */
const RESOURCES = {
  [ENV.lakeBucket]: 'iot-pipeline-lake',
  [ENV.claimsTable]: TABLES.claims,
  [ENV.registryTable]: TABLES.registry,
  [ENV.alertTopicArn]: ALERT_TOPIC_ARN,
};
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
      return { id: `m-${message.index}`, body };
    }
    // API Gateway, then the http function: the same request handling as the Lambda, enqueueing through SQS.
    const requestBody = request.body;
    payloadBytes += requestBody.length;
    usage.apiRequests += meteredUnits(requestBody.length, prices.apiGatewayHttpApi.requestMeteringBytes);
    let queued: { id: string; body: string } | undefined;
    clock = message.time;
    const started = performance.now();
    const response = await handleIngress(
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
    usage.lambdaRequests++;
    usage.lambdaGbSeconds += lambdaGbSeconds(performance.now() - started, HTTP_MEMORY_MB);
    if (response.statusCode >= 300 || !queued) {
      throw new Error(`the cost run's ${request.path} answered ${response.statusCode}: ${response.body}`);
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
      publisher: snsAlerts(meter.clients.sns, ALERT_TOPIC_ARN),
    },
    messages[messages.length - 1]?.time ?? 0,
  );
  const offlineMs = Math.ceil(performance.now() - offlineStarted);
  const scanUnits = usage.dynamodbReadUnits - ingestUsage.dynamodbReadUnits;
  const monthly = messagesPerMonth(fleet);
  const meanBytes = payloadBytes / messages.length;

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
  };
}
