import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lakeTimestamp } from '../../lambdas/core/lake/tables.ts';

/** The obvious form the hand-written, cached one must agree with. */
function isoLakeTimestamp(epochMs: number): string {
  const iso = new Date(epochMs).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
}

describe('lake serialization (hand-written for speed, checked against the obvious form)', () => {
  it('lakeTimestamp formats like toISOString for any time from 1970 to 9999, in any order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: Date.UTC(9999, 11, 31, 23, 57, 59, 999) }), { minLength: 1 }),
        fc.integer({ min: 0, max: 120_000 }),
        (times, step) => {
          for (const t of times) {
            expect(lakeTimestamp(t)).toBe(isoLakeTimestamp(t));
            expect(lakeTimestamp(t + step)).toBe(isoLakeTimestamp(t + step));
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('lakeTimestamp handles minute and day boundaries', () => {
    for (const iso of ['2026-11-25T06:00:00.000Z', '2026-12-31T23:59:59.999Z', '2028-02-29T00:00:59.009Z']) {
      expect(lakeTimestamp(Date.parse(iso))).toBe(isoLakeTimestamp(Date.parse(iso)));
    }
  });
});
