import { Arn, ArnFormat, Aws, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/env.ts';

export interface AlertsProps {
  /**
   * Email address subscribed to every alert (AWS sends a confirmation mail first).
   *
   * @default no subscription
   */
  readonly email?: string;
  /**
   * Severities the email receives; only device alerts carry one.
   *
   * @default every message, alarms included
   */
  readonly emailSeverities?: readonly string[];
  /**
   * HTTPS endpoint subscribed to every message (a ticketing system).
   *
   * @default none
   */
  readonly webhookUrl?: string;
}

/**
 * The alert topic: device alerts (thresholds, offline) and operational alarms (DLQ
 * depth, Lambda errors) meet here. Encrypted with a customer managed key because
 * CloudWatch alarms cannot publish to a topic under the AWS managed SNS key.
 */
export class Alerts extends Construct {
  public readonly topic: sns.Topic;
  public readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: AlertsProps = {}) {
    super(scope, id);
    if (props.email !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(props.email)) {
      throw new Error(`Alerts: email must be an email address, got "${props.email}"`);
    }
    if (props.webhookUrl !== undefined && !/^https:\/\/\S+$/.test(props.webhookUrl)) {
      throw new Error(`Alerts: webhookUrl must be an https:// URL, got "${props.webhookUrl}"`);
    }
    this.key = new kms.Key(this, 'Key', {
      description: 'Encrypts the IoT pipeline alert topic',
      enableKeyRotation: true,
      // It encrypts alerts in flight, not data at rest: scheduled for deletion with the stack
      // (after KMS's shortest waiting period) rather than left behind at $1 a month.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    // CloudWatch alarms publish to the topic, so CloudWatch must use the key; only for the
    // alarms of this account and region (the confused deputy conditions CloudWatch sends).
    const alarmsOfThisAccount = {
      StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
      ArnLike: {
        'aws:SourceArn': Arn.format(
          {
            service: 'cloudwatch',
            resource: 'alarm',
            resourceName: '*',
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          },
          Stack.of(this),
        ),
      },
    };
    const cloudWatch = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [cloudWatch],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: alarmsOfThisAccount,
      }),
    );
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'IoT pipeline alerts',
      masterKey: this.key,
      enforceSSL: true,
    });
    // The topic policy (enforceSSL makes one) replaces SNS's default policy, which let this
    // account's services publish: CloudWatch alarms need their own statement, same conditions.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [cloudWatch],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: alarmsOfThisAccount,
      }),
    );
    if (props.email) {
      this.topic.addSubscription(
        new subscriptions.EmailSubscription(props.email, {
          ...(props.emailSeverities && {
            filterPolicy: {
              severity: sns.SubscriptionFilter.stringFilter({ allowlist: [...props.emailSeverities] }),
            },
          }),
        }),
      );
    }
    if (props.webhookUrl) this.topic.addSubscription(new subscriptions.UrlSubscription(props.webhookUrl));
  }

  /**
   * Lets a function publish alerts: sns:Publish on the topic, the topic key to encrypt
   * with, and the topic named in its environment (`ALERT_TOPIC_ARN`).
   */
  grantPublish(fn: lambda.Function): void {
    this.topic.grantPublish(fn);
    fn.addEnvironment(ENV.alertTopicArn, this.topic.topicArn);
    Validations.of(fn).acknowledge({
      id: 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
      reason:
        'Publishing to a KMS-encrypted SNS topic needs GenerateDataKey*; the grant is on the alert topic key only.',
    });
  }
}
