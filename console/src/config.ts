/**
 * Where the page finds the API and its credential: `console/config.json`, written by the
 * host. Locally the runtime answers it with the local read key (`auth.kind` "bearer"); on
 * AWS the deployment writes `auth.kind` "cognito", and the page signs in through the user
 * pool's hosted login first (`cognito-session.ts`).
 */
import type { CognitoAuth } from './cognito.ts';
import { CognitoSession, mountSignOut } from './cognito-session.ts';

export interface ConsoleConfig {
  /** Base URL of the HTTP API, no trailing slash; "" for the page's own origin. */
  readonly apiBase: string;
  readonly auth:
    | { readonly kind: 'bearer'; readonly token: string }
    | { readonly kind: 'none' }
    | CognitoAuth;
  /** Milliseconds between refreshes of the live views. */
  readonly refreshMs?: number;
}

const KINDS: readonly string[] = ['bearer', 'none', 'cognito'];

/** The signed-in session, once {@link loadConfig} has one (`auth.kind` "cognito"). */
let session: CognitoSession | undefined;

export async function loadConfig(): Promise<ConsoleConfig> {
  const response = await fetch('console/config.json', { cache: 'no-store', credentials: 'same-origin' });
  if (!response.ok) throw new Error(`console/config.json: HTTP ${response.status}`);
  const config = (await response.json()) as ConsoleConfig;
  if (typeof config.apiBase !== 'string' || typeof config.auth?.kind !== 'string')
    throw new Error('console/config.json: apiBase and auth.kind are required');
  // A kind this build cannot use would send every request unauthenticated: say so instead.
  if (!KINDS.includes(config.auth.kind))
    throw new Error(
      `console/config.json: auth.kind "${config.auth.kind}" is not one this console knows (${KINDS.join(', ')})`,
    );
  if (config.auth.kind === 'cognito') {
    const auth = config.auth;
    for (const name of ['clientId', 'domain', 'redirectUri'] as const)
      if (typeof auth[name] !== 'string' || auth[name] === '')
        throw new Error(`console/config.json: auth.${name} is required for auth.kind "cognito"`);
    if (!Array.isArray(auth.scopes)) throw new Error('console/config.json: auth.scopes must be a list');
    // Signs in first: back from the login page with a code, or off to it (never returns).
    session = await CognitoSession.start(auth);
    mountSignOut(session);
  }
  return config;
}

/**
 * GET `url` with the configured credential: the key as it is, or the signed-in person's
 * access token (refreshed near expiry, and once more after a 401).
 */
export function authorizedFetch(config: ConsoleConfig, url: string): Promise<Response> {
  const init: RequestInit = { credentials: 'omit' };
  if (config.auth.kind === 'cognito') {
    if (!session) throw new Error('not signed in: loadConfig() first');
    return session.fetch(url, init);
  }
  const auth = authorization(config);
  return fetch(url, { ...init, headers: auth === undefined ? {} : { authorization: auth } });
}

/** The Authorization header value for the API, if the config gives one; for "cognito", the token of now. */
export function authorization(config: ConsoleConfig): string | undefined {
  switch (config.auth.kind) {
    case 'bearer':
      return `Bearer ${config.auth.token}`;
    case 'none':
      return undefined;
    case 'cognito':
      return session?.currentAuthorization();
  }
}
