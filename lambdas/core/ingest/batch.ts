/**
 * The ingest path's entry: one batch of queue messages in, the messages to retry out.
 * The ingest Lambda calls it with an SQS batch, the local runtime with its queue's.
 *
 * Batch-first, rather than Powertools' per-record processor: the writes are per batch
 * (one lake object per partition, Timestream calls of 100 records, one registry update
 * per device, codecs run once per batch), which is what makes the pipeline cheap; the
 * per-message result SQS needs is the map of failures this returns.
 */
import { asError } from './claims.ts';
import { decodeMessage, decodeMessages, type IngestContext } from './decode.ts';
import type { QueueMessage } from './queue-message.ts';
import type { MessageOutcome } from './records.ts';
import { type BatchFailures, type IngestDeps, writeBatch } from './write.ts';

/** Decodes and stores a batch; resolves with the messages that must be retried, and why. */
export async function ingestBatch(
  messages: readonly QueueMessage[],
  deps: IngestDeps,
): Promise<BatchFailures> {
  const outcomes = await decodeSafely(messages, deps);
  return deps.writeTurn ? deps.writeTurn(() => writeBatch(outcomes, deps)) : writeBatch(outcomes, deps);
}

/**
 * decodeMessages is total; should it throw anyway (a bug), each message is decoded on
 * its own, and one that still throws is failed for a retry without taking the rest along.
 */
async function decodeSafely(
  messages: readonly QueueMessage[],
  ingest: IngestContext,
): Promise<MessageOutcome[]> {
  try {
    return await decodeMessages(messages, ingest);
  } catch {
    return messages.map((message) => {
      try {
        return decodeMessage(message, ingest);
      } catch (error) {
        return {
          messageId: message.messageId,
          receivedAt: Date.now(),
          readings: [],
          quarantine: [],
          error: asError(error),
        };
      }
    });
  }
}
