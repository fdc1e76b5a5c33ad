/**
 * The local MQTT broker (aedes, in-process): devices connect as they would to IoT
 * Core, and each publish on a telemetry topic goes through the same rule definition
 * as the IoT rule (`applyTelemetryRule`) onto the ingest queue. A QoS 1 publish is
 * acknowledged after its envelope is queued.
 */
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import type { Envelope } from '../lambdas/core/formats/format.ts';
import { applyTelemetryRule } from '../lambdas/core/formats/mqtt-topic.ts';
import { listen } from './listen.ts';

export interface LocalBroker {
  readonly port: number;
  close(): Promise<void>;
}

export async function startBroker(options: {
  readonly host: string;
  readonly port: number;
  readonly enqueue: (envelope: Envelope) => Promise<unknown>;
  readonly onError?: (error: Error) => void;
}): Promise<LocalBroker> {
  const broker = await Aedes.createBroker({
    // Device ids are up to 128 characters; MQTT 3.1's 23 is too short.
    maxClientsIdLength: 128,
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
  const server: Server = createServer(broker.handle);
  try {
    await listen(server, options.port, options.host, 'MQTT', '--mqtt-port');
  } catch (error) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw error;
  }
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
