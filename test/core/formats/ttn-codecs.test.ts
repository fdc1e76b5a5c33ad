/**
 * Real The Things Stack uplinks whose `decoded_payload` comes from the device
 * repository's own codecs (test/fixtures/networks/ttn/SOURCES.md): arrays of readings
 * inside the payload, and names that are columns of the tables, stored rather than
 * quarantined.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type RuntimeConfig, validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import type { Envelope } from '../../../lambdas/core/formats/format.ts';
import { decodeMessage } from '../../../lambdas/core/ingest/decode.ts';
import { ingestOf, NOW, postToEdge } from '../../support/fakes.ts';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/networks/ttn/${name}`, import.meta.url), 'utf8');
const config = validateRuntimeConfig({});

/** Through the HTTP edge, then the ingest path, as a webhook travels. */
async function ingest(name: string, path = '/v1/ttn', cfg: RuntimeConfig = config) {
  const { response, queued } = await postToEdge(cfg, path, fixture(name));
  expect(response.statusCode).toBe(202);
  return decodeMessage(
    { messageId: 'm1', body: JSON.stringify(queued[0] as Envelope) },
    ingestOf(cfg, () => NOW),
  );
}

const TIME = Date.parse('2026-11-25T05:59:58.345Z');

describe('The Things Stack uplinks decoded by the device repository codecs', () => {
  it('stores a SenseCAP S2120 uplink: arrays of arrays of measurements under indexed names', async () => {
    const outcome = await ingest('sensecap-s2120.json', '/v1/ttn?type=sensecap-s2120');
    expect(outcome.quarantine).toEqual([]);
    expect(outcome.raw?.warnings).toBeUndefined();
    expect(outcome.readings).toHaveLength(1);
    expect(outcome.readings[0]).toMatchObject({
      deviceId: 's2120-weather',
      deviceType: 'sensecap-s2120',
      source: 'ttn',
      time: TIME,
      key: 'seq:118',
    });
    expect(outcome.readings[0]?.metrics).toEqual({
      'radio.rssi': -101,
      'radio.snr': 6.5,
      'radio.gateways': 1,
      err: 0,
      payload: '046401010103000A05A0010110430000000000000002011A000000002702',
      valid: true,
      'messages.0.0.Battery(%)': 100,
      'messages.0.0.Hardware Version': '1.1',
      'messages.0.0.Firmware Version': '1.3',
      'messages.0.0.measureInterval': 600,
      'messages.0.0.gpsInterval': 86400,
      'messages.1.0.measurementValue': 27.2,
      'messages.1.0.measurementId': '4097',
      'messages.1.0.type': 'Air Temperature',
      'messages.1.1.measurementValue': 67,
      'messages.1.1.measurementId': '4098',
      'messages.1.1.type': 'Air Humidity',
      'messages.1.2.measurementValue': 0,
      'messages.1.2.measurementId': '4099',
      'messages.1.2.type': 'Light Intensity',
      'messages.1.3.measurementValue': 0,
      'messages.1.3.measurementId': '4190',
      'messages.1.3.type': 'UV Index',
      'messages.1.4.measurementValue': 0,
      'messages.1.4.measurementId': '4105',
      'messages.1.4.type': 'Wind Speed',
      'messages.2.0.measurementValue': 282,
      'messages.2.0.measurementId': '4104',
      'messages.2.0.type': 'Wind Direction Sensor',
      'messages.2.1.measurementValue': 0,
      'messages.2.1.measurementId': '4113',
      'messages.2.1.type': 'Rain Gauge',
      'messages.2.2.measurementValue': 99860,
      'messages.2.2.measurementId': '4101',
      'messages.2.2.type': 'Barometric Pressure',
    });
  });

  it('stores a SenseCAP S210x uplink: an array of measurement objects', async () => {
    const outcome = await ingest('sensecap-s2103.json');
    expect(outcome.quarantine).toEqual([]);
    expect(outcome.readings[0]?.metrics).toMatchObject({
      'messages.0.type': 'report_telemetry',
      'messages.0.measurementId': 4097,
      'messages.0.measurementValue': 21.4,
      'messages.1.measurementId': 4098,
      'messages.1.measurementValue': 31.4,
    });
  });

  it('stores a Decentlab DL-5TM uplink, its device_id field as $device_id', async () => {
    const outcome = await ingest('decentlab-dl-5tm.json');
    expect(outcome.quarantine).toEqual([]);
    expect(outcome.raw?.warnings).toBeUndefined();
    expect(outcome.readings).toEqual([
      expect.objectContaining({
        deviceId: 'dl-5tm-571',
        metrics: {
          'radio.rssi': -109,
          'radio.snr': -2.75,
          'radio.gateways': 1,
          'battery_voltage.displayName': 'Battery voltage',
          'battery_voltage.unit': 'V',
          'battery_voltage.value': 3.168,
          $device_id: 571,
          'dielectric_permittivity.displayName': 'Dielectric permittivity',
          'dielectric_permittivity.value': 1.1,
          protocol_version: 2,
          'soil_temperature.displayName': 'Soil temperature',
          'soil_temperature.unit': '°C',
          'soil_temperature.value': 22.5,
          'volumetric_water_content.displayName': 'Volumetric water content',
          'volumetric_water_content.unit': 'm³⋅m⁻³',
          'volumetric_water_content.value': -0.0215397767,
        },
      }),
    ]);
  });

  it('stores a Browan TBMS100 uplink, its time field as $time, the reading time the network time', async () => {
    const outcome = await ingest('browan-tbms100.json');
    expect(outcome.quarantine).toEqual([]);
    expect(outcome.readings).toEqual([
      expect.objectContaining({
        deviceId: 'tbms100-hall',
        time: TIME,
        metrics: {
          'radio.rssi': -79,
          'radio.snr': 8,
          'radio.gateways': 1,
          battery: 3.6,
          count: 96476,
          status: 1,
          temperatureBoard: 20,
          $time: 4,
        },
      }),
    ]);
  });

  it('stores what fits of an S2120 uplink past validation.maxMetrics, the rest said in the raw warnings', async () => {
    const small = validateRuntimeConfig({ validation: { maxMetrics: 20 } });
    const outcome = await ingest('sensecap-s2120.json', '/v1/ttn', small);
    expect(outcome.quarantine).toEqual([]);
    const metrics = outcome.readings[0]?.metrics ?? {};
    // Three radio metrics and the first 17 of the payload, in its order.
    expect(Object.keys(metrics)).toHaveLength(20);
    expect(metrics['messages.1.2.type']).toBe('Light Intensity');
    expect(metrics['messages.1.3.measurementValue']).toBeUndefined();
    expect(JSON.parse(outcome.raw?.warnings ?? '[]')).toEqual([
      'not stored: 15 fields past validation.maxMetrics (more than 20 metrics in one reading), from "messages.1.3" on',
    ]);
  });
});
