/** The HTTP request and response the API's core answers, with no server or AWS type in them. */

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  /** The query string without `?` (API Gateway's `rawQueryString`). */
  readonly query?: string;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Buffer;
  readonly requestId: string;
  readonly receivedAt: number;
  /**
   * A person signed in to the console, as API Gateway's JWT authorizer verified them (the
   * token's signature, issuer, audience and expiry). Only the API Gateway adapter sets it,
   * and only from the authorizer's context, never from a header: a route without the
   * authorizer, and the local runtime, never have one.
   */
  readonly signedIn?: SignedInUser;
}

/** Who signed in: the user pool's subject (stable id) and, when the token names it, the username. */
export interface SignedInUser {
  readonly subject: string;
  readonly username?: string;
}

export interface HttpResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** A JSON answer: every error the API gives is `{ "error": <code>, "message": <what to fix> }`. */
export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}

/** A path segment, %-decoded; undefined when its escapes are malformed (the caller answers 400). */
export function pathSegment(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
