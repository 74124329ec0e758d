import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SluiceError } from "../../src/errors.js";
import { partitionForKey } from "../../src/log/murmur2.js";
import type { CommitRequest, CommitResult, IndexEntry } from "../../src/meta/meta-store.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";
import { makeHarness, type Harness } from "../support/harness.js";
import { storeKinds, type TestStores } from "../support/stores.js";

/** docs/rfcs/0004-idempotent-produce.md, end to end through the HTTP app, on every adapter pair. */

interface Producer {
  id: string;
  epoch: number;
  seq: number;
}

const producerHeaders = ({ id, epoch, seq }: Producer) => ({
  "Producer-Id": id,
  "Producer-Epoch": String(epoch),
  "Producer-Seq": String(seq),
});

async function produce(
  h: Harness,
  topic: string,
  records: object[],
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const res = await h.request(`/v1/topics/${topic}/records`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ records }),
  });
  return { status: res.status, body: await res.json() };
}

const values = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ value: `${prefix}-${i}` }));

const offsetsAt = (partition: number, from: number, n: number) =>
  Array.from({ length: n }, (_, i) => ({ partition, offset: from + i }));

/**
 * Applies the next commit and then loses its answer; while `blind`, the index cannot be read,
 * so the writer cannot find out that its commit landed and answers 503.
 */
class LostAnswerMeta extends DelegatingMetaStore {
  loseNext = false;
  blind = false;
  override async commitAppend(request: CommitRequest): Promise<CommitResult> {
    const result = await this.inner.commitAppend(request);
    if (this.loseNext && result.committed) {
      this.loseNext = false;
      this.blind = true;
      throw new SluiceError("storage_unavailable", "the answer never came");
    }
    return result;
  }
  override readIndex(
    topicId: string,
    partition: number,
    offset: number,
    limit: number,
  ): Promise<IndexEntry[]> {
    if (this.blind) {
      return Promise.reject(new SluiceError("storage_unavailable", "the index is unreachable"));
    }
    return this.inner.readIndex(topicId, partition, offset, limit);
  }
}

/**
 * Holds each process's first read of producer states until both have made it, so that both
 * judge a request against the same state and race to commit it.
 */
class Barrier {
  armed = false;
  met = 0;
  private waiting: (() => void)[] = [];
  arrive(): Promise<void> {
    if (!this.armed) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (this.waiting.length === 2) {
        this.armed = false;
        this.met++;
        this.waiting.splice(0).forEach((release) => release());
      }
    });
  }
}

class RacingMeta extends DelegatingMetaStore {
  constructor(
    inner: TestStores["meta"],
    private readonly barrier: Barrier,
  ) {
    super(inner);
    this.committed = new Promise((resolve) => (this.markCommitted = resolve));
  }
  /** Commits only once this has settled. */
  commitAfter: Promise<unknown> = Promise.resolve();
  /** Settles after the first commit. */
  readonly committed: Promise<void>;
  private markCommitted!: () => void;
  override async getProducers(topicId: string, partition: number, ids: readonly string[]) {
    await this.barrier.arrive();
    return this.inner.getProducers(topicId, partition, ids);
  }
  override async commitAppend(request: CommitRequest): Promise<CommitResult> {
    await this.commitAfter;
    try {
      return await this.inner.commitAppend(request);
    } finally {
      this.markCommitted();
    }
  }
}

for (const [kind, makeStores] of Object.entries(storeKinds)) {
  describe(`idempotent produce over ${kind}`, () => {
    let stores: TestStores;
    const harnesses: Harness[] = [];
    const harness = (...args: Parameters<typeof makeHarness>) => {
      const h = makeHarness(...args);
      harnesses.push(h);
      return h;
    };

    beforeEach(async () => {
      stores = await makeStores();
    });
    afterEach(async () => {
      await Promise.all(harnesses.splice(0).map((h) => h.log.close()));
      await stores.cleanup();
    });

    const createTopic = async (h: Harness, name: string, partitions = 1) => {
      expect((await h.call("POST", "/v1/topics", { name, partitions })).status).toBe(201);
    };
    const readAll = async (h: Harness, topic: string, partition = 0) => {
      const res = await h.call(
        "GET",
        `/v1/topics/${topic}/partitions/${partition}/records?offset=0&maxRecords=10000`,
      );
      expect(res.status).toBe(200);
      return res.body as { records: { offset: number; value: unknown }[]; logEndOffset: number };
    };

    it("answers a resend of a committed request with the original offsets and writes nothing", async () => {
      const h = harness(stores);
      await createTopic(h, "idem", 2);
      const p = { id: "app-1", epoch: 0, seq: 0 };
      const records = values("a", 3).map((r) => ({ ...r, partition: 1 }));

      const first = await produce(h, "idem", records, producerHeaders(p));
      expect(first).toEqual({ status: 200, body: { offsets: offsetsAt(1, 0, 3) } });
      expect(h.store.puts).toBe(1);

      for (let i = 0; i < 3; i++) {
        expect(await produce(h, "idem", records, producerHeaders(p))).toEqual(first);
      }
      expect(h.store.puts).toBe(1);

      const second = await produce(h, "idem", [{ value: "b", partition: 1 }], {
        ...producerHeaders({ ...p, seq: 1 }),
      });
      expect(second).toEqual({ status: 200, body: { offsets: offsetsAt(1, 3, 1) } });
      // An older request still among the last 5 is recognised too.
      expect(await produce(h, "idem", records, producerHeaders(p))).toEqual(first);
      expect(h.store.puts).toBe(2);

      const read = await readAll(h, "idem", 1);
      expect(read.records.map((r) => r.value)).toEqual(["a-0", "a-1", "a-2", "b"]);
      expect(read.logEndOffset).toBe(4);
    });

    it("answers a resend with the original offsets after a 503 whose commit had landed", async () => {
      const meta = new LostAnswerMeta(stores.meta);
      const h = harness({ store: stores.store, meta });
      await createTopic(h, "lost");
      const p = { id: "retrying", epoch: 3, seq: 0 };
      const records = values("once", 2);

      meta.loseNext = true;
      const failed = await produce(h, "lost", records, producerHeaders(p));
      expect(failed.status).toBe(503);
      expect(failed.body.error.code).toBe("storage_unavailable");
      meta.blind = false;
      expect(h.store.puts).toBe(1);

      // The client sends the same request again, as a 503 invites it to.
      const resent = await produce(h, "lost", records, producerHeaders(p));
      expect(resent).toEqual({ status: 200, body: { offsets: offsetsAt(0, 0, 2) } });
      expect(h.store.puts).toBe(1);

      const next = await produce(h, "lost", values("next", 1), producerHeaders({ ...p, seq: 1 }));
      expect(next).toEqual({ status: 200, body: { offsets: offsetsAt(0, 2, 1) } });
      const read = await readAll(h, "lost");
      expect(read.records.map((r) => r.value)).toEqual(["once-0", "once-1", "next-0"]);
    });

    it("refuses a gap with 409 out_of_order_sequence and writes nothing", async () => {
      const h = harness(stores);
      await createTopic(h, "gaps");
      const p = { id: "gappy", epoch: 0, seq: 0 };

      const unknown = await produce(h, "gaps", values("x", 1), producerHeaders({ ...p, seq: 5 }));
      expect(unknown.status).toBe(409);
      expect(unknown.body.error).toMatchObject({
        code: "out_of_order_sequence",
        details: { producerId: "gappy", expectedSeq: 0, receivedSeq: 5 },
      });
      expect((await produce(h, "gaps", values("a", 1), producerHeaders(p))).status).toBe(200);
      const gap = await produce(h, "gaps", values("c", 1), producerHeaders({ ...p, seq: 2 }));
      expect(gap.status).toBe(409);
      expect(gap.body.error).toMatchObject({
        code: "out_of_order_sequence",
        details: { producerId: "gappy", producerEpoch: 0, expectedSeq: 1, receivedSeq: 2 },
      });
      // A used sequence number with another record count is not a resend of that request.
      const changed = await produce(h, "gaps", values("a", 2), producerHeaders(p));
      expect(changed.status).toBe(409);
      expect(changed.body.error.code).toBe("out_of_order_sequence");
      expect(h.store.puts).toBe(1);
      expect((await readAll(h, "gaps")).logEndOffset).toBe(1);

      // A sequence number that has left the last 5 is no longer recognised.
      for (let seq = 1; seq <= 5; seq++) {
        const res = await produce(h, "gaps", values(`s${seq}`, 1), producerHeaders({ ...p, seq }));
        expect(res.status).toBe(200);
      }
      const evicted = await produce(h, "gaps", values("a", 1), producerHeaders(p));
      expect(evicted.status).toBe(409);
      expect(evicted.body.error.details).toMatchObject({ expectedSeq: 6, receivedSeq: 0 });
      const recent = await produce(h, "gaps", values("s1", 1), producerHeaders({ ...p, seq: 1 }));
      expect(recent).toEqual({ status: 200, body: { offsets: offsetsAt(0, 1, 1) } });
    });

    it("fences an older epoch with 403 and starts a newer one at sequence 0", async () => {
      const h = harness(stores);
      await createTopic(h, "epochs");
      const p = { id: "fenced", epoch: 1, seq: 0 };
      expect((await produce(h, "epochs", values("e1", 1), producerHeaders(p))).status).toBe(200);

      const old = await produce(h, "epochs", values("e0", 1), producerHeaders({ ...p, epoch: 0 }));
      expect(old.status).toBe(403);
      expect(old.body.error).toMatchObject({
        code: "producer_fenced",
        details: { producerId: "fenced", producerEpoch: 1, receivedEpoch: 0 },
      });
      const notZero = await produce(
        h,
        "epochs",
        values("e2", 1),
        producerHeaders({ ...p, epoch: 2, seq: 1 }),
      );
      expect(notZero.status).toBe(409);
      expect(notZero.body.error.details).toMatchObject({ expectedSeq: 0, receivedSeq: 1 });

      const bumped = await produce(
        h,
        "epochs",
        values("e2", 1),
        producerHeaders({ ...p, epoch: 2 }),
      );
      expect(bumped).toEqual({ status: 200, body: { offsets: offsetsAt(0, 1, 1) } });
      // The old epoch is fenced now, its next request and its resends alike.
      for (const seq of [0, 1]) {
        const res = await produce(h, "epochs", values("e1", 1), producerHeaders({ ...p, seq }));
        expect(res.status).toBe(403);
        expect(res.body.error.code).toBe("producer_fenced");
      }
      const read = await readAll(h, "epochs");
      expect(read.records.map((r) => r.value)).toEqual(["e1-0", "e2-0"]);
    });

    it("lets exactly one of two processes racing on one sequence number append", async () => {
      const barrier = new Barrier();
      const a = harness({ store: stores.store, meta: new RacingMeta(stores.meta, barrier) });
      const b = harness({ store: stores.store, meta: new RacingMeta(stores.meta, barrier) });
      await createTopic(a, "race", 1);
      const p = { id: "twin", epoch: 0, seq: 0 };
      for (let seq = 0; seq < 6; seq++) {
        const records = values(`r${seq}`, 2);
        barrier.armed = true;
        const [fromA, fromB] = await Promise.all([
          produce(a, "race", records, producerHeaders({ ...p, seq })),
          produce(b, "race", records, producerHeaders({ ...p, seq })),
        ]);
        expect(fromA).toEqual({ status: 200, body: { offsets: offsetsAt(0, 2 * seq, 2) } });
        expect(fromB).toEqual(fromA);
      }
      // Both judged every request against the same state, and one of them lost each race.
      expect(barrier.met).toBe(6);
      expect(a.store.puts + b.store.puts).toBe(12);
      const read = await readAll(a, "race");
      expect(read.logEndOffset).toBe(12);
      expect(read.records.map((r) => r.value)).toEqual(
        Array.from({ length: 6 }, (_, seq) => [`r${seq}-0`, `r${seq}-1`]).flat(),
      );
    });

    it("re-uploads what is left of a flush when a race turns one of its requests into a resend", async () => {
      const barrier = new Barrier();
      const metaA = new RacingMeta(stores.meta, barrier);
      const metaB = new RacingMeta(stores.meta, barrier);
      // A commits first, so B's flush loses its idempotent request to A.
      metaB.commitAfter = metaA.committed;
      const a = harness({ store: stores.store, meta: metaA });
      const b = harness({ store: stores.store, meta: metaB }, { lingerMs: 30 });
      await createTopic(a, "mixed", 1);
      await b.log.topics.get("mixed");
      const p = { id: "twin", epoch: 0, seq: 0 };
      barrier.armed = true;
      const [fromA, fromB, plain] = await Promise.all([
        produce(a, "mixed", values("idem", 2), producerHeaders(p)),
        produce(b, "mixed", values("idem", 2), producerHeaders(p)),
        produce(b, "mixed", values("plain", 1)),
      ]);
      expect(barrier.met).toBe(1);
      expect(fromA.status).toBe(200);
      expect(fromB).toEqual(fromA);
      expect(plain.status).toBe(200);
      const read = await readAll(a, "mixed");
      expect(read.logEndOffset).toBe(3);
      const at = (offset: number) => read.records.find((r) => r.offset === offset)?.value;
      expect(fromA.body.offsets.map((o: any) => at(o.offset))).toEqual(["idem-0", "idem-1"]);
      expect(at(plain.body.offsets[0].offset)).toBe("plain-0");
      // B wrote a second object without the request A had committed.
      expect(a.store.puts).toBe(1);
      expect(b.store.puts).toBe(2);
    });

    it("applies pipelined sequence numbers 0..9 sent at once, in sequence order", async () => {
      const h = harness(stores, { lingerMs: 50 });
      await createTopic(h, "pipeline");
      // Warm the topic cache so that all ten reach the writer within the linger.
      await h.log.topics.get("pipeline");
      const p = { id: "pipelined", epoch: 0, seq: 0 };
      const seqs = [3, 0, 7, 1, 9, 4, 2, 8, 6, 5];
      const answers = await Promise.all(
        seqs.map((seq) =>
          produce(h, "pipeline", values(`s${seq}`, 2), producerHeaders({ ...p, seq })),
        ),
      );
      answers.forEach((answer, i) =>
        expect(answer).toEqual({
          status: 200,
          body: { offsets: offsetsAt(0, 2 * seqs[i]!, 2) },
        }),
      );
      // Group commit still holds: one object for the ten requests.
      expect(h.store.puts).toBe(1);
      const read = await readAll(h, "pipeline");
      expect(read.records.map((r) => r.value)).toEqual(
        Array.from({ length: 10 }, (_, seq) => [`s${seq}-0`, `s${seq}-1`]).flat(),
      );
    });

    it("carries at most 90 idempotent producers in one flush", async () => {
      const h = harness(stores, { lingerMs: 50 });
      await createTopic(h, "crowd");
      await h.log.topics.get("crowd");
      const answers = await Promise.all(
        Array.from({ length: 95 }, (_, i) =>
          produce(
            h,
            "crowd",
            values(`p${i}`, 1),
            producerHeaders({ id: `p${i}`, epoch: 0, seq: 0 }),
          ),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
      expect(new Set(answers.map((a) => a.body.offsets[0].offset)).size).toBe(95);
      expect(h.store.puts).toBe(2);
      // Every one of them is known now: a resend writes nothing.
      const again = await produce(h, "crowd", values("p94", 1), {
        ...producerHeaders({ id: "p94", epoch: 0, seq: 0 }),
      });
      expect(again).toEqual(answers[94]);
      expect(h.store.puts).toBe(2);
    });

    it("refuses an idempotent request for several partitions with 400, and places keyless ones stably", async () => {
      const h = harness(stores);
      await createTopic(h, "spread", 4);
      const p = { id: "spreader", epoch: 0, seq: 0 };
      const keys = ["k-0", "k-1", "k-2", "k-3", "k-4", "k-5"];
      const partitionOf = (key: string) => partitionForKey(new TextEncoder().encode(key), 4);
      const k1 = keys[0]!;
      const k2 = keys.find((k) => partitionOf(k) !== partitionOf(k1))!;

      for (const records of [
        [
          { value: 1, partition: 0 },
          { value: 2, partition: 1 },
        ],
        [
          { key: k1, value: 1 },
          { key: k2, value: 2 },
        ],
        [
          { key: k1, value: 1 },
          { value: 2, partition: (partitionOf(k1) + 1) % 4 },
        ],
      ]) {
        const res = await produce(h, "spread", records, producerHeaders(p));
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe("invalid_request");
        expect(res.body.error.details.partitions).toHaveLength(2);
      }
      expect(h.store.puts).toBe(0);

      // Keyless records join the partition the request's other records name…
      const joined = await produce(
        h,
        "spread",
        [{ value: "keyless" }, { key: k1, value: "keyed" }],
        producerHeaders(p),
      );
      const target = partitionOf(k1);
      expect(joined).toEqual({ status: 200, body: { offsets: offsetsAt(target, 0, 2) } });
      // …and an all-keyless request goes where the producer id hashes, resends included.
      const home = partitionOf("spreader");
      const keyless = [{ value: "a" }, { value: "b" }];
      // Sequence numbers count per partition.
      const [base, seq] = home === target ? [2, 1] : [0, 0];
      const first = await produce(h, "spread", keyless, producerHeaders({ ...p, seq }));
      expect(first).toEqual({ status: 200, body: { offsets: offsetsAt(home, base, 2) } });
      for (let i = 0; i < 5; i++) {
        expect(await produce(h, "spread", keyless, producerHeaders({ ...p, seq }))).toEqual(first);
      }
      expect(h.store.puts).toBe(2);
    });

    it("validates the producer headers before reading or writing anything", async () => {
      const h = harness(stores);
      await createTopic(h, "headers");
      const valid = producerHeaders({ id: "ok.id_1-A", epoch: 2147483647, seq: 0 });
      const invalid: Record<string, string>[] = [
        { "Producer-Id": "only-id" },
        { "Producer-Id": "no-seq", "Producer-Epoch": "0" },
        { "Producer-Epoch": "0", "Producer-Seq": "0" },
        { ...valid, "Producer-Id": "has space" },
        { ...valid, "Producer-Id": "x".repeat(65) },
        { ...valid, "Producer-Id": "" },
        { ...valid, "Producer-Epoch": "-1" },
        { ...valid, "Producer-Epoch": "2147483648" },
        { ...valid, "Producer-Seq": "1e3" },
        { ...valid, "Producer-Seq": "one" },
      ];
      for (const headers of invalid) {
        for (const topic of ["headers", "no-such-topic"]) {
          const res = await produce(h, topic, values("v", 1), headers);
          expect(res.status, JSON.stringify(headers)).toBe(400);
          expect(res.body.error.code).toBe("invalid_request");
        }
      }
      expect(h.store.puts).toBe(0);

      // Header names are case-insensitive.
      const lower = Object.fromEntries(Object.entries(valid).map(([k, v]) => [k.toLowerCase(), v]));
      const ok = await produce(h, "headers", values("v", 1), lower);
      expect(ok).toEqual({ status: 200, body: { offsets: offsetsAt(0, 0, 1) } });
      expect(await produce(h, "headers", values("v", 1), valid)).toEqual(ok);
      expect(h.store.puts).toBe(1);
    });

    it("documents the headers and the new errors in the OpenAPI document", async () => {
      const h = harness(stores);
      const doc = (await h.call("GET", "/v1/openapi.json")).body;
      const post = doc.paths["/v1/topics/{topic}/records"].post;
      const headers = post.parameters
        .filter((param: any) => param.in === "header")
        .map((param: any) => param.name);
      expect(headers).toEqual(["producer-id", "producer-epoch", "producer-seq"]);
      expect(Object.keys(post.responses)).toEqual(
        expect.arrayContaining(["200", "400", "403", "409"]),
      );
    });
  });
}
