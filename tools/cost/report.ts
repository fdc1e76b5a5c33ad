/** The cost model's report as a table for people (`iot-pipeline cost`), and the prices file it reads by default. */
import type { Rows } from '../../cli/table.ts';
import type { CostReport, DesignCost } from './measure.ts';

/** The prices the repository carries: a copy of the public us-east-1 list prices (a test keeps it equal to `../shared/aws-prices.json`). */
export const PRICES_FILE = new URL('./aws-prices.json', import.meta.url);

/** The report as one table: each bill line per million messages, for the four designs side by side. */
export function costTable(report: CostReport): Rows {
  const designs = [report.pipeline, report.basicIngest, report.naive, report.floor].filter(
    (d): d is DesignCost => d !== undefined,
  );
  const columns = ['line', 'per message', ...designs.map((d) => `${d.design} $/M`)];
  const names = [...new Set(designs.flatMap((d) => d.lines.map((l) => l.line)))];
  const money = (n: number) => (n === 0 ? '-' : n < 0.01 ? n.toFixed(4) : n.toFixed(2));
  const rows: Record<string, string>[] = names.map((name) => {
    const row: Record<string, string> = { line: name };
    const ours =
      report.pipeline.lines.find((l) => l.line === name) ?? report.naive.lines.find((l) => l.line === name);
    row['per message'] = ours ? formatUnits(ours.units / 1e6) : '';
    for (const d of designs)
      row[`${d.design} $/M`] = money(d.lines.find((l) => l.line === name)?.dollars ?? 0);
    return row;
  });
  // Lines the price list has no price for: their units, and "not priced" where a price would be.
  const unpriced = [...new Set(designs.flatMap((d) => (d.notPriced ?? []).map((l) => l.line)))];
  for (const name of unpriced) {
    const ours = report.pipeline.notPriced?.find((l) => l.line === name);
    const row: Record<string, string> = {
      line: `${name} (not priced)`,
      'per message': ours ? formatUnits(ours.units / 1e6) : '',
    };
    for (const d of designs)
      row[`${d.design} $/M`] = d.notPriced?.some((l) => l.line === name) ? 'not priced' : '-';
    rows.push(row);
  }
  const total = (label: string, pick: (d: DesignCost) => number) => {
    const row: Record<string, string> = { line: label, 'per message': '' };
    for (const d of designs) row[`${d.design} $/M`] = pick(d).toFixed(2);
    return row;
  };
  rows.push(total('total per million messages', (d) => d.perMillion));
  rows.push(
    total(`total per month (${formatUnits(report.messagesPerMonth)} messages + fixed)`, (d) => d.perMonth),
  );
  rows.push(total(`ratio to the ${report.floor.design}`, (d) => d.perMillion / report.floor.perMillion));
  return { columns, rows };
}

/**
 * The pipeline next to the designs a user would pick instead, both floors and the lake
 * objects it writes, one column per report (fleet sizes side by side, or one fleet).
 */
export function fleetTable(reports: readonly CostReport[]): Rows {
  const columns = ['line', ...reports.map((r) => `${r.fleet.devices.toLocaleString('en-US')} devices`)];
  const rows: Record<string, string>[] = [];
  const row = (line: string, cell: (r: CostReport) => string) => {
    const out: Record<string, string> = { line };
    reports.forEach((r, i) => {
      out[columns[i + 1] as string] = cell(r);
    });
    rows.push(out);
  };
  const first = reports[0];
  if (!first) return { columns, rows };
  const dollars = (n: number) => (n < 0.01 && n > 0 ? n.toFixed(4) : n.toFixed(2));
  const count = (n: number) => Math.round(n).toLocaleString('en-US');
  row('messages a month', (r) => formatUnits(r.messagesPerMonth));
  // Each design by the name it has in the first report (the same in every one: one source, one config).
  const designs: { name: string; pick: (r: CostReport) => DesignCost | undefined }[] = [
    { name: first.pipeline.design, pick: (r) => r.pipeline },
    ...(first.basicIngest
      ? [{ name: first.basicIngest.design, pick: (r: CostReport) => r.basicIngest }]
      : []),
    { name: first.naive.design, pick: (r) => r.naive },
    ...(first.alternatives
      ? [
          { name: first.alternatives.firehose.design, pick: (r: CostReport) => r.alternatives?.firehose },
          { name: first.alternatives.kinesis.design, pick: (r: CostReport) => r.alternatives?.kinesis },
        ]
      : []),
    { name: first.floor.design, pick: (r) => r.floor },
    ...(first.alternatives?.basicIngestFloor
      ? [
          {
            name: first.alternatives.basicIngestFloor.design,
            pick: (r: CostReport) => r.alternatives?.basicIngestFloor,
          },
        ]
      : []),
  ];
  const priced = (d: DesignCost | undefined) => d !== undefined && !('priced' in d && d.priced === false);
  for (const { name, pick } of designs) {
    row(`${name} $/M`, (r) => (priced(pick(r)) ? dollars(pick(r)?.perMillion ?? 0) : 'not priced'));
    row(`${name} $/month`, (r) => (priced(pick(r)) ? dollars(pick(r)?.perMonth ?? 0) : 'not priced'));
  }
  if (first.alternatives) row('Kinesis shards', (r) => String(r.alternatives?.kinesis.shards ?? ''));
  const ours = (r: CostReport) => r.basicIngest ?? r.pipeline;
  row(`${ours(first).design} / ${first.floor.design}`, (r) =>
    (ours(r).perMillion / r.floor.perMillion).toFixed(2),
  );
  const basicFloor = first.alternatives?.basicIngestFloor;
  if (basicFloor)
    row(`${ours(first).design} / ${basicFloor.design}`, (r) =>
      r.alternatives?.basicIngestFloor
        ? (ours(r).perMillion / r.alternatives.basicIngestFloor.perMillion).toFixed(2)
        : '',
    );
  const seconds = (n: number) => (n < 10 ? n.toFixed(1) : n.toFixed(0));
  row(
    'in the lake after arrival, p50 / p99 (s)',
    (r) => `${seconds(r.latency.lake.p50)} / ${seconds(r.latency.lake.p99)}`,
  );
  row(
    'registry and alerts after arrival, p50 / p99 (s)',
    (r) => `${seconds(r.latency.estate.p50)} / ${seconds(r.latency.estate.p99)}`,
  );
  row('lake objects a day (ingest path)', (r) => count(r.lake.objectsPerDay));
  row('lake average bytes an object', (r) => count(r.lake.averageBytes));
  row(
    'lake objects a day after compaction (readings/, raw/)',
    (r) => `${count(r.compaction.objectsPerDay)} (${count(r.compaction.averageBytes)})`,
  );
  row('compaction: a run every 10 minutes takes (s)', (r) => seconds(r.compaction.runSeconds));
  const prefixes = [...new Set(reports.flatMap((r) => Object.keys(r.lake.byPrefix)))].sort();
  for (const prefix of prefixes)
    row(`  ${prefix} objects a day (average bytes)`, (r) => {
      const p = r.lake.byPrefix[prefix];
      return p ? `${count(p.objectsPerDay)} (${count(p.averageBytes)})` : '-';
    });
  if (first.alternatives) {
    row('Firehose objects a day (average bytes)', (r) => {
      const lake = r.alternatives?.firehose.lake;
      return lake ? `${count(lake.objectsPerDay)} (${count(lake.averageBytes)})` : '';
    });
    row('Kinesis cheaper than SQS from (devices)', (r) => {
      const crossover = r.alternatives?.crossover;
      if (crossover?.devices === undefined)
        return crossover?.reason?.startsWith('not priced') ? 'not priced' : 'never';
      return count(crossover.devices);
    });
  }
  return { columns, rows };
}

function formatUnits(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  return n >= 1 ? n.toFixed(2) : n.toPrecision(2);
}
