import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chunkKey } from "../../src/log/keys.js";
import { collectGarbage } from "../../src/log/maintenance.js";
import { logger } from "../../src/logger.js";
import type { IndexEntry } from "../../src/meta/meta-store.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";
import { makeHarness, type Harness } from "../support/harness.js";
import { storeKinds, type TestStores } from "../support/stores.js";

const HOUR = 60 * 60 * 1000;

async function keysUnder(h: Harness, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of h.store.list(prefix)) keys.push(object.key);
  return keys;
}

for (const [kind, makeStores] of Object.entries(storeKinds)) {
  describe(`maintenance over ${kind}`, () => {
    let stores: TestStores;
    let h: Harness;
    const gc = (nowOffsetMs: number, meta = stores.meta) =>
      collectGarbage({
        store: stores.store,
        meta,
        logger,
        graceMs: HOUR,
        commitTimeoutMs: 60_000,
        now: () => Date.now() + nowOffsetMs,
      });
    const readAll = async (topic: string) =>
      (await h.call("GET", `/v1/topics/${topic}/partitions/0/records?offset=0`)).body.records.map(
        (r: any) => r.value,
      );

    beforeEach(async () => {
      stores = await makeStores();
      h = makeHarness(stores);
    });
    afterEach(async () => {
      await h.log.close();
      await stores.cleanup();
    });

    it("deletes uncommitted objects once past the grace period, and nothing committed", async () => {
      await h.call("POST", "/v1/topics", { name: "gc", partitions: 1 });
      await h.call("POST", "/v1/topics/gc/records", { records: [{ value: 1 }, { value: 2 }] });
      await h.call("POST", "/v1/topics/gc/records", { records: [{ value: 3 }] });
      const topic = await h.log.topics.get("gc");
      const orphan = chunkKey("gc", topic.id, 0, "01ORPHAN0000000000000000000");
      await stores.store.put(orphan, new Uint8Array([1, 2, 3]));
      await stores.store.put("unrelated/notes.txt", new Uint8Array([9]));
      const before = await keysUnder(h, `gc/${topic.id}/`);

      const young = await gc(0);
      expect(young.orphansDeleted).toBe(0);
      expect(await keysUnder(h, `gc/${topic.id}/`)).toEqual(before);

      const old = await gc(2 * HOUR);
      expect(old.orphansDeleted).toBe(1);
      expect(old.deletedTopicObjectsDeleted).toBe(0);
      expect(await keysUnder(h, `gc/${topic.id}/`)).toEqual(before.filter((k) => k !== orphan));
      expect(await keysUnder(h, "unrelated/")).toEqual(["unrelated/notes.txt"]);
      expect(await readAll("gc")).toEqual([1, 2, 3]);

      const viaHttp = await h.call("POST", "/v1/admin/maintenance");
      expect(viaHttp.status).toBe(200);
      expect(viaHttp.body).toMatchObject({ orphansDeleted: 0, deletedTopicObjectsDeleted: 0 });
      expect(viaHttp.body.objectsScanned).toBeGreaterThanOrEqual(2);
    });

    // Regression: with a grace period shorter than commitTimeoutMs, a pass deleted an upload
    // whose writer was still committing it, and the commit then indexed a missing object.
    it("never deletes an upload its writer may still commit, whatever the grace period", async () => {
      await h.call("POST", "/v1/topics", { name: "slow", partitions: 1 });
      const topic = await h.log.topics.get("slow");
      const pending = chunkKey("slow", topic.id, 0, "01PENDING000000000000000000");
      await stores.store.put(pending, new Uint8Array([1]));
      const pass = (ageMs: number) =>
        collectGarbage({
          store: stores.store,
          meta: stores.meta,
          logger,
          graceMs: 0,
          commitTimeoutMs: 60_000,
          now: () => Date.now() + ageMs,
        });
      expect((await pass(59_000)).orphansDeleted).toBe(0);
      expect(await keysUnder(h, `slow/${topic.id}/`)).toEqual([pending]);
      expect((await pass(61_000)).orphansDeleted).toBe(1);
    });

    it("deletes a deleted topic's objects, never those of the topic re-created under its name", async () => {
      await h.call("POST", "/v1/topics", { name: "again", partitions: 1 });
      const oldId = (await h.log.topics.get("again")).id;
      await h.call("POST", "/v1/topics/again/records", { records: [{ value: "old" }] });
      await h.call("DELETE", "/v1/topics/again");
      await h.call("POST", "/v1/topics", { name: "again", partitions: 1 });
      const newId = (await h.log.topics.get("again")).id;
      await h.call("POST", "/v1/topics/again/records", { records: [{ value: "new" }] });
      expect(await keysUnder(h, `again/${oldId}/`)).toHaveLength(1);

      const report = await gc(2 * HOUR);
      expect(report.deletedTopicObjectsDeleted).toBe(1);
      expect(await keysUnder(h, `again/${oldId}/`)).toEqual([]);
      expect(await keysUnder(h, `again/${newId}/`)).toHaveLength(1);
      expect(await readAll("again")).toEqual(["new"]);
    });

    it("deletes nothing of a partition whose index does not reach its log end", async () => {
      await h.call("POST", "/v1/topics", { name: "torn", partitions: 1 });
      await h.call("POST", "/v1/topics/torn/records", { records: [{ value: 1 }] });
      const id = (await h.log.topics.get("torn")).id;
      const blind = new (class extends DelegatingMetaStore {
        override readIndex(): Promise<IndexEntry[]> {
          return Promise.resolve([]);
        }
      })(stores.meta);
      const report = await gc(2 * HOUR, blind);
      expect(report.orphansDeleted).toBe(0);
      expect(await keysUnder(h, `torn/${id}/`)).toHaveLength(1);
      expect(await readAll("torn")).toEqual([1]);
    });

    it("is safe to run concurrently", async () => {
      await h.call("POST", "/v1/topics", { name: "twice", partitions: 2 });
      await h.call("POST", "/v1/topics/twice/records", {
        records: [
          { value: "a", partition: 0 },
          { value: "b", partition: 1 },
        ],
      });
      const id = (await h.log.topics.get("twice")).id;
      for (const p of [0, 1]) {
        await stores.store.put(
          chunkKey("twice", id, p, `01ORPHAN${p}000000000000000000`),
          new Uint8Array(1),
        );
      }
      const reports = await Promise.all([gc(2 * HOUR), gc(2 * HOUR)]);
      expect(reports.every((r) => r.objectsScanned > 0)).toBe(true);
      expect(await keysUnder(h, `twice/${id}/`)).toHaveLength(2);
      expect(await readAll("twice")).toEqual(["a"]);
    });
  });
}
