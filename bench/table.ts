// Plain-text tables for the bench's report: columns padded to their widest cell.

export const fmt = (v: number | undefined, unit = ''): string => (v === undefined || !Number.isFinite(v) ? 'n/a' : `${v}${unit}`);

export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
