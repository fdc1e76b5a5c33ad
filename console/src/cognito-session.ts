/**
 * The signed-in tab (`auth.kind` "cognito"): the way to the hosted login and back, the
 * tokens in sessionStorage, and API calls with the access token, refreshed near expiry or
 * once after a 401. The protocol itself (PKCE, URLs, forms, checks) is `cognito.ts`.
 */
import {
  authorizeUrl,
  type CognitoAuth,
  checkCallback,
  codeChallenge,
  codeExchangeBody,
  logoutUrl,
  needsRefresh,
  PENDING_KEY,
  type PendingSignIn,
  parseTokenResponse,
  randomString,
  refreshBody,
  TOKENS_KEY,
  type Tokens,
  tokenUrl,
} from './cognito.ts';

function read<T>(storage: Storage, key: string): T | undefined {
  try {
    const text = storage.getItem(key);
    return text === null ? undefined : (JSON.parse(text) as T);
  } catch {
    return undefined;
  }
}

/** The signed-in tab: its tokens, refreshed as they near expiry, and the way out. */
export class CognitoSession {
  private tokens: Tokens;
  private refreshing: Promise<Tokens> | undefined;

  private constructor(
    private readonly auth: CognitoAuth,
    tokens: Tokens,
  ) {
    this.tokens = tokens;
  }

  /**
   * The session: from the login's redirect (the code traded, then taken out of the URL),
   * or from this tab's stored tokens. Without either, the browser goes to the login page
   * and the promise never settles.
   */
  static async start(auth: CognitoAuth): Promise<CognitoSession> {
    const url = new URL(location.href);
    if (url.searchParams.has('code') || url.searchParams.has('error')) {
      const pending = read<PendingSignIn>(sessionStorage, PENDING_KEY);
      sessionStorage.removeItem(PENDING_KEY);
      // The code is single-use and short-lived: out of the URL (and the history) whatever happens.
      const clean = new URL(url);
      for (const name of ['code', 'state', 'error', 'error_description']) clean.searchParams.delete(name);
      clean.hash = pending?.hash ?? url.hash;
      history.replaceState(null, '', clean);
      const code = checkCallback(url.searchParams, pending);
      const tokens = await postToken(auth, codeExchangeBody(auth, code, (pending as PendingSignIn).verifier));
      return new CognitoSession(auth, tokens).store();
    }
    const stored = read<Tokens>(sessionStorage, TOKENS_KEY);
    if (stored && typeof stored.accessToken === 'string' && typeof stored.expiresAt === 'number') {
      const session = new CognitoSession(auth, stored);
      if (!needsRefresh(stored, Date.now())) return session;
      if (stored.refreshToken) {
        try {
          await session.refresh();
          return session;
        } catch {
          // Fall through to a new sign-in.
        }
      }
    }
    return signIn(auth);
  }

  /** The Authorization header value, refreshed first when the token is about to expire. */
  async authorization(): Promise<string> {
    if (needsRefresh(this.tokens, Date.now())) await this.refresh();
    return `Bearer ${this.tokens.accessToken}`;
  }

  /** The Authorization header value as it stands, unrefreshed. */
  currentAuthorization(): string {
    return `Bearer ${this.tokens.accessToken}`;
  }

  /**
   * A fresh access token from the refresh token; one at a time however many calls ask.
   * Without a refresh token, or when the refresh is refused, a new sign-in.
   */
  refresh(): Promise<Tokens> {
    this.refreshing ??= (async () => {
      try {
        const refreshToken = this.tokens.refreshToken;
        if (!refreshToken) return await signIn(this.auth);
        try {
          this.tokens = await postToken(this.auth, refreshBody(this.auth, refreshToken), this.tokens);
        } catch {
          sessionStorage.removeItem(TOKENS_KEY);
          return await signIn(this.auth);
        }
        this.store();
        return this.tokens;
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /**
   * GET `url` with the access token; on a 401, once more after a refresh (none when another
   * call has refreshed the token meanwhile: it is sent again with the new one).
   */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const send = (authorization: string) =>
      fetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), authorization } });
    const sent = await this.authorization();
    const first = await send(sent);
    if (first.status !== 401) return first;
    if (this.currentAuthorization() === sent) await this.refresh();
    return send(this.currentAuthorization());
  }

  /** Forget the tokens and end the login's session too. */
  signOut(): void {
    sessionStorage.removeItem(TOKENS_KEY);
    location.assign(logoutUrl(this.auth));
  }

  private store(): this {
    sessionStorage.setItem(TOKENS_KEY, JSON.stringify(this.tokens));
    return this;
  }
}

async function postToken(auth: CognitoAuth, body: URLSearchParams, previous?: Tokens): Promise<Tokens> {
  const response = await fetch(tokenUrl(auth), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
    credentials: 'omit',
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok && !(answer as { error?: unknown }).error)
    throw new Error(`token endpoint: HTTP ${response.status}`);
  return parseTokenResponse(answer, Date.now(), previous);
}

/** To the login page, with a new verifier and state kept for the way back; never settles. */
async function signIn(auth: CognitoAuth): Promise<never> {
  const pending: PendingSignIn = { verifier: randomString(), state: randomString(), hash: location.hash };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  location.assign(authorizeUrl(auth, await codeChallenge(pending.verifier), pending.state));
  return new Promise<never>(() => {});
}

/** A "Sign out" button at the end of the page's header. */
export function mountSignOut(session: CognitoSession): void {
  const header = document.querySelector('header');
  if (!header || header.querySelector('#sign-out')) return;
  const button = document.createElement('button');
  button.id = 'sign-out';
  button.type = 'button';
  button.textContent = 'Sign out';
  button.addEventListener('click', () => session.signOut());
  header.append(button);
}
