import { describe, expect, it } from 'vitest';
import {
  applyTelemetryRule,
  matchesFilter,
  TELEMETRY_RULE_FIELDS,
  telemetryRuleSql,
} from '../../lambdas/core/formats/mqtt-topic.ts';

describe('the telemetry rule, one definition for IoT Core and the local broker', () => {
  const publish = {
    payload: Buffer.from('{"temp":21}'),
    clientId: 'dev-1',
    timestamp: 1_795_000_000_000,
  };

  it('renders the IoT SQL from the field list', () => {
    expect(telemetryRuleSql()).toBe(
      "SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientId, principal() AS principal, timestamp() AS receivedAt FROM 'dt/+/+'",
    );
  });

  it('derives locally the same fields the SQL selects', () => {
    const envelope = applyTelemetryRule({ ...publish, topic: 'dt/thermo/dev-1', principal: 'cert-1' });
    expect(Object.keys(envelope ?? {}).sort()).toEqual(TELEMETRY_RULE_FIELDS.map((f) => f.field).sort());
    expect(envelope).toEqual({
      payload: Buffer.from('{"temp":21}').toString('base64'),
      topic: 'dt/thermo/dev-1',
      clientId: 'dev-1',
      principal: 'cert-1',
      receivedAt: 1_795_000_000_000,
    });
  });

  it('leaves out a field whose function yields nothing, as IoT SQL does', () => {
    expect(applyTelemetryRule({ ...publish, topic: 'dt/thermo/dev-1' })).not.toHaveProperty('principal');
  });

  it.each([
    ['dt/thermo/dev-1', true],
    ['$aws/rules/iot_pipeline_dev_telemetry/dt/thermo/dev-1', true],
    ['dt/thermo', false],
    ['dt/thermo/dev-1/extra', false],
    ['cmd/thermo/dev-1', false],
    ['$SYS/broker/uptime', false],
  ])('topic %s reaches the rule: %s', (topic, expected) => {
    expect(applyTelemetryRule({ ...publish, topic }) !== undefined).toBe(expected);
  });

  it.each([
    ['dt/+/+', 'dt/a/b', true],
    ['dt/#', 'dt/a/b/c', true],
    ['dt/+', 'dt/a/b', false],
    ['+/+/+', '$aws/x/y', false],
    ['$aws/+/+', '$aws/x/y', true],
  ])('filter %s matches %s: %s', (filter, topic, expected) => {
    expect(matchesFilter(filter, topic)).toBe(expected);
  });
});
