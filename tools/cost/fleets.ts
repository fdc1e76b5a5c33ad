/**
 * Fleet sizes side by side (`iot-pipeline cost` without `--devices`): the same messages,
 * configuration and prices run at 1,000, 10,000 and 100,000 devices, each through the
 * metered ingest path, so every column is priced from its own counts. Each run takes the
 * model's own number of messages (`runCostModel`: enough for every batching window to
 * close a few times) unless `messages` says otherwise.
 */
import { type CostReport, type CostRunOptions, runCostModel } from './measure.ts';

/** The fleets `cost` compares when no `--devices` is given. */
export const FLEET_SIZES: readonly number[] = [1_000, 10_000, 100_000];

/** Runs the model once per fleet size, one after the other (each run has its own metered clients). */
export async function runFleetSizes(
  options: Omit<CostRunOptions, 'fleet'> & { readonly intervalMs: number },
  sizes: readonly number[] = FLEET_SIZES,
): Promise<CostReport[]> {
  const { intervalMs, ...rest } = options;
  const reports: CostReport[] = [];
  for (const devices of sizes) {
    const fleet = { devices, intervalMs };
    reports.push(
      await runCostModel({
        ...rest,
        fleet,
      }),
    );
  }
  return reports;
}
