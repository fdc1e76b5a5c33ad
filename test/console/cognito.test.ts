/**
 * The console's Cognito sign-in, its pure parts: PKCE (RFC 7636), the hosted login's URLs
 * and forms, the state check, token answers and when to refresh.
 */
import { describe, expect, it } from 'vitest';
import {
  authorizeUrl,
  base64url,
  type CognitoAuth,
  checkCallback,
  codeChallenge,
  codeExchangeBody,
  logoutUrl,
  needsRefresh,
  parseTokenResponse,
  randomString,
  refreshBody,
  tokenUrl,
} from '../../console/src/cognito.ts';

const AUTH: CognitoAuth = {
  kind: 'cognito',
  region: 'eu-west-1',
  userPoolId: 'eu-west-1_abc',
  clientId: 'client123',
  domain: 'https://iot-pipeline-dev-123456789012.auth.eu-west-1.amazoncognito.com',
  redirectUri: 'https://d111.cloudfront.net/',
  scopes: ['openid', 'email'],
};
const LOGIN = 'https://iot-pipeline-dev-123456789012.auth.eu-west-1.amazoncognito.com';

describe('PKCE', () => {
  it('computes the RFC 7636 Appendix B challenge', async () => {
    // The appendix's 32 octets, base64url: the verifier; its SHA-256, base64url: the challenge.
    const octets = [
      116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214,
      191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
    ];
    expect(base64url(new Uint8Array(octets))).toBe('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk');
    expect(await codeChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe(
      'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    );
  });

  it('makes verifiers of 43 unreserved characters, different each time', async () => {
    const a = randomString();
    const b = randomString();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(b).not.toBe(a);
    await expect(codeChallenge(a)).resolves.toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('refuses a verifier too short or with other characters', async () => {
    await expect(codeChallenge('short')).rejects.toThrow(/43 to 128/);
    await expect(codeChallenge(`${'a'.repeat(43)}+`)).rejects.toThrow(/43 to 128/);
  });

  it('encodes base64url without padding', () => {
    expect(base64url(new Uint8Array([0xfb, 0xff]))).toBe('-_8');
    expect(base64url(new Uint8Array([]))).toBe('');
  });
});

describe('the hosted login URLs and forms', () => {
  it('builds the authorize URL with exactly the code-flow parameters', () => {
    const url = new URL(authorizeUrl(AUTH, 'CHALLENGE', 'STATE'));
    expect(`${url.origin}${url.pathname}`).toBe(`${LOGIN}/oauth2/authorize`);
    expect(Object.fromEntries(url.searchParams)).toEqual({
      response_type: 'code',
      client_id: 'client123',
      redirect_uri: 'https://d111.cloudfront.net/',
      scope: 'openid email',
      code_challenge: 'CHALLENGE',
      code_challenge_method: 'S256',
      state: 'STATE',
    });
    expect(authorizeUrl(AUTH, 'C', 'S')).toContain('scope=openid+email');
  });

  it('takes a bare host name as https, and drops a trailing slash', () => {
    expect(tokenUrl({ ...AUTH, domain: 'login.example.com' })).toBe('https://login.example.com/oauth2/token');
    expect(tokenUrl({ ...AUTH, domain: `${LOGIN}/` })).toBe(`${LOGIN}/oauth2/token`);
  });

  it('forms the code exchange and the refresh', () => {
    expect(Object.fromEntries(codeExchangeBody(AUTH, 'the-code', 'the-verifier'))).toEqual({
      grant_type: 'authorization_code',
      client_id: 'client123',
      code: 'the-code',
      redirect_uri: 'https://d111.cloudfront.net/',
      code_verifier: 'the-verifier',
    });
    expect(Object.fromEntries(refreshBody(AUTH, 'rt'))).toEqual({
      grant_type: 'refresh_token',
      client_id: 'client123',
      refresh_token: 'rt',
    });
  });

  it('signs out through /logout with the client and where to come back', () => {
    const url = new URL(logoutUrl(AUTH));
    expect(`${url.origin}${url.pathname}`).toBe(`${LOGIN}/logout`);
    expect(Object.fromEntries(url.searchParams)).toEqual({
      client_id: 'client123',
      logout_uri: 'https://d111.cloudfront.net/',
    });
  });
});

describe('the way back from the login', () => {
  const pending = { verifier: 'v'.repeat(43), state: 'good-state', hash: '' };

  it('gives the code when the state is the one sent', () => {
    expect(checkCallback(new URLSearchParams({ code: 'c1', state: 'good-state' }), pending)).toBe('c1');
  });

  it('refuses a wrong or missing state, a tab that started nothing, and a login error', () => {
    expect(() => checkCallback(new URLSearchParams({ code: 'c1', state: 'forged' }), pending)).toThrow(
      /state does not match/,
    );
    expect(() => checkCallback(new URLSearchParams({ code: 'c1' }), pending)).toThrow(/state does not match/);
    expect(() => checkCallback(new URLSearchParams({ code: 'c1', state: 'good-state' }), undefined)).toThrow(
      /started no sign-in/,
    );
    expect(() => checkCallback(new URLSearchParams({ state: 'good-state' }), pending)).toThrow(/no code/);
    expect(() =>
      checkCallback(
        new URLSearchParams({
          error: 'access_denied',
          error_description: 'User is disabled',
          state: 'good-state',
        }),
        pending,
      ),
    ).toThrow('sign-in failed: User is disabled');
  });
});

describe('token answers', () => {
  const now = 1_700_000_000_000;

  it('keeps the tokens and when the access token expires', () => {
    expect(
      parseTokenResponse(
        { access_token: 'at', id_token: 'it', refresh_token: 'rt', expires_in: 3600, token_type: 'Bearer' },
        now,
      ),
    ).toEqual({ accessToken: 'at', idToken: 'it', refreshToken: 'rt', expiresAt: now + 3_600_000 });
  });

  it('keeps the refresh token a refresh does not answer', () => {
    const previous = { accessToken: 'old', refreshToken: 'rt', idToken: 'it0', expiresAt: now };
    expect(
      parseTokenResponse({ access_token: 'new', expires_in: 60, token_type: 'Bearer' }, now, previous),
    ).toEqual({
      accessToken: 'new',
      refreshToken: 'rt',
      idToken: 'it0',
      expiresAt: now + 60_000,
    });
  });

  it('refuses an answer without access_token, an error, another token type, no expiry', () => {
    expect(() => parseTokenResponse({ id_token: 'it', expires_in: 3600 }, now)).toThrow(/no access_token/);
    expect(() => parseTokenResponse({ access_token: '', expires_in: 3600 }, now)).toThrow(/no access_token/);
    expect(() => parseTokenResponse(null, now)).toThrow(/no access_token/);
    expect(() => parseTokenResponse({ error: 'invalid_grant' }, now)).toThrow(
      'token endpoint: invalid_grant',
    );
    expect(() =>
      parseTokenResponse({ access_token: 'at', expires_in: 3600, token_type: 'mac' }, now),
    ).toThrow(/not Bearer/);
    expect(() => parseTokenResponse({ access_token: 'at' }, now)).toThrow(/expires_in/);
    expect(() => parseTokenResponse({ access_token: 'at', expires_in: -1 }, now)).toThrow(/expires_in/);
  });
});

describe('when to refresh', () => {
  const tokens = { accessToken: 'at', expiresAt: 1_000_000 };

  it('refreshes from one minute before expiry on, not earlier', () => {
    expect(needsRefresh(tokens, 1_000_000 - 60_001)).toBe(false);
    expect(needsRefresh(tokens, 1_000_000 - 60_000)).toBe(true);
    expect(needsRefresh(tokens, 1_000_000 + 1)).toBe(true);
    expect(needsRefresh(tokens, 1_000_000 - 10_000, 5_000)).toBe(false);
    expect(needsRefresh(tokens, 1_000_000 - 5_000, 5_000)).toBe(true);
  });
});
