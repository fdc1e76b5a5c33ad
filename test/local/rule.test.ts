import { describe, expect, it } from 'vitest';
import {
  applyLorawanRule,
  lorawanRuleFields,
  lorawanRuleSql,
  reachesLorawanRule,
} from '../../lambdas/core/formats/iot-lorawan.ts';
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
      "SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientId, principal() AS principal, timestamp() AS receivedAt FROM 'dt/#'",
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
    ['dt/thermo/dev-1/2', true],
    ['$aws/rules/iot_pipeline_dev_telemetry/dt/thermo/dev-1/2', true],
    // Under dt/ but not a telemetry topic: it reaches the queue, to be quarantined with the reason.
    ['dt/thermo', true],
    ['dt/thermo/dev-1/2/extra', true],
    ['dtx/thermo/dev-1', false],
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

describe('the LoRaWAN rule, one definition for IoT Core and the local broker', () => {
  const rule = 'iot_pipeline_dev_lorawan';
  const publish = {
    payload: Buffer.from('{"WirelessDeviceId":"x"}'),
    clientId: 'any',
    timestamp: 1_795_000_000_000,
  };

  it('renders IoT SQL with no FROM (Basic Ingest only: a destination, never the broker) and literal source and topic', () => {
    expect(lorawanRuleSql(rule)).toBe(
      "SELECT encode(*, 'base64') AS payload, 'iot-lorawan' AS source, '$aws/rules/iot_pipeline_dev_lorawan' AS topic, timestamp() AS receivedAt",
    );
    expect(lorawanRuleSql(rule)).not.toMatch(/FROM/);
  });

  it('refuses a rule name it would quote badly into the SQL', () => {
    expect(() => lorawanRuleSql("x' OR 1=1")).toThrow(/not one/);
  });

  it('derives locally the same fields the SQL selects, and nothing of the client', () => {
    const envelope = applyLorawanRule(rule, { ...publish, topic: `$aws/rules/${rule}` });
    expect(Object.keys(envelope ?? {}).sort()).toEqual(
      lorawanRuleFields(rule)
        .map((f) => f.field)
        .sort(),
    );
    expect(envelope).toEqual({
      payload: publish.payload.toString('base64'),
      source: 'iot-lorawan',
      topic: `$aws/rules/${rule}`,
      receivedAt: 1_795_000_000_000,
    });
  });

  it.each([
    ['$aws/rules/iot_pipeline_dev_lorawan', true],
    ['$aws/rules/iot_pipeline_dev_lorawan/any/sub', true],
    ['$aws/rules/iot_pipeline_dev_lorawanx', false],
    ['$aws/rules/iot_pipeline_prod_lorawan', false],
    ['$aws/rules/iot_pipeline_dev_telemetry/dt/thermo/dev-1', false],
    ['dt/lorawan/dev-1', false],
  ])('topic %s reaches the LoRaWAN rule of stage dev: %s', (topic, expected) => {
    expect(reachesLorawanRule(rule, topic)).toBe(expected);
    expect(applyLorawanRule(rule, { ...publish, topic }) !== undefined).toBe(expected);
  });
});
