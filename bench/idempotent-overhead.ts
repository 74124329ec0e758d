/**
 * What idempotence costs a producer: the same load of concurrent single-record requests on one
 * partition of the embedded store, first plain (the baseline), then with Producer-Id / Epoch /
 * Seq (one producer per client, sequences in order), in one run. Prints requests/s, objects
 * written per 1,000 requests and the ratio of the two runs.
 *
 *   npx tsx bench/idempotent-overhead.ts [producers] [requestsPerProducer]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { logConfigDefaults } from "../src/config.js";
import { SluiceLog } from "../src/log/log.js";
import { SqliteMetaStore } from "../src/meta/sqlite.js";
import { FileSystemObjectStore } from "../src/storage/filesystem.js";
import { CountingObjectStore } from "../test/support/counting-store.js";

const producers = Number(process.argv[2] ?? 16);
const perProducer = Number(process.argv[3] ?? 100);

async function run(idempotent: boolean) {
  const dir = await mkdtemp(join(tmpdir(), "sluice-bench-"));
  const store = new CountingObjectStore(new FileSystemObjectStore({ root: join(dir, "objects") }));
  const meta = SqliteMetaStore.open(join(dir, "meta.sqlite"));
  const log = new SluiceLog({ store, meta, config: logConfigDefaults });
  await log.topics.create("bench", 1);
  const value = new TextEncoder().encode(JSON.stringify({ pad: "x".repeat(100) }));
  const started = performance.now();
  await Promise.all(
    Array.from({ length: producers }, async (_, p) => {
      for (let seq = 0; seq < perProducer; seq++) {
        await log.produce(
          "bench",
          [{ key: null, keyEncoding: "utf8", value, valueEncoding: "json", headers: {} }],
          idempotent ? { producer: { id: `bench-${p}`, epoch: 0, seq } } : {},
        );
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const requests = producers * perProducer;
  await log.close();
  await meta.close();
  await rm(dir, { recursive: true, force: true });
  return { rate: requests / seconds, objectsPer1000: (store.puts / requests) * 1000 };
}

const plain = await run(false);
const idempotent = await run(true);
for (const [label, r] of [
  ["plain", plain],
  ["idempotent", idempotent],
] as const) {
  console.log(
    `${label.padEnd(11)} ${r.rate.toFixed(0).padStart(6)} requests/s, ` +
      `${r.objectsPer1000.toFixed(1)} objects per 1,000 requests`,
  );
}
console.log(`idempotent / plain throughput = ${(idempotent.rate / plain.rate).toFixed(2)}`);
