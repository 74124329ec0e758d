/**
 * The limits Sluice is measured against in the same run: raw PutObject / GetObject of the store
 * at the size of a Sluice flush, and a trivial Hono handler's request rate.
 */
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { ObjectStore } from "../src/storage/object-store.js";
import { startChild } from "./children.js";
import type { RunPlan } from "./config.js";
import { HttpClient, produceBody } from "./load.js";
import { measureCell, writeResult } from "./measure.js";
import { payloadOf } from "./produce.js";
import type { StoreLimit, WriteResult } from "./types.js";

/** PUTs of fresh keys, then GETs of those keys, at each concurrency. */
export async function storeLimits(
  name: string,
  store: ObjectStore,
  objectBytes: number,
  concurrency: number[],
  plan: Pick<RunPlan, "durationMs" | "warmupMs" | "repeats">,
  onStep: (label: string) => void,
): Promise<StoreLimit[]> {
  const size = Math.max(1, Math.round(objectBytes));
  const body = new Uint8Array(randomBytes(size));
  const run = `raw-${Date.now().toString(36)}`;
  const written: string[] = [];
  const results: StoreLimit[] = [];
  let seq = 0;
  for (const c of concurrency) {
    onStep(`${name} put ${size} B c${c}`);
    const put = await measureCell(
      { system: name, recordBytes: size, batch: 1, concurrency: c },
      plan,
      async () => {
        const key = `${run}/${String(seq++).padStart(9, "0")}`;
        await store.put(key, body);
        // Bounded: the GETs only need a spread of keys to read.
        if (written.length < 10_000) written.push(key);
      },
    );
    results.push(limitOf(name, "put", size, c, put));
  }
  for (const c of concurrency) {
    onStep(`${name} get ${size} B c${c}`);
    const get = await measureCell(
      { system: name, recordBytes: size, batch: 1, concurrency: c },
      plan,
      async (_w, i) => {
        const bytes = await store.get(written[i % written.length]!);
        if (bytes.byteLength !== size) throw new Error(`GET returned ${bytes.byteLength} bytes`);
      },
    );
    results.push(limitOf(name, "get", size, c, get));
  }
  return results;
}

function limitOf(
  store: string,
  op: "put" | "get",
  objectBytes: number,
  concurrency: number,
  run: WriteResult,
): StoreLimit {
  return {
    store,
    op,
    objectBytes,
    concurrency,
    opsPerSec: run.recordsPerSec,
    mbPerSec: run.mbPerSec,
    latencyMs: run.latencyMs,
  };
}

const honoScript = fileURLToPath(new URL("./hono-server.ts", import.meta.url));

/** The trivial Hono handler, a child process like Sluice, with the same request bodies. */
export async function honoLimits(
  cells: { recordBytes: number; batch: number; concurrency: number }[],
  plan: Pick<RunPlan, "durationMs" | "warmupMs" | "repeats">,
  onStep: (label: string) => void,
  onDone: () => void,
): Promise<WriteResult[]> {
  const hono = await startChild(process.execPath, ["--import", "tsx", honoScript], (line) => {
    if (!line.startsWith("{")) return undefined;
    return (JSON.parse(line) as { port: number }).port;
  });
  const client = new HttpClient(`http://127.0.0.1:${hono.ready}`, 128);
  const results: WriteResult[] = [];
  try {
    for (const cell of cells) {
      onStep(`hono ${cell.recordBytes} B b${cell.batch} c${cell.concurrency}`);
      const body = produceBody(payloadOf(cell.recordBytes), cell.batch);
      const run = await measureCell({ system: "hono", ...cell }, plan, async () => {
        const res = await client.request("POST", "/v1/topics/bench/records", body);
        if (res.status !== 200) throw new Error(`hono answered ${res.status}`);
      });
      results.push(writeResult(run));
      onDone();
    }
  } finally {
    client.close();
    await hono.stop();
  }
  return results;
}
