import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/**
 * Reads a secret string once and keeps the promise: one Secrets Manager call per
 * container, not per request. A failed read is forgotten so the next request retries.
 */
export function cachedSecret(client: SecretsManagerClient, secretId: string): () => Promise<string> {
  let value: Promise<string> | undefined;
  return () => {
    value ??= client.send(new GetSecretValueCommand({ SecretId: secretId })).then((result) => {
      if (!result.SecretString) throw new Error(`Secret ${secretId} has no string value`);
      return result.SecretString;
    });
    value.catch(() => {
      value = undefined;
    });
    return value;
  };
}
