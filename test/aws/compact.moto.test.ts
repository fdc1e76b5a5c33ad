/**
 * The compaction Lambda's handler (`lambdas/handlers/compact.ts`) against moto's S3, with
 * the SDK's real wire protocol: ListObjectsV2 with times and sizes, GetObject, PutObject,
 * DeleteObjects. Small objects of an hour of today become one; a corrupt one stays.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { s3Store } from '../../lambdas/adapters/aws/s3-store.ts';
import type { CompactionResult } from '../../lambdas/core/lake/compaction.ts';
import { lakeTimestamp } from '../../lambdas/core/lake/tables.ts';
import { skipWithout } from '../support/aws-tools.ts';
import { type Moto, startMoto } from '../support/moto.ts';

describe.skipIf(skipWithout('moto_server', 'botocore'))('compaction handler against moto', () => {
  let moto: Moto;
  let s3: S3Client;
  let compact: (event?: { days?: string[] }) => Promise<CompactionResult>;

  beforeAll(async () => {
    moto = await startMoto();
    s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'lake' }));
    for (const [name, value] of Object.entries({
      ...moto.env,
      LAKE_BUCKET: 'lake',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      POWERTOOLS_DEV: 'true',
    })) {
      vi.stubEnv(name, value);
    }
    ({ handler: compact } = await import('../../lambdas/handlers/compact.ts'));
  }, 60_000);
  afterAll(async () => {
    vi.unstubAllEnvs();
    await moto?.stop();
  });

  it('merges an hour of a day into one object, leaves a corrupt object, and refuses a bad day', async () => {
    const day = '2026-11-30';
    const prefix = `readings/dt=${day}/hour=07/`;
    const row = (device: string) =>
      JSON.stringify({
        device_id: device,
        time: `${day} 07:00:00.000`,
        metric: 'temp',
        value: 1,
        received_at: lakeTimestamp(Date.parse(`${day}T07:00:01Z`)),
        message_id: `m-${device}`,
      });
    const put = (key: string, body: Buffer) =>
      s3.send(new PutObjectCommand({ Bucket: 'lake', Key: key, Body: body }));
    await put(`${prefix}a.ndjson.gz`, gzipSync(`${row('a')}\n${row('b')}\n`));
    await put(`${prefix}b.ndjson.gz`, gzipSync(`${row('b')}\n${row('c')}\n`));
    await put(`${prefix}bad.ndjson.gz`, Buffer.from('not gzip'));
    // Objects moto just took are younger than two minutes: a run now leaves them alone.
    expect(await compact({ days: [day] })).toMatchObject({ objectsRead: 0, objectsWritten: 0 });
    // Two minutes later, as the next scheduled run would see them.
    vi.useFakeTimers({ now: Date.now() + 3 * 60_000, toFake: ['Date'] });
    try {
      const result = await compact({ days: [day] });
      expect(result).toMatchObject({
        objectsRead: 2,
        objectsWritten: 1,
        objectsDeleted: 2,
        skipped: 1,
        rowsWritten: 3,
      });
    } finally {
      vi.useRealTimers();
    }
    const lake = s3Store(s3, 'lake');
    const keys = (await lake.list(prefix)).sort();
    expect(keys).toEqual([
      `${prefix}bad.ndjson.gz`,
      expect.stringMatching(/\/compacted-[0-9a-f]{32}\.ndjson\.gz$/),
    ]);
    const rows = gunzipSync(await lake.get(keys[1] as string))
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).device_id);
    expect(rows).toEqual(['a', 'b', 'c']);
    await expect(compact({ days: ['2026-13-01'] })).rejects.toThrow(/not a day/);
  }, 60_000);
});
