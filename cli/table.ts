/** Query results for people (an aligned table) and for spreadsheets (CSV, RFC 4180). */
export interface Rows {
  readonly columns: readonly string[];
  readonly rows: readonly Record<string, unknown>[];
}

function text(value: unknown): string {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

export function formatTable({ columns, rows }: Rows): string {
  const cells = rows.map((row) => columns.map((c) => text(row[c]).replace(/\s+/g, ' ')));
  const widths = columns.map((c, i) =>
    Math.min(60, Math.max(c.length, ...cells.map((r) => (r[i] ?? '').length))),
  );
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => {
        const width = widths[i] ?? 0;
        const cut = v.length > width ? `${v.slice(0, width - 1)}…` : v;
        return cut.padEnd(width);
      })
      .join(' | ')
      .trimEnd();
  return `${[line(columns), widths.map((w) => '-'.repeat(w)).join('-+-'), ...cells.map(line)].join('\n')}\n`;
}

export function formatCsv({ columns, rows }: Rows): string {
  const quote = (v: string) => (/[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
  return `${[columns.map(quote).join(','), ...rows.map((row) => columns.map((c) => quote(text(row[c]))).join(','))].join('\r\n')}\r\n`;
}
