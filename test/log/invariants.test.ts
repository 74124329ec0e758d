import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SluiceError } from "../../src/errors.js";
import type { GroupStore } from "../../src/meta/group-store.js";
import type { CommitRequest, CommitResult, MetaStore } from "../../src/meta/meta-store.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";
import { makeHarness, type Harness } from "../support/harness.js";
import { storeKinds, type TestStores } from "../support/stores.js";

/** A MetaStore whose commits wait for the test to open a gate, or fail on demand. */
class GatedMetaStore extends DelegatingMetaStore {
  commitsStarted = 0;
  failWith: Error | undefined;
  private open!: () => void;
  private gate!: Promise<void>;

  constructor(inner: MetaStore & GroupStore) {
    super(inner);
    this.reset();
  }

  override async commitAppend(request: CommitRequest): Promise<CommitResult> {
    this.commitsStarted++;
    await this.gate;
    if (this.failWith) throw this.failWith;
    return this.inner.commitAppend(request);
  }

  release(): void {
    this.open();
  }

  reset(): void {
    this.failWith = undefined;
    this.gate = new Promise<void>((resolve) => (this.open = resolve));
  }
}

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(condition()).toBe(true);
};

for (const [kind, makeStores] of Object.entries(storeKinds)) {
  describe(`log invariants over ${kind}`, () => {
    let stores: TestStores;
    let h: Harness;

    beforeEach(async () => {
      stores = await makeStores();
    });
    afterEach(async () => {
      await h.log.close();
      await stores.cleanup();
    });

    it("gives 64 concurrent producers on one partition unique, contiguous offsets, in few objects", async () => {
      h = makeHarness(stores);
      await h.call("POST", "/v1/topics", { name: "hot", partitions: 1 });
      const producers = 64;
      const requestsEach = 10;
      const recordsPerRequest = 5;
      const acked = new Map<number, string>();
      await Promise.all(
        Array.from({ length: producers }, async (_, p) => {
          for (let r = 0; r < requestsEach; r++) {
            const values = Array.from({ length: recordsPerRequest }, (_, i) => `p${p}-r${r}-i${i}`);
            const res = await h.call("POST", "/v1/topics/hot/records", {
              records: values.map((value) => ({ value })),
            });
            expect(res.status).toBe(200);
            const offsets: number[] = res.body.offsets.map((o: any) => o.offset);
            // One request's records are one batch: consecutive offsets.
            expect(offsets).toEqual(offsets.map((_, i) => offsets[0]! + i));
            offsets.forEach((offset, i) => {
              expect(acked.has(offset)).toBe(false);
              acked.set(offset, values[i]!);
            });
          }
        }),
      );
      const total = producers * requestsEach * recordsPerRequest;
      expect([...acked.keys()].sort((a, b) => a - b)).toEqual(
        Array.from({ length: total }, (_, i) => i),
      );

      const read: string[] = [];
      while (read.length < total) {
        const page = await h.call(
          "GET",
          `/v1/topics/hot/partitions/0/records?offset=${read.length}&maxRecords=1000`,
        );
        read.push(...page.body.records.map((r: any) => r.value));
      }
      expect(read).toEqual(Array.from({ length: total }, (_, i) => acked.get(i)));

      const requests = producers * requestsEach;
      // Group commit: concurrent requests share flushes. One object per request would be 640.
      expect(h.store.puts).toBeLessThan(requests / 4);
    });

    it("shows nothing of a write before its commit, and nothing of a write whose commit failed", async () => {
      const gated = new GatedMetaStore(stores.meta);
      h = makeHarness({ store: stores.store, meta: gated });
      await h.call("POST", "/v1/topics", { name: "dirty", partitions: 1 });
      const fetchAll = () => h.call("GET", "/v1/topics/dirty/partitions/0/records?offset=0");

      let answered = false;
      const pending = h
        .call("POST", "/v1/topics/dirty/records", { records: [{ value: "in flight" }] })
        .then((res) => {
          answered = true;
          return res;
        });
      await until(() => gated.commitsStarted === 1);
      // The object is uploaded, but not committed: readers and describe see nothing.
      expect(h.store.puts).toBe(1);
      expect((await fetchAll()).body).toEqual({ records: [], nextOffset: 0, logEndOffset: 0 });
      expect((await h.call("GET", "/v1/topics/dirty")).body.partitions[0].logEndOffset).toBe(0);
      expect(answered).toBe(false);

      gated.release();
      const res = await pending;
      expect(res.body.offsets).toEqual([{ partition: 0, offset: 0 }]);
      expect((await fetchAll()).body.records.map((r: any) => r.value)).toEqual(["in flight"]);

      gated.reset();
      gated.failWith = new SluiceError("internal", "commit refused");
      const failing = h.call("POST", "/v1/topics/dirty/records", { records: [{ value: "lost" }] });
      gated.release();
      expect((await failing).status).toBe(500);
      expect(h.store.puts).toBe(2);
      // The orphan object exists in the store but no reader ever reaches it.
      const after = await fetchAll();
      expect(after.body.records.map((r: any) => r.value)).toEqual(["in flight"]);
      expect(after.body.logEndOffset).toBe(1);
    });

    it("answers 503 when the commit stays unavailable, and the log does not move", async () => {
      const gated = new GatedMetaStore(stores.meta);
      gated.release();
      gated.failWith = new SluiceError("storage_unavailable", "throttled");
      h = makeHarness({ store: stores.store, meta: gated }, { maxCommitAttempts: 3 });
      await h.call("POST", "/v1/topics", { name: "flaky", partitions: 1 });
      const res = await h.call("POST", "/v1/topics/flaky/records", { records: [{ value: 1 }] });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe("storage_unavailable");
      const head = await stores.meta.getHead((await h.log.topics.get("flaky")).id, 0);
      expect(head.logEndOffset).toBe(0);
    });
  });
}
