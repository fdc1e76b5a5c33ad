/** One figure of `bench/results.json` (DESIGN.md, "Contracts: Benchmarks"). */
export interface BenchResult {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** The same quantity for the baseline, measured in the same run. */
  readonly baseline: number;
  /** value / baseline. */
  readonly ratio: number;
  /** What the ratio must reach, in words the table prints. */
  readonly target: string;
  readonly met: boolean;
}

/** Runs `fn` repeatedly for about `ms` milliseconds after a warm-up; returns operations per second. */
export function opsPerSecond(fn: () => void, ms = 2000): number {
  const warmUntil = performance.now() + ms / 4;
  while (performance.now() < warmUntil) fn();
  let ops = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    fn();
    ops++;
    elapsed = performance.now() - start;
  }
  return (ops * 1000) / elapsed;
}

/** A figure against its baseline, both rounded to six decimals, the ratio from the unrounded values. */
export function figure(
  name: string,
  value: number,
  unit: string,
  baseline: number,
  target: string,
  met: boolean,
): BenchResult {
  const round = (n: number) => Math.round(n * 1e6) / 1e6;
  return { name, value: round(value), unit, baseline: round(baseline), ratio: value / baseline, target, met };
}

/** The middle value (the upper middle of an even count). */
export function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
}
