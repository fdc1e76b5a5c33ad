/** `30s`, `5m`, `1h`, `2d`, `250ms` or a bare number (seconds) as milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
  if (!match?.[1]) throw new Error(`"${text}" is not a duration; write e.g. 30s, 5m or 1h`);
  return Number(match[1]) * unit[(match[2] ?? 's') as keyof typeof unit];
}
