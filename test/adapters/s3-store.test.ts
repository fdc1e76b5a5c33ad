import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Store } from '../../lambdas/adapters/aws/s3-store.ts';
import { validateRuntimeConfig } from '../../lambdas/core/config.ts';
import { decodeMessage } from '../../lambdas/core/ingest/decode.ts';
import { writeBatch } from '../../lambdas/core/ingest/write.ts';
import { compactLake } from '../../lambdas/core/lake/compaction.ts';
import { redecode } from '../../tools/redecode/redecode.ts';
import { ingestOf, mqttMessage } from '../support/fakes.ts';

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
    const config = validateRuntimeConfig({});
    const outcomes = [
      decodeMessage(
        mqttMessage('m1', { temp: 21.5, ok: true }, 'dt/thermo/dev-1', Date.now()),
        ingestOf(config),
      ),
    ];
    // Act
    const failures = await writeBatch(outcomes, { lake: s3Store(client, 'lake') });
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

  it('lists, reads and deletes objects, so redecode can run on the S3 lake', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'listing' }));
    const store = s3Store(client, 'listing');
    // Paging (past 1,000 keys) is tested with a mock below: s3rver cannot make continuation tokens on OpenSSL 3.
    const keys = Array.from({ length: 30 }, (_, i) => `raw/k-${String(i).padStart(4, '0')}`);
    await Promise.all(keys.map((key) => store.put(key, Buffer.from(key), 'text/plain')));
    await store.put('readings/other', Buffer.from('x'), 'text/plain');
    expect((await store.list('raw/')).sort()).toEqual(keys);
    expect((await store.get('raw/k-0004')).toString()).toBe('raw/k-0004');
    await store.delete('raw/k-0004');
    expect((await store.list('raw/k-000')).sort()).toEqual(
      keys.slice(0, 10).filter((k) => k !== 'raw/k-0004'),
    );
  });

  it('compacts an hour of readings on S3: listed with times and sizes, merged, inputs deleted in one call', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'compact' }));
    const store = s3Store(client, 'compact');
    const prefix = 'readings/dt=2026-12-01/hour=12/';
    const row = (minute: number) =>
      JSON.stringify({ device_id: 'd', time: `2026-12-01 12:0${minute}:00.000`, metric: 't', value: minute });
    for (const minute of [1, 2, 3])
      await store.put(
        `${prefix}b${minute}.ndjson.gz`,
        gzipSync(`${row(minute)}\n`),
        'application/x-ndjson',
        'gzip',
      );
    const listed = await store.listObjects(prefix);
    expect(listed.map((o) => o.key).sort()).toEqual([1, 2, 3].map((m) => `${prefix}b${m}.ndjson.gz`));
    for (const object of listed) {
      expect(object.size).toBeGreaterThan(20);
      expect(Math.abs(object.lastModified - Date.now())).toBeLessThan(3_600_000);
    }
    const result = await compactLake(store, {
      days: ['2026-12-01'],
      now: Date.now(),
      limits: { minAgeMs: 0 },
    });
    expect(result).toMatchObject({ objectsRead: 3, objectsWritten: 1, objectsDeleted: 3 });
    const keys = await store.list(prefix);
    expect(keys).toEqual([expect.stringMatching(/\/compacted-[0-9a-f]{32}\.ndjson\.gz$/)]);
    expect(gunzipSync(await store.get(keys[0] as string)).toString()).toBe(
      `${[1, 2, 3].map(row).join('\n')}\n`,
    );
  });

  it('decodes the S3 raw archive again (redecode)', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'history' }));
    const store = s3Store(client, 'history');
    const before = validateRuntimeConfig({});
    const now = Date.now();
    await writeBatch(
      [decodeMessage(mqttMessage('b1', Buffer.from('0992', 'hex'), 'dt/tracker/t-1', now), ingestOf(before))],
      { lake: store },
    );
    const after = validateRuntimeConfig({
      deviceTypes: { tracker: { decoder: { sigfox: 'temp::int:16*0.01' } } },
    });
    const day = new Date(now).toISOString().slice(0, 10);
    const report = await redecode(store, after, { from: day, to: day, lookbackDays: 1 });
    expect(report).toMatchObject({ messages: 1, readings: 1, quarantined: 0, removedLines: 1 });
    expect(await store.list('quarantine/')).toEqual([]);
  });
});

describe('s3Store listing', () => {
  it('follows continuation tokens across pages', async () => {
    const s3 = mockClient(S3Client);
    s3.on(ListObjectsV2Command, { ContinuationToken: undefined })
      .resolves({ Contents: [{ Key: 'raw/a' }], IsTruncated: true, NextContinuationToken: 't1' })
      .on(ListObjectsV2Command, { ContinuationToken: 't1' })
      .resolves({ Contents: [{ Key: 'raw/b' }], IsTruncated: false });
    expect(await s3Store(new S3Client({}), 'lake').list('raw/')).toEqual(['raw/a', 'raw/b']);
    expect(s3.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'lake', Prefix: 'raw/', ContinuationToken: undefined },
      { Bucket: 'lake', Prefix: 'raw/', ContinuationToken: 't1' },
    ]);
    s3.restore();
  });
});

describe('s3Store deleteMany', () => {
  it('deletes in calls of at most 1,000 keys, and throws naming a key S3 did not delete', async () => {
    const s3 = mockClient(S3Client);
    s3.on(DeleteObjectsCommand)
      .resolves({})
      .on(DeleteObjectsCommand, { Bucket: 'bad' })
      .resolves({
        Errors: [{ Key: 'readings/x', Code: 'AccessDenied', Message: 'Access Denied' }],
      });
    const keys = Array.from({ length: 1001 }, (_, i) => `readings/k${i}`);
    await s3Store(new S3Client({}), 'lake').deleteMany(keys);
    const calls = s3.commandCalls(DeleteObjectsCommand).map((c) => c.args[0].input.Delete?.Objects?.length);
    expect(calls).toEqual([1000, 1]);
    await expect(s3Store(new S3Client({}), 'bad').deleteMany(['readings/x'])).rejects.toThrow(
      /1 of 1 keys not deleted, e.g. readings\/x: AccessDenied/,
    );
    s3.restore();
  });
});
