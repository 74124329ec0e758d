import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Consumer, EachBatchPayload, SluiceClient } from "../../src/client/index.js";
import type { Harness } from "../support/harness.js";
import { appFetch, clientFor, memoryHarness, spyFetch, until } from "./support.js";

/** The shortest session the server allows: heartbeats every 2 s. */
const SESSION = 6_000;

describe("client consumer", () => {
  let h: Harness;
  let client: SluiceClient;
  const running: { consumer: Consumer; run: Promise<void> }[] = [];

  beforeEach(async () => {
    h = await memoryHarness();
    client = clientFor(h);
  });
  afterEach(async () => {
    for (const { consumer, run } of running.splice(0)) {
      await consumer.stop();
      await run.catch(() => undefined);
    }
    await h.log.close();
  });

  const start = (
    group: string,
    handlers: Parameters<Consumer["run"]>[0],
    options: { topics?: string[]; waitMs?: number; maxRecords?: number } = {},
  ) => {
    const consumer = client.consumer({
      group,
      topics: options.topics ?? ["orders"],
      sessionTimeoutMs: SESSION,
      resetPolicy: "earliest",
      waitMs: options.waitMs ?? 100,
      ...(options.maxRecords ? { maxRecords: options.maxRecords } : {}),
    });
    const run = consumer.run(handlers);
    running.push({ consumer, run });
    return { consumer, run };
  };

  const produce = async (from: number, count: number, partitions = 4) => {
    const producer = client.producer();
    await producer.send(
      "orders",
      Array.from({ length: count }, (_, i) => ({
        value: from + i,
        partition: (from + i) % partitions,
      })),
    );
    await producer.close();
  };

  it("two members of a group consume every record exactly once, and one takes over when the other stops", async () => {
    await client.admin.createTopic("orders", 4);
    const seen = new Map<number, string[]>();
    const record = (name: string) => async (batch: EachBatchPayload) => {
      for (const r of batch.records) {
        seen.set(r.value as number, [...(seen.get(r.value as number) ?? []), name]);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    };
    await produce(0, 200);
    const a = start("billing", { eachBatch: record("A") }, { maxRecords: 20 });
    await until(() => seen.size >= 40, "A to consume");
    const b = start("billing", { eachBatch: record("B") }, { maxRecords: 20 });
    // B's join moves half of A's partitions: A commits, releases, and B is granted them.
    await until(
      () => a.consumer.assignments.length === 2 && b.consumer.assignments.length === 2,
      "a balanced group",
    );
    await produce(200, 200);
    await until(() => seen.size === 400, "every record");
    expect(new Set([...seen.values()].flat())).toEqual(new Set(["A", "B"]));

    // B stops: it commits, leaves, and A is granted everything.
    await b.consumer.stop();
    await b.run;
    expect(b.consumer.memberId).toBeUndefined();
    await until(() => a.consumer.assignments.length === 4, "A to hold every partition");
    await produce(400, 100);
    await until(() => seen.size === 500, "the records after the rebalance");
    await until(async () => (await client.admin.describeGroup("billing")).totalLag === 0, "lag 0");

    const duplicates = [...seen].filter(([, by]) => by.length > 1);
    expect(duplicates).toEqual([]);
    expect([...seen.keys()].sort((x, y) => x - y)).toEqual(
      Array.from({ length: 500 }, (_, i) => i),
    );
    const group = await client.admin.describeGroup("billing");
    expect(group.members.map((m) => m.memberId)).toEqual([a.consumer.memberId]);
  }, 60_000);

  it("feeds eachRecord in offset order per partition and commits after the handler", async () => {
    await client.admin.createTopic("orders", 2);
    await produce(0, 10, 2);
    const seen: [number, number][] = [];
    const { consumer, run } = start("each", {
      eachRecord: (r) => {
        expect(r.topic).toBe("orders");
        seen.push([r.partition, r.offset]);
        return Promise.resolve();
      },
    });
    await until(() => seen.length === 10, "every record");
    await until(async () => (await client.admin.describeGroup("each")).totalLag === 0, "commits");
    for (const p of [0, 1]) {
      expect(seen.filter(([q]) => q === p).map(([, o]) => o)).toEqual([0, 1, 2, 3, 4]);
    }
    await consumer.stop();
    await run;
    // It left the group on stop.
    expect((await client.admin.describeGroup("each")).members).toEqual([]);
  });

  it("ends run() with a handler's error after committing what was processed", async () => {
    await client.admin.createTopic("orders", 1);
    await produce(0, 5, 1);
    const { run } = start("failing", {
      eachRecord: (r) =>
        r.value === 3 ? Promise.reject(new Error("cannot handle 3")) : Promise.resolve(),
    });
    await expect(run).rejects.toThrow("cannot handle 3");
    const group = await client.admin.describeGroup("failing");
    expect(group.members).toEqual([]);
    expect(group.partitions).toMatchObject([{ partition: 0, currentOffset: 3 }]);
  });

  it("with autoCommit false still commits before the next fetch and on stop", async () => {
    await client.admin.createTopic("orders", 1);
    await produce(0, 6, 1);
    const spy = spyFetch(appFetch(h));
    client = clientFor(h, {}, spy.fetch);
    const seen: number[] = [];
    const { consumer, run } = start(
      "manual",
      {
        eachBatch: (batch) => {
          seen.push(...batch.records.map((r) => r.offset));
          return Promise.resolve();
        },
        autoCommit: false,
      },
      { maxRecords: 2 },
    );
    await until(() => seen.length === 6, "every record");
    await consumer.stop();
    await run;
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]);
    const group = await client.admin.describeGroup("manual");
    expect(group.partitions).toMatchObject([{ currentOffset: 6 }]);
    const commits = spy.requests.filter((r) => r.path === "/v1/groups/manual/offsets");
    expect(commits.map((r) => JSON.parse(r.body!).offsets[0].offset)).toEqual([2, 4, 6]);
  });

  it("rejoins after the server forgot the member (404 unknown_member)", async () => {
    await client.admin.createTopic("orders", 2);
    await produce(0, 4, 2);
    const seen: number[] = [];
    const { consumer } = start("rejoin", {
      eachBatch: (batch) => {
        seen.push(...batch.records.map((r) => r.value as number));
        return Promise.resolve();
      },
    });
    await until(() => seen.length === 4, "the first records");
    const first = consumer.memberId!;
    // An operator (or a lapsed lease) removes the member behind its back.
    expect((await h.call("DELETE", `/v1/groups/rejoin/members/${first}`)).status).toBe(204);
    await produce(4, 4, 2);
    await until(() => seen.length === 8, "the records after the rejoin");
    expect(consumer.memberId).toBeDefined();
    expect(consumer.memberId).not.toBe(first);
    expect(seen.sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("drops a fenced partition's position, refreshes its view and carries on", async () => {
    await client.admin.createTopic("orders", 1);
    await produce(0, 3, 1);
    let fenced = 0;
    const spy = spyFetch(appFetch(h), async (request, send) => {
      if (request.path === "/v1/groups/fenced/offsets" && fenced === 0) {
        fenced++;
        const body = JSON.parse(request.body!);
        return Response.json(
          {
            error: {
              code: "fenced",
              message: "not held",
              details: {
                generation: body.generation,
                reason: "not_held",
                partitions: body.offsets,
              },
            },
          },
          { status: 409 },
        );
      }
      return send();
    });
    client = clientFor(h, {}, spy.fetch);
    const seen: number[] = [];
    start("fenced", {
      eachBatch: (batch) => {
        seen.push(...batch.records.map((r) => r.offset));
        return Promise.resolve();
      },
    });
    // The refused commit moved nothing: the member, still holding the partition, is served
    // the records again (at-least-once) and commits them the second time.
    await until(() => seen.length === 6, "the records, twice");
    await until(async () => (await client.admin.describeGroup("fenced")).totalLag === 0, "lag 0");
    expect(seen).toEqual([0, 1, 2, 0, 1, 2]);
    const paths = spy.requests.map((r) => r.path.split("/").slice(-1)[0]);
    expect(paths.indexOf("heartbeat")).toBeGreaterThan(paths.indexOf("offsets"));
  });

  it("stop() ends a waiting fetch at once, and stop() without run() is a no-op", async () => {
    await client.admin.createTopic("orders", 1);
    const { consumer, run } = start("idle", { eachBatch: async () => {} }, { waitMs: 1_500 });
    await until(() => consumer.memberId !== undefined, "the join");
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    await consumer.stop();
    await run;
    expect(Date.now() - started).toBeLessThan(1_000);
    await client.consumer({ group: "x", topics: ["orders"] }).stop();
  });

  it("rejects run() when the group cannot be joined", async () => {
    const consumer = client.consumer({ group: "g", topics: ["missing"] });
    await expect(consumer.run({ eachBatch: async () => {} })).rejects.toMatchObject({
      status: 404,
      code: "topic_not_found",
    });
    await expect(consumer.run({})).rejects.toBeInstanceOf(TypeError);
  });
});
