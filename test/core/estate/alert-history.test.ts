import { PublishBatchCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { snsAlerts } from '../../../lambdas/adapters/aws/sns-alerts.ts';
import { alertId, alertRow, withAlertHistory } from '../../../lambdas/core/estate/alert-history.ts';
import type { AlertEvent, AlertRule } from '../../../lambdas/core/estate/alerts.ts';
import { type AlertPublisher, detectOffline, updateEstate } from '../../../lambdas/core/estate/update.ts';
import type { Reading } from '../../../lambdas/core/reading.ts';
import { MemoryStore, memoryRegistry, NOW } from '../../support/fakes.ts';

const HOT: AlertRule = {
  name: 'hot',
  metric: 'temp',
  comparison: '>',
  threshold: 30,
  forMs: 0,
  hysteresis: 1,
  severity: 'critical',
};

const reading = (time: number, temp: number, messageId = `m-${time}`): Reading => ({
  deviceId: 'dev-1',
  deviceType: 'thermo',
  time,
  receivedAt: time,
  source: 'mqtt',
  metrics: { temp },
  key: String(time),
  messageId,
});

const config = {
  alertRules: [HOT],
  offline: { afterMs: 60_000, severity: 'warning' as const },
  deviceTypes: {},
};

/** A publisher that remembers what it sent. */
function recording(): AlertPublisher & { sent: AlertEvent[] } {
  const sent: AlertEvent[] = [];
  return { sent, publish: async (events) => void sent.push(...events) };
}

describe('alert history', () => {
  const sns = mockClient(SNSClient);
  afterEach(() => sns.reset());

  it('keeps a raised and a cleared alert in alerts/, one object per event, partitioned by day', async () => {
    // Arrange
    const lake = new MemoryStore();
    const sender = recording();
    const deps = { registry: memoryRegistry(), publisher: withAlertHistory(sender, lake), config };
    // Act
    await updateEstate([reading(NOW, 31.5)], deps);
    await updateEstate([reading(NOW + 1000, 28)], deps);
    // Assert
    const rows = lake.lines('alerts/');
    expect(rows.map((r) => [r.rule, r.state, r.value])).toEqual([
      ['hot', 'raised', 31.5],
      ['hot', 'cleared', 28],
    ]);
    expect(rows[0]).toMatchObject({
      device_id: 'dev-1',
      device_type: 'thermo',
      severity: 'critical',
      metric: 'temp',
      comparison: '>',
      threshold: 30,
      time: '2026-11-25 06:00:00.000',
      message: '[critical] RAISED: hot: dev-1 temp 31.5 (> 30)',
    });
    expect(
      [...lake.objects.keys()].every((k) => /^alerts\/dt=2026-11-25\/[0-9a-f]{32}\.ndjson\.gz$/.test(k)),
    ).toBe(true);
    expect(sender.sent.map((e) => e.state)).toEqual(['raised', 'cleared']);
  });

  it('keeps offline alerts with the time last seen', async () => {
    const lake = new MemoryStore();
    const registry = memoryRegistry();
    const deps = { registry, publisher: withAlertHistory(recording(), lake), config };
    await updateEstate([reading(NOW, 20)], deps);
    await detectOffline(deps, NOW + 120_000);
    const [row] = lake.lines('alerts/');
    expect(row).toMatchObject({ rule: 'offline', state: 'raised', last_seen: '2026-11-25 06:00:00.000' });
    expect(row?.value).toBeUndefined();
  });

  it('publishes to SNS even when the lake write fails, and fails the device so the batch is retried', async () => {
    // Arrange
    sns.on(PublishBatchCommand).resolves({ Successful: [{ Id: '0', MessageId: 'x' }], Failed: [] });
    const lake = new MemoryStore();
    lake.failOn = /^alerts\//;
    const registry = memoryRegistry();
    const deps = {
      registry,
      publisher: withAlertHistory(snsAlerts(new SNSClient({ region: 'us-east-1' }), 'arn:topic'), lake),
      config,
    };
    // Act
    const first = await updateEstate([reading(NOW, 31.5)], deps);
    // Assert: sent, not recorded, and the device failed (its record unwritten), so it is retried
    expect(sns.commandCalls(PublishBatchCommand)).toHaveLength(1);
    expect(first.failed.get('dev-1')?.message).toMatch(/alert history: S3 is down/);
    expect(registry.records.size).toBe(0);
    // The retry sends again (at least once) and the lake keeps the event once.
    lake.failOn = undefined;
    const second = await updateEstate([reading(NOW, 31.5)], deps);
    expect(second.failed.size).toBe(0);
    expect(sns.commandCalls(PublishBatchCommand)).toHaveLength(2);
    expect(lake.lines('alerts/')).toHaveLength(1);
  });

  it('writes the lake even when SNS fails, and the retry overwrites the same object', async () => {
    sns.on(PublishBatchCommand).rejects(new Error('SNS throttled'));
    const lake = new MemoryStore();
    const deps = {
      registry: memoryRegistry(),
      publisher: withAlertHistory(snsAlerts(new SNSClient({ region: 'us-east-1' }), 'arn:topic'), lake),
      config,
    };
    const first = await updateEstate([reading(NOW, 31.5)], deps);
    expect(first.failed.get('dev-1')?.message).toMatch(/send: SNS throttled/);
    sns.reset();
    sns.on(PublishBatchCommand).resolves({ Successful: [{ Id: '0', MessageId: 'x' }], Failed: [] });
    await updateEstate([reading(NOW, 31.5)], deps);
    expect(lake.objects.size).toBe(1);
    expect(lake.lines('alerts/')).toHaveLength(1);
  });

  it('names an event by device, rule, state and time', () => {
    const event: AlertEvent = {
      deviceId: 'dev-1',
      deviceType: 't',
      rule: 'hot',
      severity: 'info',
      state: 'raised',
      time: NOW,
    };
    expect(alertId(event)).toBe(alertId({ ...event, deviceType: 'other', severity: 'critical' }));
    expect(alertId(event)).not.toBe(alertId({ ...event, state: 'cleared' }));
    expect(alertId(event)).not.toBe(alertId({ ...event, time: NOW + 1 }));
    expect(alertRow(event).alert_id).toBe(alertId(event));
  });
});
