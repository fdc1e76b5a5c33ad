import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadConfig } from '../../lib/config-sources.ts';
import { PipelineStack } from '../../lib/pipeline-stack.ts';

/**
 * Builds the app as `bin/app.ts` does, from CDK context, with cdk-nag on. Bundling is
 * skipped unless asked for (one test bundles for real), so a synth takes a second.
 */
export function synthPipeline(context: Record<string, unknown> = {}, options: { bundle?: boolean } = {}) {
  const app = new App({
    context: { ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }), ...context },
  });
  const config = loadConfig((key) => app.node.tryGetContext(key));
  const stack = new PipelineStack(app, `IotPipeline-${config.stage}`, { config });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const assembly = app.synth();
  return { app, stack, config, assembly, template: Template.fromStack(stack) };
}
