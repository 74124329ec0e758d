/**
 * Cost counters: Sluice in this process over counting wrappers of the backend's stores. The
 * server shape (linger 5 ms, the headline cell's 16 producers over HTTP) and the Lambda shape
 * (linger 0, one request per invocation) are ingested; the partition is read back cold from its
 * chunks, rolled by a maintenance pass, and read back cold from the sealed segment. Counts are
 * scaled to one GiB of record payload and priced with bench/config.ts.
 */
import { serve } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import { logConfigDefaults, type LogConfig } from "../src/config.js";
import { createApp } from "../src/http/app.js";
import { SluiceLog, type ProduceRecord } from "../src/log/log.js";
import { logger } from "../src/logger.js";
import type { MetaStore } from "../src/meta/meta-store.js";
import { headlineCell, lambdaShape, prices, type RunPlan } from "./config.js";
import { Counter, CountingObjectStore, countingDynamoClient, countingMeta } from "./counting.js";
import { closedLoop, HttpClient, produceBody } from "./load.js";
import { payloadOf } from "./produce.js";
import { openBackend, type BackendPlace } from "./sluice.js";
import { GiB, MiB } from "./stats.js";
import type { CostResult, CostStep, DollarBreakdown, StoreCounts } from "./types.js";

/** Consumers read in pages of the API's default size. */
const FETCH_BYTES = MiB;
const quiet = logger.child({}, { level: "warn" });

export async function runCost(
  place: BackendPlace,
  plan: Pick<RunPlan, "costMiB">,
  step: (label: string) => void,
): Promise<CostResult[]> {
  const counter = new Counter();
  const dynamo = place.backend === "s3+dynamodb" ? countingDynamoClient(counter) : undefined;
  const opened = openBackend(place, dynamo);
  const store = new CountingObjectStore(opened.store, counter);
  const meta = countingMeta(opened.meta, counter);
  const config: LogConfig = { ...logConfigDefaults, rollMinAgeMs: 0 };
  const priced = place.backend === "s3+dynamodb";
  const topicConfig = { "segment.ms": 1, "retention.ms": -1 };
  const results: CostResult[] = [];
  try {
    // Server shape: the headline cell over HTTP, until costMiB of payload.
    step(`cost ${place.backend}: ingest, server shape`);
    const server = new SluiceLog({ store, meta, config, logger: quiet });
    const topic = `cost-server-${Date.now().toString(36)}`;
    await server.topics.create(topic, 1, topicConfig);
    const { recordBytes, batch, concurrency } = headlineCell;
    const requests = Math.ceil((plan.costMiB * MiB) / (recordBytes * batch));
    const app = createApp({ log: server, maxRequestBytes: 32 * MiB, logger: quiet });
    const http = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((resolve) => http.once("listening", resolve));
    const client = new HttpClient(`http://127.0.0.1:${(http.address() as AddressInfo).port}`);
    const body = produceBody(payloadOf(recordBytes), batch);
    counter.reset();
    const started = performance.now();
    const load = await closedLoop({
      concurrency,
      durationMs: 300_000,
      maxOps: requests,
      op: async () => {
        const res = await client.request("POST", `/v1/topics/${topic}/records`, body);
        if (res.status !== 200) throw new Error(`produce answered ${res.status}`);
      },
    });
    client.close();
    await new Promise((resolve) => http.close(resolve));
    await server.close();
    if (load.errors > 0) throw new Error(`cost ingest: ${load.errors} errors (${load.firstError})`);
    const ingestBytes = load.ops * batch * recordBytes;
    const serverSteps: CostStep[] = [
      costStep("ingest", ingestBytes, counter.snapshot(), priced ? { requests: 0 } : undefined),
    ];
    const ingestSeconds = (performance.now() - started) / 1000;

    step(`cost ${place.backend}: read chunks`);
    serverSteps.push(await readStep("read chunks", topic, store, meta, config, counter, priced));

    step(`cost ${place.backend}: roll`);
    counter.reset();
    const rollStarted = performance.now();
    const roller = new SluiceLog({ store, meta, config, logger: quiet });
    for (let pass = 0; pass < 50; pass++) {
      const report = await roller.runMaintenance({ topic });
      if (report.segmentsRolled === 0) break;
    }
    const rollSeconds = (performance.now() - rollStarted) / 1000;
    serverSteps.push(
      costStep(
        "roll (maintenance)",
        ingestBytes,
        counter.snapshot(),
        priced ? { requests: 0, seconds: rollSeconds } : undefined,
      ),
    );

    step(`cost ${place.backend}: read sealed`);
    serverSteps.push(await readStep("read sealed", topic, store, meta, config, counter, priced));
    results.push({
      backend: place.backend,
      shape:
        `server: ${concurrency} producers × ${batch} records of ${recordBytes} B per request ` +
        `over HTTP, linger ${config.lingerMs} ms, one partition; reads in ` +
        `${FETCH_BYTES / MiB} MiB fetches, cold cache`,
      ingestSeconds,
      steps: serverSteps,
    });

    // Lambda shape (only ever on S3 + DynamoDB): each invocation's request is its own flush.
    if (!priced) return results;
    step(`cost ${place.backend}: ingest, Lambda shape`);
    const lambdaConfig = { ...config, lingerMs: 0 };
    const fn = new SluiceLog({ store, meta, config: lambdaConfig, logger: quiet });
    const lambdaTopic = `cost-lambda-${Date.now().toString(36)}`;
    await fn.topics.create(lambdaTopic, 1, topicConfig);
    const value = new TextEncoder().encode(payloadOf(recordBytes));
    const records: ProduceRecord[] = Array.from({ length: batch }, () => ({
      key: null,
      keyEncoding: "utf8",
      value,
      valueEncoding: "json",
      headers: {},
    }));
    const lambdaRequests = Math.max(1, Math.ceil(requests / 4));
    counter.reset();
    for (let i = 0; i < lambdaRequests; i++) await fn.produce(lambdaTopic, records);
    await fn.close();
    results.push({
      backend: place.backend,
      shape:
        `Lambda: one request of ${batch} records of ${recordBytes} B per invocation, linger 0 ` +
        `(functions/http.ts); ${lambdaShape.memoryMb} MB, an assumed ` +
        `${lambdaShape.assumedProduceMs} ms billed per produce and ${lambdaShape.assumedFetchMs} ms per fetch`,
      steps: [
        costStep(
          "ingest",
          lambdaRequests * batch * recordBytes,
          counter.snapshot(),
          priced ? { requests: lambdaRequests, ms: lambdaShape.assumedProduceMs } : undefined,
        ),
      ],
    });
  } finally {
    await opened.close();
    dynamo?.destroy();
  }
  return results;
}

async function readStep(
  label: string,
  topic: string,
  store: CountingObjectStore,
  meta: MetaStore,
  config: LogConfig,
  counter: Counter,
  priced: boolean,
): Promise<CostStep> {
  // A fresh log: its object cache starts empty, like a new process.
  const reader = new SluiceLog({ store, meta, config, logger: quiet });
  counter.reset();
  let offset = 0;
  let bytes = 0;
  let fetches = 0;
  for (let page = 0; page < 1_000_000; page++) {
    const result = await reader.fetch(topic, 0, offset, {
      maxRecords: 100_000,
      maxBytes: FETCH_BYTES,
      waitMs: 0,
    });
    fetches++;
    if (result.records.length === 0) break;
    for (const r of result.records) bytes += r.value.byteLength;
    offset = result.nextOffset;
  }
  return costStep(
    label,
    bytes,
    counter.snapshot(),
    priced ? { requests: fetches, ms: lambdaShape.assumedFetchMs } : undefined,
  );
}

function costStep(
  step: string,
  payloadBytes: number,
  counts: StoreCounts,
  lambda: { requests: number; ms?: number; seconds?: number } | undefined,
): CostStep {
  const factor = payloadBytes > 0 ? GiB / payloadBytes : 0;
  const perGiB = Object.fromEntries(
    Object.entries(counts).map(([k, v]) => [k, v * factor]),
  ) as unknown as StoreCounts;
  return {
    step,
    payloadBytes,
    counts,
    perGiB,
    ...(lambda === undefined ? {} : { dollarsPerGiB: dollars(perGiB, lambda, factor) }),
  };
}

/** Dollars per GiB at the configured prices. */
function dollars(
  perGiB: StoreCounts,
  lambda: { requests: number; ms?: number; seconds?: number },
  factor: number,
): DollarBreakdown {
  const s3Requests =
    (perGiB.puts + perGiB.lists) * prices.s3.putPerRequest +
    perGiB.gets * prices.s3.getPerRequest +
    perGiB.deletes * prices.s3.deletePerRequest;
  const dynamodb =
    perGiB.writeUnits * prices.dynamodb.perWriteUnit +
    perGiB.readUnits * prices.dynamodb.perReadUnit;
  const invocations = lambda.requests * factor;
  const lambdaRequests = invocations * prices.lambda.perRequest;
  const gb = lambdaShape.memoryMb / 1024;
  const seconds =
    lambda.seconds !== undefined
      ? lambda.seconds * factor
      : (invocations * (lambda.ms ?? 0)) / 1000;
  const lambdaCompute = seconds * gb * prices.lambda.perGbSecond;
  return {
    s3Requests,
    dynamodb,
    lambdaRequests,
    lambdaCompute,
    total: s3Requests + dynamodb + lambdaRequests + lambdaCompute,
  };
}

/** S3 Standard storage of one GiB for a month. */
export const storagePerGiBMonth = (GiB / 1e9) * prices.s3.storagePerGbMonth;
