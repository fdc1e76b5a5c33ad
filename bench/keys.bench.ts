/**
 * `keys.*`: what checking scoped keys costs, to choose where keys live on AWS.
 *
 * Measured here: the gate's time per request with the key's record cached (the common
 * case), against the one-secret comparison it replaced (baseline); a lookup that misses
 * the cache, against DynamoDB's wire protocol on moto when `moto_server` is installed
 * (127.0.0.1: no network time, so it is the SDK's and the protocol's share), and against
 * the local keys file.
 *
 * Priced from the same list prices as the cost model, per million HTTP requests, for the
 * issue's fleet over HTTP (1,000 devices, one request a minute each: 16.7 requests a
 * second) with 3 keys in use and 2 warm function instances:
 * - `keys.table_per_million`: the chosen design, a DynamoDB table read by the functions
 *   (one GetItem per key id per 30 s per instance, one UpdateItem per key per minute per
 *   instance for "last used");
 * - `keys.authorizer_per_million`: an HTTP API Lambda authorizer with API Gateway's cache
 *   (30 s, so that a revoked key stops within a minute): one authorizer invocation (128 MB,
 *   the gate's measured time rounded up to Lambda's 1 ms) and one GetItem per key per 30 s.
 * Both are far below a cent; what decides is latency and what an authorizer cannot do
 * (printed as the target column): API Gateway answers an authorizer's refusal with a bare
 * `{"message":"Unauthorized"}`, requires every identity source header (a key may come
 * in either of two), and cannot see the body, so the device checks stay in the function
 * anyway. Its uncached path adds one Lambda invocation to the request, whose cold start is
 * at least `coldstart.sdk_client_only` (a bundle with one SDK client).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { dynamodbKeyStore } from '../lambdas/adapters/aws/dynamodb-keys.ts';
import { createKey, sameSecret } from '../lambdas/core/access/keys.ts';
import { createGate } from '../lambdas/core/api/gate.ts';
import { fileKeyStore } from '../local/adapters/key-file.ts';
import { hasTool } from '../test/support/aws-tools.ts';
import { createTable, startMoto } from '../test/support/moto.ts';
import { checkPrices } from '../tools/cost/model.ts';
import { PRICES_FILE } from '../tools/cost/report.ts';
import { type BenchResult, opsPerSecond } from './types.ts';

const LIMITS = { keyRateLimit: 1e9, keyBurstLimit: 1e9, anonymousRateLimit: 1e9, anonymousBurstLimit: 1e9 };
const FLEET_RPS = 1000 / 60;
const KEYS_IN_USE = 3;
const INSTANCES = 2;
const MONTH_S = 30 * 86_400;

/** Mean microseconds of an async call, over `n` sequential calls after a warm-up. */
async function microseconds(fn: () => Promise<unknown>, n: number): Promise<number> {
  for (let i = 0; i < Math.min(50, n); i++) await fn();
  const start = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return ((performance.now() - start) * 1000) / n;
}

export async function run(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const made = createKey({ name: 'bench', scopes: ['ingest'] }, 0);
  const headers = { headers: { authorization: `Bearer ${made.key}` } };
  const gate = createGate({ find: async () => made.record, limits: LIMITS });
  const cached = await microseconds(() => gate.admit(headers, 'ingest:sigfox'), 20_000);
  const oneSecret = 1e6 / opsPerSecond(() => sameSecret(made.key, made.key), 1000);
  results.push({
    name: 'keys.admit_cached',
    value: Number(cached.toFixed(1)),
    unit: 'µs a request',
    baseline: Number(oneSecret.toFixed(1)),
    ratio: cached / oneSecret,
    target: 'report (baseline: the one-secret compare it replaced)',
    met: true,
  });

  const dir = mkdtempSync(join(tmpdir(), 'bench-keys-'));
  const file = fileKeyStore(join(dir, 'keys.json'), join(dir, 'key-usage.json'));
  await file.add(made.record);
  const local = await microseconds(() => file.find(made.record.id), 2000);
  results.push({
    name: 'keys.lookup_local_file',
    value: Number(local.toFixed(1)),
    unit: 'µs a lookup',
    baseline: Number(cached.toFixed(1)),
    ratio: local / cached,
    target: 'report (local runtime: the file is checked on every request, so a revoke is at once)',
    met: true,
  });

  let lookupMs = Number.NaN;
  if (hasTool('moto_server')) {
    const moto = await startMoto();
    try {
      const client = new DynamoDBClient(moto.clientConfig);
      await createTable(client, 'keys', 'id');
      const store = dynamodbKeyStore(client, 'keys');
      await store.add(made.record);
      lookupMs = (await microseconds(() => store.find(made.record.id), 200)) / 1000;
      results.push({
        name: 'keys.lookup_dynamodb_moto',
        value: Number(lookupMs.toFixed(2)),
        unit: 'ms a cache miss',
        baseline: Number((cached / 1000).toFixed(3)),
        ratio: (lookupMs * 1000) / cached,
        target: 'report (once per key per 30 s per instance; on 127.0.0.1, so without the network)',
        met: true,
      });
    } finally {
      await moto.stop();
    }
  }

  const prices = checkPrices(JSON.parse(readFileSync(PRICES_FILE, 'utf8')));
  const requestsPerMonth = FLEET_RPS * MONTH_S;
  const readUnit = prices.dynamodbOnDemand.readRequestUnitsPerMillion / 1e6;
  const writeUnit = prices.dynamodbOnDemand.writeRequestUnitsPerMillion / 1e6;
  // The table: per instance, a GetItem (eventually consistent, half a unit) per key per 30 s, an UpdateItem per key per minute.
  const table =
    (((KEYS_IN_USE * INSTANCES * MONTH_S) / 30) * 0.5 * readUnit +
      ((KEYS_IN_USE * INSTANCES * MONTH_S) / 60) * writeUnit) /
    requestsPerMonth;
  // The authorizer: API Gateway's cache is the API's, not an instance's: one invocation per key per 30 s,
  // each its own GetItem, and the same "last used" writes.
  const authorizerMs = Math.max(1, Math.ceil(cached / 1000 + (Number.isNaN(lookupMs) ? 5 : lookupMs)));
  const invocation =
    prices.lambda.requestsPerMillion / 1e6 + (authorizerMs / 1000) * 0.125 * prices.lambda.gbSecondArm64;
  const authorizer =
    (((KEYS_IN_USE * MONTH_S) / 30) * (invocation + 0.5 * readUnit) +
      ((KEYS_IN_USE * MONTH_S) / 60) * writeUnit) /
    requestsPerMonth;
  const perMillion = (monthly: number) => Number((monthly * 1e6).toFixed(6));
  results.push(
    {
      name: 'keys.table_per_million',
      value: perMillion(table),
      unit: '$ per million requests',
      baseline: perMillion(authorizer),
      ratio: table / authorizer,
      target: 'chosen: keys checked in the function (either header, JSON reasons, one invocation)',
      met: true,
    },
    {
      name: 'keys.authorizer_per_million',
      value: perMillion(authorizer),
      unit: '$ per million requests',
      baseline: perMillion(table),
      ratio: authorizer / table,
      target: 'not chosen: an invocation more per miss, bare 401, every identity header required',
      met: true,
    },
  );
  return results;
}
