/**
 * A local runtime for a test file: its own data folder, ports the system picks, the
 * test key with every scope, and a short batch window and retry delay so batches come
 * and go in milliseconds.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalRuntime, type LocalRuntimeOptions, startLocalRuntime } from '../../local/runtime.ts';

/** The key `startTestRuntime` gives the runtime (`IOT_PIPELINE_API_KEY`'s role): every scope. */
export const TEST_API_KEY = 'test-key-0123456789';

export async function startTestRuntime(
  name: string,
  options: Omit<LocalRuntimeOptions, 'dataDir' | 'mqttPort' | 'httpPort'> & { readonly dataDir?: string },
): Promise<LocalRuntime> {
  return startLocalRuntime({
    apiKey: TEST_API_KEY,
    ...options,
    dataDir: options.dataDir ?? (await mkdtemp(join(tmpdir(), `iot-${name}-`))),
    mqttPort: 0,
    httpPort: 0,
    queue: { batchWindowMs: 20, retryDelayMs: 20, ...options.queue },
  });
}
