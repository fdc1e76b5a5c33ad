import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { decodeMessage } from '../../../lambdas/core/ingest/decode.ts';
import type { LakeStore } from '../../../lambdas/core/ingest/ports.ts';
import { writeBatch } from '../../../lambdas/core/ingest/write.ts';
import { folderStore } from '../../../local/adapters/folder-store.ts';
import { redecode } from '../../../tools/redecode/redecode.ts';
import { ingestOf, mqttMessage, NOW } from '../../support/fakes.ts';

async function lines(store: LakeStore, prefix: string) {
  const out: Record<string, unknown>[] = [];
  for (const key of await store.list(prefix)) {
    for (const line of gunzipSync(await store.get(key))
      .toString()
      .split('\n')
      .filter(Boolean))
      out.push(JSON.parse(line));
  }
  return out;
}

const tracker = (grammar: string) =>
  validateRuntimeConfig({ deviceTypes: { tracker: { decoder: { sigfox: grammar } } } });
const messages = [
  mqttMessage('bin-1', Buffer.from('0992', 'hex'), 'dt/tracker/t-1'),
  mqttMessage('bin-2', Buffer.from('fc18', 'hex'), 'dt/tracker/t-2', NOW + 1000),
  mqttMessage('json-1', { temp: 20 }, 'dt/thermo/th-1', NOW + 2000),
];

async function ingested(config: ReturnType<typeof validateRuntimeConfig>) {
  const store = folderStore(await mkdtemp(join(tmpdir(), 'redecode-')));
  await writeBatch(
    messages.map((m) =>
      decodeMessage(
        m,
        ingestOf(config, () => NOW),
      ),
    ),
    { lake: store },
  );
  return store;
}

describe('redecode: decoding the raw archive again', () => {
  it('turns what was quarantined for want of a decoder into readings, once the decoder exists', async () => {
    const store = await ingested(validateRuntimeConfig({}));
    expect((await lines(store, 'quarantine/')).map((q) => q.reason_code)).toEqual([
      'invalid_json',
      'invalid_json',
    ]);

    const report = await redecode(store, tracker('temp::int:16*0.01'), {
      from: '2026-11-25',
      to: '2026-11-25',
      lookbackDays: 2,
    });

    expect(report).toMatchObject({
      days: 1,
      messages: 3,
      readings: 3,
      quarantined: 0,
      removedLines: 3,
      failedMessages: 0,
    });
    expect(await lines(store, 'quarantine/')).toEqual([]);
    const readings = await lines(store, 'readings/');
    expect(readings.map((r) => [r.device_id, r.metric, r.value]).sort()).toEqual([
      ['t-1', 'temp', 24.5],
      ['t-2', 'temp', -10],
      ['th-1', 'temp', 20],
    ]);
    // The raw archive is the source of truth: untouched.
    expect(await lines(store, 'raw/')).toHaveLength(3);
  });

  it('replaces the readings of a wrong decoder instead of adding to them, and can run twice', async () => {
    const store = await ingested(tracker('temp::int:16'));
    expect((await lines(store, 'readings/')).find((r) => r.device_id === 't-1')?.value).toBe(2450);
    const fixed = tracker('temp::int:16*0.01');
    await redecode(store, fixed, { from: '2026-11-25', to: '2026-11-25', lookbackDays: 2 });
    const again = await redecode(store, fixed, { from: '2026-11-24', to: '2026-11-26', lookbackDays: 2 });
    expect(again).toMatchObject({ days: 3, messages: 3, readings: 3 });
    const readings = await lines(store, 'readings/');
    expect(readings.map((r) => [r.device_id, r.value]).sort()).toEqual([
      ['t-1', 24.5],
      ['t-2', -10],
      ['th-1', 20],
    ]);
  });

  it('stores a resent Sigfox frame once when decoding again', async () => {
    const store = folderStore(await mkdtemp(join(tmpdir(), 'redecode-')));
    const callback = (duplicate: boolean) =>
      JSON.stringify({
        device: '1A2B3C',
        time: NOW / 1000 - 2,
        data: '0992',
        seqNumber: 9,
        ack: false,
        duplicate,
      });
    const envelope = (id: string, at: number, body: string) => ({
      messageId: id,
      body: JSON.stringify({
        source: 'sigfox',
        payload: Buffer.from(body).toString('base64'),
        topic: '/v1/sigfox?type=tracker',
        receivedAt: at,
      }),
    });
    const before = validateRuntimeConfig({});
    // Two separate batches (no claims here): both callbacks quarantined for want of a grammar.
    for (const m of [
      envelope('first', NOW, callback(false)),
      envelope('again', NOW + 60_000, callback(true)),
    ]) {
      await writeBatch(
        [
          decodeMessage(
            m,
            ingestOf(before, () => NOW),
          ),
        ],
        { lake: store },
      );
    }
    await redecode(store, tracker('temp::int:16*0.01'), {
      from: '2026-11-25',
      to: '2026-11-25',
      lookbackDays: 1,
    });
    const readings = await lines(store, 'readings/');
    expect(readings.map((r) => [r.message_id, r.metric, r.value])).toEqual([['first', 'temp', 24.5]]);
  });

  it('explains a day it cannot read', async () => {
    const store = await ingested(validateRuntimeConfig({}));
    await expect(
      redecode(store, validateRuntimeConfig({}), { from: '25.11.2026', to: '2026-11-25', lookbackDays: 2 }),
    ).rejects.toThrow('--from "25.11.2026" is not a day; write YYYY-MM-DD');
    await expect(
      redecode(store, validateRuntimeConfig({}), { from: '2026-11-25', to: '2026-11-01', lookbackDays: 2 }),
    ).rejects.toThrow('--to 2026-11-01 is before --from 2026-11-25');
  });
});
