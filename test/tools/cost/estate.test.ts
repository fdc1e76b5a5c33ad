import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { registryItem } from '../../../lambdas/adapters/aws/dynamodb-registry.ts';
import { DEFAULT_CONFIG } from '../../../lib/config.ts';
import {
  CONSOLE_VIEW,
  consoleViewUsage,
  type EstateCall,
  measureEstateCalls,
  simulatedRecords,
} from '../../../tools/cost/estate.ts';
import { runCostModel } from '../../../tools/cost/measure.ts';
import { checkPrices, dynamodbItemBytes, priceUsage, totalDollars } from '../../../tools/cost/model.ts';
import { PRICES_FILE } from '../../../tools/cost/report.ts';

const prices = checkPrices(JSON.parse(readFileSync(PRICES_FILE, 'utf8')));
const NO_LATENCY = { s3: 0, timestream: 0, dynamodb: 0, sns: 0, sqs: 0 };
const AT = Date.parse('2026-11-25T06:30:00Z');
const byCall = (calls: readonly EstateCall[], name: string) => {
  const call = calls.find((c) => c.call === name);
  if (!call) throw new Error(`no ${name}`);
  return call;
};

describe('estate calls on DynamoDB, measured', () => {
  it('bills a Scan the bytes it reads in 4 KB halves, and a page of ids a BatchGetItem of half a unit each (10,000 devices)', async () => {
    // Arrange
    const templates = simulatedRecords(1000, AT);
    const devices = 10_000;
    // Act
    const calls = await measureEstateCalls({ devices, templates, prices, at: AT, latency: NO_LATENCY });
    // Assert: the table's bytes, read once, eventually consistent (4 KB units, halved), each request rounded up.
    const tableBytes = Array.from({ length: devices }, (_, i) => {
      const t = templates[i % templates.length];
      if (!t) throw new Error('no template');
      const item = registryItem({ ...t, deviceId: `${t.deviceId}-${String(i).padStart(5, '0')}` });
      return dynamodbItemBytes(item as unknown as Parameters<typeof dynamodbItemBytes>[0]);
    }).reduce((a, b) => a + b, 0);
    const estate = byCall(calls, 'GET /v1/estate');
    expect(estate.readUnits).toBeGreaterThanOrEqual(tableBytes / 8192);
    expect(estate.readUnits).toBeLessThanOrEqual(Math.ceil(tableBytes / 8192) + estate.requests);
    // Status and last-seen order read the table too, whatever they keep.
    expect(byCall(calls, 'GET /v1/devices?status=offline').readUnits).toBe(estate.readUnits);
    // A type's page: one Query of the index (a few keys, half a unit) and a BatchGetItem of 100.
    expect(byCall(calls, 'GET /v1/devices?type=sensor')).toMatchObject({ readUnits: 50.5, requests: 2 });
    // The first page of every device: the keys-only index, a fraction of the table, then the page's 100.
    const first = byCall(calls, 'GET /v1/devices');
    expect(first.readUnits).toBeLessThan(estate.readUnits / 3);
    expect(first.readUnits).toBeGreaterThan(50);
    expect(byCall(calls, 'GET /v1/devices?count=true').readUnits).toBe(first.readUnits);
  });

  it('prices a console view: two requests through API Gateway and Lambda, and their registry reads', async () => {
    const calls = await measureEstateCalls({
      devices: 2000,
      templates: simulatedRecords(100, AT),
      prices,
      at: AT,
      latency: NO_LATENCY,
    });
    const usage = consoleViewUsage(calls);
    expect(usage.apiRequests).toBe(2);
    expect(usage.lambdaRequests).toBe(2);
    expect(usage.dynamodbReadUnits).toBe(
      CONSOLE_VIEW.reduce((n, name) => n + byCall(calls, name).readUnits, 0),
    );
    const dollars = totalDollars(priceUsage(usage, prices));
    expect(dollars).toBeGreaterThan((usage.dynamodbReadUnits * 0.125) / 1e6);
    expect(dollars).toBeLessThan(1e-4);
  });

  it('adds the console views to the monthly bill over the run’s own registry (--estate-calls-per-day)', async () => {
    const base = {
      source: 'mqtt' as const,
      fleet: { devices: 50, intervalMs: 10_000 },
      messageBytes: 200,
      config: DEFAULT_CONFIG,
      prices,
      messages: 300,
      latency: NO_LATENCY,
      endAt: AT,
    };
    const without = await runCostModel(base);
    const withViews = await runCostModel({ ...base, estateCallsPerDay: 1000 });
    expect(without.estate).toBeUndefined();
    const estate = withViews.estate;
    if (!estate) throw new Error('no estate figures');
    expect(estate).toMatchObject({ devices: 50, callsPerDay: 1000 });
    const line = withViews.fixedMonthly.find((l) => l.line.startsWith('console views of the estate'));
    expect(line).toMatchObject({ units: 30_000 });
    expect(line?.dollars).toBeCloseTo(30_000 * estate.dollarsPerView, 10);
    // In the month's total, as a fixed line beside the offline checks (not per message).
    const fixed = withViews.fixedMonthly.reduce((n, l) => n + l.dollars, 0);
    expect(withViews.pipeline.perMonth).toBeCloseTo(
      (withViews.pipeline.perMillion * withViews.messagesPerMonth) / 1e6 + fixed,
      4,
    );
    expect(without.fixedMonthly.some((l) => l.line.startsWith('console views'))).toBe(false);
    expect(withViews.notes.some((n) => n.includes('CloudWatch'))).toBe(true);
  });
});
