/**
 * Sign-in through a Cognito user pool's hosted login: OAuth 2.0 authorization code with
 * PKCE (S256), no client secret (the page is public code). The verifier and state wait in
 * sessionStorage while the browser is at the login page; the tokens live in sessionStorage
 * (this tab only, gone when it closes), never localStorage. The access token goes to the
 * API as `Authorization: Bearer`; it is refreshed with the refresh token a minute before it
 * expires, or once when the API answers 401.
 *
 * This module is the protocol, pure (WebCrypto aside) and run in Node by the tests; the
 * browser's side (storage, redirects, the API calls) is `cognito-session.ts`.
 */

export interface CognitoAuth {
  readonly kind: 'cognito';
  readonly region: string;
  readonly userPoolId: string;
  readonly clientId: string;
  /** The hosted login's origin, `https://<prefix>.auth.<region>.amazoncognito.com`. */
  readonly domain: string;
  /** Where the login sends the browser back: the page's own URL. */
  readonly redirectUri: string;
  readonly scopes: readonly string[];
}

/** What the page keeps of a token answer. */
export interface Tokens {
  readonly accessToken: string;
  readonly idToken?: string;
  readonly refreshToken?: string;
  /** Epoch milliseconds at which the access token expires. */
  readonly expiresAt: number;
}

/** What waits in sessionStorage while the browser is at the login page. */
export interface PendingSignIn {
  readonly verifier: string;
  readonly state: string;
  /** The hash route to come back to (the redirect URI has none). */
  readonly hash: string;
}

/** Refresh this long before the access token expires. */
export const REFRESH_MARGIN_MS = 60_000;
export const PENDING_KEY = 'iot-pipeline.console.signin';
export const TOKENS_KEY = 'iot-pipeline.console.tokens';

export function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A random base64url string of `bytes` random bytes (32 bytes: 43 characters, RFC 7636's minimum). */
export function randomString(bytes = 32): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** The PKCE code challenge: base64url(SHA-256(verifier)) (RFC 7636, S256). */
export async function codeChallenge(verifier: string): Promise<string> {
  if (!/^[A-Za-z0-9\-._~]{43,128}$/.test(verifier))
    throw new Error('PKCE verifier must be 43 to 128 unreserved characters');
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** The hosted login's origin, without a trailing slash; a bare host name is taken as https. */
export function loginOrigin(auth: CognitoAuth): string {
  const domain = /^https?:\/\//.test(auth.domain) ? auth.domain : `https://${auth.domain}`;
  return new URL(domain).origin;
}

export function authorizeUrl(auth: CognitoAuth, challenge: string, state: string): string {
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: auth.clientId,
    redirect_uri: auth.redirectUri,
    scope: auth.scopes.join(' '),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
  });
  return `${loginOrigin(auth)}/oauth2/authorize?${params}`;
}

export function tokenUrl(auth: CognitoAuth): string {
  return `${loginOrigin(auth)}/oauth2/token`;
}

export function logoutUrl(auth: CognitoAuth): string {
  const params = new URLSearchParams({ client_id: auth.clientId, logout_uri: auth.redirectUri });
  return `${loginOrigin(auth)}/logout?${params}`;
}

/** The form body that trades the code for tokens. */
export function codeExchangeBody(auth: CognitoAuth, code: string, verifier: string): URLSearchParams {
  return new URLSearchParams({
    grant_type: 'authorization_code',
    client_id: auth.clientId,
    code,
    redirect_uri: auth.redirectUri,
    code_verifier: verifier,
  });
}

export function refreshBody(auth: CognitoAuth, refreshToken: string): URLSearchParams {
  return new URLSearchParams({
    grant_type: 'refresh_token',
    client_id: auth.clientId,
    refresh_token: refreshToken,
  });
}

/**
 * The code from the login's redirect, once its state is the one this tab sent (anything
 * else could be a forged link to sign the page in as someone else): throws otherwise, or
 * when the login answered an error.
 */
export function checkCallback(params: URLSearchParams, pending: PendingSignIn | undefined): string {
  const error = params.get('error');
  if (error) throw new Error(`sign-in failed: ${params.get('error_description') ?? error}`);
  const code = params.get('code');
  if (!code) throw new Error('sign-in failed: no code in the redirect');
  if (!pending) throw new Error('sign-in failed: this tab started no sign-in');
  if (params.get('state') !== pending.state) throw new Error('sign-in failed: the state does not match');
  return code;
}

/**
 * The tokens of a token endpoint answer, or an error. A refresh answers no refresh token:
 * the previous one is kept.
 */
export function parseTokenResponse(body: unknown, now: number, previous?: Tokens): Tokens {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (typeof b.error === 'string')
    throw new Error(
      `token endpoint: ${typeof b.error_description === 'string' ? b.error_description : b.error}`,
    );
  if (typeof b.access_token !== 'string' || b.access_token === '')
    throw new Error('token endpoint: no access_token in the answer');
  if (b.token_type !== undefined && String(b.token_type).toLowerCase() !== 'bearer')
    throw new Error(`token endpoint: token_type ${String(b.token_type)}, not Bearer`);
  const expiresIn = b.expires_in;
  if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0)
    throw new Error('token endpoint: expires_in must be a positive number of seconds');
  const refreshToken = typeof b.refresh_token === 'string' ? b.refresh_token : previous?.refreshToken;
  const idToken = typeof b.id_token === 'string' ? b.id_token : previous?.idToken;
  return {
    accessToken: b.access_token,
    expiresAt: now + expiresIn * 1000,
    ...(idToken === undefined ? {} : { idToken }),
    ...(refreshToken === undefined ? {} : { refreshToken }),
  };
}

/** True when the access token is expired or expires within `marginMs`. */
export function needsRefresh(tokens: Tokens, now: number, marginMs = REFRESH_MARGIN_MS): boolean {
  return now >= tokens.expiresAt - marginMs;
}
