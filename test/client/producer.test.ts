import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SluiceApiError, type SluiceClient } from "../../src/client/index.js";
import type { Harness } from "../support/harness.js";
import {
  appFetch,
  clientFor,
  dropResponses,
  isProduce,
  memoryHarness,
  readAll,
  spyFetch,
} from "./support.js";

describe("client producer", () => {
  let h: Harness;
  let client: SluiceClient;

  beforeEach(async () => {
    h = await memoryHarness();
    client = clientFor(h);
  });
  afterEach(async () => {
    await h.log.close();
  });

  it("resolves with each record's partition and offset, in input order, once durable", async () => {
    await client.admin.createTopic("orders", 3);
    const producer = client.producer();
    const placed = await producer.send("orders", [
      { value: { n: 0 }, partition: 2 },
      { value: { n: 1 }, partition: 0 },
      { value: { n: 2 }, partition: 2, headers: { source: "web" }, timestamp: 1_700_000_000_000 },
    ]);
    expect(placed).toEqual([
      { partition: 2, offset: 0 },
      { partition: 0, offset: 0 },
      { partition: 2, offset: 1 },
    ]);
    const read = await readAll(h, "orders", 2);
    expect(read.map((r) => r.value)).toEqual([{ n: 0 }, { n: 2 }]);
    expect(read[1]).toMatchObject({ headers: { source: "web" }, timestamp: 1_700_000_000_000 });
    await producer.close();
  });

  it("sends binary keys and values as base64 and reads them back as bytes", async () => {
    await client.admin.createTopic("bytes", 1);
    const producer = client.producer();
    const value = new Uint8Array([0, 1, 2, 255, 254]);
    await producer.send("bytes", [{ key: new Uint8Array([9, 8]), value }]);
    const { records } = await client.fetch("bytes", 0, 0);
    expect(records[0]).toMatchObject({ key: null, keyBase64: "CQg=", valueBase64: "AAEC//4=" });
    expect(records[0]!.value).toEqual(value);
    await producer.close();
  });

  it("places keyed records on the partition the server would choose (murmur2)", async () => {
    await client.admin.createTopic("keyed", 7);
    const keys = Array.from({ length: 60 }, (_, i) => `customer-${i * 7919}`);
    const bytesKeys = Array.from({ length: 20 }, (_, i) => new Uint8Array([i, i * 3, 255 - i]));

    const producer = client.producer();
    const viaClient = await producer.send("keyed", [
      ...keys.map((key, i) => ({ key, value: i })),
      ...bytesKeys.map((key, i) => ({ key, value: i })),
    ]);
    const raw = await h.call("POST", "/v1/topics/keyed/records", {
      records: [
        ...keys.map((key, i) => ({ key, value: i })),
        ...bytesKeys.map((key, i) => ({
          keyBase64: Buffer.from(key).toString("base64"),
          value: i,
        })),
      ],
    });
    expect(raw.status).toBe(200);
    expect(viaClient.map((o) => o.partition)).toEqual(
      raw.body.offsets.map((o: any) => o.partition),
    );
    // The keys spread: a partitioner that ignored them would put everything in one place.
    expect(new Set(viaClient.map((o) => o.partition)).size).toBeGreaterThan(3);
    await producer.close();
  });

  it("puts the keyless records of a batch on one sticky partition", async () => {
    await client.admin.createTopic("sticky", 8);
    const producer = client.producer();
    const placed = await producer.send(
      "sticky",
      Array.from({ length: 50 }, (_, i) => ({ value: i })),
    );
    expect(new Set(placed.map((o) => o.partition)).size).toBe(1);
    expect(placed.map((o) => o.offset)).toEqual(placed.map((_, i) => i));
    await producer.close();
  });

  it("batches concurrent sends to a partition into one request within lingerMs", async () => {
    const spy = spyFetch(appFetch(h));
    client = clientFor(h, {}, spy.fetch);
    await client.admin.createTopic("batched", 2);
    const producer = client.producer({ lingerMs: 20 });
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        producer.send("batched", [{ value: i, partition: i % 2 }]),
      ),
    );
    const produces = spy.requests.filter(isProduce);
    expect(produces).toHaveLength(2);
    for (const request of produces) {
      expect(JSON.parse(request.body!).records).toHaveLength(50);
    }
    // Per partition, offsets follow the order of the sends.
    for (const p of [0, 1]) {
      const offsets = results.flat().filter((o) => o.partition === p);
      expect(offsets.map((o) => o.offset)).toEqual(offsets.map((_, i) => i));
    }
    await producer.close();
  });

  it("splits at batchBytes and keeps each partition's requests in order", async () => {
    const spy = spyFetch(appFetch(h));
    client = clientFor(h, {}, spy.fetch);
    await client.admin.createTopic("split", 1);
    const producer = client.producer({ batchBytes: 200, lingerMs: 50 });
    const values = Array.from({ length: 40 }, (_, i) => ({ i, pad: "x".repeat(20) }));
    const placed = await producer.send(
      "split",
      values.map((value) => ({ value, partition: 0 })),
    );
    expect(placed.map((o) => o.offset)).toEqual(values.map((_, i) => i));
    const produces = spy.requests.filter(isProduce);
    expect(produces.length).toBeGreaterThan(5);
    // The batch's records fit in batchBytes; `{"records":[…]}` wraps them.
    for (const request of produces) expect(request.body!.length).toBeLessThanOrEqual(200 + 14);
    expect((await readAll(h, "split", 0)).map((r) => r.value)).toEqual(values);
    await producer.close();
  });

  it("sends Producer-Id, Producer-Epoch and a per-partition Producer-Seq from 0", async () => {
    const spy = spyFetch(appFetch(h));
    client = clientFor(h, {}, spy.fetch);
    await client.admin.createTopic("seq", 2);
    const producer = client.producer({ producerId: "producer-1", epoch: 3 });
    for (let i = 0; i < 3; i++) {
      await producer.send("seq", [
        { value: i, partition: 0 },
        { value: i, partition: 1 },
      ]);
    }
    await producer.send("seq", [{ value: "last", partition: 1 }]);
    const headers = spy.requests.filter(isProduce).map((r) => ({
      id: r.headers.get("producer-id"),
      epoch: r.headers.get("producer-epoch"),
      seq: r.headers.get("producer-seq"),
      partition: JSON.parse(r.body!).records[0].partition,
    }));
    expect(headers.every((x) => x.id === "producer-1" && x.epoch === "3")).toBe(true);
    const seqs = (p: number) => headers.filter((x) => x.partition === p).map((x) => x.seq);
    expect(seqs(0)).toEqual(["0", "1", "2"]);
    expect(seqs(1)).toEqual(["0", "1", "2", "3"]);
    await producer.close();
  });

  it("sends no producer headers when not idempotent", async () => {
    const spy = spyFetch(appFetch(h));
    client = clientFor(h, {}, spy.fetch);
    await client.admin.createTopic("plain", 1);
    const producer = client.producer({ idempotent: false });
    await producer.send("plain", [{ value: 1 }]);
    const [request] = spy.requests.filter(isProduce);
    expect(request!.headers.has("producer-id")).toBe(false);
    expect(request!.headers.has("producer-seq")).toBe(false);
    await producer.close();
  });

  it("retries an idempotent produce whose answer was lost, and the log holds each record once", async () => {
    const faulty = dropResponses(appFetch(h), isProduce, 1);
    client = clientFor(h, {}, faulty.fetch);
    await client.admin.createTopic("retry", 1);
    const producer = client.producer();
    const placed = await producer.send("retry", [
      { value: "a", partition: 0 },
      { value: "b", partition: 0 },
    ]);
    const produces = faulty.requests.filter(isProduce);
    expect(produces).toHaveLength(2);
    // The retry is the same request: same sequence number, same body.
    expect(produces[1]!.headers.get("producer-seq")).toBe(produces[0]!.headers.get("producer-seq"));
    expect(produces[1]!.body).toBe(produces[0]!.body);
    expect(placed).toEqual([
      { partition: 0, offset: 0 },
      { partition: 0, offset: 1 },
    ]);
    // A later batch goes on with the next sequence number.
    expect(await producer.send("retry", [{ value: "c", partition: 0 }])).toEqual([
      { partition: 0, offset: 2 },
    ]);
    expect((await readAll(h, "retry", 0)).map((r) => r.value)).toEqual(["a", "b", "c"]);
    await producer.close();
  });

  it("keeps the sequence whole after a batch whose outcome stayed unknown", async () => {
    // Both tries of the first batch lose their answers: the send fails, yet the server wrote it.
    const faulty = dropResponses(appFetch(h), isProduce, 2);
    client = clientFor(
      h,
      { retry: { retries: 1, initialDelayMs: 1, maxDelayMs: 1 } },
      faulty.fetch,
    );
    await client.admin.createTopic("unknown", 1);
    const producer = client.producer();
    const error = await producer.send("unknown", [{ value: "a", partition: 0 }]).catch((e) => e);
    expect(error).toMatchObject({ code: "network_error", retryable: true });
    // The next send first resends that batch under its own sequence number (the server
    // recognises it), then sends the new one under the next: nothing twice, no gap (409).
    expect(await producer.send("unknown", [{ value: "b", partition: 0 }])).toEqual([
      { partition: 0, offset: 1 },
    ]);
    const seqs = faulty.requests.filter(isProduce).map((r) => r.headers.get("producer-seq"));
    expect(seqs).toEqual(["0", "0", "0", "1"]);
    expect((await readAll(h, "unknown", 0)).map((r) => r.value)).toEqual(["a", "b"]);
    await producer.close();
  });

  it("is fenced for good by a newer epoch of its producer id", async () => {
    const spy = spyFetch(appFetch(h));
    client = clientFor(h, {}, spy.fetch);
    await client.admin.createTopic("fencing", 1);
    const old = client.producer({ producerId: "billing-7", epoch: 1 });
    await old.send("fencing", [{ value: "old", partition: 0 }]);
    const next = client.producer({ producerId: "billing-7", epoch: 2 });
    await next.send("fencing", [{ value: "new", partition: 0 }]);

    const fenced = await old.send("fencing", [{ value: "zombie", partition: 0 }]).catch((e) => e);
    expect(fenced).toBeInstanceOf(SluiceApiError);
    expect(fenced).toMatchObject({ status: 403, code: "producer_fenced", retryable: false });
    const before = spy.requests.filter(isProduce).length;
    await expect(old.send("fencing", [{ value: "again", partition: 0 }])).rejects.toBe(fenced);
    expect(spy.requests.filter(isProduce)).toHaveLength(before);
    expect((await readAll(h, "fencing", 0)).map((r) => r.value)).toEqual(["old", "new"]);
    await next.close();
  });

  it("does not retry a non-idempotent produce whose answer was lost: it surfaces the error", async () => {
    const faulty = dropResponses(appFetch(h), isProduce, 1);
    client = clientFor(h, {}, faulty.fetch);
    await client.admin.createTopic("once", 1);
    const producer = client.producer({ idempotent: false });
    const error = await producer.send("once", [{ value: "a", partition: 0 }]).catch((e) => e);
    expect(error).toBeInstanceOf(SluiceApiError);
    expect(error).toMatchObject({ status: 0, code: "network_error", retryable: false });
    expect(error.cause).toBeInstanceOf(TypeError);
    expect(faulty.requests.filter(isProduce)).toHaveLength(1);
    // The server did write it: retrying blindly would have written it twice.
    expect((await readAll(h, "once", 0)).map((r) => r.value)).toEqual(["a"]);
    await producer.close();
  });

  it("retries an idempotent produce refused with 503, and only a 429 for a non-idempotent one", async () => {
    const unavailable = () =>
      new Response(
        JSON.stringify({ error: { code: "storage_unavailable", message: "try again" } }),
        { status: 503, headers: { "content-type": "application/json" } },
      );
    let refusals = 0;
    const spy = spyFetch(appFetch(h), async (request, send) => {
      if (isProduce(request) && refusals < 2) {
        refusals++;
        return unavailable();
      }
      return send();
    });
    client = clientFor(h, {}, spy.fetch);
    await client.admin.createTopic("busy", 1);
    expect(await client.producer().send("busy", [{ value: 1 }])).toEqual([
      { partition: 0, offset: 0 },
    ]);
    expect(spy.requests.filter(isProduce)).toHaveLength(3);

    refusals = 0;
    const error = await client
      .producer({ idempotent: false })
      .send("busy", [{ value: 2 }])
      .catch((e) => e);
    expect(error).toMatchObject({ status: 503, code: "storage_unavailable" });
    expect((await readAll(h, "busy", 0)).map((r) => r.value)).toEqual([1]);
  });

  it("rejects a send to an unknown topic or partition with the server's codes", async () => {
    const producer = client.producer();
    await expect(producer.send("missing", [{ value: 1 }])).rejects.toMatchObject({
      status: 404,
      code: "topic_not_found",
    });
    await client.admin.createTopic("small", 2);
    await expect(producer.send("small", [{ value: 1, partition: 5 }])).rejects.toMatchObject({
      status: 400,
      code: "invalid_partition",
    });
    // Nothing of the refused send was written, and the producer still works.
    expect(await producer.send("small", [{ value: 2, partition: 1 }])).toEqual([
      { partition: 1, offset: 0 },
    ]);
    await expect(producer.send("small", [{ value: undefined }])).rejects.toBeInstanceOf(TypeError);
    await producer.close();
    await expect(producer.send("small", [{ value: 3 }])).rejects.toThrow(/closed/);
  });

  it("flush() sends what lingers and waits for the answers", async () => {
    await client.admin.createTopic("flush", 1);
    const producer = client.producer({ lingerMs: 60_000 });
    let settled = false;
    const sent = producer.send("flush", [{ value: 1 }]).then((r) => {
      settled = true;
      return r;
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(settled).toBe(false);
    await producer.flush();
    expect(settled).toBe(true);
    expect(await sent).toEqual([{ partition: 0, offset: 0 }]);
    await producer.close();
  });
});
