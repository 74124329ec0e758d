import type { RunPlan } from "./config.js";
import { closedLoop } from "./load.js";
import { figure, latency, MB } from "./stats.js";
import type { WriteResult } from "./types.js";

export interface CellSpec {
  system: string;
  recordBytes: number;
  batch: number;
  concurrency: number;
}

export interface CellRun extends WriteResult {
  /** Operations and wall time of the warm-up and every repeat together. */
  totalOps: number;
  totalElapsedMs: number;
  firstError?: string;
}

/**
 * One cell: a warm-up, then `plan.repeats` closed-loop runs of `plan.durationMs`. Throughput is
 * a figure over the repeats; latency percentiles pool every acknowledged operation.
 */
export async function measureCell(
  spec: CellSpec,
  plan: Pick<RunPlan, "durationMs" | "warmupMs" | "repeats">,
  op: (worker: number, index: number) => Promise<void>,
): Promise<CellRun> {
  const warm = await closedLoop({
    concurrency: spec.concurrency,
    durationMs: plan.warmupMs,
    op,
  });
  let totalOps = warm.ops;
  let totalElapsedMs = warm.elapsedMs;
  let errors = warm.errors;
  let firstError = warm.firstError;
  const rates: number[] = [];
  const all: number[] = [];
  for (let r = 0; r < plan.repeats; r++) {
    const run = await closedLoop({
      concurrency: spec.concurrency,
      durationMs: plan.durationMs,
      op,
    });
    rates.push(run.ops / (run.elapsedMs / 1000));
    for (const l of run.latencies) all.push(l);
    totalOps += run.ops;
    totalElapsedMs += run.elapsedMs;
    errors += run.errors;
    firstError ??= run.firstError;
  }
  const requestsPerSec = figure(rates);
  const recordsPerSec = figure(rates.map((r) => r * spec.batch));
  const mbPerSec = figure(rates.map((r) => (r * spec.batch * spec.recordBytes) / MB));
  return {
    ...spec,
    recordsPerSec,
    mbPerSec,
    requestsPerSec,
    latencyMs: latency(all),
    samples: all.length,
    errors,
    totalOps,
    totalElapsedMs,
    ...(firstError === undefined ? {} : { firstError }),
  };
}

/** The cells of a matrix in run order (small first, so a broken setup fails fast). */
export function cellsOf(matrix: RunPlan["matrix"]): Omit<CellSpec, "system">[] {
  const cells: Omit<CellSpec, "system">[] = [];
  for (const recordBytes of matrix.recordBytes) {
    for (const batch of matrix.batches) {
      for (const concurrency of matrix.concurrency) cells.push({ recordBytes, batch, concurrency });
    }
  }
  return cells;
}

/** `1KiB/b100/c16`: how a cell is named in ids, filters and the report. */
export function cellName(cell: { recordBytes: number; batch: number; concurrency: number }) {
  const size = cell.recordBytes >= 1024 ? `${cell.recordBytes / 1024}KiB` : `${cell.recordBytes}B`;
  return `${size}/b${cell.batch}/c${cell.concurrency}`;
}

/** Strips the bookkeeping fields a result file does not need. */
export function writeResult(run: CellRun): WriteResult {
  const { totalOps: _o, totalElapsedMs: _e, firstError: _f, ...result } = run;
  return result;
}
