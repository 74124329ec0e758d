import type { Figure, Latency } from "./types.js";

/** The median of the runs with their spread. */
export function figure(values: readonly number[]): Figure {
  if (values.length === 0) return { median: NaN, min: NaN, max: NaN, runs: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)!, runs: sorted.length };
}

export function median(values: readonly number[]): number {
  return figure(values).median;
}

/** Nearest-rank percentile of already sorted samples. */
function rank(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[index]!;
}

/** p50 / p99 / p999 of latency samples in milliseconds. */
export function latency(samples: readonly number[] | Float64Array): Latency {
  const sorted = Float64Array.from(samples).sort();
  return { p50: rank(sorted, 0.5), p99: rank(sorted, 0.99), p999: rank(sorted, 0.999) };
}

/** A figure scaled by a constant (e.g. records/s → MB/s). */
export function scale(f: Figure, by: number): Figure {
  return { median: f.median * by, min: f.min * by, max: f.max * by, runs: f.runs };
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Decimal megabytes, as throughput is usually quoted. */
export const MB = 1e6;

/** 1234567 → "1.23M", 12345 → "12.3k"; keeps three significant digits. */
export function compact(n: number): string {
  if (!Number.isFinite(n)) return "–";
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${sig(n / 1e9)}G`;
  if (abs >= 1e6) return `${sig(n / 1e6)}M`;
  if (abs >= 1e3) return `${sig(n / 1e3)}k`;
  return sig(n);
}

/** Three significant digits without exponent notation. */
export function sig(n: number, digits = 3): string {
  if (!Number.isFinite(n)) return "–";
  if (n === 0) return "0";
  const abs = Math.abs(n);
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(abs)));
  return n.toFixed(Math.min(decimals, 6));
}

/** "1.23k (1.1k–1.3k)": a figure with its spread. */
export function spread(f: Figure, fmt: (n: number) => string = compact): string {
  if (f.runs <= 1) return fmt(f.median);
  return `${fmt(f.median)} (${fmt(f.min)}–${fmt(f.max)})`;
}

export function bytesLabel(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}
