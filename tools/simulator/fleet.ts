/**
 * A fleet of simulated devices with readings that look real: temperature drifting
 * around a per-device base with a daily swing, a battery that drains with every
 * message, radio strength that wanders, and a share of devices that go silent for
 * good part-way (what offline detection must catch). Deterministic for a seed.
 */
export interface SimulatedDevice {
  readonly id: string;
  readonly type: string;
  /** Messages sent so far; also the `$seq` of the next one. */
  seq: number;
  temperature: number;
  readonly baseTemperature: number;
  battery: number;
  rssi: number;
  /** The device stops sending after this many messages (never when undefined). */
  readonly silentAfter: number | undefined;
}

export interface FleetOptions {
  readonly devices: number;
  readonly type: string;
  /** Share of devices that go silent part-way, 0 to 1. */
  readonly silentShare: number;
  /** Messages each device sends before a silent one stops, at most (it stops somewhere below). */
  readonly silentWithin: number;
  readonly seed: number;
  /** Device id prefix; ids are `<prefix>-0001` and so on. */
  readonly prefix?: string;
  /** Exact device ids instead (a provisioned thing's name): one device each. */
  readonly ids?: readonly string[];
}

/** A small, fast, seedable PRNG (mulberry32): the same seed gives the same fleet and readings. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function createFleet(
  options: FleetOptions,
  rand: () => number = random(options.seed),
): SimulatedDevice[] {
  const width = String(options.devices).length;
  const silentCount = Math.round(options.devices * options.silentShare);
  return Array.from({ length: options.devices }, (_, i) => {
    const base = 18 + rand() * 8;
    return {
      id: options.ids?.[i] ?? `${options.prefix ?? 'sim'}-${String(i + 1).padStart(Math.max(4, width), '0')}`,
      type: options.type,
      seq: 0,
      temperature: base,
      baseTemperature: base,
      battery: 3.3 + rand() * 0.3,
      rssi: -60 - rand() * 40,
      // The last devices of the fleet are the ones that go quiet.
      silentAfter:
        i >= options.devices - silentCount ? 1 + Math.floor(rand() * options.silentWithin) : undefined,
    };
  });
}

export function isSilent(device: SimulatedDevice): boolean {
  return device.silentAfter !== undefined && device.seq >= device.silentAfter;
}

/** The device's next reading in the JSON property-value format, and its state moved on. */
export function nextReading(
  device: SimulatedDevice,
  now: number,
  rand: () => number,
): { $ts: number; $seq: number; temp: number; battery: number; rssi: number } {
  const hour = (now / 3_600_000) % 24;
  const daily = 2 * Math.sin(((hour - 9) / 24) * 2 * Math.PI);
  // Random walk pulled back towards the base plus the daily swing.
  device.temperature += (device.baseTemperature + daily - device.temperature) * 0.1 + (rand() - 0.5) * 0.4;
  device.battery = Math.max(2.7, device.battery - 0.0002 - rand() * 0.0003);
  device.rssi = Math.min(-30, Math.max(-120, device.rssi + (rand() - 0.5) * 4));
  const reading = {
    $ts: now,
    $seq: device.seq,
    temp: round(device.temperature, 2),
    battery: round(device.battery, 3),
    rssi: Math.round(device.rssi),
  };
  device.seq++;
  return reading;
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** `10/s`, `600/m`, `5/h` or a bare number (per second) as messages per second. */
export function parseRate(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(?:\/(s|m|h))?$/.exec(text.trim());
  const per = { s: 1, m: 60, h: 3600 } as const;
  if (!match?.[1]) throw new Error(`--rate "${text}" is not a rate; write e.g. 10/s, 600/m or 5/h`);
  const value = Number(match[1]) / per[(match[2] ?? 's') as keyof typeof per];
  if (!(value > 0)) throw new Error(`--rate "${text}" must be above zero`);
  return value;
}

export { parseDuration } from '../../lambdas/core/duration.ts';
