import { type RuntimeConfig, validateRuntimeConfig } from '../../core/config.ts';
import { ENV } from '../../env.ts';

/** The run-time config the stack put in the environment, validated at cold start. */
export function loadRuntimeConfig(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const text = env[ENV.runtimeConfig];
  return validateRuntimeConfig(text ? (JSON.parse(text) as Record<string, unknown>) : {});
}
