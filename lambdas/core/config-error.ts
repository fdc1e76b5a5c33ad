/** A config value that is not allowed; the message names the key, the value and what is allowed. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    got: unknown,
    expected: string,
  ) {
    super(`Invalid config "${key}": got ${JSON.stringify(got)}, expected ${expected}`);
    this.name = 'ConfigError';
  }
}
