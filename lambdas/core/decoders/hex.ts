/** Strict hex: an even number of hex digits (spaces allowed between bytes), or an error that says what is wrong. */
export function parseHex(text: string): Buffer | { error: string } {
  const compact = text.replace(/\s+/g, '');
  const bad = /[^0-9a-fA-F]/.exec(compact);
  if (bad) return { error: `"${bad[0]}" at position ${bad.index + 1} is not a hex digit` };
  if (compact.length % 2 !== 0)
    return { error: `${compact.length} hex digits: a byte is two, so the count must be even` };
  return Buffer.from(compact, 'hex');
}
