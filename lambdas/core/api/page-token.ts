/**
 * Page tokens bound to their query: a token carries a digest of the query it was made
 * for (SQL and parameters, or a Timestream query's fields) beside a position in that
 * query's result (an offset, a time and a count), so `next` from one device's query, or
 * from another range or metric, is refused instead of paging through something else. The
 * digest is a checksum, not a signature: it stops a token being used for the wrong query
 * by mistake, and hides nothing. Anyone can make a token with any digest, so a token must
 * never hold an engine's handle on a result (Timestream's NextToken): only a position the
 * engine re-applies to the caller's own query. Pure: no engine, no AWS.
 */
import { createHash } from 'node:crypto';
import { InvalidTokenError, type QueryPlan } from './query.ts';

/** Why a token is refused: it was made for another query. */
export const OTHER_QUERY = 'next belongs to another query: repeat the same parameters';
/** Why a token is refused: it is not one this API handed out (garbled, cut, or made up). */
export const NOT_A_TOKEN = 'next is not a token this API gave';

/** Bytes of SHA-256 a token keeps: 16 (22 characters) tell queries apart. */
const DIGEST_BYTES = 16;
/** Longer text is no token of ours (ours are well below this). */
const MAX_TOKEN_CHARS = 8192;

/** The digest of a query: SHA-256 over its parts as JSON, 16 bytes, base64url. */
export function queryDigest(parts: readonly unknown[]): string {
  return createHash('sha256')
    .update(JSON.stringify(parts), 'utf8')
    .digest()
    .subarray(0, DIGEST_BYTES)
    .toString('base64url');
}

/** The digest of a planned query: its SQL and each parameter's type and value, in order. */
export function planDigest(plan: QueryPlan): string {
  return queryDigest([plan.sql, plan.params.map((p) => [p.type, p.value])]);
}

/** A token for the query of `digest` carrying the engine's `state`: base64url JSON `{ q, ...state }`. */
export function encodePageToken(digest: string, state: Readonly<Record<string, string | number>>): string {
  return Buffer.from(JSON.stringify({ q: digest, ...state }), 'utf8').toString('base64url');
}

/**
 * The state a token carries, once it is known to be this API's and this query's.
 *
 * @throws InvalidTokenError "next is not a token this API gave" for anything not made by
 *   {@link encodePageToken}; "next belongs to another query" when its digest is not `digest`
 */
export function decodePageToken(token: string, digest: string): Record<string, unknown> {
  let value: unknown;
  try {
    if (token.length === 0 || token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token))
      throw new Error('not base64url');
    value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidTokenError(NOT_A_TOKEN);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidTokenError(NOT_A_TOKEN);
  const { q, ...state } = value as Record<string, unknown>;
  if (typeof q !== 'string') throw new InvalidTokenError(NOT_A_TOKEN);
  if (q !== digest) throw new InvalidTokenError(OTHER_QUERY);
  return state;
}
