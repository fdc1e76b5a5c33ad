/** `iot-pipeline users add|list|remove`: the people who may sign in to a stage's web console. */
import { parse, UsageError } from '../args.ts';
import { REGION_OPTION, REGION_USAGE } from '../aws.ts';
import { CliError } from '../errors.ts';
import { formatTable } from '../table.ts';

export const options = {
  stage: { type: 'string' },
  ...REGION_OPTION,
  json: { type: 'boolean', default: false },
} as const;

export const usage = `Usage: iot-pipeline users add <email> --stage <stage> [options]
       iot-pipeline users list --stage <stage> [options]
       iot-pipeline users remove <email> --stage <stage> [options]

The people who may sign in to a stage's web console (console.enabled): its Cognito user
pool, found from the stack's UserPoolId output (AWS credentials). Nobody signs up: add
sends the person an invitation email with a temporary password (valid 3 days); at first
sign-in they choose a password and set up an authenticator app (MFA is required). A
signed-in person may read (devices, readings, alerts), never send data.

Options:
  --stage <stage>          the deployed stage (required)
${REGION_USAGE}
  --json                   add: {"email","status"}; list: the users as JSON
  -h, --help               show this help

Examples:
  iot-pipeline users add alice@example.com --stage prod
  iot-pipeline users list --stage prod
  iot-pipeline users remove alice@example.com --stage prod`;

/** An email address as the user pool takes it for a username (one @, a dot in the domain, no space). */
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse({ args, options, allowPositionals: true });
  const [action, ...rest] = positionals;
  if (action !== 'add' && action !== 'list' && action !== 'remove') {
    throw new UsageError(
      action === undefined
        ? 'say add, list or remove'
        : `unknown action "${action}": say add, list or remove`,
      true,
    );
  }
  const email = (): string => {
    const [address, extra] = rest;
    if (address === undefined)
      throw new UsageError(`${action} needs the person's email: users ${action} <email>`, true);
    if (extra !== undefined) throw new UsageError(`${action} takes one email, got also "${extra}"`);
    if (!EMAIL.test(address)) throw new UsageError(`"${address}" is not an email address (name@example.com)`);
    return address.toLowerCase();
  };
  const address = action === 'list' ? undefined : email();
  if (action === 'list' && rest.length > 0)
    throw new UsageError(`list takes no argument ("${rest[0]}")`, true);
  if (values.stage === undefined)
    throw new UsageError(`users needs --stage <stage>: console users live in a deployed stage's user pool`);
  if (!/^[a-z][a-z0-9-]{0,19}$/.test(values.stage))
    throw new UsageError(`--stage "${values.stage}" is not a stage name (lowercase letters, digits, -)`);
  const stage = values.stage;

  const [{ cognitoClient, stackOutput }, sdk] = await Promise.all([
    import('../aws.ts'),
    import('@aws-sdk/client-cognito-identity-provider'),
  ]);
  const poolId = await stackOutput(stage, 'UserPoolId', values.region);
  const cognito = await cognitoClient(values.region);
  const known = (error: unknown, name: string) => error instanceof Error && error.name === name;

  if (action === 'add') {
    try {
      await cognito.send(
        new sdk.AdminCreateUserCommand({
          UserPoolId: poolId,
          Username: address,
          UserAttributes: [
            { Name: 'email', Value: address },
            // The invitation goes to this address, so it is verified by being used.
            { Name: 'email_verified', Value: 'true' },
          ],
          DesiredDeliveryMediums: ['EMAIL'],
        }),
      );
    } catch (error) {
      if (known(error, 'UsernameExistsException'))
        throw new CliError(
          `${address} is already a user of stage ${stage}: see iot-pipeline users list --stage ${stage}`,
        );
      throw error;
    }
    if (values.json) console.log(JSON.stringify({ email: address, status: 'FORCE_CHANGE_PASSWORD' }));
    else
      console.error(
        `Invited ${address} to the ${stage} console: Cognito emails them a temporary password (valid 3 days) and the sign-in address.`,
      );
    return 0;
  }

  if (action === 'remove') {
    try {
      await cognito.send(new sdk.AdminDeleteUserCommand({ UserPoolId: poolId, Username: address }));
    } catch (error) {
      if (known(error, 'UserNotFoundException'))
        throw new CliError(
          `${address} is not a user of stage ${stage}: see iot-pipeline users list --stage ${stage}`,
        );
      throw error;
    }
    console.error(
      `Removed ${address}: they can no longer sign in; a token they hold expires within the hour.`,
    );
    return 0;
  }

  const users: { email: string; status: string; enabled: boolean; created: string }[] = [];
  let token: string | undefined;
  do {
    const page = await cognito.send(new sdk.ListUsersCommand({ UserPoolId: poolId, PaginationToken: token }));
    for (const user of page.Users ?? []) {
      users.push({
        email: user.Attributes?.find((a) => a.Name === 'email')?.Value ?? user.Username ?? '',
        status: user.UserStatus ?? '',
        enabled: user.Enabled ?? false,
        created: user.UserCreateDate?.toISOString() ?? '',
      });
    }
    token = page.PaginationToken;
  } while (token);
  users.sort((a, b) => a.email.localeCompare(b.email));
  if (values.json) {
    console.log(JSON.stringify({ users }));
    return 0;
  }
  if (users.length === 0) {
    console.error(`No console users in stage ${stage} yet: iot-pipeline users add <email> --stage ${stage}`);
    return 0;
  }
  console.log(
    formatTable({
      columns: ['email', 'status', 'enabled', 'created'],
      rows: users.map((u) => ({ ...u, enabled: u.enabled ? 'yes' : 'no' })),
    }),
  );
  return 0;
}
