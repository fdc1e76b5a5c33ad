/**
 * The cost run's traffic: the simulated fleet's messages, as the SQS event source
 * mapping hands them to the ingest function, and the Lambda context it runs in.
 */
import type { Context, SQSRecord } from 'aws-lambda';
import { createFleet, nextReading, random, type SimulatedDevice } from '../simulator/fleet.ts';
import type { Fleet } from './model.ts';

/** The device type the cost run's messages have: give it a decoder in the config to price one. */
export const COST_DEVICE_TYPE = 'sensor';

export type { CodecFrame } from '../simulator/bodies.ts';

export interface SimulatedMessage {
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
export function simulate(fleet: Fleet, bytes: number, total: number, endAt: number): SimulatedMessage[] {
  const rand = random(7);
  const devices = createFleet(
    { devices: fleet.devices, type: COST_DEVICE_TYPE, silentShare: 0, silentWithin: 0, seed: 7 },
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

export function sqsRecord(messageId: string, body: string, sentAt: number): SQSRecord {
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

export function lambdaContext(invocation: number): Context {
  return {
    functionName: 'iot-pipeline-ingest',
    awsRequestId: `cost-${invocation}`,
    getRemainingTimeInMillis: () => 60_000,
  } as Context;
}
