/**
 * moto's server on 127.0.0.1: AWS's wire protocols, emulated, for the tests that send
 * real SDK v3 requests. One server per test file, on a free port; `reset()` forgets
 * every resource between tests.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { CreateTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreatePolicyCommand, CreateThingTypeCommand, type IoTClient } from '@aws-sdk/client-iot';
import { REGISTRY_TYPE_INDEX } from '../../lambdas/adapters/aws/dynamodb-registry.ts';

export interface Moto {
  readonly endpoint: string;
  /** SDK client settings that talk to this server: endpoint, region, test credentials. */
  readonly clientConfig: {
    readonly endpoint: string;
    readonly region: string;
    readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  };
  /** Environment that makes `new XClient({})` (the handlers' clients) talk to this server. */
  readonly env: Readonly<Record<string, string>>;
  reset(): Promise<void>;
  /** POSTs to one of moto's own APIs (`/moto-api/static/athena/query-results`, ...). */
  api(path: string, body: unknown): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startMoto(): Promise<Moto> {
  const port = await freePort();
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`${endpoint}/moto-api/`);
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill();
      throw new Error(`moto_server did not start on port ${port}: ${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${endpoint}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`moto ${path}: ${response.status} ${await response.text()}`);
  };
  return {
    endpoint,
    clientConfig: {
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    },
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    },
    reset: () => post('/moto-api/reset', undefined),
    api: post,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A pay-per-request table with a string hash key, as the stack's registry and claims tables. */
export async function createTable(client: DynamoDBClient, name: string, key: string): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: name,
      KeySchema: [{ AttributeName: key, KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: key, AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
}

/** The registry table as the stack makes it: key `deviceId`, and the `ByType` index (`deviceType`, `deviceId`, keys only). */
export async function createRegistryTable(client: DynamoDBClient, name: string): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: name,
      KeySchema: [{ AttributeName: 'deviceId', KeyType: 'HASH' }],
      AttributeDefinitions: [
        { AttributeName: 'deviceId', AttributeType: 'S' },
        { AttributeName: 'deviceType', AttributeType: 'S' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: REGISTRY_TYPE_INDEX,
          KeySchema: [
            { AttributeName: 'deviceType', KeyType: 'HASH' },
            { AttributeName: 'deviceId', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
}

/** A stage's IoT Core setup as the stack makes it: its thing types and its device policy. */
export async function createIotStage(
  client: IoTClient,
  stage: string,
  deviceTypes: readonly string[],
): Promise<void> {
  for (const type of deviceTypes) {
    await client.send(new CreateThingTypeCommand({ thingTypeName: `iot_pipeline_${stage}_${type}` }));
  }
  await client.send(
    new CreatePolicyCommand({
      policyName: `iot_pipeline_${stage}_device`,
      policyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
      }),
    }),
  );
}
