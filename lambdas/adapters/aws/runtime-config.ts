import { type RuntimeConfig, validateRuntimeConfig } from '../../core/config.ts';
import { ENV } from '../../env.ts';

/**
 * The run-time config the stack built into the bundle (esbuild replaces the literal
 * `process.env.PIPELINE_RUNTIME_CONFIG` with the JSON), validated at cold start.
 */
export function loadRuntimeConfig(
  text: string | undefined = process.env.PIPELINE_RUNTIME_CONFIG ?? process.env[ENV.runtimeConfig],
): RuntimeConfig {
  return validateRuntimeConfig(text ? (JSON.parse(text) as Record<string, unknown>) : {});
}
