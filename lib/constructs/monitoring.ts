import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { Alerts } from './alerts.ts';

export interface MonitoringProps {
  /** The alert topic the alarms notify (on alarm and when back to OK). */
  readonly alerts: Alerts;
  /**
   * Dead-letter queues, by a PascalCase name that is part of the alarm's id: any
   * message in one is data waiting for a human.
   */
  readonly deadLetterQueues: Readonly<Record<string, sqs.IQueue>>;
  /** Functions whose errors alarm, by a PascalCase name that is part of the alarm's id. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /**
   * IoT topic rules whose action failures alarm, by name.
   *
   * @default none
   */
  readonly topicRuleNames?: readonly string[];
}

/**
 * Operational alarms, all to the alert topic: a message in a DLQ, a Lambda error, an
 * IoT rule action that failed. "Nothing lost" needs someone to hear about the rest.
 */
export class Monitoring extends Construct {
  public readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    for (const name of [...Object.keys(props.deadLetterQueues), ...Object.keys(props.functions)]) {
      if (!/^[A-Z][A-Za-z0-9]*$/.test(name)) {
        throw new Error(
          `Monitoring: names of queues and functions must be PascalCase (alarm ids), got "${name}"`,
        );
      }
    }
    const notify = new actions.SnsAction(props.alerts.topic);
    const add = (alarmId: string, metric: cloudwatch.IMetric, description: string) => {
      const alarm = new cloudwatch.Alarm(this, alarmId, {
        metric,
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
      this.alarms.push(alarm);
    };
    for (const [name, queue] of Object.entries(props.deadLetterQueues)) {
      add(
        `${name}DlqNotEmpty`,
        queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' }),
        `Messages are waiting in the ${name} dead-letter queue: inspect them and redrive.`,
      );
    }
    for (const [name, fn] of Object.entries(props.functions)) {
      add(
        `${name}Errors`,
        fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        `The ${name} function failed.`,
      );
    }
    for (const ruleName of props.topicRuleNames ?? []) {
      add(
        `Rule${ruleName.replace(/[^A-Za-z0-9]/g, '')}Failures`,
        new cloudwatch.Metric({
          namespace: 'AWS/IoT',
          metricName: 'Failure',
          // Action metrics carry both dimensions; the rule's only action is SQS.
          dimensionsMap: { RuleName: ruleName, ActionType: 'SQS' },
          period: Duration.minutes(5),
          statistic: 'Sum',
        }),
        `IoT rule ${ruleName} failed to run an action; the message went to the error action.`,
      );
    }
  }
}
