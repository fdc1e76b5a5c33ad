import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { HttpRequest } from '../../core/api/ingress.ts';

/**
 * The core's request from an API Gateway HTTP API event (payload format 2.0): the body
 * decoded from base64 when API Gateway encoded it (binary content types), the time API
 * Gateway received the request as `receivedAt`.
 */
export function httpRequestOf(event: APIGatewayProxyEventV2): HttpRequest {
  return {
    method: event.requestContext.http.method,
    path: event.rawPath,
    // As sent, undecoded: a GET callback's variables are read from it like a form body.
    query: event.rawQueryString ?? '',
    headers: event.headers,
    body: Buffer.from(event.body ?? '', event.isBase64Encoded ? 'base64' : 'utf8'),
    requestId: event.requestContext.requestId,
    receivedAt: event.requestContext.timeEpoch,
  };
}
