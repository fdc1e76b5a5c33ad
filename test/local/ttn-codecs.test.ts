/**
 * Real The Things Stack uplinks decoded by the device repository's codecs
 * (test/fixtures/networks/ttn/SOURCES.md), end to end through the local runtime: POSTed
 * over real HTTP to /v1/ttn, rows read back from the lake folder by DuckDB, and the raw
 * record's `warnings` column where a field was refused.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../lib/config.ts';
import type { LocalRuntime } from '../../local/runtime.ts';
import { TEST_API_KEY as API_KEY, startTestRuntime } from '../support/local-runtime.ts';

const WAIT = { timeout: 20_000, interval: 100 };
const FIXTURE_TIME = '2026-11-25T05:59:58.';

describe('local runtime: The Things Stack uplinks from the device repository codecs', () => {
  let rt: LocalRuntime;
  const now = new Date(Date.now() - 2000).toISOString().slice(0, 20);
  /** The fixture, its times moved to now (the age check), its id suffixed. */
  const uplink = (name: string, edit: (body: Record<string, unknown>) => void = () => undefined) => {
    const text = readFileSync(new URL(`../fixtures/networks/ttn/${name}`, import.meta.url), 'utf8');
    const body = JSON.parse(text.replaceAll(FIXTURE_TIME, now)) as Record<string, unknown>;
    edit(body);
    return JSON.stringify(body);
  };
  const send = (path: string, body: string) =>
    fetch(`http://127.0.0.1:${rt.httpPort}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body,
    });

  beforeAll(async () => {
    rt = await startTestRuntime('ttn-codecs', {
      config: validateConfig({ validation: { maxMetrics: 30 } }),
    });
  });

  afterAll(async () => {
    await rt?.close();
  });

  it('stores SenseCAP, Decentlab and Browan uplinks: indexed arrays, $-renamed names, warnings in raw', async () => {
    const responses = await Promise.all([
      send('/v1/ttn?type=sensecap-s2120', uplink('sensecap-s2120.json')),
      send('/v1/ttn', uplink('decentlab-dl-5tm.json')),
      send('/v1/ttn', uplink('browan-tbms100.json')),
      // A value no table can hold, beside good ones: only that field is refused.
      send(
        '/v1/ttn',
        uplink('browan-tbms100.json', (body) => {
          (body.end_device_ids as Record<string, unknown>).device_id = 'tbms100-bad';
          ((body.uplink_message as Record<string, unknown>).decoded_payload as Record<string, unknown>).note =
            'x'.repeat(3000);
        }),
      ),
    ]);
    expect(responses.map((r) => r.status)).toEqual([202, 202, 202, 202]);
    await vi.waitFor(async () => {
      const { rows } = await rt.query(
        "SELECT device_id, device_type, metric, value, value_str FROM readings WHERE source = 'ttn' AND metric IN ('messages.1.0.measurementValue', 'messages.1.0.type', 'messages.2.2.measurementValue', '$device_id', 'soil_temperature.value', '$time', 'count') ORDER BY device_id, metric",
      );
      expect(rows).toEqual([
        { device_id: 'dl-5tm-571', device_type: 'ttn', metric: '$device_id', value: 571, value_str: null },
        {
          device_id: 'dl-5tm-571',
          device_type: 'ttn',
          metric: 'soil_temperature.value',
          value: 22.5,
          value_str: null,
        },
        {
          device_id: 's2120-weather',
          device_type: 'sensecap-s2120',
          metric: 'messages.1.0.measurementValue',
          value: 27.2,
          value_str: null,
        },
        {
          device_id: 's2120-weather',
          device_type: 'sensecap-s2120',
          metric: 'messages.1.0.type',
          value: null,
          value_str: 'Air Temperature',
        },
        // Past maxMetrics (30): the S2120 reading's last fields are in the warnings.
        { device_id: 'tbms100-bad', device_type: 'ttn', metric: '$time', value: 4, value_str: null },
        { device_id: 'tbms100-bad', device_type: 'ttn', metric: 'count', value: 96476, value_str: null },
        { device_id: 'tbms100-hall', device_type: 'ttn', metric: '$time', value: 4, value_str: null },
        { device_id: 'tbms100-hall', device_type: 'ttn', metric: 'count', value: 96476, value_str: null },
      ]);
    }, WAIT);
    const { rows } = await rt.query(
      "SELECT device_id, warnings FROM raw WHERE source = 'ttn' ORDER BY device_id",
    );
    expect(rows).toEqual([
      { device_id: 'dl-5tm-571', warnings: null },
      {
        device_id: 's2120-weather',
        warnings: JSON.stringify([
          'not stored: 5 fields past validation.maxMetrics (more than 30 metrics in one reading), from "messages.2.1.measurementId" on',
        ]),
      },
      {
        device_id: 'tbms100-bad',
        warnings: JSON.stringify(['not stored: metric "note" is a string longer than 2048 bytes']),
      },
      { device_id: 'tbms100-hall', warnings: null },
    ]);
    expect((await rt.query("SELECT count(*)::INT AS n FROM quarantine WHERE source = 'ttn'")).rows).toEqual([
      { n: 0 },
    ]);
  });
});
