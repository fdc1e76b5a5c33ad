import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Envelope } from '../../core/formats/format.ts';

/** Enqueues an envelope on the ingest queue and returns SQS's message id. */
export function sqsEnqueue(client: SQSClient, queueUrl: string): (envelope: Envelope) => Promise<string> {
  return async (envelope) => {
    const result = await client.send(
      new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(envelope) }),
    );
    if (!result.MessageId) throw new Error('SQS accepted the message without a message id');
    return result.MessageId;
  };
}
