import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { type DeltaQueue, MAX_SHARDS } from '../../core/estate/delta.ts';

/** SQS takes at most ten messages and 256 KiB of them in one SendMessageBatch. */
const MAX_ENTRIES = 10;
const MAX_BATCH_BYTES = 256 * 1024;

/**
 * The estate queues on SQS, one per shard (`queueUrls[shard]`): each shard's bodies in as
 * few SendMessageBatch calls as fit (ten entries, 256 KiB a call). Resolves with the
 * indexes SQS did not take, each with why; a call that throws fails its entries (the
 * ingest path then retries their messages).
 */
export function sqsDeltaQueue(client: SQSClient, queueUrls: readonly string[]): DeltaQueue {
  if (queueUrls.length < 1 || queueUrls.length > MAX_SHARDS)
    throw new RangeError(`the estate needs 1 to ${MAX_SHARDS} queue URLs, got ${queueUrls.length}`);
  return {
    shards: queueUrls.length,
    async send(deltas) {
      const calls: { url: string; indexes: number[] }[] = [];
      queueUrls.forEach((url, shard) => {
        let call: number[] = [];
        let bytes = 0;
        deltas.forEach(({ shard: to, body }, index) => {
          if (to !== shard) return;
          const size = Buffer.byteLength(body);
          if (call.length === MAX_ENTRIES || (call.length > 0 && bytes + size > MAX_BATCH_BYTES)) {
            calls.push({ url, indexes: call });
            call = [];
            bytes = 0;
          }
          call.push(index);
          bytes += size;
        });
        if (call.length > 0) calls.push({ url, indexes: call });
      });
      const unsent = new Map<number, Error>();
      await Promise.all(
        calls.map(async ({ url, indexes }) => {
          try {
            const result = await client.send(
              new SendMessageBatchCommand({
                QueueUrl: url,
                Entries: indexes.map((index) => ({
                  Id: String(index),
                  MessageBody: deltas[index]?.body as string,
                })),
              }),
            );
            for (const failed of result.Failed ?? [])
              unsent.set(
                Number(failed.Id),
                new Error(
                  `SQS refused the estate update: ${failed.Code ?? 'error'} ${failed.Message ?? ''}`.trim(),
                ),
              );
          } catch (error) {
            for (const index of indexes)
              unsent.set(index, error instanceof Error ? error : new Error(String(error)));
          }
        }),
      );
      return unsent;
    },
  };
}
