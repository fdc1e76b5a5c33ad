/**
 * The AWS clients and adapters the CLI's AWS commands use, each loaded only when a
 * command asks for it: `redecode` on the local lake never loads the S3 SDK, `query`
 * on DuckDB never loads Athena's. Region and credentials come from the usual chain
 * (AWS_REGION, AWS_PROFILE, ~/.aws/config); `--region` overrides the region.
 */
import type { IoTClient } from '@aws-sdk/client-iot';
import type { AthenaEngineOptions } from '../lambdas/adapters/aws/athena.ts';
import type { KeyStore } from '../lambdas/core/access/keys.ts';
import type { LakeStore } from '../lambdas/core/ingest/ports.ts';
import { CliError } from './errors.ts';

/** The `--region` flag the AWS commands take. */
export const REGION_OPTION = { region: { type: 'string' } } as const;

/** What `--help` says about `--region`. */
export const REGION_USAGE =
  '  --region <region>        the AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile)';

const clientConfig = (region: string | undefined) => (region ? { region } : {});

/**
 * Resolves the client's region and credentials before its first call (the service is not
 * called): when either is missing, the command stops with one line that says which,
 * instead of one failure per device or object, each wrapped in its step.
 */
async function ready<C extends { config: { region(): Promise<string>; credentials(): Promise<unknown> } }>(
  client: C,
): Promise<C> {
  await client.config.region();
  await client.config.credentials();
  return client;
}

export async function iotClient(region?: string): Promise<IoTClient> {
  const { IoTClient } = await import('@aws-sdk/client-iot');
  return ready(new IoTClient(clientConfig(region)));
}

/** The lake bucket as the store `redecode` reads and rewrites. */
export async function s3Lake(bucket: string, region?: string): Promise<LakeStore> {
  const [{ S3Client }, { s3Store }] = await Promise.all([
    import('@aws-sdk/client-s3'),
    import('../lambdas/adapters/aws/s3-store.ts'),
  ]);
  return s3Store(await ready(new S3Client(clientConfig(region))), bucket);
}

/** Athena in the stack's workgroup, for `query --workgroup`. */
export async function athenaQueries(options: AthenaEngineOptions & { region?: string }) {
  const [{ AthenaClient }, { athenaEngine }] = await Promise.all([
    import('@aws-sdk/client-athena'),
    import('../lambdas/adapters/aws/athena.ts'),
  ]);
  const { region, ...engine } = options;
  return athenaEngine(await ready(new AthenaClient(clientConfig(region))), engine);
}

/** The stack `cdk deploy` made for a stage (bin/app.ts names it). */
export function stackName(stage: string): string {
  return `IotPipeline-${stage}`;
}

/** One output of the stage's stack (`KeysTableName`...), or a line that says what is missing. */
export async function stackOutput(stage: string, output: string, region?: string): Promise<string> {
  const { CloudFormationClient, DescribeStacksCommand } = await import('@aws-sdk/client-cloudformation');
  const client = await ready(new CloudFormationClient(clientConfig(region)));
  const name = stackName(stage);
  let outputs: { OutputKey?: string; OutputValue?: string }[];
  try {
    const { Stacks } = await client.send(new DescribeStacksCommand({ StackName: name }));
    outputs = Stacks?.[0]?.Outputs ?? [];
  } catch (error) {
    throw new CliError(`cannot read stack ${name}: ${(error as Error).message}; check --stage and --region`);
  }
  const value = outputs.find((o) => o.OutputKey === output)?.OutputValue;
  if (!value)
    throw new CliError(
      `stack ${name} has no output ${output}: deploy this version first (npm run cdk -- deploy)`,
    );
  return value;
}

/** Cognito user pools, for `users` (console sign-in). */
export async function cognitoClient(region?: string) {
  const { CognitoIdentityProviderClient } = await import('@aws-sdk/client-cognito-identity-provider');
  return ready(new CognitoIdentityProviderClient(clientConfig(region)));
}

/** The stage's keys table, found from its stack's outputs. */
export async function stackKeyStore(stage: string, region?: string): Promise<KeyStore> {
  const table = await stackOutput(stage, 'KeysTableName', region);
  const [{ DynamoDBClient }, { dynamodbKeyStore }] = await Promise.all([
    import('@aws-sdk/client-dynamodb'),
    import('../lambdas/adapters/aws/dynamodb-keys.ts'),
  ]);
  return dynamodbKeyStore(await ready(new DynamoDBClient(clientConfig(region))), table);
}
