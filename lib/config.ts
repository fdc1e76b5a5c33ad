import { readFileSync } from 'node:fs';
import { type RuntimeConfig, validateRuntimeConfig } from '../lambdas/core/config.ts';
import { ConfigError } from '../lambdas/core/config-error.ts';
import type { Severity } from '../lambdas/core/estate/alerts.ts';
import { DEFAULT_IOT_LORAWAN } from '../lambdas/core/formats/iot-lorawan.ts';
import { isObject, setOwn } from '../lambdas/core/ids.ts';
import { DEFAULT_VALIDATION } from '../lambdas/core/readings/limits.ts';

export { ConfigError };

/**
 * The whole pipeline's configuration: what `cdk synth` builds and what the Lambdas
 * (and the local runtime) are told at run time.
 *
 * It is read from CDK context (see {@link loadConfig}) and validated before a single
 * construct is created, so a typo fails the synth with the key's name instead of
 * failing a deployment twenty minutes later.
 */
export interface PipelineConfig extends RuntimeConfig {
  /** Stage name, part of every physical name (`iot_pipeline_<stage>_telemetry`). Lowercase letters and digits. */
  readonly stage: string;
  readonly timestream: TimestreamConfig;
  readonly lake: LakeConfig;
  readonly athena: AthenaConfig;
  readonly http: HttpConfig;
  readonly ingest: IngestConfig;
  readonly estate: EstateConfig;
  readonly alerts: AlertsConfig;
  readonly quicksight: QuickSightConfig;
  readonly tracing: TracingConfig;
  readonly console: ConsoleConfig;
}

export interface ConsoleConfig {
  /**
   * The web console on AWS: its page in S3 behind CloudFront, people signing in with a
   * Cognito user pool (`iot-pipeline users add`), and the read routes behind that sign-in.
   * Off: none of these resources is in the template. Needs `npm run console:build` first.
   *
   * @default false
   */
  readonly enabled: boolean;
}

export interface TracingConfig {
  /**
   * X-Ray on every function, each SDK call a subsegment (Powertools Tracer). Off: no
   * traces recorded (X-Ray bills per trace) and no tracer loaded, which saves about
   * 15-25 ms of each cold start (`npm run bench -- coldstart`).
   *
   * @default true
   */
  readonly enabled: boolean;
}

export interface TimestreamConfig {
  /**
   * Create the Timestream database and table and write readings to them. Timestream
   * for LiveAnalytics is closed to new AWS customers (since 2025-06-20): switch it off
   * and the template holds no Timestream resource or permission; the lake keeps everything.
   */
  readonly enabled: boolean;
  /** Hours a record stays in the memory store (fast, recent queries). 1 to 8766. */
  readonly memoryRetentionHours: number;
  /** Days a record stays in the magnetic store. 1 to 73000. */
  readonly magneticRetentionDays: number;
}

export interface LakeConfig {
  /** Days before `raw/` objects move to S3 Glacier Instant Retrieval. */
  readonly rawTransitionDays: number;
  /** Days before `quarantine/` objects expire; 0 keeps them forever. */
  readonly quarantineExpirationDays: number;
  /** Days noncurrent object versions are kept (the lake is versioned: an overwrite loses nothing). */
  readonly noncurrentVersionExpirationDays: number;
}

export interface AthenaConfig {
  /** Per-query scan limit of the workgroup, in bytes; Athena cancels a query that reads more. */
  readonly bytesScannedCutoffPerQuery: number;
  /** Days Athena query results are kept. */
  readonly resultsExpirationDays: number;
}

export interface HttpConfig {
  /** Steady-state requests per second the HTTP API stage accepts before answering 429: the outer fence (AWS only). */
  readonly throttleRateLimit: number;
  /** Burst of requests the HTTP API stage accepts above the steady rate (AWS only). */
  readonly throttleBurstLimit: number;
  /** Requests a second one key may make (unless created with its own `--rate`); 429 with Retry-After past it. */
  readonly keyRateLimit: number;
  /** Burst one key may make above its rate (unless created with its own `--burst`). */
  readonly keyBurstLimit: number;
  /** Requests a second of all callers without a valid key together (each gets 401; past this, 429). */
  readonly anonymousRateLimit: number;
  /** Burst of keyless requests. */
  readonly anonymousBurstLimit: number;
}

export interface IngestConfig {
  /** Records per ingest Lambda invocation (SQS batch size). 1 to 10000. */
  readonly batchSize: number;
  /** Seconds SQS waits to fill a batch. 0 to 300. */
  readonly maxBatchingWindowSeconds: number;
  /** Deliveries of a record before it moves to the dead-letter queue. */
  readonly maxReceiveCount: number;
  /** Upper bound of concurrent ingest Lambdas on the queue. 2 to 1000. */
  readonly maxConcurrency: number;
  /** Ingest Lambda memory in MB. */
  readonly memorySizeMb: number;
  /** Ingest Lambda timeout in seconds; the queue's visibility timeout is six times this. */
  readonly timeoutSeconds: number;
}

export interface EstateConfig {
  /**
   * Seconds the estate queue gathers the ingest batches' readings before the estate
   * function applies them to the registry and raises alerts. 0 to 300. A device reporting
   * every minute is read and written once per window: longer is cheaper, and threshold,
   * lost-message and network offline alerts wait up to the window (README, Costs).
   */
  readonly maxBatchingWindowSeconds: number;
  /**
   * Estate queues a device's updates are spread over by its id, 1 to 16. One Lambda
   * invocation takes at most 6 MB of updates (about 75,000 readings of 200-byte messages):
   * past about 15,000 devices reporting every minute, a 300 s window is cut short and
   * coalesces less. `iot-pipeline cost --devices N` says how many shards N devices need
   * (8 for 100,000 at one message a minute).
   */
  readonly shards: number;
}

export interface QuickSightConfig {
  /**
   * For accounts with QuickSight: the QuickSight user or group ARN that gets an Athena data
   * source and a data set of `v_daily_metrics` (direct query). None: no QuickSight resource.
   */
  readonly principalArn?: string;
}

export interface AlertsConfig {
  /** Email address subscribed to the alert topic; none when empty. */
  readonly email?: string;
  /**
   * Device alert severities the email receives (a filter on the `severity` message
   * attribute). Unset: everything, CloudWatch alarms included; set: only device alerts
   * of these severities (alarms carry no attributes).
   */
  readonly emailSeverities?: readonly Severity[];
  /** HTTPS endpoint (a ticketing system) subscribed to every alert, unfiltered. */
  readonly webhookUrl?: string;
}

/** Defaults: safe, cheap, and what the README documents. */
export const DEFAULT_CONFIG: PipelineConfig = {
  stage: 'dev',
  timestream: { enabled: false, memoryRetentionHours: 24, magneticRetentionDays: 365 },
  lake: { rawTransitionDays: 90, quarantineExpirationDays: 0, noncurrentVersionExpirationDays: 30 },
  athena: { bytesScannedCutoffPerQuery: 10 * 1024 ** 3, resultsExpirationDays: 7 },
  http: {
    throttleRateLimit: 100,
    throttleBurstLimit: 200,
    keyRateLimit: 100,
    keyBurstLimit: 200,
    anonymousRateLimit: 10,
    anonymousBurstLimit: 20,
  },
  ingest: {
    batchSize: 1000,
    maxBatchingWindowSeconds: 20,
    maxReceiveCount: 5,
    maxConcurrency: 5,
    memorySizeMb: 512,
    timeoutSeconds: 60,
  },
  estate: { maxBatchingWindowSeconds: 300, shards: 1 },
  alerts: {},
  quicksight: {},
  tracing: { enabled: true },
  console: { enabled: false },
  deviceTypes: {},
  httpMappings: {},
  sigfoxDownlinks: {},
  alertRules: [],
  offline: { severity: 'warning' },
  validation: DEFAULT_VALIDATION,
  iotLorawan: DEFAULT_IOT_LORAWAN,
};

/**
 * Validates a partial config over the defaults and returns the complete, typed config.
 *
 * @throws ConfigError naming the first bad key
 */
export function validateConfig(input: unknown): PipelineConfig {
  if (!isObject(input)) throw new ConfigError('(root)', input, 'an object');
  const known = new Set(Object.keys(DEFAULT_CONFIG));
  for (const key of Object.keys(input)) {
    if (!known.has(key)) throw new ConfigError(key, input[key], `one of the keys ${[...known].join(', ')}`);
  }
  const section = <K extends keyof PipelineConfig>(key: K): Record<string, unknown> => {
    const value = input[key] ?? {};
    if (!isObject(value)) throw new ConfigError(key, value, 'an object');
    const defaults = DEFAULT_CONFIG[key] as object;
    for (const sub of Object.keys(value)) {
      const optional: Record<string, string[]> = {
        alerts: ['email', 'emailSeverities', 'webhookUrl'],
        quicksight: ['principalArn'],
      };
      if (!Object.hasOwn(defaults, sub) && !optional[key]?.includes(sub)) {
        throw new ConfigError(`${key}.${sub}`, value[sub], `one of ${Object.keys(defaults).join(', ')}`);
      }
    }
    return { ...defaults, ...value };
  };
  const int = (key: string, value: unknown, min: number, max: number): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(key, value, `an integer from ${min} to ${max}`);
    }
    return value;
  };
  const bool = (key: string, value: unknown): boolean => {
    if (typeof value !== 'boolean') throw new ConfigError(key, value, 'true or false');
    return value;
  };

  const stage = input.stage ?? DEFAULT_CONFIG.stage;
  if (typeof stage !== 'string' || !/^[a-z][a-z0-9]{0,15}$/.test(stage)) {
    throw new ConfigError('stage', stage, 'lowercase letters and digits, starting with a letter, at most 16');
  }

  const ts = section('timestream');
  const lake = section('lake');
  const athena = section('athena');
  const http = section('http');
  const ingest = section('ingest');
  const alerts = section('alerts');
  const quicksight = section('quicksight');
  if (
    quicksight.principalArn !== undefined &&
    (typeof quicksight.principalArn !== 'string' ||
      !/^arn:aws[a-z-]*:quicksight:[a-z0-9-]+:\d{12}:(user|group)\/\S+$/.test(quicksight.principalArn))
  ) {
    throw new ConfigError(
      'quicksight.principalArn',
      quicksight.principalArn,
      'a QuickSight user or group ARN (arn:aws:quicksight:<region>:<account>:user/default/<name>)',
    );
  }
  if (
    alerts.email !== undefined &&
    (typeof alerts.email !== 'string' || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(alerts.email))
  ) {
    throw new ConfigError('alerts.email', alerts.email, 'an email address');
  }
  const severities = ['info', 'warning', 'critical'];
  if (
    alerts.emailSeverities !== undefined &&
    (!Array.isArray(alerts.emailSeverities) || !alerts.emailSeverities.every((s) => severities.includes(s)))
  ) {
    throw new ConfigError(
      'alerts.emailSeverities',
      alerts.emailSeverities,
      `a list of ${severities.join(', ')}`,
    );
  }
  if (
    alerts.webhookUrl !== undefined &&
    (typeof alerts.webhookUrl !== 'string' || !/^https:\/\/[^\s]+$/.test(alerts.webhookUrl))
  ) {
    throw new ConfigError(
      'alerts.webhookUrl',
      alerts.webhookUrl,
      'an https:// URL (SNS delivers to HTTPS endpoints)',
    );
  }
  const throttleRateLimit = int('http.throttleRateLimit', http.throttleRateLimit, 1, 10_000);
  const throttleBurstLimit = int('http.throttleBurstLimit', http.throttleBurstLimit, 1, 5_000);
  const keyRateLimit = int('http.keyRateLimit', http.keyRateLimit, 1, 10_000);
  const keyBurstLimit = int('http.keyBurstLimit', http.keyBurstLimit, 1, 5_000);
  const anonymousRateLimit = int('http.anonymousRateLimit', http.anonymousRateLimit, 1, 10_000);
  const anonymousBurstLimit = int('http.anonymousBurstLimit', http.anonymousBurstLimit, 1, 5_000);
  const batchSize = int('ingest.batchSize', ingest.batchSize, 1, 10_000);
  const maxBatchingWindowSeconds = int(
    'ingest.maxBatchingWindowSeconds',
    ingest.maxBatchingWindowSeconds,
    0,
    300,
  );
  // SQS event sources take more than 10 records a batch only with a batching window.
  if (batchSize > 10 && maxBatchingWindowSeconds === 0) {
    throw new ConfigError(
      'ingest.maxBatchingWindowSeconds',
      0,
      'at least 1 when ingest.batchSize is above 10',
    );
  }
  const runtime = validateRuntimeConfig({
    deviceTypes: withCodecSources(input.deviceTypes),
    validation: input.validation,
    httpMappings: input.httpMappings,
    sigfoxDownlinks: input.sigfoxDownlinks,
    alertRules: input.alertRules,
    offline: input.offline,
    iotLorawan: input.iotLorawan,
  });

  return {
    stage,
    timestream: {
      enabled: bool('timestream.enabled', ts.enabled),
      memoryRetentionHours: int('timestream.memoryRetentionHours', ts.memoryRetentionHours, 1, 8766),
      magneticRetentionDays: int('timestream.magneticRetentionDays', ts.magneticRetentionDays, 1, 73_000),
    },
    lake: {
      rawTransitionDays: int('lake.rawTransitionDays', lake.rawTransitionDays, 1, 3650),
      quarantineExpirationDays: int('lake.quarantineExpirationDays', lake.quarantineExpirationDays, 0, 3650),
      noncurrentVersionExpirationDays: int(
        'lake.noncurrentVersionExpirationDays',
        lake.noncurrentVersionExpirationDays,
        1,
        3650,
      ),
    },
    athena: {
      // Athena's own bounds for the workgroup limit: 10 MB to 7 EB; we cap at 1 PB.
      bytesScannedCutoffPerQuery: int(
        'athena.bytesScannedCutoffPerQuery',
        athena.bytesScannedCutoffPerQuery,
        10_000_000,
        1024 ** 5,
      ),
      resultsExpirationDays: int('athena.resultsExpirationDays', athena.resultsExpirationDays, 1, 3650),
    },
    http: {
      throttleRateLimit,
      throttleBurstLimit,
      keyRateLimit,
      keyBurstLimit,
      anonymousRateLimit,
      anonymousBurstLimit,
    },
    ingest: {
      batchSize,
      maxBatchingWindowSeconds,
      maxReceiveCount: int('ingest.maxReceiveCount', ingest.maxReceiveCount, 1, 1000),
      maxConcurrency: int('ingest.maxConcurrency', ingest.maxConcurrency, 2, 1000),
      memorySizeMb: int('ingest.memorySizeMb', ingest.memorySizeMb, 128, 10_240),
      // 15 minutes is Lambda's limit; the visibility timeout (6x) must stay within SQS's 12 hours.
      timeoutSeconds: int('ingest.timeoutSeconds', ingest.timeoutSeconds, 1, 900),
    },
    estate: {
      maxBatchingWindowSeconds: int(
        'estate.maxBatchingWindowSeconds',
        section('estate').maxBatchingWindowSeconds,
        0,
        300,
      ),
      shards: int('estate.shards', section('estate').shards, 1, 16),
    },
    alerts: {
      ...(typeof alerts.email === 'string' ? { email: alerts.email } : {}),
      ...(Array.isArray(alerts.emailSeverities)
        ? { emailSeverities: alerts.emailSeverities as Severity[] }
        : {}),
      ...(typeof alerts.webhookUrl === 'string' ? { webhookUrl: alerts.webhookUrl } : {}),
    },
    quicksight: typeof quicksight.principalArn === 'string' ? { principalArn: quicksight.principalArn } : {},
    tracing: { enabled: bool('tracing.enabled', section('tracing').enabled) },
    console: { enabled: bool('console.enabled', section('console').enabled) },
    ...runtime,
  };
}

/** True when a device type decodes with a codec: the ingest function then carries the codec sandbox. */
export function usesCodecs(config: Pick<RuntimeConfig, 'deviceTypes'>): boolean {
  return Object.values(config.deviceTypes).some((type) => type.decoder && 'codec' in type.decoder);
}

/**
 * Reads the codec file of each device type whose decoder names one (relative to the
 * working directory, where `cdk.json` is), so the source travels with the config.
 */
function withCodecSources(deviceTypes: unknown): unknown {
  if (!isObject(deviceTypes)) return deviceTypes;
  const out: Record<string, unknown> = {};
  for (const [name, type] of Object.entries(deviceTypes)) {
    const decoder = isObject(type) ? type.decoder : undefined;
    if (
      isObject(type) &&
      isObject(decoder) &&
      typeof decoder.codec === 'string' &&
      decoder.source === undefined
    ) {
      let source: string;
      try {
        source = readFileSync(decoder.codec, 'utf8');
      } catch (error) {
        throw new ConfigError(
          `deviceTypes.${name}.decoder.codec`,
          decoder.codec,
          `a readable file (${(error as Error).message})`,
        );
      }
      setOwn(out, name, { ...type, decoder: { ...decoder, source } });
    } else setOwn(out, name, type);
  }
  return out;
}

/**
 * What a Lambda needs at run time, as one JSON string built into its bundle. Only the
 * ingest function decodes: the others get the device types without their decoders,
 * so no codec (third-party code) is in their bundle or runs at their cold start.
 */
export function runtimeConfigJson(config: PipelineConfig, options: { decoders: boolean }): string {
  const deviceTypes = options.decoders
    ? config.deviceTypes
    : Object.fromEntries(
        Object.entries(config.deviceTypes).map(([name, { decoder: _, ...type }]) => [name, type]),
      );
  const runtime: RuntimeConfig = {
    deviceTypes,
    validation: config.validation,
    httpMappings: config.httpMappings,
    sigfoxDownlinks: config.sigfoxDownlinks,
    alertRules: config.alertRules,
    offline: config.offline,
    iotLorawan: config.iotLorawan,
  };
  return JSON.stringify(runtime);
}
