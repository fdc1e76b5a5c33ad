import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // AWS protocol tools: said once when missing; every real SDK request checked against AWS's models.
    globalSetup: ['test/support/global-aws-tools.ts'],
    setupFiles: ['test/support/setup-aws-checks.ts'],
    // Synth tests take seconds each; the one that bundles with esbuild takes more.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    env: {
      AWS_EC2_METADATA_DISABLED: 'true',
      CDK_DISABLE_CLI_TELEMETRY: 'true',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
  },
});
