/**
 * GET requests per MiB a cold sequential reader pays, the same partition read twice in one run:
 * first as the chunks its flushes wrote (the baseline), then after a maintenance pass rolled
 * them into one sealed segment. Reads use 1 MiB fetches, through a fresh process-like log each
 * time, so the object cache starts empty. docs/rfcs/0003-segments.md §11 predicts ≈ 0.27 for
 * the sealed segment with 4 MiB blocks.
 *
 *   npx tsx bench/read-cost.ts [MiB] [flushKiB]
 */
import { logConfigDefaults } from "../src/config.js";
import { SluiceLog, type ProduceRecord } from "../src/log/log.js";
import { MemoryMetaStore } from "../src/meta/memory.js";
import { MemoryObjectStore } from "../src/storage/memory.js";
import { CountingObjectStore } from "../test/support/counting-store.js";

const MiB = 1024 * 1024;
const totalMiB = Number(process.argv[2] ?? 64);
const flushKiB = Number(process.argv[3] ?? 256);

const store = new MemoryObjectStore();
const meta = new MemoryMetaStore();
const config = { ...logConfigDefaults, lingerMs: 0, rollMinAgeMs: 0, rollMaxBytes: 512 * MiB };
const writer = new SluiceLog({ store, meta, config });
await writer.topics.create("cost", 1, {
  "segment.ms": 1,
  "segment.bytes": totalMiB * MiB,
  "retention.ms": -1,
});
const value = new Uint8Array(16 * 1024).fill(7);
const record: ProduceRecord = {
  key: null,
  keyEncoding: "utf8",
  value,
  valueEncoding: "binary",
  headers: {},
};
const perFlush = Math.max(1, Math.floor((flushKiB * 1024) / value.byteLength));
for (let written = 0; written < totalMiB * MiB; written += perFlush * value.byteLength) {
  await writer.produce(
    "cost",
    Array.from({ length: perFlush }, () => record),
  );
}

async function readAll(label: string) {
  const counting = new CountingObjectStore(store);
  const reader = new SluiceLog({ store: counting, meta, config });
  const started = performance.now();
  let offset = 0;
  let bytes = 0;
  for (;;) {
    const page = await reader.fetch("cost", 0, offset, {
      maxRecords: 100_000,
      maxBytes: MiB,
      waitMs: 0,
    });
    if (page.records.length === 0) break;
    bytes += page.records.reduce((sum, r) => sum + r.value.byteLength, 0);
    offset = page.nextOffset;
  }
  const ranged = counting.getLog.filter((g) => g.range !== undefined).length;
  const perMiB = counting.gets / (bytes / MiB);
  console.log(
    `${label.padEnd(16)} ${String(counting.gets).padStart(6)} GETs (${ranged} ranged) for ` +
      `${(bytes / MiB).toFixed(0)} MiB = ${perMiB.toFixed(3)} GET/MiB, ` +
      `${(performance.now() - started).toFixed(0)} ms`,
  );
  return perMiB;
}

const chunks = await readAll(`chunks (${flushKiB} KiB)`);
await new Promise((r) => setTimeout(r, 2));
const report = await writer.runMaintenance();
console.log(`rolled ${report.chunksReplaced} chunks into ${report.segmentsRolled} segment(s)`);
const sealed = await readAll("sealed segment");
console.log(`sealed / chunks = ${(sealed / chunks).toFixed(3)}`);
