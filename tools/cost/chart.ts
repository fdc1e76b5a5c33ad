/**
 * What a device chart costs (`GET /v1/devices/{id}/series`, the web console's device
 * page): the Athena bytes one view scans, from the layout `npm run bench -- chart`
 * measured, at the public Athena price with its 10 MB minimum per query.
 *
 * A view of the last `days` days reads two parts: the compacted days from the curated
 * Parquet (sorted by device: one device's row groups, plus each day's footer, which grows
 * with the estate), and the hours not yet compacted (today so far, and yesterday until
 * the daily job has run at 01:15 UTC) from the NDJSON objects, which hold every device's
 * readings and are read whole.
 */

/** Athena's price, as `aws-prices.json` gives it. */
export interface AthenaPrices {
  readonly perTbScanned: number;
  readonly minimumBytesPerQuery: number;
}

/**
 * Measured by `npm run bench -- chart` (1,000 devices x 7 days, a reading a minute of two
 * metrics, row groups of 65,536 rows): the bytes per device and day of the row groups a
 * one-device, one-metric query reads (827,162 B for 7 days: 2 of the day's 44 row groups),
 * the footer bytes per device of the estate and day (226,674 B for 7 files), and the gzip
 * NDJSON bytes per device of the estate and hour (199,317,812 B for 168 hours).
 */
export const CHART_LAYOUT = {
  curatedBytesPerDeviceDay: 118_000,
  footerBytesPerEstateDeviceDay: 32,
  ndjsonBytesPerEstateDeviceHour: 1_186,
  /** The readings a minute the figures were measured at (one message a minute, two metrics). */
  readingsPerMinute: 2,
} as const;

/**
 * Hours of NDJSON a view ending now reads, on average over a day: today so far (12 on
 * average), and all of yesterday during the 1.25 h before the daily job has compacted
 * it (24 x 1.25 / 24 = 1.25 on average).
 */
export const UNCOMPACTED_HOURS = 13.25;

export interface ChartView {
  /** Devices in the estate (the NDJSON and the footers hold all of them). */
  readonly devices: number;
  /** Readings each device sends a minute (messages a minute x metrics a message). */
  readonly readingsPerMinute: number;
  /** Days the chart shows, ending now. @default 7 */
  readonly days?: number;
  /** Hours of the range not compacted yet. @default UNCOMPACTED_HOURS */
  readonly uncompactedHours?: number;
}

/** Bytes one chart view scans: the compacted days' row groups and footers, and the uncompacted hours' NDJSON. */
export function chartViewBytes(view: ChartView): { curated: number; ndjson: number } {
  const days = view.days ?? 7;
  const hours = Math.min(view.uncompactedHours ?? UNCOMPACTED_HOURS, days * 24);
  const rate = view.readingsPerMinute / CHART_LAYOUT.readingsPerMinute;
  const compactedDays = days - hours / 24;
  return {
    curated:
      compactedDays *
      rate *
      (CHART_LAYOUT.curatedBytesPerDeviceDay + CHART_LAYOUT.footerBytesPerEstateDeviceDay * view.devices),
    ndjson: hours * rate * CHART_LAYOUT.ndjsonBytesPerEstateDeviceHour * view.devices,
  };
}

/** What Athena bills for a query that scanned this many bytes. */
export function athenaQueryDollars(bytes: number, athena: AthenaPrices): number {
  return (Math.max(bytes, athena.minimumBytesPerQuery) / 1024 ** 4) * athena.perTbScanned;
}

/**
 * Dollars per chart view: the series route runs one query over both parts, so the 10 MB
 * minimum applies once.
 */
export function chartViewDollars(view: ChartView, athena: AthenaPrices): number {
  const { curated, ndjson } = chartViewBytes(view);
  return athenaQueryDollars(curated + ndjson, athena);
}

/** Athena's prices from a price list, or a message naming the key it lacks. */
export function athenaPrices(prices: unknown): AthenaPrices {
  const athena = (prices as { athena?: Record<string, unknown> } | undefined)?.athena;
  for (const key of ['perTbScanned', 'minimumBytesPerQuery'] as const) {
    const price = athena?.[key];
    if (typeof price !== 'number' || !(price >= 0))
      throw new Error(`the price file has no number at athena.${key} (chart views are priced by it)`);
  }
  return athena as unknown as AthenaPrices;
}
