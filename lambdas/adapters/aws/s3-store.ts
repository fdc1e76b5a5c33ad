import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { CompactionStore, LakeObject } from '../../core/lake/compaction.ts';

/** S3 takes at most this many keys per DeleteObjects call. */
const DELETE_BATCH = 1000;

/**
 * The lake on S3: one PutObject per object, into the bucket the stack created; listing
 * and reading for re-decoding and compaction.
 */
export function s3Store(client: S3Client, bucket: string): CompactionStore {
  const listObjects = async (prefix: string): Promise<LakeObject[]> => {
    const objects: LakeObject[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key)
          objects.push({
            key: object.Key,
            lastModified: object.LastModified?.getTime() ?? Date.now(),
            size: object.Size ?? 0,
          });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return objects;
  };
  return {
    listObjects,
    async put(key, body, contentType, contentEncoding) {
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentType: contentType,
          ContentEncoding: contentEncoding,
        }),
      );
    },
    async list(prefix) {
      return (await listObjects(prefix)).map((object) => object.key);
    },
    async get(key) {
      const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if (!object.Body) throw new Error(`s3://${bucket}/${key} has no body`);
      return Buffer.from(await object.Body.transformToByteArray());
    },
    async delete(key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    async deleteMany(keys) {
      for (let i = 0; i < keys.length; i += DELETE_BATCH) {
        const answer = await client.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: keys.slice(i, i + DELETE_BATCH).map((Key) => ({ Key })), Quiet: true },
          }),
        );
        const errors = answer.Errors ?? [];
        if (errors.length > 0) {
          const first = errors[0];
          throw new Error(
            `s3://${bucket}: ${errors.length} of ${keys.length} keys not deleted, e.g. ${first?.Key}: ${first?.Code} ${first?.Message}`,
          );
        }
      }
    },
  };
}
