import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, validateConfig } from '../../lib/config.ts';
import { loadConfig } from '../../lib/config-sources.ts';

const context = (values: Record<string, unknown>) => (key: string) => values[key];

describe('loadConfig', () => {
  it('returns the defaults when nothing is set', () => {
    expect(loadConfig(context({}))).toEqual(DEFAULT_CONFIG);
  });

  it('layers a config file, the iotPipeline context object and single flags, later winning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-'));
    const file = join(dir, 'pipeline.json');
    writeFileSync(
      file,
      JSON.stringify({ stage: 'file', ingest: { batchSize: 50 }, http: { throttleRateLimit: 7 } }),
    );
    const config = loadConfig(
      context({
        config: file,
        iotPipeline: { ingest: { batchSize: 60 } },
        stage: 'flag',
        timestream: 'false',
      }),
    );
    expect(config.stage).toBe('flag');
    expect(config.ingest.batchSize).toBe(60);
    expect(config.ingest.maxReceiveCount).toBe(DEFAULT_CONFIG.ingest.maxReceiveCount);
    expect(config.http.throttleRateLimit).toBe(7);
    expect(config.timestream.enabled).toBe(false);
  });

  it('names the file when it cannot be read', () => {
    expect(() => loadConfig(context({ config: '/nonexistent/pipeline.json' }))).toThrow(
      /Invalid config "config": got "\/nonexistent\/pipeline.json"/,
    );
  });
});

describe('validateConfig', () => {
  it.each([
    [{ stage: 'Prod' }, '"stage": got "Prod", expected lowercase letters and digits'],
    [{ stages: 'x' }, '"stages": got "x", expected one of the keys'],
    [{ timestream: { enabled: 'yes' } }, '"timestream.enabled": got "yes", expected true or false'],
    [
      { timestream: { memoryRetentionHours: 0 } },
      '"timestream.memoryRetentionHours": got 0, expected an integer from 1 to 8766',
    ],
    [
      { ingest: { batchSize: 500, maxBatchingWindowSeconds: 0 } },
      '"ingest.maxBatchingWindowSeconds": got 0, expected at least 1',
    ],
    [{ ingest: { timeout: 5 } }, '"ingest.timeout": got 5, expected one of batchSize'],
    [
      { alerts: { email: 'not-an-address' } },
      '"alerts.email": got "not-an-address", expected an email address',
    ],
    [{ deviceTypes: { 'bad/type': {} } }, '"deviceTypes.bad/type"'],
    [
      { validation: { maxPayloadBytes: 10_000_000 } },
      '"validation.maxPayloadBytes": got 10000000, expected an integer from 16 to 262144',
    ],
  ])('rejects %j', (input, message) => {
    expect(() => validateConfig(input)).toThrow(message);
  });
});
