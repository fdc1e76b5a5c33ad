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

function formatUnits(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  return n >= 1 ? n.toFixed(2) : n.toPrecision(2);
}
