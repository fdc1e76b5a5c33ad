import { type Stack, Validations } from 'aws-cdk-lib';

/**
 * cdk-nag AwsSolutions findings the whole stack acknowledges, each with its reason.
 * Findings on one resource are acknowledged next to that resource. Every other
 * finding fails the synth test.
 */
export function acknowledgeStackFindings(stack: Stack): void {
  Validations.of(stack).acknowledge({
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    reason:
      'Lambda execution roles use AWSLambdaBasicExecutionRole (CreateLogStream/PutLogEvents only), the AWS-maintained minimum for a function to log.',
  });
}
