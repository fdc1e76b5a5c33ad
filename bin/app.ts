#!/usr/bin/env -S npx tsx
import { App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, type PipelineConfig } from '../lib/config.ts';
import { loadConfig } from '../lib/config-sources.ts';
import { PipelineStack } from '../lib/pipeline-stack.ts';

const app = new App();
let config: PipelineConfig;
try {
  config = loadConfig((key) => app.node.tryGetContext(key));
} catch (error) {
  // A bad config is the user's to fix, named in one line: no stack trace in the synth output.
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(
    `iot-pipeline: ${error.message}: fix it in cdk.json, the -c config=<file> or a -c flag\n`,
  );
  process.exit(2);
}
// Environment-agnostic: synthesizes offline, deploys to the account and region of the caller's credentials.
new PipelineStack(app, `IotPipeline-${config.stage}`, {
  config,
});
Tags.of(app).add('project', 'iot-pipeline');
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
