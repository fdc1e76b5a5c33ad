/**
 * The web console on the local runtime's HTTP port: `GET /` (the page) and
 * `GET /console/<file>` (its script and styles, bundled on the first request, see
 * `console/build.ts`), and `GET /console/config.json`, which hands the page the local
 * **read** key (never the ingest key) so it works without typing one.
 *
 * Why that is safe on 127.0.0.1: the API sends no CORS headers, so a page of another
 * origin cannot read any answer, config.json included; config.json is answered only when
 * the Host is this server's own loopback name (a DNS-rebinding page has its own host
 * name) and the browser does not call the request cross-site or same-site
 * (`Sec-Fetch-Site`: another port of 127.0.0.1 is same-site but another origin); and
 * `Cross-Origin-Resource-Policy: same-origin` keeps it out of other pages' `<script>`
 * tags. A strict Content-Security-Policy allows only this origin's script, styles and
 * requests. Files are looked up by exact name in the built set: no path reaches the disk.
 */
import type { ConsoleAsset } from '../console/build.ts';
import { type HttpRequest, type HttpResponse, json } from '../lambdas/core/api/http.ts';

export const CONSOLE_PREFIX = '/console/';

export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'x-frame-options': 'DENY',
};

export interface LocalConsole {
  /** True for the paths the console answers: `/`, `/index.html` and `/console/*`. */
  handles(path: string): boolean;
  answer(request: Pick<HttpRequest, 'method' | 'path' | 'headers'>): Promise<HttpResponse>;
}

export function localConsole(options: {
  /** The read-scoped key the page gets. */
  readonly readKey: string;
  /** This server's port: the only Host the config is answered to. */
  readonly port: () => number;
  /** The built files (tests may pass their own). */
  readonly build?: () => Promise<ReadonlyMap<string, ConsoleAsset>>;
}): LocalConsole {
  let built: Promise<ReadonlyMap<string, ConsoleAsset>> | undefined;
  const assets = () => {
    built ??= (options.build ?? defaultBuild)().catch((error: Error) => {
      built = undefined;
      throw error;
    });
    return built;
  };
  return {
    handles: (path) => path === '/' || path === '/index.html' || path.startsWith(CONSOLE_PREFIX),
    async answer(request) {
      if (request.method !== 'GET' && request.method !== 'HEAD')
        return json(405, { error: 'method_not_allowed', message: 'Use GET' }, { allow: 'GET, HEAD' });
      const name = request.path === '/' ? 'index.html' : request.path.slice(1);
      if (name === 'console/config.json') return config(request.headers);
      const asset = (await assets()).get(name);
      if (!asset) return json(404, { error: 'not_found', message: `No console file ${request.path}` });
      return {
        statusCode: 200,
        headers: {
          ...SECURITY_HEADERS,
          'content-type': asset.type,
          'cache-control': 'no-cache',
        },
        body: request.method === 'HEAD' ? '' : asset.body.toString('utf8'),
      };
    },
  };

  function config(headers: HttpRequest['headers']): HttpResponse {
    const port = options.port();
    const hosts = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
    if (!hosts.includes(headers.host ?? ''))
      return json(403, {
        error: 'forbidden',
        message: `The console's credential is given only to http://127.0.0.1:${port}/`,
      });
    const site = headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none')
      return json(403, { error: 'forbidden', message: 'The console config is for the console page only' });
    return json(
      200,
      { apiBase: '', auth: { kind: 'bearer', token: options.readKey }, refreshMs: 5000 },
      { ...SECURITY_HEADERS, 'cache-control': 'no-store' },
    );
  }
}

async function defaultBuild(): Promise<ReadonlyMap<string, ConsoleAsset>> {
  // Loaded on the first request only: esbuild stays out of starts that never serve the page.
  const { buildConsole } = await import('../console/build.ts');
  return buildConsole();
}
