import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SluiceError } from "../../src/errors.js";
import { chunkUploadedAt } from "../../src/log/keys.js";
import type { IndexEntry } from "../../src/meta/meta-store.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";
import type { ByteRange } from "../../src/storage/object-store.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";
import { makeHarness, type Harness } from "../support/harness.js";
import { storeKinds, type TestStores } from "../support/stores.js";

const GRACE = 50;
// Orphans wait for commitTimeoutMs, not for GRACE: a writer may commit an upload until then.
const segmentConfig = {
  lingerMs: 0,
  rollMinAgeMs: 0,
  orphanGraceMs: GRACE,
  commitTimeoutMs: 5_000,
};

for (const [kind, makeStores] of Object.entries(storeKinds)) {
  // The cloud stand-ins are slower per request: the same race, on fewer records.
  const records = kind === "s3+dynamodb" ? 600 : 3000;

  describe(`readers during rolls and retention over ${kind}`, () => {
    let stores: TestStores;
    let h: Harness;
    beforeEach(async () => {
      stores = await makeStores();
      h = makeHarness(stores, segmentConfig);
    });
    afterEach(async () => {
      await h.log.close();
      await stores.cleanup();
    });

    it("reads every retained record exactly once, in order, while rolls and retention run", async () => {
      await h.call("POST", "/v1/topics", {
        name: "race",
        partitions: 1,
        config: { "segment.bytes": 2048, "retention.bytes": 24 * 1024 },
      });
      const produced = new Map<number, string>();
      let producing = true;

      const producer = async (p: number) => {
        for (let i = 0; i < records / 4 / 5; i++) {
          const values = Array.from({ length: 5 }, (_, j) => `${p}.${i}.${j}.${"v".repeat(80)}`);
          const res = await h.call("POST", "/v1/topics/race/records", {
            records: values.map((value) => ({ value })),
          });
          expect(res.status).toBe(200);
          res.body.offsets.forEach((o: { offset: number }, j: number) =>
            produced.set(o.offset, values[j]!),
          );
        }
      };
      let passes = 0;
      const maintainer = async () => {
        while (producing) {
          await h.log.runMaintenance();
          passes++;
        }
        // Roll and retain until there is nothing left to do, then let the garbage go.
        for (;;) {
          const report = await h.log.runMaintenance();
          if (report.segmentsRolled === 0 && report.segmentsRetired === 0) break;
        }
        await new Promise((r) => setTimeout(r, GRACE + 5));
        await h.log.runMaintenance();
      };
      const reader = async () => {
        const seen: { offset: number; value: string }[] = [];
        const jumps: { from: number; to: number }[] = [];
        let offset = 0;
        for (;;) {
          const res = await h.call(
            "GET",
            `/v1/topics/race/partitions/0/records?offset=${offset}&maxRecords=7`,
          );
          if (res.status === 416) {
            const to = res.body.error.details.logStartOffset as number;
            expect(to).toBeGreaterThan(offset);
            jumps.push({ from: offset, to });
            offset = to;
            continue;
          }
          expect(res.status, JSON.stringify(res.body)).toBe(200);
          for (const r of res.body.records) seen.push({ offset: r.offset, value: r.value });
          offset = res.body.nextOffset;
          if (res.body.records.length === 0) {
            if (!producing) return { seen, jumps, end: offset };
            await new Promise((r) => setTimeout(r, 1));
          }
        }
      };

      const readers = [reader(), reader(), reader()];
      const maintaining = maintainer();
      await Promise.all([0, 1, 2, 3].map(producer));
      producing = false;
      const results = await Promise.all(readers);
      await maintaining;

      const head = (await h.call("GET", "/v1/topics/race")).body.partitions[0];
      expect(head.logEndOffset).toBe(records);
      expect(head.logStartOffset).toBeGreaterThan(0);
      expect(passes).toBeGreaterThan(0);
      const sealed = head.segments.filter((s: { state: string }) => s.state === "sealed");
      expect(sealed.length).toBeGreaterThan(1);

      for (const { seen, jumps } of results) {
        let expected = 0;
        for (const { offset, value } of seen) {
          const jump = jumps.find((j) => j.from === expected);
          if (offset !== expected && jump) expected = jump.to;
          expect(offset).toBe(expected);
          expect(value).toBe(produced.get(offset));
          expected = offset + 1;
        }
        expect(expected).toBe(records);
        // A reader that never fell behind retention read everything from 0.
        const lastStart = jumps.at(-1)?.to ?? 0;
        expect(lastStart).toBeLessThanOrEqual(head.logStartOffset);
      }
      // Everything left in the store is named by the index: no garbage survived.
      const indexed = new Set(
        (await stores.meta.listEntries((await h.log.topics.get("race")).id, 0, 0, 10_000)).map(
          (e) => e.objectKey,
        ),
      );
      const left: string[] = [];
      for await (const o of stores.store.list("race/")) left.push(o.key);
      expect(left.filter((k) => !indexed.has(k))).toEqual([]);
    });
  });
}

/**
 * DynamoDB's Query is read-committed, so a reader may see half of a roll's swap or of a
 * retention step. Each test hands the reader one such view first, then the real index.
 */
describe("a reader given torn index views", () => {
  let h: Harness;
  /** A process of its own, whose cache the writer did not seed. */
  let reader: Harness;
  let meta: TornMetaStore;
  let store: FlakyStore;
  let before: IndexEntry[];
  let after: IndexEntry[];
  let topicId: string;
  const clean = Array.from({ length: 8 }, (_, i) => i);

  class TornMetaStore extends DelegatingMetaStore {
    views: IndexEntry[][] = [];
    readIndexCalls = 0;
    override readIndex(topicId: string, p: number, offset: number, limit: number) {
      this.readIndexCalls++;
      const view = this.views.shift();
      return view ? Promise.resolve(view) : super.readIndex(topicId, p, offset, limit);
    }
  }
  class FlakyStore extends MemoryObjectStore {
    missing = new Set<string>();
    override get(key: string, range?: ByteRange): Promise<Uint8Array> {
      if (this.missing.delete(key)) {
        return Promise.reject(new SluiceError("not_found", `no object ${key}`));
      }
      return super.get(key, range);
    }
  }

  beforeEach(async () => {
    meta = new TornMetaStore(new MemoryMetaStore());
    store = new FlakyStore();
    h = makeHarness({ store, meta }, { ...segmentConfig, orphanGraceMs: 60_000 });
    await h.call("POST", "/v1/topics", {
      name: "torn",
      partitions: 1,
      config: { "segment.ms": 1 },
    });
    for (const i of clean) {
      await h.call("POST", "/v1/topics/torn/records", { records: [{ value: i }] });
      // Uploads a few milliseconds apart, so a clock can fall between two of them.
      await new Promise((r) => setTimeout(r, 3));
    }
    topicId = (await h.log.topics.get("torn")).id;
    before = await meta.listEntries(topicId, 0, 0, 100);
    // Seal chunks 0..5 with a clock at chunk 5's upload: 6 and 7 are not uploaded yet by it.
    const sixth = chunkUploadedAt(before[5]!.objectKey)!;
    expect((await h.log.runMaintenance({ now: () => sixth })).segmentsRolled).toBe(1);
    after = await meta.listEntries(topicId, 0, 0, 100);
    expect(after.map((e) => e.kind)).toEqual(["sealed", "chunk", "chunk"]);
    meta.readIndexCalls = 0;
    reader = makeHarness({ store, meta }, segmentConfig);
  });
  afterEach(async () => {
    await h.log.close();
    await reader.log.close();
  });

  const read = async (offset: number) => {
    const res = await reader.call("GET", `/v1/topics/torn/partitions/0/records?offset=${offset}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body as { records: { offset: number; value: number }[]; nextOffset: number };
  };

  it("skips chunks that overlap the sealed segment replacing them", async () => {
    meta.views.push([after[0]!, ...before.slice(1)]);
    const page = await read(0);
    expect(page.records.map((r) => r.value)).toEqual(clean);
    expect(page.records.map((r) => r.offset)).toEqual(clean);
  });

  it("ends a page at a gap, and the next page reads the fresh index", async () => {
    meta.views.push([before[0]!, ...before.slice(4)]);
    const first = await read(0);
    expect(first.records.map((r) => r.value)).toEqual([0]);
    const rest = await read(first.nextOffset);
    expect(rest.records.map((r) => r.value)).toEqual(clean.slice(1));
  });

  it("re-reads once when the floor entry ends before the offset", async () => {
    meta.views.push([before[0]!]);
    const page = await read(3);
    expect(page.records.map((r) => r.value)).toEqual(clean.slice(3));
    expect(meta.readIndexCalls).toBe(2);
  });

  it("re-reads once when the floor entry has vanished", async () => {
    meta.views.push([]);
    const page = await read(2);
    expect(page.records.map((r) => r.value)).toEqual(clean.slice(2));
    expect(meta.readIndexCalls).toBe(2);
  });

  it("re-reads when an object an old view names is already gone", async () => {
    meta.views.push(before);
    store.missing.add(before[0]!.objectKey);
    const page = await read(0);
    expect(page.records.map((r) => r.value)).toEqual(clean);
    expect(meta.readIndexCalls).toBe(2);
  });

  it("answers 416 when retention removed the floor after the head was read", async () => {
    const retiring = new (class extends TornMetaStore {
      heads = 0;
      override getHead() {
        // The first head read predates retention; the re-read sees the new log start.
        return this.heads++ === 0
          ? Promise.resolve({ logStartOffset: 0, logEndOffset: 8 })
          : Promise.resolve({ logStartOffset: 6, logEndOffset: 8 });
      }
    })(meta);
    retiring.views.push([]);
    const other = makeHarness({ store, meta: retiring }, segmentConfig);
    const res = await other.call("GET", "/v1/topics/torn/partitions/0/records?offset=1");
    expect(res.status).toBe(416);
    expect(res.body.error.details).toMatchObject({ logStartOffset: 6, logEndOffset: 8 });
    await other.log.close();
  });

  it("reports a gap that never heals as internal, not as missing records", async () => {
    meta.views.push([], [], [], []);
    const res = await reader.call("GET", "/v1/topics/torn/partitions/0/records?offset=2");
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe("internal");
  });
});
