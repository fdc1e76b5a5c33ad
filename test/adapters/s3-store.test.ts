import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Store } from '../../lambdas/adapters/aws/s3-store.ts';
import { DEFAULT_VALIDATION } from '../../lambdas/core/config.ts';
import { decodeMessage, writeBatch } from '../../lambdas/core/ingest.ts';
import { mqttMessage } from '../support/fakes.ts';

describe('s3Store against a local server speaking the S3 protocol', () => {
  let server: S3rver;
  let client: S3Client;

  beforeAll(async () => {
    server = new S3rver({
      port: 0,
      address: '127.0.0.1',
      silent: true,
      directory: mkdtempSync(join(tmpdir(), 's3rver-')),
    });
    const { port } = await server.run();
    client = new S3Client({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    await client.send(new CreateBucketCommand({ Bucket: 'lake' }));
  });
  afterAll(async () => {
    client?.destroy();
    await server?.close();
  });

  it('writes the ingest batch as gzip NDJSON objects that read back intact', async () => {
    // Arrange
    const config = { deviceTypes: {}, validation: DEFAULT_VALIDATION };
    const outcomes = [
      decodeMessage(mqttMessage('m1', { temp: 21.5, ok: true }, 'dt/thermo/dev-1', Date.now()), config),
    ];
    // Act
    const failures = await writeBatch(outcomes, { config, lake: s3Store(client, 'lake') });
    // Assert
    expect(failures.size).toBe(0);
    const key = `readings/dt=${new Date().toISOString().slice(0, 10)}`;
    const listed = await client.send(new ListObjectsV2Command({ Bucket: 'lake', Prefix: key }));
    expect(listed.Contents).toHaveLength(1);
    const object = await client.send(
      new GetObjectCommand({ Bucket: 'lake', Key: listed.Contents?.[0]?.Key }),
    );
    expect(object.ContentType).toBe('application/x-ndjson');
    expect(object.ContentEncoding).toBe('gzip');
    const lines = gunzipSync(Buffer.from((await object.Body?.transformToByteArray()) ?? []))
      .toString()
      .trim()
      .split('\n');
    expect(
      lines.map((l) => JSON.parse(l)).map((r) => [r.metric, r.value ?? null, r.value_bool ?? null]),
    ).toEqual([
      ['temp', 21.5, null],
      ['ok', null, true],
    ]);
  });

  it('surfaces an S3 error (missing bucket) as a thrown error, so the message is retried', async () => {
    await expect(
      s3Store(client, 'no-such-bucket').put('raw/x', Buffer.from('x'), 'text/plain'),
    ).rejects.toThrow();
  });
});
