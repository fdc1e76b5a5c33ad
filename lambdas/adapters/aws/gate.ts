import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  cachedKeys,
  createGate,
  DEFAULT_GATE_LIMITS,
  type Gate,
  type GateLimits,
  usageRecorder,
} from '../../core/api/gate.ts';
import { ENV, requireEnv } from '../../env.ts';
import { dynamodbKeyStore } from './dynamodb-keys.ts';

/** How long a function trusts what it read of a key: a revoked key stops within this (under a minute). */
export const KEY_CACHE_MS = 30_000;

/**
 * The gate of the HTTP functions: keys from the DynamoDB keys table (one GetItem per key
 * id per {@link KEY_CACHE_MS} per container), last use noted at most once a minute per key,
 * limits from the environment the stack sets.
 */
export function dynamodbGate(
  client: DynamoDBClient,
  onError: (error: Error) => void,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Gate {
  const store = dynamodbKeyStore(client, requireEnv(ENV.keysTable, env));
  const limits = env[ENV.gateLimits]
    ? (JSON.parse(env[ENV.gateLimits] as string) as GateLimits)
    : DEFAULT_GATE_LIMITS;
  return createGate({
    find: cachedKeys((id) => store.find(id), KEY_CACHE_MS),
    limits,
    onUse: usageRecorder((used) => store.touch(used), onError),
  });
}
