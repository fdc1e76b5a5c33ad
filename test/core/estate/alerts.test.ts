import { describe, expect, it } from 'vitest';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import {
  type AlertRule,
  alertSubject,
  applyReadings,
  checkOffline,
  evaluateRule,
  lostBetween,
} from '../../../lambdas/core/estate/alerts.ts';
import { filterDevices, offlineTimeouts } from '../../../lambdas/core/estate/registry-query.ts';
import { detectOffline, updateEstate } from '../../../lambdas/core/estate/update.ts';
import type { Reading } from '../../../lambdas/core/reading.ts';
import { memoryRegistry } from '../../support/fakes.ts';

const hot: AlertRule = {
  name: 'hot',
  metric: 'temp',
  comparison: '>',
  threshold: 30,
  forMs: 0,
  hysteresis: 2,
  severity: 'critical',
};
const MIN = 60_000;

describe('evaluateRule', () => {
  it.each([
    // [case, rule, state before, value, time, state after, event]
    ['stays quiet below the threshold', hot, undefined, 29, 0, undefined, undefined],
    ['raises when the condition starts', hot, undefined, 31, 0, 'raised', 'raised'],
    [
      'holds, without repeating, while it lasts',
      hot,
      { state: 'raised', since: 0 },
      35,
      MIN,
      'raised',
      undefined,
    ],
    ['holds inside the hysteresis band', hot, { state: 'raised', since: 0 }, 29, MIN, 'raised', undefined],
    ['clears once past the band', hot, { state: 'raised', since: 0 }, 27.9, MIN, undefined, 'cleared'],
    ['waits out the duration', { ...hot, forMs: 5 * MIN }, undefined, 31, 0, 'pending', undefined],
    [
      'keeps waiting before the duration',
      { ...hot, forMs: 5 * MIN },
      { state: 'pending', since: 0 },
      31,
      4 * MIN,
      'pending',
      undefined,
    ],
    [
      'raises after the duration',
      { ...hot, forMs: 5 * MIN },
      { state: 'pending', since: 0 },
      31,
      5 * MIN,
      'raised',
      'raised',
    ],
    [
      'forgets a condition that ended before its duration',
      { ...hot, forMs: 5 * MIN },
      { state: 'pending', since: 0 },
      30,
      2 * MIN,
      undefined,
      undefined,
    ],
    [
      'reads < with the band above',
      { ...hot, comparison: '<', threshold: 3.2, hysteresis: 0.1 },
      { state: 'raised', since: 0 },
      3.25,
      MIN,
      'raised',
      undefined,
    ],
    [
      'clears < past the band',
      { ...hot, comparison: '<', threshold: 3.2, hysteresis: 0.1 },
      { state: 'raised', since: 0 },
      3.31,
      MIN,
      undefined,
      'cleared',
    ],
    ['reads == exactly', { ...hot, comparison: '==', threshold: 1 }, undefined, 1, 0, 'raised', 'raised'],
  ] as const)('%s', (_, rule, before, value, time, after, event) => {
    const next = evaluateRule(rule as AlertRule, before, value, time);
    expect(next.state?.state).toBe(after);
    expect(next.event).toBe(event);
  });
});

const reading = (time: number, metrics: Record<string, number>, extra: Partial<Reading> = {}): Reading => ({
  deviceId: 'd-1',
  deviceType: 'thermo',
  time,
  receivedAt: time,
  source: 'mqtt',
  messageId: `m${time}`,
  metrics,
  key: `ts:${time}`,
  ...extra,
});

describe('applyReadings', () => {
  it('raises once and clears once across a batch, in time order, and keeps last values', () => {
    const { record, events } = applyReadings(
      undefined,
      [reading(3 * MIN, { temp: 27 }), reading(MIN, { temp: 31 }), reading(2 * MIN, { temp: 33 })],
      [hot],
    );
    expect(events.map((e) => [e.state, e.value, e.time])).toEqual([
      ['raised', 31, MIN],
      ['cleared', 27, 3 * MIN],
    ]);
    expect(record).toMatchObject({ firstSeen: MIN, lastSeen: 3 * MIN, lastValues: { temp: 27 }, alerts: {} });
  });

  it('changes nothing when the same batch comes again (an SQS retry)', () => {
    const batch = [reading(MIN, { temp: 31 }), reading(2 * MIN, { temp: 27 })];
    const first = applyReadings(undefined, batch, [hot]);
    const again = applyReadings(first.record, batch, [hot]);
    expect(again.events).toEqual([]);
    expect(again.record).toEqual(first.record);
  });

  it('counts sequence gaps as lost messages, with Sigfox wrap-around and restarts', () => {
    expect(lostBetween(10, 14, 'ttn')).toBe(3);
    expect(lostBetween(4094, 1, 'sigfox')).toBe(2);
    expect(lostBetween(500, 2, 'ttn')).toBe(0);
    const lossy: AlertRule = {
      ...hot,
      name: 'lossy',
      metric: 'lost_messages',
      comparison: '>=',
      threshold: 3,
      hysteresis: 0,
      severity: 'warning',
    };
    const r = (seq: number, t: number) => reading(t, { temp: 20 }, { source: 'ttn', key: `seq:${seq}`, seq });
    const { record, events } = applyReadings(
      undefined,
      [r(1, MIN), r(2, 2 * MIN), r(6, 3 * MIN), r(7, 4 * MIN)],
      [lossy],
    );
    expect(record).toMatchObject({ lastSeq: 7, lostMessages: 3 });
    expect(events.map((e) => e.state)).toEqual(['raised', 'cleared']);
  });

  it('applies a rule only in its scope (device type, attribute)', () => {
    const scoped = { ...hot, scope: { deviceType: 'freezer' } };
    expect(applyReadings(undefined, [reading(MIN, { temp: 40 })], [scoped]).events).toEqual([]);
    const tagged = { ...hot, scope: { attribute: { key: 'site', value: 'north' } } };
    const previous = {
      ...applyReadings(undefined, [reading(0, { temp: 1 })], []).record,
      attributes: { site: 'north' },
    };
    expect(applyReadings(previous, [reading(MIN, { temp: 40 })], [tagged]).events).toHaveLength(1);
  });

  it('clears an offline alert with the first reading', () => {
    const { record } = applyReadings(undefined, [reading(0, { temp: 1 })], []);
    const offline = checkOffline(record, 31 * MIN, 30 * MIN, 'warning');
    expect(offline.event).toMatchObject({ rule: 'offline', state: 'raised', severity: 'warning' });
    expect(checkOffline(offline.record, 40 * MIN, 30 * MIN, 'warning').event).toBeUndefined();
    const back = applyReadings(offline.record, [reading(41 * MIN, { temp: 2 })], []);
    expect(back.events).toEqual([expect.objectContaining({ rule: 'offline', state: 'cleared' })]);
    expect(alertSubject(offline.event as never)).toBe('[warning] RAISED: offline: d-1 is offline');
    expect(alertSubject(back.events[0] as never)).toBe('[warning] cleared: offline: d-1 is back online');
  });
});

describe('updateEstate and detectOffline', () => {
  const config = validateRuntimeConfig({
    alertRules: [
      { name: 'hot', metric: 'temp', comparison: '>', threshold: 30, hysteresis: 2, severity: 'critical' },
    ],
    offline: { after: '30m' },
    deviceTypes: { tracker: { offlineAfter: '2h' } },
  });

  it('writes each device once per batch, however many readings it sent', async () => {
    const registry = memoryRegistry();
    const published: unknown[] = [];
    const readings = [
      ...Array.from({ length: 50 }, (_, i) => reading(i * 1000, { temp: 20 })),
      ...Array.from({ length: 30 }, (_, i) => reading(i * 1000, { temp: 20 }, { deviceId: 'd-2' })),
    ];
    await updateEstate(readings, {
      registry,
      config,
      publisher: { publish: async (e) => void published.push(...e) },
    });
    expect(registry.puts).toBe(2);
    expect(published).toEqual([]);
  });

  it('applies its readings on top of a concurrent write instead of losing either', async () => {
    const registry = memoryRegistry();
    const publisher = { publish: async () => undefined };
    await updateEstate([reading(MIN, { temp: 20 })], { registry, config, publisher });
    const realGet = registry.get.bind(registry);
    let raced = false;
    registry.get = async (ids) => {
      const result = await realGet(ids);
      if (!raced) {
        raced = true;
        // Another Lambda writes the device between our read and our write.
        const other = applyReadings(result.get('d-1'), [reading(2 * MIN, { humidity: 50 })], []).record;
        registry.records.set('d-1', { ...other, version: 2 });
      }
      return result;
    };
    const { failed } = await updateEstate([reading(3 * MIN, { temp: 21 })], { registry, config, publisher });
    expect(failed.size).toBe(0);
    expect(registry.records.get('d-1')).toMatchObject({ version: 3, lastValues: { temp: 21, humidity: 50 } });
  });

  it('raises offline once per silence with the type timeout or the default (fake clock)', async () => {
    // From a base past 0: a lastSeen of 0 is a device never heard.
    const T0 = 1000 * MIN;
    const timeouts = offlineTimeouts(config);
    const registry = memoryRegistry();
    const sent: string[] = [];
    const deps = {
      registry,
      config,
      publisher: {
        publish: async (e: readonly { deviceId: string; state: string }[]) =>
          void sent.push(...e.map((x) => `${x.deviceId} ${x.state}`)),
      },
    };
    await updateEstate(
      [reading(T0, { temp: 1 }), reading(T0, { temp: 1 }, { deviceId: 't-1', deviceType: 'tracker' })],
      deps,
    );
    expect(await detectOffline(deps, T0 + 29 * MIN)).toEqual([]);
    await detectOffline(deps, T0 + 31 * MIN);
    await detectOffline(deps, T0 + 60 * MIN);
    await detectOffline(deps, T0 + 121 * MIN);
    expect(sent).toEqual(['d-1 raised', 't-1 raised']);
    expect(
      filterDevices(await registry.list(), { status: 'offline' }, T0 + 121 * MIN, timeouts).map(
        (d) => d.deviceId,
      ),
    ).toEqual(['d-1', 't-1']);
    await updateEstate([reading(T0 + 122 * MIN, { temp: 1 })], deps);
    expect(sent).toEqual(['d-1 raised', 't-1 raised', 'd-1 cleared']);
    expect(
      filterDevices(await registry.list(), { status: 'online' }, T0 + 122 * MIN, timeouts).map(
        (d) => d.deviceId,
      ),
    ).toEqual(['d-1']);
    expect(
      filterDevices(
        await registry.list(),
        { type: 'tracker', silentForMs: 60 * MIN },
        T0 + 122 * MIN,
        timeouts,
      ),
    ).toHaveLength(1);
  });
});
