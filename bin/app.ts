#!/usr/bin/env -S npx tsx
import { App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadConfig } from '../lib/config.ts';
import { PipelineStack } from '../lib/pipeline-stack.ts';

const app = new App();
const config = loadConfig((key) => app.node.tryGetContext(key));
// Environment-agnostic: synthesizes offline, deploys to the account and region of the caller's credentials.
new PipelineStack(app, `IotPipeline-${config.stage}`, {
  config,
});
Tags.of(app).add('project', 'iot-pipeline');
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
