import { gunzipSync } from 'node:zlib';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { createGate, type Gate } from '../../lambdas/core/api/gate.ts';
import type { HttpResponse } from '../../lambdas/core/api/http.ts';
import { handleIngress } from '../../lambdas/core/api/ingress.ts';
import type { RuntimeConfig } from '../../lambdas/core/config.ts';
import type { Decoders } from '../../lambdas/core/decoders/decoder.ts';
import { buildDecoders } from '../../lambdas/core/decoders/registry.ts';
import type { DeviceRecord } from '../../lambdas/core/estate/alerts.ts';
import {
  type EstateQuery,
  queryRecords,
  type TallyQuery,
  tallyRecords,
} from '../../lambdas/core/estate/registry-query.ts';
import type { DeviceRegistry } from '../../lambdas/core/estate/update.ts';
import type { Envelope, FormatConfig } from '../../lambdas/core/formats/format.ts';
import type { IngestContext } from '../../lambdas/core/ingest/decode.ts';
import type { ObjectStore, RejectedRecord, TimeSeriesSink } from '../../lambdas/core/ingest/ports.ts';
import { type Reading, type TimeSeriesRecord, toTimeSeriesRecord } from '../../lambdas/core/reading.ts';

/** An in-memory lake that can be told to fail for keys matching a pattern. */
export class MemoryStore implements ObjectStore {
  readonly objects = new Map<string, Buffer>();
  failOn?: RegExp;

  async put(key: string, body: Buffer): Promise<void> {
    if (this.failOn?.test(key)) throw new Error(`S3 is down for ${key}`);
    this.objects.set(key, body);
  }

  /** Every NDJSON line under a prefix, parsed. */
  lines(prefix: string): Record<string, unknown>[] {
    return [...this.objects]
      .filter(([key]) => key.startsWith(prefix))
      .flatMap(([, body]) => gunzipSync(body).toString('utf8').trim().split('\n'))
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

/** A time-series sink that records its calls (as Timestream records) and can reject or fail. */
export class MemoryTimeSeries implements TimeSeriesSink {
  readonly maxRecordsPerWrite = 100;
  readonly calls: TimeSeriesRecord[][] = [];
  reject?: (record: TimeSeriesRecord) => string | undefined;
  fail = false;

  async write(readings: readonly Reading[]): Promise<RejectedRecord[]> {
    if (this.fail) throw new Error('ThrottlingException: rate exceeded');
    const records = readings.map(toTimeSeriesRecord);
    this.calls.push(records);
    return records.flatMap((record, index) => {
      const reason = this.reject?.(record);
      return reason ? [{ index, reason }] : [];
    });
  }
}

export const NOW = Date.parse('2026-11-25T06:00:00Z');

/** A queue message as the IoT rule writes it. */
export function mqttMessage(
  messageId: string,
  payload: unknown,
  topic = 'dt/thermo/dev-1',
  receivedAt = NOW,
) {
  const bytes = Buffer.isBuffer(payload)
    ? payload
    : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  return {
    messageId,
    body: JSON.stringify({ payload: bytes.toString('base64'), topic, clientId: 'dev-1', receivedAt }),
  };
}

/** The registry port as DynamoDB behaves: versioned, conditional writes. */
export function memoryRegistry(): DeviceRegistry & { records: Map<string, DeviceRecord>; puts: number } {
  const records = new Map<string, DeviceRecord>();
  const registry = {
    records,
    puts: 0,
    async get(ids: readonly string[]) {
      return new Map(ids.flatMap((id) => (records.has(id) ? [[id, records.get(id) as DeviceRecord]] : [])));
    },
    async put(record: DeviceRecord, expected: number) {
      registry.puts++;
      if ((records.get(record.deviceId)?.version ?? 0) !== expected) return false;
      records.set(record.deviceId, record);
      return true;
    },
    async list() {
      return [...records.values()];
    },
    async query(query: EstateQuery) {
      return queryRecords(records.values(), query);
    },
    async tally(query: TallyQuery) {
      return tallyRecords(records.values(), query);
    },
  };
  return registry;
}

/** An SQS event as the event source mapping hands it to the ingest Lambda. */
export function sqsEvent(...messages: { messageId: string; body: string }[]): SQSEvent {
  return {
    Records: messages.map(
      (m) =>
        ({
          ...m,
          receiptHandle: m.messageId,
          attributes: {},
          eventSource: 'aws:sqs',
        }) as unknown as SQSRecord,
    ),
  };
}

const builtDecoders = new Map<RuntimeConfig, Decoders>();

/**
 * A config with its decoders, as the ingest path gets it: decoders built once per
 * config (grammars parsed, codecs loaded) and freed by {@link closeTestDecoders}.
 */
export function ingestOf(config: RuntimeConfig, now?: () => number): IngestContext {
  let decoders = builtDecoders.get(config);
  if (!decoders) {
    decoders = buildDecoders(config.deviceTypes);
    builtDecoders.set(config, decoders);
  }
  return now ? { config, decoders, now } : { config, decoders };
}

/** Frees the decoders {@link ingestOf} built (codec worker threads). */
export async function closeTestDecoders(): Promise<void> {
  const all = [...builtDecoders.values()];
  builtDecoders.clear();
  await Promise.all(all.map((d) => d.close()));
}

/** Limits no test reaches unless it means to. */
export const UNLIMITED = {
  keyRateLimit: 1e9,
  keyBurstLimit: 1e9,
  anonymousRateLimit: 1e9,
  anonymousBurstLimit: 1e9,
} as const;

/** A gate that lets `key` do everything (as IOT_PIPELINE_API_KEY does) and knows no stored key. */
export function masterGate(key: string): Gate {
  return createGate({ find: async () => undefined, masterKey: key, limits: UNLIMITED });
}

/** A registry that knows no device's way in. */
export const NO_SOURCES = async (): Promise<ReadonlyMap<string, string>> => new Map();

/** The key {@link postToEdge} presents, with every scope. */
export const EDGE_KEY = 'secret-key';

/**
 * POSTs through the HTTP edge's core (`handleIngress`), as both HTTP servers do, with
 * {@link EDGE_KEY} as the bare `Authorization` value (as Sigfox sends it); returns the
 * response and what was queued.
 */
export async function postToEdge(
  config: FormatConfig,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ response: HttpResponse; queued: Envelope[] }> {
  const queued: Envelope[] = [];
  const [pathname = path, query] = path.split('?');
  const response = await handleIngress(
    {
      method: 'POST',
      path: pathname,
      query,
      headers: { authorization: EDGE_KEY, 'content-type': 'application/json', ...headers },
      body: Buffer.from(body),
      requestId: 'r1',
      receivedAt: NOW,
    },
    {
      gate: masterGate(EDGE_KEY),
      sources: NO_SOURCES,
      maxBodyBytes: 64 * 1024,
      config,
      enqueue: async (envelope) => {
        queued.push(envelope);
        return `m${queued.length}`;
      },
    },
  );
  return { response, queued };
}
