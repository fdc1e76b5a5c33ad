/**
 * The local MQTT broker (aedes, in-process): devices connect as they would to IoT
 * Core, and each publish on a telemetry topic goes through the same rule definition
 * as the IoT rule (`applyTelemetryRule`) onto the ingest queue. A QoS 1 publish is
 * acknowledged after its envelope is queued.
 *
 * With `auth` (`start --mqtt-auth`) it holds devices to what the device policy allows
 * them on IoT Core (`lib/constructs/devices.ts`): connect only as itself, client id =
 * username = device id, with the password from `devices add` (a takeover of a client
 * id therefore needs that device's password); publish only to its own telemetry topic
 * (`dt/<type>/<id>`, or through Basic Ingest), else it is disconnected, as IoT Core
 * does; subscribe only to its own command topic (`cmd/<type>/<id>`, `+` for the type),
 * else the SUBACK refuses that filter (0x80). Without `auth` any local process may
 * connect as any device, publish as it, and subscribe to `#`.
 */
import { createServer, type Server } from 'node:net';
import { Aedes, type AedesOptions, type AuthenticateError, type Client } from 'aedes';
import type { Envelope } from '../lambdas/core/formats/format.ts';
import { applyTelemetryRule, parseTelemetryTopic } from '../lambdas/core/formats/mqtt-topic.ts';
import { DEVICE_ID_PATTERN, DEVICE_TYPE_PATTERN, truncate } from '../lambdas/core/ids.ts';
import { type CredentialChecker, credentialChecker } from './device-credentials.ts';
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

export async function startBroker(options: {
  readonly host: string;
  readonly port: number;
  readonly enqueue: (envelope: Envelope) => Promise<unknown>;
  readonly onError?: (error: Error) => void;
  /** Devices must authenticate and keep to their own topics; off when absent. */
  readonly auth?: BrokerAuthOptions;
  /** Where refused connections, publishes and subscriptions are reported; silent when absent. */
  readonly log?: (line: string) => void;
}): Promise<LocalBroker> {
  const guard = options.auth ? await deviceGuard(options.auth, options.log ?? (() => {})) : undefined;
  const broker = await Aedes.createBroker({
    // Device ids are up to 128 characters; MQTT 3.1's 23 is too short.
    maxClientsIdLength: 128,
    ...guard?.handlers,
    async published(packet, client, done) {
      // client is null for the broker's own messages ($SYS heartbeats).
      if (!client) return done();
      const envelope = applyTelemetryRule({
        topic: packet.topic,
        payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
        clientId: client.id,
        timestamp: Date.now(),
      });
      if (!envelope) return done();
      try {
        await options.enqueue(envelope);
        done();
      } catch (error) {
        options.onError?.(error as Error);
        done(error as Error);
      }
    },
  });
  guard?.watch(broker);
  const server: Server = createServer(broker.handle);
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

/** A CONNACK refusal: 2 identifier rejected, 4 bad user name or password. */
function refusal(returnCode: 2 | 4, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** True when a device may publish to `topic`: its own telemetry topic, directly or through Basic Ingest. */
export function mayPublish(deviceId: string, topic: string): boolean {
  const parsed = parseTelemetryTopic(topic);
  return !('error' in parsed) && parsed.deviceId === deviceId;
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
async function deviceGuard(auth: BrokerAuthOptions, log: (line: string) => void) {
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
  const handlers: Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe'> = {
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
      // No client: a will aedes publishes itself; never enqueued (see published) and
      // nobody may subscribe to a telemetry topic.
      if (!client) return callback(null);
      if (mayPublish(client.id, packet.topic)) return callback(null);
      log(
        `MQTT: disconnected ${client.id}: it may publish only to dt/<type>/${client.id}, not ${truncate(packet.topic)}`,
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
