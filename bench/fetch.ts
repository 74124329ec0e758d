/**
 * Fetch: one consumer reads a partition back over HTTP from a `sluice serve` child started for
 * the read (so its object cache is cold), first from the chunks the flushes wrote, then, after
 * a maintenance pass in this process rolled them (rollMinAgeMs 0: the server's environment
 * cannot go below its floor), from the sealed segment. And end-to-end latency: produce → visible
 * to a consumer waiting in a long-poll fetch.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { logConfigDefaults } from "../src/config.js";
import { SluiceLog } from "../src/log/log.js";
import { logger } from "../src/logger.js";
import type { RunPlan } from "./config.js";
import { closedLoop, produceBody, type HttpClient } from "./load.js";
import { payloadOf } from "./produce.js";
import { createTopic, openBackend, startSluice, type BackendPlace } from "./sluice.js";
import { figure, latency, MB, MiB } from "./stats.js";
import type { EndToEndResult, ReadResult } from "./types.js";

const RECORD_BYTES = 1024;
const FETCH_BYTES = MiB;
const quiet = logger.child({}, { level: "warn" });

export interface FetchHooks {
  step: (label: string) => void;
  tick: () => void;
}

/** Steps the progress bar counts for one backend. */
export const fetchSteps = (plan: Pick<RunPlan, "repeats">) => 3 + 2 * plan.repeats;

export async function runFetch(
  place: BackendPlace,
  plan: Pick<RunPlan, "fetchMiB" | "repeats" | "endToEndSamples">,
  hooks: FetchHooks,
): Promise<{ reads: ReadResult[]; e2e: EndToEndResult; rolled: number }> {
  const topic = `fetch-${Date.now().toString(36)}`;
  const records = Math.ceil((plan.fetchMiB * MiB) / RECORD_BYTES);
  const batch = 1024;
  hooks.step(`fetch ${place.backend}: write ${plan.fetchMiB} MiB`);
  let e2e: EndToEndResult;
  {
    const sluice = await startSluice(place);
    try {
      await createTopic(sluice.client, topic, { "segment.ms": 1, "retention.ms": -1 });
      const body = produceBody(payloadOf(RECORD_BYTES), batch);
      const load = await closedLoop({
        concurrency: 4,
        durationMs: 300_000,
        maxOps: Math.ceil(records / batch),
        op: async () => {
          const res = await sluice.client.request("POST", `/v1/topics/${topic}/records`, body);
          if (res.status !== 200) throw new Error(`produce answered ${res.status}`);
        },
      });
      if (load.errors > 0) throw new Error(`fetch setup: ${load.errors} produce errors`);
      hooks.tick();
      hooks.step(`fetch ${place.backend}: end-to-end latency`);
      e2e = await endToEnd(sluice.client, place, plan.endToEndSamples);
      hooks.tick();
    } finally {
      await sluice.stop();
    }
  }

  const reads: ReadResult[] = [];
  reads.push(await readBack(place, topic, "chunks", plan.repeats, hooks));

  hooks.step(`fetch ${place.backend}: roll in-process`);
  const opened = openBackend(place);
  let rolled = 0;
  try {
    const log = new SluiceLog({
      store: opened.store,
      meta: opened.meta,
      config: { ...logConfigDefaults, rollMinAgeMs: 0 },
      logger: quiet,
    });
    for (let pass = 0; pass < 50; pass++) {
      const report = await log.runMaintenance({ topic });
      rolled += report.chunksReplaced;
      if (report.segmentsRolled === 0) break;
    }
  } finally {
    await opened.close();
  }
  hooks.tick();
  reads.push(await readBack(place, topic, "sealed", plan.repeats, hooks));
  return { reads, e2e, rolled };
}

/** Each repeat starts a server and reads the whole partition in FETCH_BYTES pages. */
async function readBack(
  place: BackendPlace,
  topic: string,
  source: "chunks" | "sealed",
  repeats: number,
  hooks: FetchHooks,
): Promise<ReadResult> {
  const rates: number[] = [];
  const lat: number[] = [];
  let totalRecords = 0;
  for (let r = 0; r < repeats; r++) {
    hooks.step(`fetch ${place.backend}: read ${source} ${r + 1}/${repeats}`);
    const sluice = await startSluice(place);
    try {
      const started = performance.now();
      let offset = 0;
      for (let page = 0; page < 1_000_000; page++) {
        const sent = performance.now();
        const res = await sluice.client.request(
          "GET",
          `/v1/topics/${topic}/partitions/0/records?offset=${offset}&maxBytes=${FETCH_BYTES}&maxRecords=100000`,
        );
        if (res.status !== 200) throw new Error(`fetch answered ${res.status}`);
        lat.push(performance.now() - sent);
        // The answer ends with the offsets: reading them there spares this process a parse of
        // every page (the server, not the client, is being measured).
        const tail = res.body.subarray(Math.max(0, res.body.length - 200)).toString();
        const next = /"nextOffset":(\d+),"logEndOffset":(\d+)\}$/.exec(tail);
        if (!next) throw new Error(`unexpected fetch answer: …${tail}`);
        if (page === 0) checkFirstPage(res.body);
        offset = Number(next[1]);
        if (offset >= Number(next[2])) break;
      }
      const seconds = (performance.now() - started) / 1000;
      rates.push(offset / seconds);
      totalRecords = offset;
    } finally {
      await sluice.stop();
    }
    hooks.tick();
  }
  const recordsPerSec = figure(rates);
  return {
    system: "sluice",
    backend: place.backend,
    source,
    recordBytes: RECORD_BYTES,
    fetchBytes: FETCH_BYTES,
    totalBytes: totalRecords * RECORD_BYTES,
    recordsPerSec,
    mbPerSec: figure(rates.map((r) => (r * RECORD_BYTES) / MB)),
    latencyMs: latency(lat),
  };
}

function checkFirstPage(body: Buffer): void {
  const parsed = JSON.parse(body.toString()) as { records: { value: { p: string } }[] };
  const first = parsed.records[0];
  if (!first || JSON.stringify(first.value).length !== RECORD_BYTES) {
    throw new Error("fetch returned records other than those produced");
  }
}

/**
 * A consumer long-polls (waitMs 5 s) on a fresh topic while a producer sends one record at a time
 * with short pauses; each record's latency runs from its send to the consumer holding it.
 */
async function endToEnd(
  client: HttpClient,
  place: BackendPlace,
  samples: number,
): Promise<EndToEndResult> {
  const topic = `e2e-${Date.now().toString(36)}`;
  await createTopic(client, topic);
  const sentAt = new Map<number, number>();
  const seen: number[] = [];
  const deadline = performance.now() + 120_000;
  let producing = true;
  const consumer = (async () => {
    let offset = 0;
    while (seen.length < samples && performance.now() < deadline) {
      const res = await client.request(
        "GET",
        `/v1/topics/${topic}/partitions/0/records?offset=${offset}&waitMs=5000`,
      );
      const received = performance.now();
      if (res.status !== 200) throw new Error(`long-poll answered ${res.status}`);
      const page = JSON.parse(res.body.toString()) as {
        records: { value: { s: number } }[];
        nextOffset: number;
      };
      for (const r of page.records) {
        const sent = sentAt.get(r.value.s);
        if (sent !== undefined) seen.push(received - sent);
      }
      offset = page.nextOffset;
      if (!producing && page.records.length === 0) break;
    }
  })();
  try {
    for (let s = 0; s < samples && performance.now() < deadline; s++) {
      sentAt.set(s, performance.now());
      const res = await client.request(
        "POST",
        `/v1/topics/${topic}/records`,
        JSON.stringify({ records: [{ value: { s } }] }),
      );
      if (res.status !== 200) throw new Error(`produce answered ${res.status}`);
      // Let the consumer be waiting again before the next record.
      await sleep(5);
    }
  } finally {
    producing = false;
  }
  await consumer;
  return { backend: place.backend, samples: seen.length, latencyMs: latency(seen) };
}
