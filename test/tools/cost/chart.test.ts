import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../../lib/config.ts';
import {
  athenaPrices,
  athenaQueryDollars,
  CHART_LAYOUT,
  chartViewBytes,
  chartViewDollars,
  UNCOMPACTED_HOURS,
} from '../../../tools/cost/chart.ts';
import { runCostModel } from '../../../tools/cost/measure.ts';
import { checkPrices } from '../../../tools/cost/model.ts';
import { PRICES_FILE } from '../../../tools/cost/report.ts';

const list = JSON.parse(readFileSync(PRICES_FILE, 'utf8')) as unknown;
const athena = athenaPrices(list);
const MB10 = 10 * 1024 * 1024;

describe('chart view cost', () => {
  it('prices a query at $5/TB with the 10 MB minimum, as aws-prices.json says', () => {
    expect(athena).toEqual({ perTbScanned: 5, minimumBytesPerQuery: MB10 });
    expect(athenaQueryDollars(1, athena)).toBe((MB10 / 1024 ** 4) * 5);
    expect(athenaQueryDollars(1024 ** 4, athena)).toBe(5);
    expect(() => athenaPrices({ s3: {} })).toThrow(/athena\.perTbScanned/);
  });

  it('reads one device of the compacted days, and the estate only for the hours not compacted', () => {
    const week = chartViewBytes({ devices: 10_000, readingsPerMinute: 2, uncompactedHours: 0 });
    expect(week.ndjson).toBe(0);
    expect(week.curated).toBe(
      7 * (CHART_LAYOUT.curatedBytesPerDeviceDay + 10_000 * CHART_LAYOUT.footerBytesPerEstateDeviceDay),
    );
    // Under Athena's minimum: a compacted week costs the minimum.
    expect(week.curated).toBeLessThan(MB10);
    expect(chartViewDollars({ devices: 10_000, readingsPerMinute: 2, uncompactedHours: 0 }, athena)).toBe(
      athenaQueryDollars(0, athena),
    );
    // Ending now: today's hours of every device's NDJSON are the larger part.
    const live = chartViewBytes({ devices: 10_000, readingsPerMinute: 2 });
    expect(live.ndjson).toBe(UNCOMPACTED_HOURS * 10_000 * CHART_LAYOUT.ndjsonBytesPerEstateDeviceHour);
    expect(live.ndjson).toBeGreaterThan(live.curated);
    // Against the old path, the NDJSON of all 7 days:
    const old = 7 * 24 * 10_000 * CHART_LAYOUT.ndjsonBytesPerEstateDeviceHour;
    expect(chartViewDollars({ devices: 10_000, readingsPerMinute: 2 }, athena)).toBeLessThan(
      athenaQueryDollars(old, athena) / 5,
    );
    // A reading every 10 minutes: a tenth of the bytes.
    const slow = chartViewBytes({ devices: 10_000, readingsPerMinute: 0.2 });
    expect(slow.ndjson).toBeCloseTo(live.ndjson / 10);
  });

  it('adds chart views to the monthly bill of the cost model', async () => {
    const prices = checkPrices(list);
    const options = {
      fleet: { devices: 10_000, intervalMs: 60_000 },
      messageBytes: 200,
      config: DEFAULT_CONFIG,
      prices,
      messages: 200,
      endAt: Date.parse('2026-11-25T06:30:00Z'),
    };
    const without = await runCostModel(options);
    const withViews = await runCostModel({ ...options, chartViewsPerDay: 1000 });
    const line = withViews.fixedMonthly.find((l) => l.line.startsWith('chart views (1000 a day'));
    const perView = chartViewDollars({ devices: 10_000, readingsPerMinute: 2 }, athena);
    expect(line?.units).toBe(30_000);
    expect(line?.dollars).toBeCloseTo(30_000 * perView, 10);
    expect(without.fixedMonthly.some((l) => l.line.startsWith('chart views'))).toBe(false);
    // The monthly total holds the fixed lines, the chart views among them.
    const fixed = withViews.fixedMonthly.reduce((sum, l) => sum + l.dollars, 0);
    expect(
      withViews.pipeline.perMonth - (withViews.pipeline.perMillion * withViews.messagesPerMonth) / 1e6,
    ).toBeCloseTo(fixed, 2);
    expect(fixed).toBeGreaterThan(30_000 * perView);
  });
});
