import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { SignedInUser } from '../../core/api/http.ts';
import type { HttpRequest } from '../../core/api/ingress.ts';

/**
 * The core's request from an API Gateway HTTP API event (payload format 2.0): the body
 * decoded from base64 when API Gateway encoded it (binary content types), the time API
 * Gateway received the request as `receivedAt`.
 */
export function httpRequestOf(event: APIGatewayProxyEventV2): HttpRequest {
  const signedIn = verifiedUser(event);
  return {
    method: event.requestContext.http.method,
    path: event.rawPath,
    // As sent, undecoded: a GET callback's variables are read from it like a form body.
    query: event.rawQueryString ?? '',
    headers: event.headers,
    body: Buffer.from(event.body ?? '', event.isBase64Encoded ? 'base64' : 'utf8'),
    requestId: event.requestContext.requestId,
    receivedAt: event.requestContext.timeEpoch,
    ...(signedIn && { signedIn }),
  };
}

/**
 * The user API Gateway's JWT authorizer verified, from `requestContext.authorizer.jwt.claims`:
 * API Gateway puts them there only after checking the token's signature against the user
 * pool's keys, its issuer, audience and expiry, and a caller cannot write to the request
 * context. Headers are never read here: a token or claims sent on a route without the
 * authorizer count for nothing.
 */
export function verifiedUser(event: APIGatewayProxyEventV2): SignedInUser | undefined {
  const { authorizer } = event.requestContext as { authorizer?: { jwt?: { claims?: unknown } } };
  const claims = authorizer?.jwt?.claims;
  if (typeof claims !== 'object' || claims === null) return undefined;
  const { sub, username } = claims as Record<string, unknown>;
  if (typeof sub !== 'string' || sub === '') return undefined;
  // Cognito access tokens name the user as `username`.
  return typeof username === 'string' && username !== '' ? { subject: sub, username } : { subject: sub };
}
