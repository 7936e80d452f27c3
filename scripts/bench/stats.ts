// Small statistics and text-table helpers of the bench.

export function quantile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: with a handful of samples, p95 is honestly the worst one rather than an interpolation.
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Distribution {
  min: number;
  median: number;
  p95: number;
  max: number;
}

export function distribution(values: number[]): Distribution {
  if (values.length === 0) return { min: Number.NaN, median: Number.NaN, p95: Number.NaN, max: Number.NaN };
  return { min: Math.min(...values), median: median(values), p95: quantile(values, 0.95), max: Math.max(...values) };
}

/** A history event's protobuf timestamp in epoch milliseconds; NaN when it has none. */
export const tsMs = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  ts ? Number(String(ts.seconds ?? 0)) * 1000 + (ts.nanos ?? 0) / 1e6 : Number.NaN;

export const ms = (v: number | undefined | null) => (v === undefined || v === null || Number.isNaN(v) ? '—' : String(Math.round(v)));
export const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
/** Rounds for the JSON line; NaN (no sample) becomes null. */
export const round = (v: number, digits = 0) => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : null);

export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  // First column is a label; figures align right so digits line up.
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)];
}
