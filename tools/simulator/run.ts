/**
 * Runs a simulated fleet against the local runtime or a real AWS IoT endpoint: each
 * device is its own MQTT client (client id = device id = thing name, as the IoT policy
 * wants), or posts to the HTTP API. The fleet's messages are spread evenly over time.
 */

import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { lorawanRuleName } from '../../lambdas/core/iot-names.ts';
import { networkRequest, type SimulatedFormat, type SimulatedReading } from './bodies.ts';
import { createFleet, isSilent, nextReading, random, type SimulatedDevice } from './fleet.ts';

/** `json` is MQTT, one client per device; `iot-lorawan` is MQTT too, as IoT Core for LoRaWAN publishes to its rule; the others POST to the HTTP API. */
export type SimulationFormat = 'json' | SimulatedFormat;

/** The frame the simulator sends as Sigfox `data`; configure this grammar to decode it yourself. */
export const SIMULATOR_SIGFOX_GRAMMAR = 'temp::int:16*0.01 battery::uint:8*0.02';

/** The fleet's first connection to the MQTT broker failed (nothing listening, a refused certificate): nothing was sent. */
export class ConnectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectError';
  }
}

export interface SimulationOptions {
  readonly devices: number;
  /** Messages per second, for the whole fleet. */
  readonly rate: number;
  readonly format: SimulationFormat;
  readonly type: string;
  readonly silentShare: number;
  readonly seed: number;
  /** Exact device ids (provisioned thing names) instead of `sim-0001`...: `devices` is their count. */
  readonly deviceIds?: readonly string[];
  /** Stop after this long (ms) or this many messages; whichever comes first. Neither: until aborted. */
  readonly durationMs?: number;
  readonly count?: number;
  /** `mqtt://127.0.0.1:1883`, or `mqtts://<ats-endpoint>:8883` with `tls`. */
  readonly mqttUrl: string;
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca?: string };
  /** Publish through Basic Ingest (`$aws/rules/<rule>/dt/...`): no IoT messaging charge. */
  readonly basicIngestRule?: string;
  /** `iot-lorawan`: the stage whose LoRaWAN rule is published to (`iot_pipeline_<stage>_lorawan`). @default 'dev' */
  readonly stage?: string;
  readonly httpUrl: string;
  readonly apiKey?: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: SimulationProgress) => void;
}

export interface SimulationProgress {
  readonly sent: number;
  readonly failed: number;
  readonly elapsedMs: number;
  readonly online: number;
  readonly devices: number;
  readonly lastError?: string;
}

export async function runSimulation(options: SimulationOptions): Promise<SimulationProgress> {
  const rand = random(options.seed);
  const fleet = createFleet(
    {
      devices: options.devices,
      type: options.type,
      silentShare: options.silentShare,
      // Silent devices stop within the first half of the run (or of 100 messages each).
      silentWithin: Math.max(
        2,
        Math.floor(
          ((options.count ?? (options.rate * (options.durationMs ?? 600_000)) / 1000) / options.devices) *
            0.5,
        ),
      ),
      seed: options.seed,
      ...(options.deviceIds ? { ids: options.deviceIds } : {}),
    },
    rand,
  );
  const send =
    options.format === 'json'
      ? await mqttSender(options, fleet)
      : options.format === 'iot-lorawan'
        ? await lorawanSender(options, options.format)
        : await httpSender(options, options.format);
  const started = Date.now();
  let sent = 0;
  let failed = 0;
  let lastError: string | undefined;
  let next = 0;
  const progress = (): SimulationProgress => ({
    sent,
    failed,
    elapsedMs: Date.now() - started,
    online: fleet.filter((d) => !isSilent(d)).length,
    devices: fleet.length,
    lastError,
  });
  const ticker = setInterval(() => options.onProgress?.(progress()), 1000);
  const inFlight = new Set<Promise<void>>();
  try {
    const tickMs = 20;
    while (!options.signal?.aborted) {
      const elapsed = Date.now() - started;
      if (options.durationMs !== undefined && elapsed >= options.durationMs) break;
      const target = Math.floor((elapsed / 1000) * options.rate) + 1;
      const due = Math.min(target, options.count ?? Number.POSITIVE_INFINITY) - sent - failed - inFlight.size;
      const online = fleet.filter((d) => !isSilent(d));
      if (online.length === 0) break;
      for (let i = 0; i < due; i++) {
        const device = online[next++ % online.length] as SimulatedDevice;
        const payload = nextReading(device, Date.now(), rand);
        const attempt = send(device, payload).then(
          () => {
            sent++;
          },
          (error: Error) => {
            failed++;
            lastError = error.message;
          },
        );
        inFlight.add(attempt);
        void attempt.finally(() => inFlight.delete(attempt));
      }
      if (options.count !== undefined && sent + failed + inFlight.size >= options.count) break;
      await new Promise((resolve) => setTimeout(resolve, tickMs));
    }
    await Promise.all(inFlight);
  } finally {
    clearInterval(ticker);
    await send.close();
  }
  const result = progress();
  options.onProgress?.(result);
  return result;
}

interface Sender {
  (device: SimulatedDevice, payload: object): Promise<void>;
  close(): Promise<void>;
}

function tlsOf(options: SimulationOptions) {
  return options.tls
    ? {
        cert: readFileSync(options.tls.cert),
        key: readFileSync(options.tls.key),
        ...(options.tls.ca ? { ca: readFileSync(options.tls.ca) } : {}),
      }
    : {};
}

async function mqttSender(options: SimulationOptions, fleet: readonly SimulatedDevice[]): Promise<Sender> {
  const tls = tlsOf(options);
  const clients = new Map<string, MqttClient>();
  // Connect in waves: a broker (and IoT Core's connect rate limit) dislikes a thundering herd.
  for (let i = 0; i < fleet.length; i += 50) {
    const wave = fleet.slice(i, i + 50);
    const connected = await Promise.all(
      wave.map((device) =>
        mqtt.connectAsync(
          options.mqttUrl,
          {
            clientId: device.id,
            clean: true,
            reconnectPeriod: 1000,
            connectTimeout: 10_000,
            ...tls,
          } satisfies IClientOptions,
          // A refused first connection (a certificate the broker does not trust) is an
          // error to report, not something to retry forever; later drops reconnect.
          false,
        ),
      ),
    ).catch((error: Error) => {
      for (const client of clients.values()) client.end(true);
      throw new ConnectError(`Could not connect to ${options.mqttUrl}: ${error.message}`);
    });
    wave.forEach((device, index) => {
      clients.set(device.id, connected[index] as MqttClient);
    });
  }
  const prefix = options.basicIngestRule ? `$aws/rules/${options.basicIngestRule}/` : '';
  const send = (async (device: SimulatedDevice, payload: object) => {
    const client = clients.get(device.id);
    if (!client) throw new Error(`no connection for ${device.id}`);
    await client.publishAsync(`${prefix}dt/${device.type}/${device.id}`, JSON.stringify(payload), { qos: 1 });
  }) as Sender;
  send.close = async () => {
    await Promise.all([...clients.values()].map((client) => client.endAsync()));
  };
  return send;
}

/**
 * IoT Core for LoRaWAN: the network, not the devices, publishes each uplink to the
 * rule's topic; one client, whose id is the rule's name (as the local broker's
 * `--mqtt-auth` lets publish there and nowhere else).
 */
async function lorawanSender(options: SimulationOptions, format: 'iot-lorawan'): Promise<Sender> {
  const stage = options.stage ?? 'dev';
  const client = await mqtt
    .connectAsync(
      options.mqttUrl,
      {
        clientId: lorawanRuleName(stage),
        clean: true,
        reconnectPeriod: 1000,
        connectTimeout: 10_000,
        ...tlsOf(options),
      } satisfies IClientOptions,
      false,
    )
    .catch((error: Error) => {
      throw new ConnectError(`Could not connect to ${options.mqttUrl}: ${error.message}`);
    });
  const send = (async (device: SimulatedDevice, payload: object) => {
    const request = networkRequest(format, device, payload as SimulatedReading, { stage });
    if (request.via !== 'mqtt') throw new Error(`${format} is not published over MQTT`);
    await client.publishAsync(request.topic, request.body, { qos: 1 });
  }) as Sender;
  send.close = async () => {
    await client.endAsync();
  };
  return send;
}

async function httpSender(
  options: SimulationOptions,
  format: Exclude<SimulatedFormat, 'iot-lorawan'>,
): Promise<Sender> {
  const send = (async (device: SimulatedDevice, payload: object) => {
    const request = networkRequest(format, device, payload as SimulatedReading);
    if (request.via !== 'http') throw new Error(`${format} is not posted over HTTP`);
    const url = new URL(request.path, options.httpUrl);
    for (const [name, value] of Object.entries(request.query)) url.searchParams.set(name, value);
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': request.contentType,
        ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
      },
      body: request.body,
    });
    if (response.status >= 300) {
      throw new Error(`POST ${url.pathname} answered ${response.status}: ${await response.text()}`);
    }
  }) as Sender;
  send.close = async () => undefined;
  return send;
}
