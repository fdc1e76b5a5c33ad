/**
 * AWS's limits in the local runtime, through real sockets: MQTT payloads over 128 KB
 * refused at the framing, lake lines DuckDB can read, bounded retained messages,
 * connection caps and timeouts that keep idle and slow sockets from starving real
 * clients, and GET /healthz.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type OversizedPacket, PacketFraming } from '../../local/broker.ts';
import { type Health, healthLine } from '../../local/health.ts';
import { type LocalRuntime, type LocalRuntimeOptions, startLocalRuntime } from '../../local/runtime.ts';

const LIMIT = 131_072;
const WAIT = { timeout: 15_000, interval: 50 };

async function runtime(lines: string[], options: Partial<LocalRuntimeOptions> = {}) {
  return startLocalRuntime({
    dataDir: await mkdtemp(join(tmpdir(), 'iot-limits-')),
    mqttPort: 0,
    httpPort: 0,
    queue: { batchWindowMs: 20, retryDelayMs: 20 },
    log: (line) => lines.push(line),
    ...options,
  });
}

// --- MQTT on the wire, by hand: the tests send what no well-behaved client would. ---

function varint(n: number): Buffer {
  const bytes: number[] = [];
  let rest = n;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    bytes.push(byte);
  } while (rest > 0);
  return Buffer.from(bytes);
}

function utf8(text: string): Buffer {
  const bytes = Buffer.from(text);
  return Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes]);
}

function connectPacket(clientId: string, will?: { topic: string; payload: Buffer }): Buffer {
  const flags = 0x02 | (will ? 0x04 : 0);
  const body = Buffer.concat([
    utf8('MQTT'),
    Buffer.from([4, flags, 0, 60]),
    utf8(clientId),
    ...(will
      ? [utf8(will.topic), Buffer.from([will.payload.length >> 8, will.payload.length & 0xff]), will.payload]
      : []),
  ]);
  return Buffer.concat([Buffer.from([0x10]), varint(body.length), body]);
}

/** A QoS 1 PUBLISH's fixed and variable header, for a payload of `payloadBytes` sent after it. */
function publishHeader(topic: string, payloadBytes: number): Buffer {
  const name = utf8(topic);
  return Buffer.concat([
    Buffer.from([0x32]),
    varint(name.length + 2 + payloadBytes),
    name,
    Buffer.from([0, 1]),
  ]);
}

interface Wire {
  readonly socket: Socket;
  /** Everything the server sent. */
  received(): Buffer;
  readonly closed: Promise<number>;
}

function wire(port: number): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const opened = Date.now();
    const closed = new Promise<number>((done) => socket.once('close', () => done(Date.now() - opened)));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, received: () => Buffer.concat(chunks), closed }));
    socket.once('error', reject);
  });
}

/** Connects and waits for CONNACK 0. */
async function mqttSession(port: number, clientId: string): Promise<Wire> {
  const session = await wire(port);
  session.socket.write(connectPacket(clientId));
  await vi.waitFor(
    () => expect(session.received().subarray(0, 4)).toEqual(Buffer.from([0x20, 2, 0, 0])),
    WAIT,
  );
  return session;
}

/**
 * A JSON reading of exactly `bytes` bytes, padded with a string too long to store: its
 * only metric, so the ingest quarantines the reading (beside another metric, the string
 * alone would be refused, with a warning).
 */
function readingOf(bytes: number, fields: Record<string, unknown> = {}): string {
  const head =
    Object.keys(fields).length === 0 ? '{"note":"' : `${JSON.stringify(fields).slice(0, -1)},"note":"`;
  return `${head}${'x'.repeat(bytes - head.length - 2)}"}`;
}

function longestLine(dir: string): number {
  let longest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.name.endsWith('.ndjson.gz')) continue;
    const text = gunzipSync(readFileSync(join(entry.parentPath, entry.name))).toString();
    for (const line of text.split('\n')) longest = Math.max(longest, Buffer.byteLength(line));
  }
  return longest;
}

function fileDescriptorLimit(): number {
  // The shell inherits this process's limit (Node raises its soft limit to the hard one).
  return Number(execFileSync('/bin/sh', ['-c', 'ulimit -n']).toString().trim()) || 1024;
}

describe('MQTT packet framing', () => {
  interface Spec {
    readonly publish: boolean;
    readonly qos: number;
    readonly topic: number;
    readonly payload: number;
  }
  const encode = (p: Spec): Buffer => {
    if (!p.publish)
      return Buffer.concat([Buffer.from([0x82]), varint(p.payload), Buffer.alloc(p.payload, 1)]);
    const variable = Buffer.concat([utf8('t'.repeat(p.topic)), Buffer.alloc(p.qos > 0 ? 2 : 0)]);
    return Buffer.concat([
      Buffer.from([0x30 | (p.qos << 1)]),
      varint(variable.length + p.payload),
      variable,
      Buffer.alloc(p.payload, 2),
    ]);
  };
  const limit = 300;

  it('passes every byte before the first packet over the limit, none of its body, and names its size', () => {
    const spec = fc.record({
      publish: fc.boolean(),
      qos: fc.integer({ min: 0, max: 1 }),
      topic: fc.integer({ min: 1, max: 200 }),
      payload: fc.oneof(fc.integer({ min: 0, max: limit }), fc.integer({ min: limit - 2, max: 20_000 })),
    });
    fc.assert(
      fc.property(
        fc.array(spec, { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1 }),
        (packets, cuts) => {
          const encoded = packets.map(encode);
          const stream = Buffer.concat(encoded);
          const framing = new PacketFraming(limit);
          let passed = 0;
          let refused: OversizedPacket | undefined;
          for (let at = 0, c = 0; at < stream.length && !refused; c++) {
            const chunk = stream.subarray(at, at + (cuts[c % cuts.length] ?? 1));
            const result = framing.scan(chunk);
            passed += result.whole;
            refused = result.refused;
            at += chunk.length;
          }
          const first = packets.findIndex((p) => p.payload > limit);
          if (first < 0) {
            expect(refused).toBeUndefined();
            expect(passed).toBe(stream.length);
            return;
          }
          const offset = encoded.slice(0, first).reduce((n, b) => n + b.length, 0);
          const spec = packets[first] as Spec;
          const header =
            (encoded[first] as Buffer).length -
            spec.payload -
            (spec.publish ? 2 + spec.topic + (spec.qos > 0 ? 2 : 0) : 0);
          expect(refused).toEqual({
            type: spec.publish ? 'PUBLISH' : 'SUBSCRIBE',
            bytes: spec.publish ? spec.payload : spec.payload,
            limit,
          });
          // Only the refused packet's framing may have gone on (when a chunk ended inside it), never its body.
          expect(passed).toBeGreaterThanOrEqual(offset);
          expect(passed).toBeLessThanOrEqual(offset + header + (spec.publish ? 2 : 0));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('local runtime limits', () => {
  const lines: string[] = [];
  let rt: LocalRuntime;

  beforeAll(async () => {
    rt = await runtime(lines);
  });
  afterAll(async () => {
    await rt?.close();
  });

  describe('MQTT payloads (IoT Core: 128 KB)', () => {
    it('disconnects a 100 MB publish at its header: no PUBACK, nothing queued, one log line, memory flat', async () => {
      const session = await mqttSession(rt.mqttPort, 'big-1');
      const sentBefore = rt.queue.stats().sent;
      const rssBefore = process.memoryUsage().rss;
      const size = 100 * 1024 * 1024;
      session.socket.write(publishHeader('dt/thermo/big-1', size));
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      let written = 0;
      while (written < size && !session.socket.destroyed) {
        written += chunk.length;
        if (!session.socket.write(chunk))
          await Promise.race([new Promise((r) => session.socket.once('drain', r)), session.closed]);
      }
      const closedAfter = await session.closed;
      const rssGrowth = process.memoryUsage().rss - rssBefore;
      expect(closedAfter).toBeLessThan(2000);
      expect(written).toBeLessThan(size);
      // CONNACK only: no PUBACK (0x40) followed.
      expect(session.received()).toEqual(Buffer.from([0x20, 2, 0, 0]));
      expect(rt.queue.stats().sent).toBe(sentBefore);
      expect(lines.filter((l) => l.includes('big-1'))).toEqual([
        `MQTT: disconnected big-1: a PUBLISH of ${size} payload bytes is over the ${LIMIT}-byte limit (validation.maxPayloadBytes; IoT Core's is 128 KB)`,
      ]);
      // Before the limit this publish took the process from about 120 MB to 1.4 GB.
      expect(rssGrowth).toBeLessThan(64 * 1024 * 1024);
    });

    it('takes a payload of exactly the limit and refuses one byte more (mqtt.js, QoS 1)', async () => {
      const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, {
        clientId: 'edge-1',
        reconnectPeriod: 0,
      });
      await device.publishAsync('dt/thermo/edge-1', readingOf(LIMIT), { qos: 1 });
      const closed = new Promise((resolve) => device.once('close', () => resolve('closed')));
      const acked = device
        .publishAsync('dt/thermo/edge-1', readingOf(LIMIT + 1), { qos: 1 })
        .then(() => 'acked');
      expect(await Promise.race([closed, acked])).toBe('closed');
      expect(lines).toContain(
        `MQTT: disconnected edge-1: a PUBLISH of ${LIMIT + 1} payload bytes is over the ${LIMIT}-byte limit (validation.maxPayloadBytes; IoT Core's is 128 KB)`,
      );
      device.end(true);
    });

    it('refuses a CONNECT over the limit (a will too large), before it is read', async () => {
      const session = await wire(rt.mqttPort);
      const connectBytes = connectPacket('will-1', {
        topic: 'dt/thermo/will-1',
        payload: Buffer.alloc(LIMIT),
      });
      session.socket.write(connectBytes.subarray(0, 8));
      expect(await session.closed).toBeLessThan(2000);
      expect(session.received().length).toBe(0);
      expect(
        lines.some((l) =>
          /disconnected \(no CONNECT yet\): a CONNECT of \d+ bytes is over the 131072-byte limit/.test(l),
        ),
      ).toBe(true);
    });
  });

  it('writes the largest payloads over MQTT and HTTP as lake lines DuckDB reads in raw and quarantine', async () => {
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, {
      clientId: 'max-1',
      reconnectPeriod: 0,
    });
    await device.publishAsync('dt/thermo/max-1', readingOf(LIMIT), { qos: 1 });
    await device.endAsync();
    const post = (body: string) =>
      fetch(`http://127.0.0.1:${rt.httpPort}/v1/telemetry`, {
        method: 'POST',
        headers: { authorization: `Bearer ${rt.keys.ingest}`, 'content-type': 'application/json' },
        body,
      });
    expect((await post(readingOf(LIMIT, { $id: 'max-2' }))).status).toBe(202);
    expect((await post(readingOf(LIMIT + 1, { $id: 'max-2' }))).status).toBe(413);
    await vi.waitFor(async () => {
      const { rows } = await rt.query(
        "SELECT device_id, length(payload) AS chars FROM quarantine WHERE device_id IN ('max-1', 'max-2') ORDER BY device_id",
      );
      expect(rows.map((r) => r.device_id)).toEqual(['max-1', 'max-2']);
    }, WAIT);
    // base64 of 131,072 bytes (an HTTP raw record names no device: the body does).
    const raw = await rt.query(
      "SELECT source, length(payload)::INTEGER AS chars FROM raw WHERE client_id = 'max-1' OR (source = 'http' AND length(payload) > 170000) ORDER BY source",
    );
    expect(raw.rows).toEqual([
      { source: 'http', chars: 174_764 },
      { source: 'mqtt', chars: 174_764 },
    ]);
    // The whole raw/ and quarantine/ tables read, every line with them: DuckDB's
    // maximum_object_size (16 MiB) is far above the longest line a payload can make.
    expect((await rt.query('SELECT count(*) AS n FROM raw')).rows[0]?.n).toBeDefined();
    expect((await rt.query('SELECT count(*) AS n FROM quarantine')).rows[0]?.n).toBeDefined();
    const longest = Math.max(
      longestLine(join(rt.lakeDir, 'raw')),
      longestLine(join(rt.lakeDir, 'quarantine')),
    );
    expect(longest).toBeGreaterThan(174_764);
    expect(longest).toBeLessThan(200_000);
  });

  describe('connections', () => {
    it('answers a good request and an MQTT connect within 2 s while thousands of half-open HTTP sockets are held', async () => {
      // Both ends of each socket are in this process: two descriptors apiece.
      const count = Math.max(1200, Math.min(3000, Math.floor((fileDescriptorLimit() - 1000) / 2)));
      const junk: Socket[] = [];
      let closedByServer = 0;
      for (let i = 0; i < count; i += 200) {
        await Promise.all(
          Array.from(
            { length: Math.min(200, count - i) },
            () =>
              new Promise<void>((resolve) => {
                const socket = connect(rt.httpPort, '127.0.0.1', () => {
                  // Headers begun, never finished.
                  socket.write('POST /v1/telemetry HTTP/1.1\r\nHost: x\r\n');
                  resolve();
                });
                socket.on('error', () => resolve());
                socket.on('close', () => closedByServer++);
                junk.push(socket);
              }),
          ),
        );
      }
      try {
        const started = Date.now();
        const response = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/devices`, {
          headers: { authorization: `Bearer ${rt.keys.read}` },
          signal: AbortSignal.timeout(2000),
        });
        expect(response.status).toBe(200);
        const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, {
          clientId: 'through-1',
          reconnectPeriod: 0,
          connectTimeout: 2000,
        });
        await device.endAsync();
        expect(Date.now() - started).toBeLessThan(2000);
        // At most 1,000 stayed open: the oldest made room for the newer ones.
        await vi.waitFor(() => expect(closedByServer).toBeGreaterThanOrEqual(count - 1000), WAIT);
        expect(
          lines.some((l) => l.startsWith('HTTP: 1000 connections, the cap (1000): closed the oldest one')),
        ).toBe(true);
      } finally {
        for (const socket of junk) socket.destroy();
      }
    });

    it('answers a client that sends its request slowly, within the timeouts', async () => {
      const body = JSON.stringify({ $id: 'slow-1', temp: 20 });
      const request = [
        'POST /v1/telemetry HTTP/1.1',
        'Host: 127.0.0.1',
        `Authorization: Bearer ${rt.keys.ingest}`,
        'Content-Type: application/json',
        `Content-Length: ${body.length}`,
        'Connection: close',
        '',
        body,
      ].join('\r\n');
      const session = await wire(rt.httpPort);
      // A tenth of it every 100 ms: a second for the whole request.
      const step = Math.ceil(request.length / 10);
      for (let at = 0; at < request.length; at += step) {
        session.socket.write(request.slice(at, at + step));
        await new Promise((r) => setTimeout(r, 100));
      }
      await session.closed;
      expect(session.received().toString()).toMatch(/^HTTP\/1\.1 202 /);
    });
  });

  describe('GET /healthz', () => {
    const healthz = (key?: string) =>
      fetch(`http://127.0.0.1:${rt.httpPort}/healthz`, {
        headers: key ? { authorization: `Bearer ${key}` } : {},
      });

    it('needs a key with the read scope', async () => {
      expect((await healthz()).status).toBe(401);
      expect((await healthz(rt.keys.ingest)).status).toBe(403);
    });

    it('answers the queue, quarantine and disk figures, and prints them as one line', async () => {
      await rt.queue.idle();
      const response = await healthz(rt.keys.read);
      expect(response.status).toBe(200);
      const body = (await response.json()) as Health;
      expect(body).toEqual({
        ok: true,
        queued: 0,
        journalled: expect.any(Number),
        stored: rt.queue.stats().done,
        quarantined: expect.any(Number),
        deadLettered: 0,
        diskFree: expect.any(Number),
      });
      // The largest-payload test quarantined two messages (their long strings).
      expect(body.quarantined).toBeGreaterThanOrEqual(2);
      expect(body.diskFree).toBeGreaterThan(0);
      // Settle records are written a moment after the batch, and the disk is shared: those two may move.
      expect(await rt.health()).toEqual({
        ...body,
        journalled: expect.any(Number),
        diskFree: expect.any(Number),
      });
      const line = healthLine(body);
      expect(line).toMatch(
        /^0 queued, \d+ journalled, \d+ stored, \d+ quarantined, 0 dead-lettered, disk \d+ MB free$/,
      );
    });

    it('answers 503 with the reason while the queue cannot write its journal', async () => {
      const stats = rt.queue.stats();
      const spy = vi.spyOn(rt.queue, 'stats').mockReturnValue({ ...stats, failing: true });
      try {
        const response = await healthz(rt.keys.read);
        expect(response.status).toBe(503);
        const body = (await response.json()) as Health;
        expect(body).toMatchObject({ ok: false, reason: expect.stringMatching(/cannot write its journal/) });
        expect(healthLine(body)).toMatch(/NOT OK: the queue cannot write its journal/);
      } finally {
        spy.mockRestore();
      }
    });
  });
});

describe('local runtime limits, tightened', () => {
  const lines: string[] = [];
  let rt: LocalRuntime;

  beforeAll(async () => {
    rt = await runtime(lines, {
      limits: {
        http: { headersTimeoutMs: 500, requestTimeoutMs: 1000 },
        mqtt: { connectTimeoutMs: 500, maxConnections: 20, maxRetained: 3, maxRetainedBytes: 4096 },
      },
    });
  });
  afterAll(async () => {
    await rt?.close();
  });

  it('closes an HTTP socket whose headers never finish with 408', async () => {
    const session = await wire(rt.httpPort);
    session.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    expect(await session.closed).toBeLessThan(2500);
    expect(session.received().toString()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('closes a slowloris body with 408 and queues nothing', async () => {
    const sent = rt.queue.stats().sent;
    const session = await wire(rt.httpPort);
    session.socket.write(
      `POST /v1/telemetry HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${rt.keys.ingest}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"$id":`,
    );
    const drip = setInterval(() => session.socket.writable && session.socket.write(' '), 100);
    try {
      expect(await session.closed).toBeLessThan(3000);
    } finally {
      clearInterval(drip);
    }
    expect(session.received().toString()).toMatch(/^HTTP\/1\.1 408 /);
    expect(rt.queue.stats().sent).toBe(sent);
    await vi.waitFor(() => expect(lines).toContain('HTTP POST /v1/telemetry -> 408'), WAIT);
  });

  it('closes an MQTT connection that sends no CONNECT within connectTimeout', async () => {
    const session = await wire(rt.mqttPort);
    const closedAfter = await session.closed;
    expect(closedAfter).toBeGreaterThanOrEqual(400);
    expect(closedAfter).toBeLessThan(2000);
  });

  it('makes room for a device by closing the oldest socket without a CONNECT, and refuses one past the cap of devices', async () => {
    const idle = await Promise.all(Array.from({ length: 20 }, () => wire(rt.mqttPort)));
    const sessions: Wire[] = [];
    try {
      sessions.push(await mqttSession(rt.mqttPort, 'cap-0'));
      // The first idle socket made room for it.
      expect(await idle[0]?.closed).toBeLessThan(1000);
      for (let i = 1; i < 20; i++) sessions.push(await mqttSession(rt.mqttPort, `cap-${i}`));
      // Twenty devices connected, the cap: the next connection is closed at once.
      const refused = await wire(rt.mqttPort);
      expect(await refused.closed).toBeLessThan(1000);
      expect(lines).toContain('MQTT: refused a connection: 20 devices are connected, the cap (20)');
    } finally {
      for (const s of [...sessions, ...idle]) s.socket.destroy();
    }
    await Promise.all(sessions.map((s) => s.closed));
  });

  it('keeps at most maxRetained retained topics: past it a message is delivered and ingested but not retained', async () => {
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, {
      clientId: 'ret-1',
      reconnectPeriod: 0,
      connectTimeout: 2000,
    });
    for (const n of [1, 2, 3, 4])
      await device.publishAsync(`status/ret-1/${n}`, `s${n}`, { qos: 1, retain: true });
    const sent = rt.queue.stats().sent;
    // A retained telemetry message past the cap: still queued for the ingest.
    await device.publishAsync('dt/thermo/ret-1', JSON.stringify({ temp: 1 }), { qos: 1, retain: true });
    expect(rt.queue.stats().sent).toBe(sent + 1);
    expect(
      lines.some((l) => l.startsWith("MQTT: ret-1's message on status/ret-1/4 delivered but not retained")),
    ).toBe(true);
    const retained = async () => {
      const reader = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, {
        clientId: `reader-${Date.now()}`,
        reconnectPeriod: 0,
      });
      const topics: string[] = [];
      reader.on('message', (topic, _payload, packet) => packet.retain && topics.push(topic));
      await reader.subscribeAsync(['status/#', 'dt/#'], { qos: 1 });
      await new Promise((r) => setTimeout(r, 300));
      await reader.endAsync();
      return topics.sort();
    };
    expect(await retained()).toEqual(['status/ret-1/1', 'status/ret-1/2', 'status/ret-1/3']);
    // An empty retained payload clears its topic (MQTT 3.3.1-10), which frees its place.
    await device.publishAsync('status/ret-1/1', '', { qos: 1, retain: true });
    await device.publishAsync('status/ret-1/5', 's5', { qos: 1, retain: true });
    // A payload past the byte budget is not retained either.
    await device.publishAsync('status/ret-1/2', Buffer.alloc(5000, 1), { qos: 1, retain: true });
    expect(await retained()).toEqual(['status/ret-1/2', 'status/ret-1/3', 'status/ret-1/5']);
    await device.endAsync();
  });
});
