/**
 * Console sign-in through the API Gateway adapter and the gate: only the claims API
 * Gateway's JWT authorizer put in the request context count, and they grant reading only.
 * A token or claims sent in a header, on a route without the authorizer, count for nothing.
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { httpRequestOf, verifiedUser } from '../../lambdas/adapters/aws/api-gateway.ts';
import { createKey } from '../../lambdas/core/access/keys.ts';
import { createGate, isResponse } from '../../lambdas/core/api/gate.ts';
import type { HttpResponse } from '../../lambdas/core/api/http.ts';

/** An HTTP API (payload 2.0) event as API Gateway sends it; `claims` as its JWT authorizer adds them. */
function eventOf(
  options: { headers?: Record<string, string>; claims?: unknown; authorizer?: unknown } = {},
): APIGatewayProxyEventV2 {
  const requestContext: Record<string, unknown> = {
    accountId: '123456789012',
    apiId: 'abc123',
    domainName: 'abc123.execute-api.us-east-1.amazonaws.com',
    domainPrefix: 'abc123',
    http: {
      method: 'GET',
      path: '/v1/devices',
      protocol: 'HTTP/1.1',
      sourceIp: '192.0.2.1',
      userAgent: 'test',
    },
    requestId: 'req-1',
    routeKey: 'GET /v1/devices',
    stage: '$default',
    time: '01/Dec/2026:19:00:00 +0000',
    timeEpoch: 1_796_151_600_000,
  };
  if (options.claims !== undefined)
    requestContext.authorizer = { jwt: { claims: options.claims, scopes: null } };
  if (options.authorizer !== undefined) requestContext.authorizer = options.authorizer;
  return {
    version: '2.0',
    routeKey: 'GET /v1/devices',
    rawPath: '/v1/devices',
    rawQueryString: '',
    headers: options.headers ?? {},
    isBase64Encoded: false,
    requestContext,
  } as unknown as APIGatewayProxyEventV2;
}

/** A JWT anyone can write: header and claims in base64url, no valid signature. */
const forgedJwt = (claims: Record<string, unknown>) =>
  [{ alg: 'none', typ: 'JWT' }, claims]
    .map((part) => Buffer.from(JSON.stringify(part)).toString('base64url'))
    .concat('')
    .join('.');

const gate = () =>
  createGate({
    find: async () => undefined,
    limits: { keyRateLimit: 1, keyBurstLimit: 2, anonymousRateLimit: 1, anonymousBurstLimit: 50 },
    clock: () => 0,
  });

const COGNITO_CLAIMS = {
  sub: '7c1e3f0a-1111-4222-8333-944455556666',
  username: 'alice@example.com',
  client_id: 'client123',
  token_use: 'access',
  iss: 'https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc',
};

describe('console sign-in on the HTTP API', () => {
  it('takes the user from the claims API Gateway verified, and lets them read', async () => {
    // Arrange
    const request = httpRequestOf(
      eventOf({ claims: COGNITO_CLAIMS, headers: { authorization: 'Bearer eyJ.signed.token' } }),
    );
    // Act
    const caller = await gate().admit(request, 'read');
    // Assert
    expect(request.signedIn).toEqual({ subject: COGNITO_CLAIMS.sub, username: 'alice@example.com' });
    expect(caller).toEqual({ name: 'console:alice@example.com', scopes: ['read'] });
  });

  it.each(['ingest', 'ingest:telemetry', 'ingest:sigfox'])(
    'refuses a signed-in user scope %s with 403',
    async (scope) => {
      const caller = await gate().admit(httpRequestOf(eventOf({ claims: COGNITO_CLAIMS })), scope);
      expect(isResponse(caller) && caller.statusCode).toBe(403);
      expect(JSON.parse((caller as HttpResponse).body)).toMatchObject({ error: 'forbidden' });
      expect((caller as HttpResponse).body).toContain('may only read');
    },
  );

  it('names a user by subject when the token carries no username', () => {
    expect(verifiedUser(eventOf({ claims: { sub: 'abc' } }))).toEqual({ subject: 'abc' });
  });

  it.each([
    ['no authorizer context', {}],
    ['a Lambda authorizer context', { authorizer: { lambda: { sub: 'x' } } }],
    ['claims without a subject', { claims: { username: 'mallory' } }],
    ['an empty subject', { claims: { sub: '' } }],
    ['claims that are not an object', { claims: 'sub=mallory' }],
  ])('counts nobody as signed in with %s', (_, options) => {
    expect(httpRequestOf(eventOf(options)).signedIn).toBeUndefined();
  });

  it('never takes a forged token or claims from headers: 401 without a key', async () => {
    // Arrange: everything a caller could send on the keys' API, which has no authorizer
    const headers = {
      authorization: `Bearer ${forgedJwt(COGNITO_CLAIMS)}`,
      'x-amzn-oidc-data': forgedJwt(COGNITO_CLAIMS),
      'x-jwt-claims': JSON.stringify(COGNITO_CLAIMS),
      'x-amzn-requestcontext-authorizer': JSON.stringify({ jwt: { claims: COGNITO_CLAIMS } }),
    };
    // Act
    const request = httpRequestOf(eventOf({ headers }));
    const answer = await gate().admit(request, 'read');
    // Assert
    expect(request.signedIn).toBeUndefined();
    expect(isResponse(answer) && answer.statusCode).toBe(401);
  });

  it('finds no user in any headers whatever they hold', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.string()), (headers) => {
        expect(httpRequestOf(eventOf({ headers })).signedIn).toBeUndefined();
      }),
    );
  });

  it("throttles each user by their own bucket, never a key's", async () => {
    // Arrange: burst 2 per caller, a clock that never moves
    const { key, record } = createKey({ name: 'script', scopes: ['read'] }, 0);
    const shared = createGate({
      find: async (id) => (id === record.id ? record : undefined),
      limits: { keyRateLimit: 1, keyBurstLimit: 2, anonymousRateLimit: 1, anonymousBurstLimit: 1 },
      clock: () => 0,
    });
    const alice = httpRequestOf(eventOf({ claims: COGNITO_CLAIMS }));
    const bob = httpRequestOf(eventOf({ claims: { sub: 'bob-sub' } }));
    // Act
    const statuses = [];
    for (const request of [alice, alice, alice]) {
      const answer = await shared.admit(request, 'read');
      statuses.push(isResponse(answer) ? answer.statusCode : 200);
    }
    // Assert
    expect(statuses).toEqual([200, 200, 429]);
    expect(isResponse(await shared.admit(bob, 'read'))).toBe(false);
    expect(isResponse(await shared.admit({ headers: { authorization: `Bearer ${key}` } }, 'read'))).toBe(
      false,
    );
  });
});
