/**
 * What the estate API costs on AWS, per call: the DynamoDB registry adapter's own reads
 * for `GET /v1/estate` and for pages of `GET /v1/devices`, run over the metered
 * in-memory DynamoDB (metered-aws.ts: Scan and Query bill the bytes each request reads,
 * before any filter, in 4 KB units halved for eventually consistent reads; BatchGetItem
 * 4 KB a item), with the registry holding `devices` records shaped like those a run of
 * the ingest path wrote. Measured, not assumed: the requests are the adapter's.
 */
import { dynamodbRegistry, registryItem } from '../../lambdas/adapters/aws/dynamodb-registry.ts';
import { applyReadings, type DeviceRecord } from '../../lambdas/core/estate/alerts.ts';
import type { EstateQuery } from '../../lambdas/core/estate/registry-query.ts';
import type { Reading } from '../../lambdas/core/reading.ts';
import { createFleet, nextReading, random } from '../simulator/fleet.ts';
import { DEFAULT_LATENCY, meteredClients, type ServiceLatency } from './metered-aws.ts';
import { type AwsPrices, type DynamoValue, emptyUsage, lambdaGbSeconds, type Usage } from './model.ts';
import { COST_DEVICE_TYPE } from './traffic.ts';

/** The query function's memory (lib/constructs/http-api.ts). */
export const QUERY_MEMORY_MB = 256;
const TABLE = 'iot-pipeline-registry';

/** One estate call measured: the registry's read units and requests, and the time the function waits for them. */
export interface EstateCall {
  readonly call: string;
  readonly readUnits: number;
  readonly requests: number;
  readonly ms: number;
}

/** What the console's first screen asks for: the estate, and the first page of devices. */
export const CONSOLE_VIEW = ['GET /v1/estate', 'GET /v1/devices'] as const;

/**
 * `count` records like the cost run's: a simulated device's reading (`sensor`, the
 * simulator's metrics) through the estate's own `applyReadings`.
 */
export function simulatedRecords(count: number, at: number): DeviceRecord[] {
  const rand = random(11);
  const fleet = createFleet(
    { devices: Math.min(count, 1000), type: COST_DEVICE_TYPE, silentShare: 0, silentWithin: 0, seed: 11 },
    rand,
  );
  return fleet.map((device, i) => {
    const reading: Reading = {
      deviceId: device.id,
      deviceType: COST_DEVICE_TYPE,
      time: at - i,
      receivedAt: at - i,
      source: 'mqtt',
      metrics: nextReading(device, at - i, rand),
      messageId: `m-${i}`,
      key: `seq:${i}`,
    };
    return applyReadings(undefined, [reading], []).record;
  });
}

/**
 * The registry's reads of each estate call with `devices` records in the table, the
 * records cloned (new ids) from `templates`.
 */
export async function measureEstateCalls(options: {
  readonly devices: number;
  readonly templates: readonly DeviceRecord[];
  readonly prices: AwsPrices;
  readonly at: number;
  readonly latency?: ServiceLatency;
}): Promise<EstateCall[]> {
  const usage = emptyUsage();
  const meter = meteredClients(
    usage,
    options.prices,
    { [TABLE]: 'deviceId' },
    options.latency ?? DEFAULT_LATENCY,
  );
  const items = new Map<string, ReturnType<typeof registryItem>>();
  const width = String(options.devices).length;
  for (let i = 0; i < options.devices; i++) {
    const template = options.templates[i % options.templates.length] as DeviceRecord;
    const deviceId = `${template.deviceId}-${String(i).padStart(width, '0')}`;
    items.set(deviceId, registryItem({ ...template, deviceId }));
  }
  meter.tables.set(TABLE, items as unknown as Map<string, Record<string, DynamoValue>>);
  const registry = dynamodbRegistry(meter.clients.dynamodb, TABLE);
  const type = options.templates[0]?.deviceType ?? COST_DEVICE_TYPE;
  const listing = (query: Partial<EstateQuery> & Pick<EstateQuery, 'filter'>): EstateQuery => ({
    at: options.at,
    timeouts: { defaultMs: 30 * 60_000, byType: {} },
    sort: 'deviceId',
    order: 'asc',
    limit: 100,
    count: false,
    ...query,
  });
  const calls: [string, () => Promise<unknown>][] = [
    [
      'GET /v1/estate',
      () => registry.tally({ at: options.at, timeouts: { defaultMs: 30 * 60_000, byType: {} } }),
    ],
    ['GET /v1/devices', () => registry.query(listing({ filter: {} }))],
    ['GET /v1/devices?count=true', () => registry.query(listing({ filter: {}, count: true }))],
    [`GET /v1/devices?type=${type}`, () => registry.query(listing({ filter: { type } }))],
    [
      `GET /v1/devices?type=${type}&count=true`,
      () => registry.query(listing({ filter: { type }, count: true })),
    ],
    ['GET /v1/devices?status=offline', () => registry.query(listing({ filter: { status: 'offline' } }))],
    [
      'GET /v1/devices?sort=lastSeen&order=desc',
      () => registry.query(listing({ filter: {}, sort: 'lastSeen', order: 'desc' })),
    ],
  ];
  const measured: EstateCall[] = [];
  for (const [call, run] of calls) {
    const units = usage.dynamodbReadUnits;
    const requests = [...meter.calls.values()].reduce((n, c) => n + c, 0);
    const started = performance.now();
    await run();
    measured.push({
      call,
      readUnits: usage.dynamodbReadUnits - units,
      requests: [...meter.calls.values()].reduce((n, c) => n + c, 0) - requests,
      ms: Math.ceil(performance.now() - started),
    });
  }
  return measured;
}

/** The usage of one console view (`GET /v1/estate` and a page of `GET /v1/devices`): API Gateway, Lambda, registry reads. */
export function consoleViewUsage(calls: readonly EstateCall[]): Usage {
  const usage = emptyUsage();
  for (const name of CONSOLE_VIEW) {
    const call = calls.find((c) => c.call === name);
    if (!call) throw new Error(`no measurement of ${name}`);
    usage.apiRequests++;
    usage.lambdaRequests++;
    usage.lambdaGbSeconds += lambdaGbSeconds(call.ms, QUERY_MEMORY_MB);
    usage.dynamodbReadUnits += call.readUnits;
  }
  return usage;
}
