import { PublishBatchCommand, type SNSClient } from '@aws-sdk/client-sns';
import { alertSubject } from '../../core/estate/alerts.ts';
import { type AlertPublisher, alertBody } from '../../core/estate/update.ts';

/**
 * Alerts on the SNS topic: a human subject line, the JSON body, and message attributes
 * (severity, rule, deviceType, state) that subscriptions filter on. PublishBatch, ten
 * a call; an entry SNS refuses fails the whole publish, so the messages are retried.
 */
export function snsAlerts(client: SNSClient, topicArn: string): AlertPublisher {
  return {
    async publish(events) {
      for (let i = 0; i < events.length; i += 10) {
        const part = events.slice(i, i + 10);
        const result = await client.send(
          new PublishBatchCommand({
            TopicArn: topicArn,
            PublishBatchRequestEntries: part.map((event, k) => ({
              Id: String(k),
              Subject: alertSubject(event),
              Message: JSON.stringify(alertBody(event)),
              MessageAttributes: {
                severity: { DataType: 'String', StringValue: event.severity },
                rule: { DataType: 'String', StringValue: event.rule },
                deviceType: { DataType: 'String', StringValue: event.deviceType },
                state: { DataType: 'String', StringValue: event.state },
              },
            })),
          }),
        );
        if (result.Failed?.length) {
          throw new Error(
            `SNS refused ${result.Failed.length} alert(s): ${result.Failed.map((f) => f.Message ?? f.Code).join('; ')}`,
          );
        }
      }
    },
  };
}
