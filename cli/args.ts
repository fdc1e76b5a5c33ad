/**
 * Argument parsing shared by every command: `node:util` parseArgs, with mistakes
 * turned into a {@link UsageError} that `cli/main.ts` prints without a stack (exit code 2).
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** A command: its usage text (with an example) for `--help`, and what it does. */
export interface Command {
  /** What `iot-pipeline <command> --help` prints: the flags and an example. */
  readonly usage: string;
  /** Runs the command on its arguments (the command name taken off); resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

/** A mistake in how the command was called: printed without a stack, exit code 2. */
export class UsageError extends Error {
  /**
   * @param message what is wrong and what to give instead, on one line
   * @param showUsage print the command's usage after the message (an unknown flag, a missing argument)
   */
  constructor(
    message: string,
    readonly showUsage = false,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `parseArgs`, strict, with an unknown or malformed flag reported as a UsageError followed by the usage. */
export function parse<T extends ParseArgsConfig>(config: T) {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError((error as Error).message, true);
  }
}

/** A flag's value as a whole number from `min` to `max`, else a UsageError that says so. */
export function wholeNumber(flag: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`${flag} "${text}" must be a whole number ${range}`);
  }
  return value;
}

/** A port flag (0 to 65535), or `fallback` when the flag is absent. */
export function port(text: string | undefined, fallback: number, flag: string): number {
  return text === undefined ? fallback : wholeNumber(flag, text, 0, 65535);
}

/** True when the arguments ask for help (`--help` or `-h` before any `--`). */
export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === '--help' || arg === '-h');
}
