import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SluiceError } from "../../src/errors.js";
import type { CommitRequest, CommitResult } from "../../src/meta/meta-store.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";
import { makeHarness, type Harness } from "../support/harness.js";
import { CountingObjectStore } from "../support/counting-store.js";
import { storeKinds, type TestStores } from "../support/stores.js";

const timeout = () => new SluiceError("storage_unavailable", "request timed out");

/** Lets the first `n` PUTs land, then reports each of them as timed out. */
class LandedButTimedOutStore extends CountingObjectStore {
  constructor(
    inner: CountingObjectStore["inner"],
    private failures: number,
  ) {
    super(inner);
  }
  override async put(key: string, body: Uint8Array): Promise<void> {
    await super.put(key, body);
    if (this.failures-- > 0) throw timeout();
  }
}

/** Fails every PUT before it reaches the store, as a throttled bucket would. */
class ThrottledStore extends CountingObjectStore {
  override put(): Promise<void> {
    this.puts++;
    return Promise.reject(new SluiceError("storage_unavailable", "SlowDown"));
  }
}

/** Applies the first commit, then loses its answer. */
class LostAnswerMeta extends DelegatingMetaStore {
  lost = 0;
  override async commitAppend(request: CommitRequest): Promise<CommitResult> {
    const result = await this.inner.commitAppend(request);
    if (this.lost++ === 0) throw timeout();
    return result;
  }
}

for (const [kind, makeStores] of Object.entries(storeKinds)) {
  describe(`storage faults over ${kind}`, () => {
    let stores: TestStores;
    let h: Harness;

    beforeEach(async () => {
      stores = await makeStores();
    });
    afterEach(async () => {
      await h.log.close();
      await stores.cleanup();
    });

    const produceAndRead = async (values: unknown[]) => {
      await h.call("POST", "/v1/topics", { name: "faulty", partitions: 1 });
      const res = await h.call("POST", "/v1/topics/faulty/records", {
        records: values.map((value) => ({ value })),
      });
      const read = await h.call("GET", "/v1/topics/faulty/partitions/0/records?offset=0");
      return { res, read: read.body };
    };

    it("retries a PUT that landed but timed out, and acknowledges each record once", async () => {
      h = makeHarness({ store: new LandedButTimedOutStore(stores.store, 2), meta: stores.meta });
      const { res, read } = await produceAndRead(["a", "b"]);
      expect(res.status).toBe(200);
      expect(res.body.offsets).toEqual([
        { partition: 0, offset: 0 },
        { partition: 0, offset: 1 },
      ]);
      expect(h.store.puts).toBe(3);
      expect(read.records.map((r: any) => r.value)).toEqual(["a", "b"]);
    });

    it("answers 503 when the store keeps throttling, and nothing becomes visible", async () => {
      h = makeHarness({ store: new ThrottledStore(stores.store), meta: stores.meta });
      const { res, read } = await produceAndRead(["x"]);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe("storage_unavailable");
      expect(h.store.puts).toBeGreaterThan(1);
      expect(read).toEqual({ records: [], nextOffset: 0, logEndOffset: 0 });
    });

    // Regression (review): a commit could land long after its upload, after maintenance had
    // already deleted the "orphan", acknowledging a record whose object was gone. A flush now
    // stops trying once commitTimeoutMs has passed since its upload.
    it("gives up committing after commitTimeoutMs, so no late commit outlives its object", async () => {
      const stalled = new (class extends DelegatingMetaStore {
        override async commitAppend(): Promise<CommitResult> {
          await new Promise((resolve) => setTimeout(resolve, 20));
          throw timeout();
        }
      })(stores.meta);
      h = makeHarness(
        { store: stores.store, meta: stalled },
        { maxCommitAttempts: 1_000_000, commitTimeoutMs: 300 },
      );
      const started = Date.now();
      const { res, read } = await produceAndRead(["late"]);
      // A million attempts would take hours: only the deadline can have ended it.
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe("storage_unavailable");
      expect(read.logEndOffset).toBe(0);
    });

    it("recognises its own commit when the answer was lost, so the record gets one offset", async () => {
      const meta = new LostAnswerMeta(stores.meta);
      h = makeHarness({ store: stores.store, meta });
      const { res, read } = await produceAndRead(["once"]);
      expect(res.status).toBe(200);
      expect(res.body.offsets).toEqual([{ partition: 0, offset: 0 }]);
      expect(read.records.map((r: any) => r.value)).toEqual(["once"]);
      expect(read.logEndOffset).toBe(1);
      const next = await h.call("POST", "/v1/topics/faulty/records", { records: [{ value: 2 }] });
      expect(next.body.offsets).toEqual([{ partition: 0, offset: 1 }]);
    });
  });
}
