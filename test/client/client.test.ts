import { build } from "esbuild";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SluiceApiError, type ConsumedRecord, type SluiceClient } from "../../src/client/index.js";
import type { Harness } from "../support/harness.js";
import { appFetch, clientFor, memoryHarness, spyFetch } from "./support.js";

describe("client", () => {
  let h: Harness;
  let client: SluiceClient;

  beforeEach(async () => {
    h = await memoryHarness();
    client = clientFor(h);
  });
  afterEach(async () => {
    await h.log.close();
  });

  describe("admin", () => {
    it("creates, lists, describes and deletes topics", async () => {
      const created = await client.admin.createTopic("orders", 3, { "retention.ms": 86_400_000 });
      expect(created).toMatchObject({ name: "orders", partitions: 3 });
      expect(created.config["retention.ms"]).toBe(86_400_000);
      expect(await client.admin.listTopics()).toEqual([{ name: "orders", partitions: 3 }]);

      const described = await client.admin.describeTopic("orders");
      expect(described.partitions).toHaveLength(3);
      expect(described.partitions[0]!.segments).toBeDefined();
      const lean = await client.admin.describeTopic("orders", { segments: false });
      expect(lean.partitions[0]!.segments).toBeUndefined();

      await client.admin.deleteTopic("orders");
      expect(await client.admin.listTopics()).toEqual([]);
    });

    it("lists offsets by earliest, latest and time", async () => {
      await client.admin.createTopic("t", 1);
      const producer = client.producer();
      await producer.send("t", [
        { value: 1, timestamp: 1_000 },
        { value: 2, timestamp: 2_000 },
      ]);
      expect(await client.admin.listOffsets("t", 0, "earliest")).toEqual({
        offset: 0,
        logStartOffset: 0,
        logEndOffset: 2,
      });
      expect((await client.admin.listOffsets("t", 0, "latest")).offset).toBe(2);
      expect((await client.admin.listOffsets("t", 0, 1_500)).offset).toBe(1);
      expect((await client.admin.listOffsets("t", 0, 9_000)).offset).toBeNull();
      await producer.close();
    });

    it("describes, resets, lists and deletes groups", async () => {
      await client.admin.createTopic("t", 2);
      await client.producer().send("t", [
        { value: 1, partition: 0 },
        { value: 2, partition: 0 },
      ]);
      const reset = await client.admin.resetOffsets("g", { to: "latest", topic: "t" });
      expect(reset.offsets).toEqual([
        { topic: "t", partition: 0, previousOffset: null, offset: 2 },
        { topic: "t", partition: 1, previousOffset: null, offset: 0 },
      ]);
      expect((await client.admin.listGroups()).map((g) => g.group)).toEqual(["g"]);
      const described = await client.admin.describeGroup("g");
      expect(described).toMatchObject({ group: "g", members: [], totalLag: 0 });
      await client.admin.deleteGroup("g");
      expect(await client.admin.listGroups()).toEqual([]);
    });

    it("runs a maintenance pass", async () => {
      await client.admin.createTopic("t", 1);
      const report = await client.admin.runMaintenance("t");
      expect(report).toMatchObject({ segmentsRolled: expect.any(Number) });
    });
  });

  describe("errors", () => {
    it("carry the server's code, status and details as SluiceApiError", async () => {
      const missing = await client.admin.describeTopic("nope").catch((e) => e);
      expect(missing).toBeInstanceOf(SluiceApiError);
      expect(missing).toMatchObject({ status: 404, code: "topic_not_found", retryable: false });

      await client.admin.createTopic("t", 1);
      await expect(client.admin.createTopic("t", 1)).rejects.toMatchObject({
        status: 409,
        code: "topic_exists",
      });
      const range = await client.fetch("t", 0, 5).catch((e) => e);
      expect(range).toMatchObject({ status: 416, code: "offset_out_of_range" });
      expect(range.details).toMatchObject({ logStartOffset: 0, logEndOffset: 0 });
      await expect(client.admin.createTopic("bad name", 1)).rejects.toMatchObject({
        status: 400,
        code: "invalid_name",
      });
    });

    it("retries reads after network errors, 429 and 503, with backoff", async () => {
      const failures: (() => Response)[] = [
        () => {
          throw new TypeError("fetch failed");
        },
        () => new Response("slow down", { status: 429 }),
        () =>
          Response.json(
            { error: { code: "storage_unavailable", message: "try again" } },
            { status: 503 },
          ),
        () => new Response("bad gateway", { status: 502 }),
      ];
      const spy = spyFetch(appFetch(h), async (_request, send) => {
        const fail = failures.shift();
        return fail ? fail() : send();
      });
      client = clientFor(h, {}, spy.fetch);
      expect(await client.admin.listTopics()).toEqual([]);
      expect(spy.requests).toHaveLength(5);
    });

    it("gives up after `retries` and does not retry a 500 the server answered", async () => {
      const spy = spyFetch(appFetch(h), () =>
        Promise.resolve(new Response("unavailable", { status: 503 })),
      );
      client = clientFor(h, { retry: { retries: 2, initialDelayMs: 1, maxDelayMs: 1 } }, spy.fetch);
      await expect(client.admin.listTopics()).rejects.toMatchObject({
        status: 503,
        code: "http_503",
        retryable: true,
      });
      expect(spy.requests).toHaveLength(3);

      const internal = spyFetch(appFetch(h), () =>
        Promise.resolve(
          Response.json(
            { error: { code: "internal", message: "internal error" } },
            { status: 500 },
          ),
        ),
      );
      client = clientFor(h, {}, internal.fetch);
      await expect(client.admin.listTopics()).rejects.toMatchObject({
        status: 500,
        code: "internal",
        retryable: false,
      });
      expect(internal.requests).toHaveLength(1);
    });

    it("sends the configured headers, and stops at once when the signal aborts", async () => {
      const spy = spyFetch(appFetch(h));
      client = clientFor(h, { headers: { authorization: "Bearer x" } }, spy.fetch);
      await client.admin.createTopic("t", 1);
      expect(spy.requests[0]!.headers.get("authorization")).toBe("Bearer x");

      const controller = new AbortController();
      const started = Date.now();
      const waiting = client.fetch("t", 0, 0, { waitMs: 10_000, signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      await expect(waiting).rejects.toMatchObject({ name: "AbortError" });
      expect(Date.now() - started).toBeLessThan(5_000);
    });
  });

  describe("reads", () => {
    it("fetches a batch of a partition", async () => {
      await client.admin.createTopic("t", 1);
      await client
        .producer()
        .send("t", [
          { key: "k", value: { a: 1 }, headers: { h: "v" } },
          { value: [1, 2] },
          { value: null },
        ]);
      const result = await client.fetch("t", 0, 0, { maxRecords: 2 });
      expect(result.nextOffset).toBe(2);
      expect(result.logEndOffset).toBe(3);
      expect(result.records).toEqual([
        {
          offset: 0,
          timestamp: expect.any(Number),
          key: "k",
          value: { a: 1 },
          headers: { h: "v" },
        },
        { offset: 1, timestamp: expect.any(Number), key: null, value: [1, 2], headers: {} },
      ]);
      expect((await client.fetch("t", 0, 2)).records[0]!.value).toBeNull();
    });

    it("tails a partition: yields what was there and what is produced later", async () => {
      await client.admin.createTopic("t", 1);
      const producer = client.producer({ lingerMs: 0 });
      await producer.send("t", [{ value: "before" }]);
      const controller = new AbortController();
      const seen: ConsumedRecord[] = [];
      const tailing = (async () => {
        for await (const record of client.tail("t", 0, {
          from: "earliest",
          signal: controller.signal,
          waitMs: 200,
        })) {
          seen.push(record);
          if (seen.length === 4) controller.abort();
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const value of ["one", "two", "three"]) {
        await producer.send("t", [{ value }]);
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      await tailing;
      expect(seen.map((r) => [r.offset, r.value])).toEqual([
        [0, "before"],
        [1, "one"],
        [2, "two"],
        [3, "three"],
      ]);
    });

    it("tails from latest, and stops when aborted while waiting", async () => {
      await client.admin.createTopic("t", 1);
      const producer = client.producer({ lingerMs: 0 });
      await producer.send("t", [{ value: "old" }, { value: "older" }]);
      const controller = new AbortController();
      const tail = client.tail("t", 0, {
        from: "latest",
        signal: controller.signal,
        waitMs: 5_000,
      });
      const iterator = tail[Symbol.asyncIterator]();
      const first = iterator.next();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await producer.send("t", [{ value: "new" }]);
      expect(await first).toMatchObject({ done: false, value: { offset: 2, value: "new" } });
      const second = iterator.next();
      setTimeout(() => controller.abort(), 50);
      expect(await second).toEqual({ done: true, value: undefined });
    });
  });

  it("bundles for any runtime: no Node built-ins, no server code", async () => {
    const result = await build({
      entryPoints: ["src/client/index.ts"],
      bundle: true,
      platform: "neutral",
      format: "esm",
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((f) => f.includes("node_modules"))).toEqual([]);
    // Only the client, and the partitioner it shares with the server (pure Uint8Array math).
    expect(inputs.filter((f) => !f.startsWith("src/client/"))).toEqual(["src/log/murmur2.ts"]);
  });
});
