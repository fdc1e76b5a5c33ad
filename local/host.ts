/**
 * The local runtime's listening address: local only, never another interface. Its own
 * module so the CLI's `simulate` and `devices` know it without loading the runtime.
 */
export const LOCAL_HOST = '127.0.0.1';
