/**
 * A journal damaged in the middle, as a bad disk leaves it: the start is refused with the
 * file, the offset and what to do; `repairJournal` (what `start --repair` runs) keeps the
 * intact records before the damage, and the next start delivers them into the lake.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { repairJournal } from '../../local/adapters/journal.ts';
import { dataPaths } from '../../local/data-dir.ts';
import { startLocalRuntime } from '../../local/runtime.ts';
import { mqttMessage } from '../support/fakes.ts';

/** One journal frame: `[u32 length][u32 crc32][payload]`, little-endian, as journal.ts writes them. */
function frame(record: object): Buffer {
  const payload = Buffer.from(JSON.stringify(record));
  const header = Buffer.alloc(8);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt32LE(crc32(payload), 4);
  return Buffer.concat([header, payload]);
}

describe('a damaged journal', () => {
  it('stops the start with the file and offset; repairing keeps what precedes the damage, and it is stored', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'iot-journal-damage-'));
    const start = () =>
      startLocalRuntime({ dataDir, mqttPort: 0, httpPort: 0, queue: { batchWindowMs: 20 } });
    await (await start()).close();
    const { journalDir } = dataPaths(dataDir);
    const now = Date.now();
    const before = mqttMessage('kept-1', { temp: 21.5 }, 'dt/thermo/kept-1', now);
    const after = mqttMessage('after-1', { temp: 9 }, 'dt/thermo/after-1', now);
    const segment = join(journalDir, '00009999.log');
    const good = frame({ k: 'put', id: before.messageId, at: now, body: before.body });
    writeFileSync(
      segment,
      Buffer.concat([
        good,
        Buffer.from('this is not a frame at all!!'),
        frame({ k: 'put', id: after.messageId, at: now, body: after.body }),
      ]),
    );

    await expect(start()).rejects.toMatchObject({
      name: 'StartupError',
      message: expect.stringMatching(new RegExp(`00009999\\.log.*${good.length}.*--repair`, 's')),
    });

    const repaired = await repairJournal(journalDir);
    expect(repaired.damaged).toEqual([
      expect.objectContaining({ file: segment, offset: good.length, keptRecords: 1 }),
    ]);
    expect(readdirSync(journalDir).some((name) => name.startsWith('00009999.log.damaged-'))).toBe(true);

    const rt = await start();
    try {
      await vi.waitFor(
        async () => {
          const { rows } = await rt.query("SELECT device_id, value FROM readings WHERE metric = 'temp'");
          expect(rows).toEqual([{ device_id: 'kept-1', value: 21.5 }]);
        },
        { timeout: 15_000, interval: 100 },
      );
    } finally {
      await rt.close();
    }
  }, 60_000);
});
