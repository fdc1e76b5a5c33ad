import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ObjectStore } from '../../core/ports.ts';

/** The lake on S3: one PutObject per object, into the bucket the stack created. */
export function s3Store(client: S3Client, bucket: string): ObjectStore {
  return {
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
  };
}
