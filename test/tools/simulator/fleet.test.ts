import { describe, expect, it } from 'vitest';
import { decodeSigfox, parseSigfoxGrammar } from '../../../lambdas/core/decoders/sigfox-grammar.ts';
import { networkRequest } from '../../../tools/simulator/bodies.ts';
import {
  createFleet,
  isSilent,
  nextReading,
  parseDuration,
  parseRate,
  random,
} from '../../../tools/simulator/fleet.ts';
import { SIMULATOR_SIGFOX_GRAMMAR } from '../../../tools/simulator/run.ts';

const options = { devices: 20, type: 'thermo', silentShare: 0.25, silentWithin: 10, seed: 7 };

describe('device simulator', () => {
  it('builds the same fleet and readings for the same seed', () => {
    const run = () => {
      const rand = random(7);
      const fleet = createFleet(options, rand);
      return fleet.map((d) => nextReading(d, 1_795_000_000_000, rand));
    };
    expect(run()).toEqual(run());
  });

  it('gives devices valid ids and lets the configured share go silent', () => {
    const rand = random(3);
    const fleet = createFleet(options, rand);
    expect(fleet.every((d) => /^sim-\d{4}$/.test(d.id))).toBe(true);
    for (let i = 0; i < 10; i++) for (const d of fleet) if (!isSilent(d)) nextReading(d, i * 60_000, rand);
    expect(fleet.filter(isSilent)).toHaveLength(5);
  });

  it('drains batteries and keeps temperatures near their base', () => {
    const rand = random(11);
    const [device] = createFleet({ ...options, devices: 1, silentShare: 0 }, rand);
    if (!device) throw new Error('no device');
    const first = nextReading(device, 0, rand);
    let last = first;
    for (let i = 1; i < 500; i++) last = nextReading(device, i * 60_000, rand);
    expect(last.battery).toBeLessThan(first.battery);
    expect(Math.abs(last.temp - device.baseTemperature)).toBeLessThan(6);
    expect(last.$seq).toBe(499);
  });

  it.each([
    ['10/s', 10],
    ['600/m', 10],
    ['36/h', 0.01],
    ['5', 5],
  ])('reads rate %s as %d messages a second', (text, expected) => {
    expect(parseRate(text)).toBeCloseTo(expected);
  });

  it('explains a rate or duration it cannot read', () => {
    expect(() => parseRate('fast')).toThrow('write e.g. 10/s');
    expect(() => parseRate('0/s')).toThrow('above zero');
    expect(() => parseDuration('soon')).toThrow('30s, 5m or 1h');
    expect(parseDuration('5m')).toBe(300_000);
  });

  it("sends a Sigfox frame that the documented grammar decodes to Sigfox's own customData", () => {
    const rand = random(5);
    const [device] = createFleet({ ...options, devices: 1, silentShare: 0 }, rand);
    if (!device) throw new Error('no device');
    const body = JSON.parse(
      networkRequest('sigfox', device, nextReading(device, 1_795_586_398_000, rand)).body.toString(),
    ) as Record<string, string>;
    const { values } = decodeSigfox(
      parseSigfoxGrammar(SIMULATOR_SIGFOX_GRAMMAR),
      Buffer.from(body.data ?? '', 'hex'),
    );
    expect(values.temp).toBeCloseTo(Number(body['customData#temp']), 2);
    expect(values.battery).toBeCloseTo(Number(body['customData#battery']), 1);
    expect(body.device).toMatch(/^[0-9A-F]+$/);
  });
});
