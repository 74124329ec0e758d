import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ulid } from "ulid";
import { chunkKey, chunkUploadedAt, segmentKey } from "../../src/log/keys.js";
import type { IndexEntry } from "../../src/meta/meta-store.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";
import { makeHarness, type Harness } from "../support/harness.js";
import { storeKinds, type TestStores } from "../support/stores.js";

const DAY = 24 * 60 * 60 * 1000;
const GRACE = 50;
const INTENT_TIMEOUT = 60_000;

/** Small thresholds, and no waiting for chunks to age: tests move time through `now`. */
const segmentConfig = {
  lingerMs: 0,
  rollMinAgeMs: 0,
  orphanGraceMs: GRACE,
  // Orphans wait for this, not for GRACE: a writer may commit an upload until then.
  commitTimeoutMs: 5_000,
  intentTimeoutMs: INTENT_TIMEOUT,
};

for (const [kind, makeStores] of Object.entries(storeKinds)) {
  describe(`segments over ${kind}`, () => {
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

    const createTopic = async (name: string, config: Record<string, number>) => {
      const res = await h.call("POST", "/v1/topics", { name, partitions: 1, config });
      expect(res.status).toBe(201);
      return h.log.topics.get(name);
    };
    /** One request per call: with lingerMs 0 each becomes a chunk of its own. */
    const produce = async (topic: string, records: object[]) => {
      const res = await h.call("POST", `/v1/topics/${topic}/records`, { records });
      expect(res.status).toBe(200);
      return res.body.offsets as { offset: number }[];
    };
    const pass = (at: number, topic?: string) =>
      h.log.runMaintenance({ now: () => at, ...(topic === undefined ? {} : { topic }) });
    const readAll = async (topic: string, from = 0) => {
      const records: { offset: number; value: unknown; timestamp: number }[] = [];
      for (let offset = from; ;) {
        const res = await h.call(
          "GET",
          `/v1/topics/${topic}/partitions/0/records?offset=${offset}`,
        );
        expect(res.status).toBe(200);
        records.push(...res.body.records);
        if (res.body.records.length === 0) return records;
        offset = res.body.nextOffset;
      }
    };
    const segments = async (topic: string) => {
      const res = await h.call("GET", `/v1/topics/${topic}`);
      expect(res.status).toBe(200);
      return res.body.partitions[0] as {
        logStartOffset: number;
        logEndOffset: number;
        segments: {
          baseOffset: number;
          count: number;
          bytes: number;
          state: string;
          chunks?: number;
        }[];
      };
    };
    const keysUnder = async (prefix: string) => {
      const keys: string[] = [];
      for await (const o of stores.store.list(prefix)) keys.push(o.key);
      return keys.sort();
    };
    const entries = (topicId: string) => stores.meta.listEntries(topicId, 0, 0, 10_000);

    it("rolls by segment.bytes into sealed segments named by base offset, readable byte for byte", async () => {
      const topic = await createTopic("bysize", { "segment.bytes": 1024 });
      const values = Array.from({ length: 40 }, (_, i) => ({ i, pad: "x".repeat(90) }));
      for (const value of values) await produce("bysize", [{ value }]);
      const before = await segments("bysize");
      expect(before.segments).toEqual([
        expect.objectContaining({ baseOffset: 0, count: 40, state: "active", chunks: 40 }),
      ]);

      const report = await pass(Date.now());
      expect(report.segmentsRolled).toBeGreaterThanOrEqual(3);
      const after = await segments("bysize");
      const sealed = after.segments.filter((s) => s.state === "sealed");
      const active = after.segments.at(-1)!;
      expect(sealed.length).toBe(report.segmentsRolled);
      expect(active.state).toBe("active");
      let next = 0;
      for (const s of sealed) {
        expect(s.baseOffset).toBe(next);
        expect(s.bytes).toBeGreaterThanOrEqual(1024);
        next += s.count;
      }
      expect(active.baseOffset).toBe(next);
      expect(active.bytes).toBeLessThan(1024);
      expect(next + active.count).toBe(40);

      const keys = await keysUnder(`bysize/${topic.id}/0/`);
      const segmentKeys = keys.filter((k) => k.endsWith(".log"));
      expect(segmentKeys.map((k) => k.replace(/^.*\/(\d{20})-[0-9A-Z]{26}\.log$/, "$1"))).toEqual(
        sealed.map((s) => String(s.baseOffset).padStart(20, "0")),
      );
      const read = await readAll("bysize");
      expect(read.map((r) => r.offset)).toEqual(values.map((_, i) => i));
      expect(read.map((r) => r.value)).toEqual(values);

      const again = await pass(Date.now());
      expect(again.segmentsRolled).toBe(0);
      expect((await segments("bysize")).segments).toEqual(after.segments);
    });

    it("rolls by segment.ms, measured from the first chunk's upload", async () => {
      const topic = await createTopic("bytime", { "segment.ms": 1000 });
      for (const v of [1, 2, 3]) await produce("bytime", [{ value: v }]);
      const first = chunkUploadedAt((await entries(topic.id))[0]!.objectKey)!;

      expect((await pass(first + 999)).segmentsRolled).toBe(0);
      const report = await pass(first + 1001);
      expect(report).toMatchObject({ segmentsRolled: 1, chunksReplaced: 3 });
      const [sealed, active] = (await segments("bytime")).segments;
      expect(sealed).toMatchObject({ baseOffset: 0, count: 3, state: "sealed" });
      expect(active).toMatchObject({ baseOffset: 3, count: 0, state: "active", chunks: 0 });
      expect((await readAll("bytime")).map((r) => r.value)).toEqual([1, 2, 3]);
    });

    it("never rolls chunks younger than rollMinAgeMs", async () => {
      const young = makeHarness(stores, { ...segmentConfig, rollMinAgeMs: 10 * 60_000 });
      await young.call("POST", "/v1/topics", {
        name: "young",
        partitions: 1,
        config: { "segment.bytes": 1024, "segment.ms": 1 },
      });
      for (let i = 0; i < 20; i++) {
        await young.call("POST", "/v1/topics/young/records", {
          records: [{ value: "y".repeat(100) }],
        });
      }
      expect((await young.log.runMaintenance({ now: () => Date.now() })).segmentsRolled).toBe(0);
      const later = await young.log.runMaintenance({ now: () => Date.now() + 11 * 60_000 });
      expect(later.segmentsRolled).toBeGreaterThan(0);
      await young.log.close();
    });

    it("retains by time: deletes the expired prefix, answers 416 below the new start, deletes objects after the grace period", async () => {
      const topic = await createTopic("bytimeret", { "segment.ms": 1, "retention.ms": DAY });
      const t0 = Date.now();
      for (let s = 0; s < 5; s++) {
        await produce(
          "bytimeret",
          [0, 1].map((i) => ({ value: `${s}.${i}`, timestamp: t0 + s * 1000 + i })),
        );
        expect((await pass(Date.now() + 10)).segmentsRolled).toBe(1);
      }
      const sealed = (await entries(topic.id)).filter((e) => e.kind === "sealed");
      expect(sealed).toHaveLength(5);

      const at = t0 + DAY + 2500; // segments 0..2 hold records up to t0 + 2001
      const report = await pass(at);
      expect(report.segmentsRetired).toBe(3);
      const described = await segments("bytimeret");
      expect(described.logStartOffset).toBe(6);
      expect(described.segments[0]).toMatchObject({ baseOffset: 6, state: "sealed" });

      const below = await h.call("GET", "/v1/topics/bytimeret/partitions/0/records?offset=2");
      expect(below.status).toBe(416);
      expect(below.body.error.code).toBe("offset_out_of_range");
      expect(below.body.error.details).toMatchObject({ logStartOffset: 6, logEndOffset: 10 });
      expect((await readAll("bytimeret", 6)).map((r) => r.value)).toEqual([
        "3.0",
        "3.1",
        "4.0",
        "4.1",
      ]);
      const earliest = await h.call("GET", "/v1/topics/bytimeret/partitions/0/offsets?timestamp=0");
      expect(earliest.body.offset).toBe(6);

      const retiredKeys = sealed.slice(0, 3).map((e) => e.objectKey);
      const prefix = `bytimeret/${topic.id}/0/`;
      await pass(at + GRACE - 1);
      expect(await keysUnder(prefix)).toEqual(expect.arrayContaining(retiredKeys));
      const late = await pass(at + GRACE + 1);
      expect(late.garbageObjectsDeleted).toBeGreaterThanOrEqual(3);
      const left = await keysUnder(prefix);
      expect(left).toEqual(
        sealed
          .slice(3)
          .map((e) => e.objectKey)
          .sort(),
      );
    });

    it("never deletes the active segment, even when it alone exceeds retention.bytes", async () => {
      await createTopic("bybytes", { "segment.ms": 1, "retention.bytes": 1 });
      for (let s = 0; s < 4; s++) {
        await produce("bybytes", [{ value: "b".repeat(200) }]);
        await pass(Date.now() + 10);
      }
      // Each pass retires the segments sealed before it: only the newest is left.
      expect((await segments("bybytes")).logStartOffset).toBe(3);
      await produce("bybytes", [{ value: "active" }]);
      // A clock before the chunk's upload: retention runs, the roll does not.
      const report = await pass(Date.now() - 1000);
      expect(report).toMatchObject({ segmentsRetired: 1, segmentsRolled: 0 });
      const described = await segments("bybytes");
      expect(described.logStartOffset).toBe(4);
      expect(described.segments).toEqual([
        expect.objectContaining({ baseOffset: 4, count: 1, state: "active", chunks: 1 }),
      ]);
      expect((await readAll("bybytes", 4)).map((r) => r.value)).toEqual(["active"]);
    });

    it("retains by bytes: keeps the newest segments that fit, per Kafka's size breach", async () => {
      await createTopic("sized", { "segment.ms": 1 });
      for (let s = 0; s < 5; s++) {
        await produce("sized", [{ value: "s".repeat(300) }]);
        await pass(Date.now() + 10);
      }
      const sizes = (await segments("sized")).segments.filter((s) => s.state === "sealed");
      expect(sizes).toHaveLength(5);
      const limit = sizes[3]!.bytes + sizes[4]!.bytes + 1;
      const other = makeHarness(stores, segmentConfig);
      await other.call("POST", "/v1/topics", {
        name: "sized2",
        partitions: 1,
        config: { "segment.ms": 1, "retention.bytes": limit },
      });
      for (let s = 0; s < 5; s++) {
        await other.call("POST", "/v1/topics/sized2/records", {
          records: [{ value: "s".repeat(300) }],
        });
        await other.log.runMaintenance({ now: () => Date.now() + 10 });
      }
      const kept = (await other.call("GET", "/v1/topics/sized2")).body.partitions[0];
      // Deleting a segment must leave at least retention.bytes: three are kept, not two.
      expect(kept.logStartOffset).toBe(2);
      await other.log.close();
    });

    it("leaves no orphan after a cleanup pass, whatever crashed where", async () => {
      const topic = await createTopic("orphans", { "segment.ms": 1 });
      for (const v of [1, 2, 3, 4]) await produce("orphans", [{ value: v }]);
      const prefix = `orphans/${topic.id}/0/`;
      const [c0, c1, c2] = await entries(topic.id);

      // An upload never committed. Passes before `at` run at `start`, when nothing is old.
      const start = Date.now();
      await stores.store.put(chunkKey("orphans", topic.id, 0, ulid()), new Uint8Array([1]));
      // A roller killed after its PUT: its intent is still pending.
      const crashedId = ulid();
      const crashedKey = segmentKey("orphans", topic.id, 0, 0, crashedId);
      expect(
        await stores.meta.beginIntent(topic, 0, {
          kind: "roll",
          baseOffset: 0,
          id: crashedId,
          objectKeys: [c0!.objectKey],
          sealedKey: crashedKey,
          createdAt: Date.now(),
          doneAt: null,
        }),
      ).toBe(true);
      await stores.store.put(crashedKey, new Uint8Array([1, 2]));
      // A roller that lost its swap to a changed index and died before aborting.
      const loserId = ulid();
      const loserKey = segmentKey("orphans", topic.id, 0, 1, loserId);
      await stores.meta.beginIntent(topic, 0, {
        kind: "roll",
        baseOffset: 1,
        id: loserId,
        objectKeys: [c1!.objectKey, c2!.objectKey],
        sealedKey: loserKey,
        createdAt: Date.now(),
        doneAt: null,
      });
      await stores.store.put(loserKey, new Uint8Array([3]));
      const stale: IndexEntry = { ...c2!, objectKey: `${prefix}chunks/${ulid()}.chunk` };
      const sealed: IndexEntry = {
        ...c1!,
        count: 2,
        kind: "sealed",
        objectKey: loserKey,
        footer: { position: 0, length: 1 },
      };
      expect(
        await stores.meta.replaceEntries(topic.id, 0, loserId, [c1!, stale], sealed, Date.now()),
      ).toBe(false);
      // A deleted and re-created topic.
      await createTopic("gone", {});
      const goneId = (await h.log.topics.get("gone")).id;
      await produce("gone", [{ value: "old" }]);
      expect((await h.call("DELETE", "/v1/topics/gone")).status).toBe(204);
      await createTopic("gone", {});
      await produce("gone", [{ value: "new" }]);

      // The pending intents block rolls at their bases until they time out.
      expect((await pass(start + 10)).segmentsRolled).toBe(0);
      const at = Date.now() + INTENT_TIMEOUT + 1;
      const first = await pass(at);
      // Aborted first, so nothing blocks the roll in the same pass; its chunks go a grace later.
      expect(first).toMatchObject({ intentsAborted: 2, segmentsRolled: 1, orphansDeleted: 1 });
      await pass(at + GRACE + 10);

      const indexed = (await entries(topic.id)).map((e) => e.objectKey).sort();
      expect(await keysUnder(prefix)).toEqual(indexed);
      expect(await stores.meta.listIntents(topic.id, 0)).toEqual([]);
      expect(await keysUnder(`gone/${goneId}/`)).toEqual([]);
      expect(await stores.meta.listDeletedTopics()).toEqual([]);
      expect(await stores.meta.getHead(goneId, 0)).toEqual({ logStartOffset: 0, logEndOffset: 0 });
      expect(await stores.meta.listEntries(goneId, 0, 0, 100)).toEqual([]);
      expect((await readAll("orphans")).map((r) => r.value)).toEqual([1, 2, 3, 4]);
      expect((await readAll("gone")).map((r) => r.value)).toEqual(["new"]);
    });

    it("gives a failed roll's base back at once, and counts it", async () => {
      const topic = await createTopic("broken", { "segment.ms": 1 });
      for (const v of [1, 2, 3]) await produce("broken", [{ value: v }]);
      const [, lost] = await entries(topic.id);
      await stores.store.delete([lost!.objectKey]);
      const report = await pass(Date.now() + 10);
      expect(report).toMatchObject({ segmentsRolled: 0, rollsFailed: 1 });
      expect(await stores.meta.listIntents(topic.id, 0)).toEqual([]);
      // No upload of the failed roll is left behind, and the next pass tries again at once.
      expect((await keysUnder(`broken/${topic.id}/0/`)).filter((k) => k.endsWith(".log"))).toEqual(
        [],
      );
      expect((await pass(Date.now() + 20)).rollsFailed).toBe(1);
    });

    it("lets concurrent passes from several processes roll and retain each step once", async () => {
      const topic = await createTopic("crowd", { "segment.bytes": 1024, "retention.bytes": 4096 });
      const values = Array.from({ length: 60 }, (_, i) => `${i}.${"c".repeat(90)}`);
      for (const value of values) await produce("crowd", [{ value }]);
      const others = [1, 2, 3].map(() => makeHarness(stores, segmentConfig));
      const at = Date.now() + 10;
      const reports = await Promise.all(
        [h, ...others].map((x) => x.log.runMaintenance({ now: () => at })),
      );
      await Promise.all(others.map((x) => x.log.close()));
      const total = reports.reduce((n, r) => n + r.segmentsRolled, 0);
      expect(total).toBeGreaterThan(0);
      const described = await segments("crowd");
      const sealed = described.segments.filter((s) => s.state === "sealed");
      let next = described.logStartOffset;
      for (const s of described.segments) {
        expect(s.baseOffset).toBe(next);
        next += s.count;
      }
      expect(next).toBe(60);
      expect(sealed.length).toBeGreaterThan(0);
      const read = await readAll("crowd", described.logStartOffset);
      expect(read.map((r) => r.value)).toEqual(values.slice(described.logStartOffset));
      // Retention of what the rolls sealed, then its garbage a grace period later.
      await pass(at + GRACE + 10);
      await pass(at + 2 * GRACE + 20);
      const indexed = (await entries(topic.id)).map((e) => e.objectKey).sort();
      expect(await keysUnder(`crowd/${topic.id}/0/`)).toEqual(indexed);
    });

    it("does not count chunks twice when its index listing shows half a roll", async () => {
      await createTopic("halfseen", { "segment.ms": 1, "retention.bytes": 1 });
      for (const v of [1, 2, 3, 4]) {
        await produce("halfseen", [{ value: v }]);
        // Uploads a few milliseconds apart, so a clock can fall between two of them.
        await new Promise((r) => setTimeout(r, 3));
      }
      const topicId = (await h.log.topics.get("halfseen")).id;
      const chunks = await entries(topicId);
      // Seal the first two, then show maintenance the sealed entry beside the chunks it replaced.
      const sealedAt = chunkUploadedAt(chunks[1]!.objectKey)!;
      expect((await pass(sealedAt)).segmentsRolled).toBe(1);
      const [sealed] = await entries(topicId);
      const torn = new (class extends DelegatingMetaStore {
        override async listEntries(id: string, p: number, from: number, limit: number) {
          const real = await super.listEntries(id, p, from, limit);
          return from === 0 ? [sealed!, chunks[1]!, ...real.slice(1)] : real;
        }
      })(stores.meta);
      const blind = makeHarness({ store: stores.store, meta: torn }, segmentConfig);
      // retention.bytes 1 deletes a segment only while what remains is at least 1 byte: the
      // chunks after it. With chunk 1 counted twice it would be the same; what matters is that
      // the walk never reaches past the sealed segment into chunks.
      const report = await blind.log.runMaintenance({ now: () => sealedAt - 1000 });
      expect(report.segmentsRetired).toBe(1);
      const described = await segments("halfseen");
      expect(sealed!.count).toBe(2);
      expect(described.logStartOffset).toBe(2);
      expect((await readAll("halfseen", 2)).map((r) => r.value)).toEqual([3, 4]);
      await blind.log.close();
    });

    it("answers offsets by time as Kafka does, across chunks and sealed segments", async () => {
      await createTopic("when", { "segment.ms": 1, "retention.ms": -1 });
      const stamps = [100, 300, 200, 400, 400];
      for (const [i, timestamp] of stamps.entries()) {
        await produce("when", [{ value: i, timestamp }]);
        if (i === 2) expect((await pass(Date.now() + 10)).segmentsRolled).toBe(1);
      }
      const described = await segments("when");
      expect(described.segments.map((s) => s.state)).toEqual(["sealed", "active"]);
      const offsetAt = async (t: string) =>
        (await h.call("GET", `/v1/topics/when/partitions/0/offsets?timestamp=${t}`)).body.offset;
      expect(await offsetAt("200")).toBe(1);
      expect(await offsetAt("250")).toBe(1);
      expect(await offsetAt("301")).toBe(3);
      expect(await offsetAt("0")).toBe(0);
      expect(await offsetAt("401")).toBeNull();
      expect(await offsetAt("latest")).toBe(5);
      expect(await offsetAt("earliest")).toBe(0);
    });

    it("runs for one topic from the admin endpoint, and 404s an unknown topic", async () => {
      await createTopic("one", { "segment.ms": 1 });
      await createTopic("other", { "segment.ms": 1 });
      await produce("one", [{ value: 1 }]);
      await produce("other", [{ value: 1 }]);
      await new Promise((r) => setTimeout(r, 5));
      const res = await h.call("POST", "/v1/admin/maintenance?topic=one");
      expect(res.status).toBe(200);
      expect(res.body.segmentsRolled).toBe(1);
      expect((await segments("other")).segments[0]!.state).toBe("active");
      const missing = await h.call("POST", "/v1/admin/maintenance?topic=nope");
      expect(missing.status).toBe(404);
      expect(missing.body.error.code).toBe("topic_not_found");
      const bad = await h.call("POST", "/v1/admin/maintenance?topic=a%2Fb");
      expect(bad.status).toBe(400);
      const plain = await h.call("GET", "/v1/topics/one?segments=false");
      expect(plain.body.partitions[0].segments).toBeUndefined();
    });
  });
}
