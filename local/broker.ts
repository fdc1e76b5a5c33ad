/**
 * The local MQTT broker (aedes, in-process): devices connect as they would to IoT
 * Core, and each publish on a telemetry topic goes through the same rule definition
 * as the IoT rule (`applyTelemetryRule`) onto the ingest queue, and each publish on
 * `$aws/rules/iot_pipeline_<stage>_lorawan` (what an IoT Core for LoRaWAN destination
 * sends) through the LoRaWAN rule (`applyLorawanRule`). A QoS 1 publish is
 * acknowledged after its envelope is queued (journalled, by the runtime's queue); when it
 * cannot be, the client is disconnected without a PUBACK and sends it again.
 *
 * IoT Core's limits hold here too ({@link MqttLimits}): a PUBLISH whose payload is over
 * 128 KB (`validation.maxPayloadBytes`) disconnects the client as soon as its header
 * says so, before the body is read; a CONNECT must arrive within 5 s; at most 5,000
 * connections, the oldest not yet connected making room for a new one; at most 1,000
 * retained topics (16 MiB), past which a message is delivered and ingested but not retained.
 *
 * With `auth` (`start --mqtt-auth`) it holds devices to what the device policy allows
 * them on IoT Core (`lib/constructs/devices.ts`): connect only as itself, client id =
 * username = device id, with the password from `devices add` (a takeover of a client
 * id therefore needs that device's password); publish only to its own telemetry topic
 * (`dt/<type>/<id>`, or through Basic Ingest), else it is disconnected, as IoT Core
 * does; subscribe only to its own command topic (`cmd/<type>/<id>`, `+` for the type),
 * else the SUBACK refuses that filter (0x80). No device may publish to the LoRaWAN
 * rule (on AWS only the destination's role may): the one client that may is the one
 * whose id is the rule's name (`devices add iot_pipeline_<stage>_lorawan`), the local
 * stand-in for IoT Core for LoRaWAN, and it may publish nowhere else. Without `auth` any
 * local process may connect as any device, publish as it, and subscribe to `#`.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes, type AedesOptions, type AuthenticateError, type Client } from 'aedes';
import type { Envelope } from '../lambdas/core/formats/format.ts';
import { applyLorawanRule, reachesLorawanRule } from '../lambdas/core/formats/iot-lorawan.ts';
import { applyTelemetryRule, parseTelemetryTopic } from '../lambdas/core/formats/mqtt-topic.ts';
import { DEVICE_ID_PATTERN, DEVICE_TYPE_PATTERN, truncate } from '../lambdas/core/ids.ts';
import { lorawanRuleName } from '../lambdas/core/iot-names.ts';
import { DEFAULT_VALIDATION } from '../lambdas/core/readings/limits.ts';
import { type CredentialChecker, credentialChecker } from './device-credentials.ts';
import { connectionCap, floodLog } from './limits.ts';
import { listen, StartupError } from './listen.ts';

export interface LocalBroker {
  readonly port: number;
  close(): Promise<void>;
}

export interface BrokerAuthOptions {
  /** The device credentials (`devices add`): read again when it changes, without a restart. */
  readonly credentialsFile: string;
  /** How often connected devices are checked against the file (removed ones are disconnected); default 1 s. */
  readonly recheckMs?: number;
}

/** The broker's limits: IoT Core's where it has one, else what keeps one laptop process healthy. */
export interface MqttLimits {
  /**
   * Largest PUBLISH payload, and largest other packet (a CONNECT with its will), in bytes.
   * A bigger one disconnects the client as soon as its fixed header arrives: no PUBACK,
   * nothing queued or retained. IoT Core refuses payloads over 128 KB.
   *
   * @default 131072 (the runtime passes the config's `validation.maxPayloadBytes`)
   */
  readonly maxPayloadBytes: number;
  /**
   * Open connections at most. At the cap a new connection closes the oldest one that has
   * not sent its CONNECT yet; when every one is a connected device, the new one is closed.
   *
   * @default 5000
   */
  readonly maxConnections: number;
  /**
   * Time from the TCP connection to a complete CONNECT before the socket is closed.
   *
   * @default 5000 (aedes's own default is 30 s)
   */
  readonly connectTimeoutMs: number;
  /**
   * Retained topics at most. aedes keeps retained messages in memory; past this count
   * (or {@link maxRetainedBytes}) a retained publish to a new topic is delivered and
   * ingested, but not retained.
   *
   * @default 1000
   */
  readonly maxRetained: number;
  /**
   * Bytes of all retained payloads together.
   *
   * @default 16 MiB
   */
  readonly maxRetainedBytes: number;
}

export const MQTT_LIMITS: MqttLimits = {
  maxPayloadBytes: DEFAULT_VALIDATION.maxPayloadBytes,
  maxConnections: 5000,
  connectTimeoutMs: 5000,
  maxRetained: 1000,
  maxRetainedBytes: 16 * 1024 * 1024,
};

export async function startBroker(options: {
  readonly host: string;
  readonly port: number;
  readonly enqueue: (envelope: Envelope) => Promise<unknown>;
  /**
   * The stage whose LoRaWAN rule (`iot_pipeline_<stage>_lorawan`) the broker applies, as
   * IoT Core does for the stack of that stage.
   *
   * @default 'dev'
   */
  readonly stage?: string;
  readonly onError?: (error: Error) => void;
  /** Devices must authenticate and keep to their own topics; off when absent. */
  readonly auth?: BrokerAuthOptions;
  /** {@link MQTT_LIMITS} where absent. */
  readonly limits?: Partial<MqttLimits>;
  /** Where refused connections, publishes and subscriptions are reported; silent when absent. */
  readonly log?: (line: string) => void;
}): Promise<LocalBroker> {
  const limits: MqttLimits = { ...MQTT_LIMITS, ...options.limits };
  const log = options.log ?? (() => {});
  const lorawanRule = lorawanRuleName(options.stage ?? 'dev');
  const guard = options.auth ? await deviceGuard(options.auth, log, lorawanRule) : undefined;
  const retain = retainedBound(limits, floodLog(log));
  const broker = await Aedes.createBroker({
    // Device ids are up to 128 characters; MQTT 3.1's 23 is too short.
    maxClientsIdLength: 128,
    connectTimeout: limits.connectTimeoutMs,
    ...guard?.handlers,
    // Queued here, not in `published`: aedes writes a QoS 1 PUBACK after authorizePublish
    // and before `published` runs. A message that cannot be queued (the journal's disk is
    // full) fails authorizePublish: no PUBACK, aedes closes the connection, and the client
    // sends the message again once it reconnects (MQTT resends only on a new connection).
    authorizePublish(client, packet, callback) {
      const enqueue = (error?: Error | null) => {
        // No client: a will aedes publishes itself, never queued.
        if (error || !client) return callback(error);
        retain(client, packet);
        const publish = {
          topic: packet.topic,
          payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
          clientId: client.id,
          timestamp: Date.now(),
        };
        // Basic Ingest names its rule: the LoRaWAN rule's topic is never the telemetry rule's.
        const envelope = applyLorawanRule(lorawanRule, publish) ?? applyTelemetryRule(publish);
        if (!envelope) return callback(null);
        options.enqueue(envelope).then(
          () => callback(null),
          (failure: Error) => {
            options.onError?.(failure);
            options.log?.(`MQTT: no PUBACK for ${client.id}, disconnected to send again: ${failure.message}`);
            callback(failure);
          },
        );
      };
      if (guard) guard.handlers.authorizePublish?.(client, packet, enqueue);
      else enqueue(null);
    },
  });
  guard?.watch(broker);
  const sessions = new WeakMap<Socket, Client>();
  // One flood log each: a burst of evictions must not hide that devices were refused.
  const capLog = { evicted: floodLog(log), refused: floodLog(log) };
  const cap = connectionCap({
    max: limits.maxConnections,
    // Past its CONNECT: a device. A socket still short of its CONNECT may be closed for a new one.
    inUse: (socket) => {
      const client = sessions.get(socket);
      return client !== undefined && (client.connected || client.connecting);
    },
    onFull: (what, open) =>
      capLog[what](
        what === 'evicted'
          ? `MQTT: ${open + 1} connections, the cap (${limits.maxConnections}): closed the oldest one that had not sent its CONNECT, to take a new one`
          : `MQTT: refused a connection: ${open} devices are connected, the cap (${limits.maxConnections})`,
      ),
  });
  const server: Server = createServer((socket) => {
    if (!cap.admit(socket)) return;
    let client: Client | undefined;
    limitPackets(socket, limits.maxPayloadBytes, (refused) =>
      log(
        `MQTT: disconnected ${client?.id || '(no CONNECT yet)'}: a ${refused.type} of ${refused.bytes} ${refused.type === 'PUBLISH' ? 'payload ' : ''}bytes is over the ${refused.limit}-byte limit (validation.maxPayloadBytes; IoT Core's is 128 KB)`,
      ),
    );
    client = broker.handle(socket);
    sessions.set(socket, client);
  });
  try {
    await listen(server, options.port, options.host, 'MQTT', '--mqtt-port');
  } catch (error) {
    guard?.stop();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw error;
  }
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    async close() {
      guard?.stop();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A packet {@link PacketFraming} refused: its type, its size (a PUBLISH's payload) and the limit. */
export interface OversizedPacket {
  readonly type: string;
  readonly bytes: number;
  readonly limit: number;
}

const PACKET_TYPES = [
  'reserved',
  'CONNECT',
  'CONNACK',
  'PUBLISH',
  'PUBACK',
  'PUBREC',
  'PUBREL',
  'PUBCOMP',
  'SUBSCRIBE',
  'SUBACK',
  'UNSUBSCRIBE',
  'UNSUBACK',
  'PINGREQ',
  'PINGRESP',
  'DISCONNECT',
  'AUTH',
];
const PUBLISH = 3;

/**
 * Reads an MQTT byte stream's framing, chunk by chunk: each packet's fixed header (type,
 * QoS, and the remaining length, a variable-length integer of up to four bytes) and, for
 * a PUBLISH, its topic length, which together give the payload size. Nothing is copied
 * or kept but a few counters. After malformed framing it reads no further: the bytes go
 * on for aedes's parser to refuse.
 */
export class PacketFraming {
  private state: 'header' | 'length' | 'topic' | 'body' | 'unframed' = 'header';
  private type = 0;
  private qos = 0;
  /** The remaining length, while it is read; then what is left of the packet. */
  private remaining = 0;
  private lengthBytes = 0;
  private topicLength: number[] = [];

  constructor(private readonly limit: number) {}

  /**
   * The next chunk of the stream: `refused` is the first packet over the limit, and
   * `whole` the bytes of the chunk before it (the packets ahead of it); without
   * `refused`, the whole chunk may go on.
   */
  scan(chunk: Buffer): { readonly whole: number; readonly refused?: OversizedPacket } {
    // Where the packet being framed began in this chunk (0: in an earlier chunk).
    let packetStart = 0;
    let i = 0;
    while (i < chunk.length && this.state !== 'unframed') {
      if (this.state === 'body') {
        const skip = Math.min(this.remaining, chunk.length - i);
        i += skip;
        this.remaining -= skip;
        if (this.remaining === 0) this.state = 'header';
      } else if (this.state === 'header') {
        packetStart = i;
        const byte = chunk[i++] as number;
        this.type = byte >> 4;
        this.qos = (byte >> 1) & 3;
        this.remaining = 0;
        this.lengthBytes = 0;
        this.state = 'length';
      } else if (this.state === 'length') {
        const byte = chunk[i++] as number;
        this.remaining += (byte & 0x7f) * 128 ** this.lengthBytes++;
        if (byte & 0x80) {
          if (this.lengthBytes === 4) this.state = 'unframed';
          continue;
        }
        const refused = this.sized();
        if (refused) return this.refuse(refused, packetStart);
      } else {
        this.topicLength.push(chunk[i++] as number);
        this.remaining--;
        if (this.topicLength.length < 2) continue;
        const [high = 0, low = 0] = this.topicLength;
        this.topicLength = [];
        const payload = this.remaining - ((high << 8) | low) - (this.qos > 0 ? 2 : 0);
        if (payload > this.limit)
          return this.refuse({ type: 'PUBLISH', bytes: payload, limit: this.limit }, packetStart);
        this.state = this.remaining > 0 ? 'body' : 'header';
      }
    }
    return { whole: chunk.length };
  }

  /** After the remaining length: the packet refused, or the state that reads the rest. */
  private sized(): OversizedPacket | undefined {
    if (this.type === PUBLISH) {
      // The topic's two length bytes come first: only a packet that could be over the limit waits for them.
      if (this.remaining - 2 > this.limit) {
        this.state = 'topic';
        return undefined;
      }
    } else if (this.remaining > this.limit) {
      return { type: PACKET_TYPES[this.type] ?? 'packet', bytes: this.remaining, limit: this.limit };
    }
    this.state = this.remaining > 0 ? 'body' : 'header';
    return undefined;
  }

  private refuse(refused: OversizedPacket, packetStart: number) {
    this.state = 'unframed';
    return { whole: packetStart, refused };
  }
}

/**
 * Closes `socket` at the first packet over `limit`, before its body is buffered: aedes's
 * parser (mqtt-packet, which has no size option) would otherwise keep the whole of it,
 * up to the protocol's 256 MB. aedes takes its bytes with `socket.read()` in paused mode,
 * so each chunk is framed there; the socket itself stays aedes's connection (a Duplex
 * wrapper in between split every packet aedes writes into several TCP writes).
 */
function limitPackets(socket: Socket, limit: number, onRefused: (packet: OversizedPacket) => void): void {
  const framing = new PacketFraming(limit);
  const read = socket.read.bind(socket);
  socket.read = (size?: number) => {
    const chunk: unknown = read(size);
    if (!Buffer.isBuffer(chunk)) return chunk;
    const { whole, refused } = framing.scan(chunk);
    if (!refused) return chunk;
    onRefused(refused);
    socket.destroy();
    // The packets ahead of the refused one are whole: aedes may have them (a QoS 1 one
    // gets no PUBACK on the closed socket, and its client sends it again).
    return whole > 0 ? chunk.subarray(0, whole) : null;
  };
}

/**
 * Holds retained messages to `maxRetained` topics and `maxRetainedBytes`: past either a
 * retained publish to a new topic (or a bigger one on a held topic) loses its retain
 * flag. The message is still delivered and, on a telemetry topic, ingested: refusing
 * it would disconnect a device that then sends the same retained message again, and
 * lose its reading. An empty retained payload clears its topic, as MQTT says.
 */
function retainedBound(limits: MqttLimits, log: (line: string) => void) {
  const held = new Map<string, number>();
  let bytes = 0;
  return (client: Client, packet: { topic: string; payload: string | Buffer; retain: boolean }) => {
    if (!packet.retain) return;
    const size = Buffer.byteLength(packet.payload);
    const before = held.get(packet.topic);
    if (size === 0) {
      held.delete(packet.topic);
      bytes -= before ?? 0;
      return;
    }
    const topics = held.size + (before === undefined ? 1 : 0);
    const total = bytes - (before ?? 0) + size;
    if (topics > limits.maxRetained || total > limits.maxRetainedBytes) {
      packet.retain = false;
      log(
        `MQTT: ${client.id}'s message on ${truncate(packet.topic)} delivered but not retained: the broker keeps at most ${limits.maxRetained} retained topics and ${limits.maxRetainedBytes} bytes (${held.size} topics, ${bytes} bytes held)`,
      );
      return;
    }
    held.set(packet.topic, size);
    bytes = total;
  };
}

/** A CONNACK refusal: 2 identifier rejected, 4 bad user name or password. */
function refusal(returnCode: 2 | 4, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/**
 * True when a client may publish to `topic`: a device, to its own telemetry topic,
 * directly or through Basic Ingest (never to `lorawanRule`); the client whose id is
 * `lorawanRule` (the local IoT Core for LoRaWAN), to that rule only.
 */
export function mayPublish(clientId: string, topic: string, lorawanRule = lorawanRuleName('dev')): boolean {
  if (clientId === lorawanRule) return reachesLorawanRule(lorawanRule, topic);
  if (reachesLorawanRule(lorawanRule, topic)) return false;
  const parsed = parseTelemetryTopic(topic);
  return !('error' in parsed) && parsed.deviceId === clientId;
}

/** True when a device may subscribe to `filter`: its own command topic, `cmd/<type>/<id>` or `cmd/+/<id>`. */
export function maySubscribe(deviceId: string, filter: string): boolean {
  const parts = filter.split('/');
  return (
    parts.length === 3 &&
    parts[0] === 'cmd' &&
    (parts[1] === '+' || DEVICE_TYPE_PATTERN.test(parts[1] ?? '')) &&
    parts[2] === deviceId
  );
}

/**
 * The aedes handlers that hold devices to their credentials and topics, and a timer
 * that disconnects a device whose credentials were removed or replaced since it connected.
 */
async function deviceGuard(auth: BrokerAuthOptions, log: (line: string) => void, lorawanRule: string) {
  const credentials: CredentialChecker = credentialChecker(auth.credentialsFile);
  try {
    await credentials.refresh();
  } catch (error) {
    throw new StartupError(
      `${(error as Error).message}. Fix it, or remove the file and add the devices again with iot-pipeline devices add <id>.`,
    );
  }
  // The digest each connected device authenticated with, to notice it change.
  const connected = new Map<string, { readonly client: Client; readonly digest: Buffer }>();
  const refresh = () =>
    credentials.refresh().catch((error: Error) => {
      log(`MQTT: cannot read the device credentials, keeping the last good ones: ${error.message}`);
      return false;
    });
  const recheck = async () => {
    if (!(await refresh())) return;
    for (const [deviceId, { client, digest }] of connected) {
      if (credentials.digestOf(deviceId)?.equals(digest)) continue;
      connected.delete(deviceId);
      log(`MQTT: disconnected ${deviceId}: its credentials were removed or replaced`);
      client.close();
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const handlers: Required<Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe'>> = {
    authenticate(client, username, password, done) {
      const deviceId = client.id;
      const refuse = (returnCode: 2 | 4, why: string) => {
        log(`MQTT: refused connection as "${truncate(deviceId)}": ${why}`);
        done(refusal(returnCode, why), false);
      };
      if (!DEVICE_ID_PATTERN.test(deviceId))
        return refuse(2, `client id must be a device id (${DEVICE_ID_PATTERN})`);
      if (username !== deviceId || !password)
        return refuse(4, 'username must be the client id (the device id), with its password');
      refresh().then(() => {
        // One answer for an unknown device and a wrong password: which ids exist stays unsaid.
        if (!credentials.verify(deviceId, password)) return refuse(4, 'unknown device or wrong password');
        const digest = credentials.digestOf(deviceId);
        if (digest) connected.set(deviceId, { client, digest });
        done(null, true);
      });
    },
    authorizePublish(client, packet, callback) {
      // No client: a will aedes publishes itself; never enqueued (see startBroker) and
      // nobody may subscribe to a telemetry topic.
      if (!client) return callback(null);
      if (mayPublish(client.id, packet.topic, lorawanRule)) return callback(null);
      log(
        client.id === lorawanRule
          ? `MQTT: disconnected ${client.id}: it may publish only to $aws/rules/${lorawanRule}, not ${truncate(packet.topic)}`
          : `MQTT: disconnected ${client.id}: it may publish only to dt/<type>/${client.id}, not ${truncate(packet.topic)}`,
      );
      // aedes closes the connection: IoT Core does the same for a publish the policy denies.
      callback(new Error(`${client.id} may not publish to ${packet.topic}`));
    },
    authorizeSubscribe(client, subscription, callback) {
      if (maySubscribe(client.id, subscription.topic)) return callback(null, subscription);
      log(
        `MQTT: refused ${client.id} a subscription to ${truncate(subscription.topic)}: only cmd/<type>/${client.id}`,
      );
      // null: the SUBACK carries 0x80 (failure) for this filter; the client stays connected.
      callback(null, null);
    },
  };
  return {
    handlers,
    watch(broker: Aedes) {
      broker.on('clientDisconnect', (client) => {
        if (connected.get(client.id)?.client === client) connected.delete(client.id);
      });
      timer = setInterval(recheck, auth.recheckMs ?? 1000);
      timer.unref();
      log(
        `MQTT: devices must authenticate (--mqtt-auth): ${credentials.size()} device(s) in ${auth.credentialsFile}, read again when it changes`,
      );
    },
    stop() {
      clearInterval(timer);
    },
  };
}
