import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { createKey } from '../../lambdas/core/access/keys.ts';
import { createGate } from '../../lambdas/core/api/gate.ts';
import type { HttpRequest } from '../../lambdas/core/api/http.ts';
import { alertRow } from '../../lambdas/core/estate/alert-history.ts';
import { writeObjects } from '../../lambdas/core/ingest/lake-objects.ts';
import { alertKey, readingsKey } from '../../lambdas/core/lake/layout.ts';
import { type Reading, toNdjsonRows } from '../../lambdas/core/reading.ts';
import { createEventHub, type EventHub, groupReadings } from '../../local/events.ts';
import { MemoryStore, NOW, UNLIMITED } from '../support/fakes.ts';

/** A response that never drains: what it is sent stays waiting, as with a client that does not read. */
class StuckResponse extends EventEmitter {
  writableLength = 0;
  readonly chunks: string[] = [];
  destroyed = false;
  status = 0;
  writeHead(status: number) {
    this.status = status;
    return this;
  }
  write(text: string) {
    this.chunks.push(text);
    this.writableLength += Buffer.byteLength(text);
    return false;
  }
  destroy() {
    this.destroyed = true;
    this.emit('close');
  }
  end() {
    this.emit('close');
  }
}
/** A response whose client reads everything at once. */
class ReadingResponse extends StuckResponse {
  override write(text: string) {
    this.chunks.push(text);
    return true;
  }
}

const MASTER = 'master';
const reader = createKey({ name: 'reader', scopes: ['read'] }, 0);
const north = createKey({ name: 'north', scopes: ['read'], devices: ['north-*'] }, 0);
const both = createKey({ name: 'both', scopes: ['read', 'ingest'] }, 0);
const gate = createGate({
  find: async (id) => [reader, north, both].find((k) => k.record.id === id)?.record,
  masterKey: MASTER,
  limits: UNLIMITED,
});
const request = (query: string, headers: Record<string, string> = {}): HttpRequest => ({
  method: 'GET',
  path: '/v1/events',
  query,
  headers,
  body: Buffer.alloc(0),
  requestId: 'r',
  receivedAt: NOW,
});
const reading = (deviceId: string, i: number): Reading => ({
  deviceId,
  deviceType: 'thermo',
  time: NOW + i,
  receivedAt: NOW + i,
  source: 'mqtt',
  metrics: { temp: i, door: true, fw: 'x' },
  key: String(i),
  messageId: `${deviceId}-${i}`,
});
const events = (response: StuckResponse) =>
  response.chunks
    .join('')
    .split('\n\n')
    .filter((block) => block.startsWith('event:'))
    .map((block) => ({
      event: /^event: (.*)$/m.exec(block)?.[1],
      data: JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null'),
    }));
const settle = () => new Promise((resolve) => setImmediate(resolve));

async function storeReadings(lake: ReturnType<EventHub['tap']>, readings: readonly Reading[]) {
  await writeObjects(
    lake,
    readings.map((r) => ({
      messageId: r.messageId,
      keyFor: (id: string) => readingsKey(r.time, id),
      lines: toNdjsonRows(r),
    })),
    (_, error) => {
      throw error;
    },
  );
}

describe('the live event stream', () => {
  let hub: EventHub;
  afterEach(() => hub?.close());

  it("sends each stored reading and alert as an event, a key's own devices only", async () => {
    hub = createEventHub();
    const everyone = new ReadingResponse();
    const northOnly = new ReadingResponse();
    await hub.open(request(`token=${reader.key}`), everyone as unknown as ServerResponse, gate);
    await hub.open(request('', { 'x-api-key': north.key }), northOnly as unknown as ServerResponse, gate);
    expect(everyone.status).toBe(200);
    const lake = hub.tap(new MemoryStore());
    await storeReadings(lake, [reading('dev-1', 1), reading('north-1', 2)]);
    const alert = alertRow({
      deviceId: 'north-1',
      deviceType: 'thermo',
      rule: 'hot',
      severity: 'critical',
      state: 'raised',
      time: NOW,
      metric: 'temp',
      value: 31,
      comparison: '>',
      threshold: 30,
    });
    await lake.put(
      alertKey(NOW, alert.alert_id),
      gzip(JSON.stringify(alert)),
      'application/x-ndjson',
      'gzip',
    );
    await settle();
    expect(events(everyone).map((e) => [e.event, e.data.deviceId])).toEqual([
      ['reading', 'dev-1'],
      ['reading', 'north-1'],
      ['alert', 'north-1'],
    ]);
    expect(events(everyone)[0]?.data).toEqual({
      deviceId: 'dev-1',
      deviceType: 'thermo',
      time: new Date(NOW + 1).toISOString(),
      receivedAt: new Date(NOW + 1).toISOString(),
      source: 'mqtt',
      metrics: { temp: 1, door: true, fw: 'x' },
    });
    expect(events(everyone)[2]?.data).toMatchObject({
      rule: 'hot',
      state: 'raised',
      value: 31,
      threshold: 30,
    });
    expect(events(northOnly).map((e) => [e.event, e.data.deviceId])).toEqual([
      ['reading', 'north-1'],
      ['alert', 'north-1'],
    ]);
  });

  it('disconnects a client that does not read once its buffer is full, and never holds the write', async () => {
    hub = createEventHub({ maxBufferedBytes: 4096 });
    const stuck = new StuckResponse();
    const fine = new ReadingResponse();
    await hub.open(request(`token=${reader.key}`), stuck as unknown as ServerResponse, gate);
    await hub.open(request(`token=${reader.key}`), fine as unknown as ServerResponse, gate);
    const lake = hub.tap(new MemoryStore());
    for (let batch = 0; batch < 5; batch++) {
      // The write resolves whatever the clients do.
      await storeReadings(
        lake,
        Array.from({ length: 20 }, (_, i) => reading('dev-1', batch * 100 + i)),
      );
      await settle();
    }
    expect(stuck.destroyed).toBe(true);
    expect(hub.clients).toBe(1);
    expect(hub.dropped).toBe(1);
    expect(events(fine)).toHaveLength(100);
  });

  it('opens at most maxClients streams', async () => {
    hub = createEventHub({ maxClients: 1 });
    await hub.open(request(`token=${reader.key}`), new ReadingResponse() as unknown as ServerResponse, gate);
    const refused = await hub.open(
      request(`token=${reader.key}`),
      new ReadingResponse() as unknown as ServerResponse,
      gate,
    );
    expect(refused?.statusCode).toBe(503);
    expect(refused?.headers['retry-after']).toBe('5');
  });

  it.each([
    ['no key', request(''), 401],
    ['a made-up key', request('token=iotp_0011223344556677_x'), 401],
    ['a key with more than read in the query', request(`token=${both.key}`), 403],
    ['the master key in the query', request(`token=${MASTER}`), 403],
  ])('refuses %s', async (_, req, status) => {
    hub = createEventHub();
    const response = new ReadingResponse();
    const refused = await hub.open(req, response as unknown as ServerResponse, gate);
    expect(refused?.statusCode).toBe(status);
    expect(response.status).toBe(0);
  });

  it('takes a key with every scope in a header', async () => {
    hub = createEventHub();
    const response = new ReadingResponse();
    expect(
      await hub.open(request('', { authorization: `Bearer ${both.key}` }), response as never, gate),
    ).toBe(undefined);
    expect(response.status).toBe(200);
  });

  it('groups long-format lines back into one event per reading, even a metric named __proto__', () => {
    const lines = toNdjsonRows({ ...reading('d', 1), metrics: JSON.parse('{"__proto__":1,"b":"x"}') }).map(
      (l) => JSON.parse(l) as Record<string, unknown>,
    );
    const [event] = groupReadings(lines);
    expect(Object.keys(event?.metrics ?? {})).toEqual(['__proto__', 'b']);
    expect(Object.getPrototypeOf(event?.metrics)).toBe(Object.prototype);
  });
});

function gzip(line: string): Buffer {
  return gzipSync(`${line}\n`);
}
