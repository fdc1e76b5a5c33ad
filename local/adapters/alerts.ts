import { alertSubject } from '../../lambdas/core/estate/alerts.ts';
import { type AlertPublisher, alertBody } from '../../lambdas/core/estate/update.ts';

/**
 * Alerts on a laptop: one line each on the console, and, when a webhook URL is given,
 * a POST of the same JSON body SNS would carry (with the subject and attributes
 * beside it). A webhook that fails is reported and does not hold up ingest.
 */
export function localAlerts(options: { log: (line: string) => void; webhookUrl?: string }): AlertPublisher {
  return {
    async publish(events) {
      for (const event of events) {
        options.log(`ALERT ${alertSubject(event)}`);
        if (!options.webhookUrl) continue;
        try {
          const response = await fetch(options.webhookUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              subject: alertSubject(event),
              attributes: {
                severity: event.severity,
                rule: event.rule,
                deviceType: event.deviceType,
                state: event.state,
              },
              message: alertBody(event),
            }),
          });
          if (!response.ok) options.log(`alert webhook ${options.webhookUrl} answered ${response.status}`);
        } catch (error) {
          options.log(`alert webhook ${options.webhookUrl} failed: ${(error as Error).message}`);
        }
      }
    },
  };
}
