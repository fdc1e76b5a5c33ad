/**
 * How the CLI reports a failure: expected ones (a usage mistake, a bad config, no AWS
 * region, nothing listening) as one line that says what to do; anything else with its
 * stack. Imports nothing heavy: `cli/main.ts` loads it before any command.
 */
import { UsageError } from './args.ts';

/** An expected failure of a command (not a usage mistake): one line, exit code 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

export interface Explained {
  /** One line: what went wrong and what to do. */
  readonly message: string;
  readonly exitCode: number;
}

/**
 * The one-line explanation of an expected failure, or undefined for a bug (printed with its stack).
 *
 * ConfigError and StartupError are recognised by name: importing their modules here would
 * load the config validation and the decoders before every command.
 */
export function explain(error: unknown): Explained | undefined {
  if (!(error instanceof Error)) return undefined;
  if (error instanceof UsageError || error.name === 'ConfigError' || error.name === 'StartupError') {
    return { message: error.message, exitCode: 2 };
  }
  if (error instanceof CliError) return { message: error.message, exitCode: 1 };
  const aws = awsProblem(error);
  if (aws) return { message: aws, exitCode: 1 };
  // A file or folder named on the command line that cannot be read or written.
  const errno = error as NodeJS.ErrnoException;
  if (typeof errno.code === 'string' && typeof errno.path === 'string' && errno.syscall) {
    return { message: error.message, exitCode: 1 };
  }
  return undefined;
}

/** One line for the AWS SDK's configuration failures and for an answer AWS refused, else undefined. */
export function awsProblem(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  if (error.message === 'Region is missing') return 'no AWS region: set AWS_REGION or pass --region';
  if (error.name === 'CredentialsProviderError') {
    return 'no AWS credentials: set AWS_PROFILE (after `aws configure` or `aws sso login`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY';
  }
  // A service exception (the SDK's ServiceException carries $fault and $metadata).
  if ('$fault' in error && '$metadata' in error)
    return `AWS refused the call: ${error.name}: ${error.message}`;
  return undefined;
}

/** Prints the error to stderr (`iot-pipeline: ...`) and returns the exit code. */
export function report(error: unknown, options: { debug: boolean; usage?: string }): number {
  const explained = explain(error);
  const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
  if (!explained) {
    process.stderr.write(`iot-pipeline: ${stack}\n`);
    return 1;
  }
  const usage = error instanceof UsageError && error.showUsage && options.usage ? `\n\n${options.usage}` : '';
  process.stderr.write(`iot-pipeline: ${explained.message}${usage}\n`);
  if (options.debug) process.stderr.write(`${stack}\n`);
  return explained.exitCode;
}
