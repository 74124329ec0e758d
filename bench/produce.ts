/** Produce: the matrix against a `sluice serve` child, one topic (one partition) per cell. */
import type { RunPlan } from "./config.js";
import { produceBody, recordPayload, type HttpClient } from "./load.js";
import { cellName, measureCell, writeResult, type CellRun } from "./measure.js";
import { createTopic, topicMetrics } from "./sluice.js";
import type { BackendName, SluiceWriteResult } from "./types.js";

const payloads = new Map<number, string>();

/** The same payload for every system and cell of a record size. */
export function payloadOf(bytes: number): string {
  let p = payloads.get(bytes);
  if (p === undefined) {
    p = recordPayload(bytes);
    payloads.set(bytes, p);
  }
  return p;
}

let topicSeq = 0;

/** One produce cell against a running server: a fresh topic, then warm-up and repeats. */
export async function sluiceCell(
  client: HttpClient,
  backend: BackendName,
  cell: { recordBytes: number; batch: number; concurrency: number },
  plan: Pick<RunPlan, "durationMs" | "warmupMs" | "repeats">,
): Promise<{ result: SluiceWriteResult; run: CellRun }> {
  const topic = `bench-${cellName(cell).replaceAll("/", "-")}-${Date.now().toString(36)}-${topicSeq++}`;
  await createTopic(client, topic);
  const body = produceBody(payloadOf(cell.recordBytes), cell.batch);
  const path = `/v1/topics/${topic}/records`;
  const run = await measureCell({ system: `sluice ${backend}`, ...cell }, plan, async () => {
    const res = await client.request("POST", path, body);
    if (res.status !== 200) {
      throw new Error(`produce answered ${res.status}: ${res.body.toString().slice(0, 200)}`);
    }
  });
  const m = await topicMetrics(client, topic);
  const result: SluiceWriteResult = {
    ...writeResult(run),
    backend,
    flushesPerSec: m.flushes / (run.totalElapsedMs / 1000),
    meanFlushBytes: m.flushes > 0 ? m.bytesIn / m.flushes : 0,
    requestsPerFlush: m.flushes > 0 ? m.produceRequests / m.flushes : 0,
  };
  return { result, run };
}
