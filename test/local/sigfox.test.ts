/**
 * Sigfox callbacks as Sigfox sends them, end to end through the local runtime over real
 * HTTP on 127.0.0.1: form, text/plain and GET DATA callbacks, a BATCH_URL body with a
 * bad line, DATA_ADVANCED completing a DATA message, and the communication-loss ERROR
 * raising the offline alert once; then readings, time series, registry and alerts.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../lib/config.ts';
import type { LocalRuntime } from '../../local/runtime.ts';
import { TEST_API_KEY as API_KEY, startTestRuntime } from '../support/local-runtime.ts';

const WAIT = { timeout: 15_000, interval: 100 };
const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/networks/sigfox/${name}`, import.meta.url), 'utf8');

describe('local runtime, Sigfox callbacks as Sigfox sends them', () => {
  let rt: LocalRuntime;
  const lines: string[] = [];
  // The fixtures' times moved to just before now, in order, so they pass the age check.
  const base = Math.floor(Date.now() / 1000) - 600;
  const retime = (text: string) =>
    text.replace(/17955(\d{5})/g, (_, rest: string) => String(base + (Number(`17955${rest}`) - 1795585800)));

  beforeAll(async () => {
    rt = await startTestRuntime('sigfox', {
      config: validateConfig({
        deviceTypes: {
          tracker: { decoder: { sigfox: 'temp::int:16*0.01 battery::uint:8*0.02 moving::bool:7' } },
        },
      }),
      log: (line) => lines.push(line),
    });
  });
  afterAll(async () => {
    await rt?.close();
  });

  const send = (method: string, path: string, body?: string, contentType?: string) =>
    fetch(`http://127.0.0.1:${rt.httpPort}${path}`, {
      method,
      headers: { authorization: API_KEY, ...(contentType ? { 'content-type': contentType } : {}) },
      ...(body === undefined ? {} : { body }),
    });

  it('stores form, text/plain, GET, batch and advanced callbacks, and the ERROR callback raises offline once', async () => {
    expect(
      (
        await send(
          'POST',
          '/v1/sigfox?type=tracker',
          retime(fixture('data-form.txt')),
          'application/x-www-form-urlencoded',
        )
      ).status,
    ).toBe(204);
    expect(
      (await send('POST', '/v1/sigfox?type=tracker', retime(fixture('data-text.txt')), 'text/plain')).status,
    ).toBe(204);
    expect((await send('GET', `/v1/sigfox?type=tracker&${retime(fixture('data-get.query'))}`)).status).toBe(
      204,
    );
    expect(
      (await send('POST', '/v1/sigfox?type=tracker', retime(fixture('data-json.json')), 'application/json'))
        .status,
    ).toBe(204);
    const batch = `${retime(fixture('batch.txt'))}device=1A2B3C&time=${base + 300}&data=zz&seqNumber=1300\n`;
    const batched = await send('POST', '/v1/sigfox?type=tracker', batch, 'text/plain');
    expect(batched.status).toBe(202);
    expect(await batched.json()).toMatchObject({
      messages: 4,
      refused: [{ line: 4, error: 'invalid_callback' }],
    });
    expect(
      (await send('POST', '/v1/sigfox?type=tracker', retime(fixture('advanced.json')), 'application/json'))
        .status,
    ).toBe(204);

    await vi.waitFor(async () => {
      expect(rt.queue.stats().pending).toBe(0);
      const { rows } = await rt.query(
        "SELECT epoch_ms(time) AS t, value FROM readings WHERE device_id = '1A2B3C' AND metric = 'temp' ORDER BY t",
      );
      // form 24.5, GET 25, text 26, JSON 27, batch 28 and 29: each its own reading.
      expect(rows.map((r) => r.value)).toEqual([24.5, 25, 26, 27, 28, 29]);
      const other = await rt.query(
        "SELECT value FROM readings WHERE device_id = '4D5E6F' AND metric = 'temp'",
      );
      expect(other.rows).toEqual([{ value: 30 }]);
      // The bad line alone is quarantined, with its reason.
      const quarantined = await rt.query(
        "SELECT reason_code, reason FROM quarantine WHERE source = 'sigfox'",
      );
      expect(quarantined.rows).toEqual([
        { reason_code: 'invalid_callback', reason: expect.stringContaining('"data"') },
      ]);
      // The advanced callback lands beside the JSON message's metrics, at its time.
      const location = await rt.query(
        "SELECT epoch_ms(time) AS t, metric, value FROM readings WHERE device_id = '1A2B3C' AND metric IN ('location.lat', 'temp') AND epoch_ms(time) = " +
          `${(base + 180) * 1000} ORDER BY metric`,
      );
      expect(location.rows.map((r) => [r.metric, r.value])).toEqual([
        ['location.lat', 43.6044],
        ['temp', 27],
      ]);
      const series = await rt.query(
        "SELECT count(*)::INT AS n FROM timeseries WHERE device_id = '1A2B3C' AND metric = 'location.lat'",
      );
      expect(series.rows).toEqual([{ n: 1 }]);
    }, WAIT);
    // The registry: 1235, 1237, 1238, 1239 (the text callback carries no seqNumber): 1236 lost, once;
    // the advanced callback, 1237 again in its body, is no message of its own.
    const record = (await rt.registry.get(['1A2B3C'])).get('1A2B3C');
    expect(record).toMatchObject({ lastSeq: 1239, lostMessages: 1, source: 'sigfox' });
    expect(record?.alerts.offline).toBeUndefined();
    expect(record?.lastValues).toMatchObject({ temp: 29 });

    // Sigfox's communication-loss error, sent twice (a retry): the offline alert is raised once.
    for (let i = 0; i < 2; i++)
      expect((await send('POST', '/v1/sigfox', fixture('error.json'), 'application/json')).status).toBe(204);
    await vi.waitFor(async () => {
      expect(rt.queue.stats().pending).toBe(0);
      expect((await rt.registry.get(['1A2B3C'])).get('1A2B3C')?.alerts.offline?.state).toBe('raised');
    }, WAIT);
    expect(lines.filter((line) => /offline/i.test(line) && /RAISED/.test(line))).toHaveLength(1);
    const raw = await rt.query("SELECT count(*)::INT AS n FROM raw WHERE source = 'sigfox'");
    // 4 single callbacks + 4 batch lines + advanced + 2 errors: every one kept.
    expect(raw.rows).toEqual([{ n: 11 }]);
  });

  it('answers a GET with a 100 KB query string 431 with a JSON reason, over real HTTP', async () => {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: rt.httpPort,
          path: `/v1/sigfox?device=1A2B3C&pad=${'a'.repeat(100_000)}`,
          headers: { authorization: API_KEY },
        },
        (response) => {
          let body = '';
          response.on('data', (chunk) => {
            body += chunk;
          });
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(answer.status).toBe(431);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'headers_too_large' });
  });
});
