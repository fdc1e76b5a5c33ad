/**
 * MQTT (`dt/<deviceType>/<deviceId>`, directly or through Basic Ingest): the topic
 * names the device (IoT Core's policy lets a thing publish only on its own topic),
 * and the payload goes to the device type's decoder, else it is JSON. The topic
 * contract and the telemetry rule are in `mqtt-topic.ts`.
 *
 * A codec gets the LoRaWAN port the topic names (`dt/<type>/<id>/<fPort>`), else the
 * type's `fPort` from the config, else none (a TS013 codec then sees `fPort` undefined).
 */
import { own } from '../ids.ts';
import { type Format, refuse, type Uplink } from './format.ts';
import { parseTelemetryTopic } from './mqtt-topic.ts';

export const mqtt: Format<Uplink, 'mqtt'> = {
  source: 'mqtt',
  title: 'MQTT',
  // Brokers redeliver at QoS 1 within one connection; SQS retries are the ingest path's own.
  resends: false,
  read(message, { config, decoders, json }) {
    const topic = parseTelemetryTopic(message.topic);
    if ('error' in topic) return refuse('invalid_topic', topic.error);
    // The hot path: a literal of fixed shape, no spread.
    return {
      deviceId: topic.deviceId,
      deviceType: topic.deviceType,
      payload: {
        decoder: decoders.of(topic.deviceType) ?? json,
        bytes: message.bytes,
        fPort: topic.fPort ?? own(config.deviceTypes, topic.deviceType)?.fPort,
      },
    };
  },
};
