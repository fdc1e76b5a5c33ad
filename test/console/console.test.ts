/**
 * The web console in real headless Chromium against a local runtime with devices sent
 * over HTTP: the page works with no key typed (the runtime hands it the read key), its
 * counts match the registry, filters narrow the table, a device's chart holds the readings
 * that were sent, its last raw messages and quarantined ones with their reason are shown,
 * a raised alert is listed, and the table updates without a reload.
 * Screenshots go to `test-artifacts/console/`.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { offlineTimeouts, statusAt } from '../../lambdas/core/estate/registry-query.ts';
import { validateConfig } from '../../lib/config.ts';
import type { LocalRuntime } from '../../local/runtime.ts';
import { chromiumPath, launchChromium } from '../support/chromium.ts';
import { startTestRuntime, TEST_API_KEY } from '../support/local-runtime.ts';

const CHROMIUM = chromiumPath();
if (!CHROMIUM) console.warn('test/console: skipped: no chromium on PATH (apt-get install -y chromium)');
const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts/console');
const WAIT = { timeout: 15_000, interval: 100 };
const MINUTE = 60_000;

describe.skipIf(!CHROMIUM)('the web console in headless chromium', () => {
  let rt: LocalRuntime;
  let browser: Browser;
  let page: Page;
  let base: string;
  const problems: string[] = [];
  const now = Date.now();
  const config = validateConfig({
    alertRules: [{ name: 'hot', metric: 'temp', comparison: '>', threshold: 30, severity: 'critical' }],
    offline: { after: '1h' },
  });
  const statusOf = async () => {
    const at = Date.now();
    return (await rt.registry.list()).map((r) => ({
      id: r.deviceId,
      status: statusAt(r, at, offlineTimeouts(config)),
    }));
  };
  // th-1's readings: one a minute for the last 30 minutes.
  const sent = Array.from({ length: 30 }, (_, i) => ({
    t: now - (30 - i) * MINUTE,
    temp: 20 + (i % 7) * 0.5,
  }));

  const post = async (body: unknown, type: string) => {
    const response = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/telemetry?type=${type}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(202);
  };

  beforeAll(async () => {
    rt = await startTestRuntime('console', { config });
    base = `http://127.0.0.1:${rt.httpPort}/`;
    await post(
      sent.map((s) => ({ $id: 'th-1', $ts: s.t, temp: s.temp, battery: 3.1, rssi: -88 })),
      'thermo',
    );
    for (const id of ['th-2', 'th-3', 'th-4']) await post({ $id: id, temp: 21, battery: 3.3 }, 'thermo');
    // Silent for two hours: offline at the next check.
    for (const id of ['th-5', 'th-6']) await post({ $id: id, $ts: now - 120 * MINUTE, temp: 19 }, 'thermo');
    await post({ $id: 'pump-1', pressure: 2.5 }, 'pump');
    await post({ $id: 'pump-2', pressure: 2.1, temp: 35 }, 'pump');
    await post({ $id: 'pump-3', pressure: 2.4 }, 'pump');
    // A reading from an hour ahead: quarantined, timestamp_in_future.
    await post({ $id: 'th-1', $ts: now + 60 * MINUTE, temp: 1 }, 'thermo');
    await vi.waitFor(async () => expect(await rt.registry.list()).toHaveLength(9), WAIT);
    await vi.waitFor(
      async () => expect((await rt.query('SELECT reason_code FROM quarantine')).rows).toHaveLength(1),
      WAIT,
    );
    await rt.checkOffline();
    expect(
      (await statusOf())
        .filter((d) => d.status === 'offline')
        .map((d) => d.id)
        .sort(),
    ).toEqual(['th-5', 'th-6']);
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium(CHROMIUM as string);
    page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await rt?.close();
  });

  const rows = () =>
    page.$$eval('#estate-table tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-device')));
  const applyFilters = async (filters: Record<string, string>) => {
    for (const [name, value] of Object.entries(filters)) {
      const field = page.locator(`#filter-${name}`);
      if ((await field.evaluate((e) => e.tagName)) === 'SELECT') await field.selectOption(value);
      else await field.fill(value);
    }
    await page.getByRole('button', { name: 'Apply' }).click();
  };

  it('shows the estate counts of the registry, with no key typed', async () => {
    await page.goto(base);
    await page.waitForSelector('main[data-loaded=estate]');
    const records = await statusOf();
    const count = (name: string) => page.textContent(`[data-count=${name}] .figure`);
    expect(await count('devices')).toBe(String(records.length));
    for (const status of ['online', 'offline', 'never'] as const)
      expect(await count(status)).toBe(String(records.filter((r) => r.status === status).length));
    expect((await rows()).sort()).toEqual(records.map((r) => r.id).sort());
    const raised = (await rt.registry.list()).flatMap((r) =>
      Object.values(r.alerts).filter((a) => a.state === 'raised'),
    );
    expect(await count('alerts')).toBe(String(raised.length));
    expect(await page.textContent('[data-count=alerts] small')).toBe('1 critical, 2 warning');
    await page.screenshot({ path: join(ARTIFACTS, 'estate.png'), fullPage: true });
  });

  it('narrows the table by type, status and id, and sorts it by a column', async () => {
    await applyFilters({ type: 'pump' });
    await vi.waitFor(async () => expect(await rows()).toEqual(['pump-1', 'pump-2', 'pump-3']), WAIT);
    await applyFilters({ type: 'thermo', status: 'offline' });
    await vi.waitFor(async () => expect(await rows()).toEqual(['th-5', 'th-6']), WAIT);
    await page.screenshot({ path: join(ARTIFACTS, 'estate-filtered.png'), fullPage: true });
    await applyFilters({ type: '', status: '', q: 'th-' });
    await vi.waitFor(async () => expect(await rows()).toHaveLength(6), WAIT);
    await page.click('button[data-sort=deviceId]');
    await vi.waitFor(async () => expect((await rows())[0]).toBe('th-6'), WAIT);
    expect(await page.getAttribute('th:has(button[data-sort=deviceId])', 'aria-sort')).toBe('descending');
    await applyFilters({ q: '' });
    await page.click('button[data-sort=deviceId]');
  });

  it('updates the table without a reload when a new device reports', async () => {
    await vi.waitFor(async () => expect(await rows()).toHaveLength(9), WAIT);
    await post({ $id: 'pump-4', pressure: 2.2 }, 'pump');
    await vi.waitFor(async () => expect(await rows()).toContain('pump-4'), {
      timeout: 20_000,
      interval: 200,
    });
    expect(await page.textContent('[data-count=devices] .figure')).toBe('10');
    // Pushed by the event stream, not polled.
    expect(await page.textContent('#live')).toMatch(/^live: updated/);
  });

  it("draws a device's chart from the readings that were sent", async () => {
    await page.click('a[href="#/device/th-1"]');
    await page.waitForSelector('#charts[data-drawn] figure[data-metric=temp]');
    const data = await page.$eval('figure[data-metric=temp]', (el) => {
      const chart = (el as unknown as { chart: { data: number[][] } }).chart;
      return chart.data.map((s: number[]) => [...s]);
    });
    expect(data[0]).toEqual(sent.map((s) => s.t / 1000));
    expect(data[1]).toEqual(sent.map((s) => s.temp));
    expect(await page.textContent('tr[data-metric=rssi] td')).toBe('-88');
    expect(await page.textContent('tr[data-metric=battery] td')).toBe('3.10');
    await page.screenshot({ path: join(ARTIFACTS, 'device.png'), fullPage: true });
    // Each chart is drawn in its own place: a metric left out goes, the other is drawn again.
    expect(await page.$$eval('#charts figure.chart', (fs) => fs.map((f) => f.dataset.metric))).toEqual([
      'battery',
      'temp',
    ]);
    const before = await page.getAttribute('#charts', 'data-drawn');
    await page.uncheck('input[name=metric][value=battery]');
    await page.waitForSelector(`#charts[data-drawn]:not([data-drawn="${before}"])`);
    expect(await page.$$eval('#charts figure', (fs) => fs.map((f) => f.dataset.metric))).toEqual(['temp']);
    await page.check('input[name=metric][value=battery]');
    await page.waitForSelector('#charts figure[data-metric=battery]');
  });

  it('opens a device over the range its link names, and keeps the range chosen in the link', async () => {
    await page.goto(`${base}#/device/th-1?range=7d`);
    await page.waitForSelector('#charts[data-drawn] figure[data-metric=temp]');
    expect(await page.inputValue('#range')).toBe(String(7 * 86_400_000));
    // The same readings over 7 days (drawn from /series buckets: each a minute's one reading).
    await page.selectOption('#range', String(3_600_000));
    await page.waitForURL((url) => url.hash === '#/device/th-1?range=1h');
    // A range the console does not offer leaves the one chosen last (1 h), and is no error.
    await page.goto(`${base}#/device/th-1?range=9y`);
    await page.waitForSelector('#charts[data-drawn]');
    expect(await page.inputValue('#range')).toBe(String(3_600_000));
    await page.selectOption('#range', String(86_400_000));
  });

  it("shows a device's last raw messages, and its quarantined ones with their reason", async () => {
    // Over MQTT the topic names the device, so its raw messages are the device's: bytes
    // that are not JSON (quarantined, invalid_json), then a reading. Before them, the body
    // posted over HTTP JSON whose readings all name th-1 is th-1's too.
    const text = JSON.stringify({ temp: 22.5, note: 'hello from th-1' });
    const binary = Buffer.from([0xff, 0x00, 0x01]);
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${rt.mqttPort}`, { clientId: 'th-1' });
    try {
      await device.publishAsync('dt/thermo/th-1', binary, { qos: 1 });
      await device.publishAsync('dt/thermo/th-1', text, { qos: 1 });
    } finally {
      await device.endAsync();
    }
    await vi.waitFor(async () => {
      const { rows } = await rt.query("SELECT message_id FROM raw WHERE device_id = 'th-1'");
      expect(rows).toHaveLength(3);
      expect(
        (await rt.query("SELECT 1 FROM quarantine WHERE reason_code = 'invalid_json'")).rows,
      ).toHaveLength(1);
    }, WAIT);
    await page.reload();
    await page.waitForSelector('#messages[data-state=loaded] tr[data-message]');
    const messages = page.locator('#messages tbody tr');
    expect(await messages.count()).toBe(3);
    // Newest first: the reading as text, then the bytes that are not UTF-8 text in base64.
    const newest = messages.nth(0).locator('td.payload');
    expect(await newest.getAttribute('data-encoding')).toBe('text');
    expect(await newest.locator('code').textContent()).toBe(text);
    expect(await messages.nth(0).locator('td').nth(1).textContent()).toBe('mqtt');
    expect(await messages.nth(0).locator('code.command').textContent()).toBe(
      `npm run cli -- decode --type thermo --base64 ${Buffer.from(text).toString('base64')}`,
    );
    const older = messages.nth(1).locator('td.payload');
    expect(await older.getAttribute('data-encoding')).toBe('base64');
    expect(await older.locator('code').textContent()).toBe(binary.toString('base64'));
    const posted = messages.nth(2);
    expect(await posted.locator('td').nth(1).textContent()).toBe('http');
    expect(await posted.locator('td.payload').getAttribute('data-encoding')).toBe('text');
    expect(await posted.locator('td.payload code').textContent()).toMatch(/^\[\{"\$id":"th-1","\$ts":/);
    expect(await page.locator('#messages caption').textContent()).toBe(
      'The last messages of th-1, newest first',
    );
    // Quarantined: the bytes over MQTT, and the reading from an hour ahead sent over HTTP.
    await page.waitForSelector('#device-quarantine[data-state=loaded]');
    const invalid = page.locator('#device-quarantine tr[data-quarantine=invalid_json]');
    expect(await invalid.count()).toBe(1);
    expect(await invalid.locator('td.reason').textContent()).toMatch(/^invalid_json: \S/);
    expect(await invalid.locator('td.payload code').textContent()).toBe(binary.toString('base64'));
    const future = page.locator('#device-quarantine tr[data-quarantine=timestamp_in_future]');
    expect(await future.locator('td.reason').textContent()).toMatch(/^timestamp_in_future: \S/);
    expect(await page.locator('#device-quarantine td.reason').count()).toBe(2);
    // The decode command opens and is labelled for its button.
    await messages.nth(0).locator('summary').click();
    expect(
      await messages
        .nth(0)
        .getByRole('button', { name: /^Copy the decode command/ })
        .isVisible(),
    ).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'device-messages.png'), fullPage: true });
  });

  it('shows "loading" while the raw query runs (202), and resumes it with its next at the next refresh', async () => {
    const asked: string[] = [];
    const resumed = Buffer.from('resumed page').toString('base64');
    await page.route('**/v1/devices/th-1/raw?*', async (route) => {
      asked.push(route.request().url());
      await route.fulfill({
        status: asked.length === 1 ? 202 : 200,
        contentType: 'application/json',
        body: JSON.stringify(
          asked.length === 1
            ? { running: true, rows: [], next: '1~2~token' }
            : {
                rows: [
                  {
                    receivedAt: new Date().toISOString(),
                    messageId: 'm-resumed',
                    source: 'mqtt',
                    topic: 'dt/thermo/th-1',
                    deviceType: 'thermo',
                    payload: resumed,
                    warnings: ['a warning'],
                    decode: null,
                  },
                ],
              },
        ),
      });
    });
    try {
      await page.reload();
      await page.waitForSelector('#messages[data-state=loading]');
      expect(await page.textContent('#messages')).toMatch(/^Loading/);
      // A reading arrives: the page refreshes, and asks for the running query by its token.
      await post({ $id: 'th-1', temp: 21 }, 'thermo');
      await page.waitForSelector('#messages[data-state=loaded] tr[data-message=m-resumed]', WAIT);
      expect(new URL(asked[1] ?? '').searchParams.get('next')).toBe('1~2~token');
      expect(new URL(asked[1] ?? '').searchParams.get('from')).toBeNull();
      expect(await page.textContent('tr[data-message=m-resumed] td.payload code')).toBe('resumed page');
      expect(await page.textContent('tr[data-message=m-resumed] td.warnings')).toBe('a warning');
    } finally {
      await page.unroute('**/v1/devices/th-1/raw?*');
    }
  });

  it('lists a raised alert and a quarantined message with its reason', async () => {
    await page.click('a[href="#/alerts"]');
    await page.waitForSelector('main[data-loaded=alerts]');
    const open = page.locator('#open-alerts tr[data-alert="pump-2/hot"]');
    await expect.poll(() => open.count(), WAIT).toBe(1);
    expect(await open.locator('td').nth(2).textContent()).toBe('critical');
    await expect.poll(() => page.locator('#alert-history tr[data-alert="pump-2/hot"]').count(), WAIT).toBe(1);
    const quarantined = page.locator('#quarantine tr[data-quarantine=timestamp_in_future]');
    await expect.poll(() => quarantined.count(), WAIT).toBe(1);
    expect(await quarantined.locator('td').nth(1).textContent()).toBe('th-1');
    expect(await quarantined.locator('td').nth(3).textContent()).toMatch(/^timestamp_in_future: \S/);
    await page.screenshot({ path: join(ARTIFACTS, 'alerts.png'), fullPage: true });
  });

  it('ran with no script error and no Content-Security-Policy violation', () => {
    expect(problems).toEqual([]);
  });
});

describe("the console's files and credential (no browser)", () => {
  let rt: LocalRuntime;
  let base: string;

  beforeAll(async () => {
    rt = await startTestRuntime('console-files', {});
    base = `http://127.0.0.1:${rt.httpPort}/`;
  });
  afterAll(() => rt?.close());

  it('hands the page the read key only, and only on its own origin', async () => {
    const config = (await (await fetch(`${base}console/config.json`)).json()) as { auth: { token: string } };
    expect(config.auth.token).toBe(rt.keys.read);
    expect(JSON.stringify(config)).not.toContain(rt.keys.ingest);
    // A DNS-rebinding page sends its own host name; another local port is same-site, not same-origin.
    for (const headers of <Record<string, string>[]>[
      { host: `attacker.example:${rt.httpPort}` },
      { 'sec-fetch-site': 'same-site' },
    ]) {
      const refused = await rawGet(rt.httpPort, '/console/config.json', headers);
      expect(refused.status).toBe(403);
      expect(refused.body).not.toContain(rt.keys.read);
    }
    const devices = await fetch(`${base}v1/devices`, {
      headers: { authorization: `Bearer ${rt.keys.read}`, origin: 'http://attacker.example' },
    });
    expect(devices.status).toBe(200);
    expect(devices.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('serves the page with a strict policy, its types, and no file outside the bundle', async () => {
    const index = await fetch(base);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(index.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect((await fetch(`${base}console/main.js`)).headers.get('content-type')).toBe(
      'text/javascript; charset=utf-8',
    );
    expect((await fetch(`${base}console/main.css`)).headers.get('content-type')).toBe(
      'text/css; charset=utf-8',
    );
    for (const path of [
      '/console/../local-keys.env',
      '/console/%2e%2e/keys.json',
      '/console/..%2fkeys.json',
      '/console/',
    ]) {
      const answer = await rawGet(rt.httpPort, path);
      expect([400, 404]).toContain(answer.status);
    }
    expect((await fetch(`${base}console/main.js`, { method: 'POST' })).status).toBe(405);
  });
});

/** A GET with the path as written (fetch would resolve `..`) and chosen headers. */
async function rawGet(port: number, path: string, headers: Record<string, string> = {}) {
  const { request } = await import('node:http');
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
