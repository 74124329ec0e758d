/**
 * How many objects a flush-per-partition log writes under concurrent produce load, over real
 * HTTP on 127.0.0.1 and the embedded store. Prints objects written per 1,000 produce requests
 * for several producer counts: the cost model says this must fall far below 1,000.
 *
 *   npx tsx bench/flush-batching.ts [requestsPerProducer]
 */
import { serve } from "@hono/node-server";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { logConfigDefaults } from "../src/config.js";
import { createApp } from "../src/http/app.js";
import { SluiceLog } from "../src/log/log.js";
import { SqliteMetaStore } from "../src/meta/sqlite.js";
import { FileSystemObjectStore } from "../src/storage/filesystem.js";

const requestsPerProducer = Number(process.argv[2] ?? 50);

async function run(producers: number) {
  const dir = await mkdtemp(join(tmpdir(), "sluice-bench-"));
  const store = new FileSystemObjectStore({ root: join(dir, "objects") });
  const meta = SqliteMetaStore.open(join(dir, "meta.sqlite"));
  const log = new SluiceLog({ store, meta, config: logConfigDefaults });
  const app = createApp({ log, maxRequestBytes: 8 << 20 });
  const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise((resolve) => server.once("listening", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const post = (path: string, body: unknown) =>
    fetch(url + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  await post("/v1/topics", { name: "bench", partitions: 1 });
  const record = { value: { payload: "x".repeat(200) } };
  const started = performance.now();
  await Promise.all(
    Array.from({ length: producers }, async () => {
      for (let i = 0; i < requestsPerProducer; i++) {
        const res = await post("/v1/topics/bench/records", { records: [record] });
        if (res.status !== 200) throw new Error(`produce failed: ${res.status}`);
        await res.arrayBuffer();
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const requests = producers * requestsPerProducer;
  const flushes = log.metrics.snapshot().bench?.flushes ?? 0;
  server.close();
  await log.close();
  await meta.close();
  await rm(dir, { recursive: true, force: true });
  return {
    producers,
    requests,
    objects: flushes,
    perThousand: (flushes / requests) * 1000,
    rps: requests / seconds,
  };
}

console.log("| producers | requests | objects written | objects per 1,000 requests | requests/s |");
console.log("|---:|---:|---:|---:|---:|");
for (const producers of [1, 16, 64]) {
  const r = await run(producers);
  console.log(
    `| ${r.producers} | ${r.requests} | ${r.objects} | ${r.perThousand.toFixed(1)} | ${r.rps.toFixed(0)} |`,
  );
}
