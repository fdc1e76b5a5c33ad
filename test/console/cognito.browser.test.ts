/**
 * The console's Cognito sign-in end to end in headless Chromium: the built page, served
 * with a config of `auth.kind` "cognito" whose login is a small fake OAuth server on
 * 127.0.0.1 (another origin, as Cognito's is). The page goes to the login, comes back with
 * a code, trades it with its PKCE verifier (the fake checks it against the challenge it was
 * given), calls the API with the access token, refreshes it after a 401, refuses a
 * redirect whose state it did not send, and signs out through `/logout`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildConsole } from '../../console/build.ts';
import { chromiumPath, launchChromium } from '../support/chromium.ts';

const CHROMIUM = chromiumPath();
if (!CHROMIUM) console.warn('test/console: skipped: no chromium on PATH (apt-get install -y chromium)');
const CLIENT_ID = 'console-client';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function body(request: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of request) text += chunk;
  return text;
}

const b64url = (bytes: Buffer) => bytes.toString('base64url');

describe.skipIf(!CHROMIUM)('Cognito sign-in in headless chromium, against a fake login on 127.0.0.1', () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let pageServer: Server;
  let loginServer: Server;
  let site: string;
  let login: string;
  const problems: string[] = [];

  // The fake login's state.
  const codes = new Map<string, { challenge: string; redirectUri: string; scope: string }>();
  const refreshTokens = new Set<string>();
  const validAccess = new Set<string>();
  const grants: Record<string, string>[] = [];
  const authorizeRequests: Record<string, string>[] = [];
  const logouts: Record<string, string>[] = [];
  /** The API's view: the Authorization header of each /v1 request and its answer. */
  const apiCalls: { path: string; authorization: string | undefined; status: number }[] = [];
  let tamperState = false;
  let issued = 0;

  const issue = () => {
    issued += 1;
    const access = `at-${issued}-${randomUUID()}`;
    validAccess.add(access);
    return access;
  };

  const json = (
    response: ServerResponse,
    status: number,
    answer: unknown,
    headers: Record<string, string> = {},
  ) => {
    response.writeHead(status, { 'content-type': 'application/json', ...headers });
    response.end(JSON.stringify(answer));
  };

  beforeAll(async () => {
    const assets = await buildConsole();
    loginServer = createServer(async (request, response) => {
      const url = new URL(request.url ?? '/', 'http://127.0.0.1');
      const params = Object.fromEntries(url.searchParams);
      if (request.method === 'GET' && url.pathname === '/oauth2/authorize') {
        authorizeRequests.push(params);
        const ok =
          params.response_type === 'code' &&
          params.client_id === CLIENT_ID &&
          params.redirect_uri === `${site}/` &&
          params.code_challenge_method === 'S256' &&
          /^[A-Za-z0-9_-]{43}$/.test(params.code_challenge ?? '') &&
          typeof params.state === 'string';
        if (!ok) return json(response, 400, { error: 'invalid_request' });
        const code = randomUUID();
        codes.set(code, {
          challenge: params.code_challenge as string,
          redirectUri: params.redirect_uri as string,
          scope: params.scope ?? '',
        });
        const back = new URL(params.redirect_uri as string);
        back.searchParams.set('code', code);
        back.searchParams.set('state', tamperState ? 'forged-state' : (params.state as string));
        response.writeHead(302, { location: back.toString() });
        return response.end();
      }
      if (request.method === 'POST' && url.pathname === '/oauth2/token') {
        // Cognito's token endpoint answers CORS to any origin; the page's is another port.
        const cors = { 'access-control-allow-origin': site };
        const form = Object.fromEntries(new URLSearchParams(await body(request)));
        grants.push({ ...form, contentType: request.headers['content-type'] ?? '' });
        if (!request.headers['content-type']?.startsWith('application/x-www-form-urlencoded'))
          return json(response, 400, { error: 'invalid_request' }, cors);
        if (form.client_id !== CLIENT_ID) return json(response, 400, { error: 'invalid_client' }, cors);
        if (form.grant_type === 'authorization_code') {
          const issuedCode = codes.get(form.code ?? '');
          codes.delete(form.code ?? '');
          const verified =
            issuedCode !== undefined &&
            form.redirect_uri === issuedCode.redirectUri &&
            b64url(
              createHash('sha256')
                .update(form.code_verifier ?? '')
                .digest(),
            ) === issuedCode.challenge;
          if (!verified) return json(response, 400, { error: 'invalid_grant' }, cors);
          const refresh = `rt-${randomUUID()}`;
          refreshTokens.add(refresh);
          return json(
            response,
            200,
            {
              access_token: issue(),
              id_token: 'id',
              refresh_token: refresh,
              expires_in: 3600,
              token_type: 'Bearer',
            },
            cors,
          );
        }
        if (form.grant_type === 'refresh_token') {
          if (!refreshTokens.has(form.refresh_token ?? ''))
            return json(response, 400, { error: 'invalid_grant' }, cors);
          // As Cognito: a new access token, no new refresh token.
          return json(
            response,
            200,
            { access_token: issue(), id_token: 'id', expires_in: 3600, token_type: 'Bearer' },
            cors,
          );
        }
        return json(response, 400, { error: 'unsupported_grant_type' }, cors);
      }
      if (request.method === 'GET' && url.pathname === '/logout') {
        logouts.push(params);
        response.writeHead(302, { location: params.logout_uri ?? '/' });
        return response.end();
      }
      response.writeHead(404).end();
    });
    login = await listen(loginServer);

    pageServer = createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://127.0.0.1');
      if (url.pathname.startsWith('/v1/')) {
        const authorization = request.headers.authorization;
        const token = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
        const allowed = token !== undefined && validAccess.has(token);
        const status = !allowed ? 401 : url.pathname === '/v1/devices' ? 200 : 404;
        apiCalls.push({ path: url.pathname, authorization, status });
        if (status === 401) return json(response, 401, { message: 'Unauthorized' });
        if (status === 404) return json(response, 404, { message: 'Not Found' });
        const device = {
          deviceId: 'th-1',
          deviceType: 'thermo',
          status: 'online',
          lastSeen: new Date().toISOString(),
          firstSeen: new Date().toISOString(),
          attributes: {},
          lastValues: { temp: 21 },
        };
        return json(response, 200, { at: new Date().toISOString(), count: 1, devices: [device], total: 1 });
      }
      if (url.pathname === '/console/config.json') {
        return json(response, 200, {
          apiBase: '',
          refreshMs: 60_000,
          auth: {
            kind: 'cognito',
            region: 'eu-west-1',
            userPoolId: 'eu-west-1_test',
            clientId: CLIENT_ID,
            domain: login,
            redirectUri: `${site}/`,
            scopes: ['openid', 'email'],
          },
        });
      }
      const asset = assets.get(url.pathname === '/' ? 'index.html' : url.pathname.slice(1));
      if (!asset) return response.writeHead(404).end();
      response.writeHead(200, { 'content-type': asset.type });
      response.end(asset.body);
    });
    site = await listen(pageServer);
    browser = await launchChromium(CHROMIUM as string);
  }, 60_000);

  beforeEach(async () => {
    await context?.close();
    context = await browser.newContext();
    page = await context.newPage();
    page.on('pageerror', (e) => problems.push(e.message));
    tamperState = false;
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await new Promise((resolve) => pageServer?.close(resolve));
    await new Promise((resolve) => loginServer?.close(resolve));
  });

  const rows = () =>
    page.$$eval('#estate-table tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-device')));

  it('signs in with the code and PKCE, takes the code out of the URL, and calls the API with the token', async () => {
    const before = { grants: grants.length, authorize: authorizeRequests.length, api: apiCalls.length };
    await page.goto(`${site}/#/`);
    await page.waitForSelector('main[data-loaded=estate]');
    expect(await rows()).toEqual(['th-1']);

    const asked = authorizeRequests.slice(before.authorize);
    expect(asked).toHaveLength(1);
    expect(Object.keys(asked[0] ?? {}).sort()).toEqual(
      [
        'client_id',
        'code_challenge',
        'code_challenge_method',
        'redirect_uri',
        'response_type',
        'scope',
        'state',
      ].sort(),
    );
    expect(asked[0]?.scope).toBe('openid email');
    const traded = grants.slice(before.grants);
    expect(traded).toHaveLength(1);
    expect(traded[0]).toMatchObject({
      grant_type: 'authorization_code',
      client_id: CLIENT_ID,
      redirect_uri: `${site}/`,
      contentType: expect.stringMatching(/^application\/x-www-form-urlencoded/),
    });
    expect(traded[0]?.code_verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // No code or state left in the address, the route kept.
    expect(page.url()).toBe(`${site}/#/`);
    const calls = apiCalls.slice(before.api);
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.authorization).toMatch(/^Bearer at-\d+-/);
      expect(call.status).not.toBe(401);
    }
    // Tokens in this tab's sessionStorage, none in localStorage; the verifier gone once used.
    // (Expressions, not functions: the test's TypeScript has no DOM.)
    const storage = {
      session: ((await page.evaluate('Object.keys(sessionStorage)')) as string[]).sort(),
      local: (await page.evaluate('localStorage.length')) as number,
      tokens: JSON.parse(
        ((await page.evaluate("sessionStorage.getItem('iot-pipeline.console.tokens')")) as string | null) ??
          '{}',
      ) as { accessToken?: string },
    };
    expect(storage.session).toEqual(['iot-pipeline.console.tokens']);
    expect(storage.local).toBe(0);
    expect(calls.at(-1)?.authorization).toBe(`Bearer ${storage.tokens.accessToken}`);
    expect(problems).toEqual([]);
  });

  it('refreshes the access token once after a 401, and carries on with the new one', async () => {
    await page.goto(`${site}/#/`);
    await page.waitForSelector('main[data-loaded=estate]');
    const first = grants.length;
    // The API stops taking every token issued so far.
    validAccess.clear();
    const before = apiCalls.length;
    await page.evaluate("location.hash = '#/alerts'");
    await page.waitForSelector('main[data-loaded=alerts]');
    const refreshed = grants.slice(first);
    expect(refreshed.map((g) => g.grant_type)).toEqual(['refresh_token']);
    expect(refreshTokens.has(refreshed[0]?.refresh_token ?? '')).toBe(true);
    const calls = apiCalls.slice(before);
    expect(calls.some((c) => c.status === 401)).toBe(true);
    const last = calls.at(-1);
    expect(last?.status).not.toBe(401);
    expect(validAccess.has(/^Bearer (.+)$/.exec(last?.authorization ?? '')?.[1] ?? '')).toBe(true);
    expect(problems).toEqual([]);
  });

  it('refuses a redirect whose state is not the one it sent, and trades no code', async () => {
    tamperState = true;
    const before = grants.length;
    await page.goto(`${site}/`);
    await expect
      .poll(() => page.textContent('main [role=alert]').catch(() => null), { timeout: 15_000 })
      .toBe('sign-in failed: the state does not match');
    expect(grants.length).toBe(before);
    expect(new URL(page.url()).searchParams.has('code')).toBe(false);
    expect(await page.evaluate("sessionStorage.getItem('iot-pipeline.console.tokens')")).toBeNull();
  });

  it('signs out through /logout, forgetting the tokens', async () => {
    await page.goto(`${site}/#/`);
    await page.waitForSelector('main[data-loaded=estate]');
    const before = { logouts: logouts.length, authorize: authorizeRequests.length };
    // Back at the page with no tokens, it goes to the login again: the fake one lets it straight in.
    await Promise.all([
      page.waitForRequest((r) => r.url().startsWith(`${login}/logout?`)),
      page.getByRole('button', { name: 'Sign out' }).click(),
    ]);
    await page.waitForSelector('main[data-loaded=estate]');
    expect(logouts.slice(before.logouts)).toEqual([{ client_id: CLIENT_ID, logout_uri: `${site}/` }]);
    expect(authorizeRequests.length).toBe(before.authorize + 1);
    expect(problems).toEqual([]);
  });
});
