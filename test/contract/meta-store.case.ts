import { randomInt, randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { topicConfigDefaults } from "../../src/config.js";
import { isSluiceError } from "../../src/errors.js";
import type {
  CommitResult,
  IndexEntry,
  MetaStore,
  SegmentKind,
  TopicMeta,
} from "../../src/meta/meta-store.js";

export interface MetaStoreFixture {
  store: MetaStore;
  /** Runs after the suite has closed the store. */
  cleanup: () => Promise<void>;
}

/** A unique suffix per use, so the suite can share one table with other runs. */
const unique = () => randomUUID().slice(0, 8);

function topic(overrides: Partial<TopicMeta> = {}): TopicMeta {
  return {
    name: `contract-${unique()}`,
    id: randomUUID(),
    partitions: 3,
    config: { ...topicConfigDefaults, "retention.ms": -1, "segment.bytes": 1_048_576 },
    createdAt: 1_700_000_000_123,
    ...overrides,
  };
}

function entry(baseOffset: number, count: number, kind: SegmentKind = "chunk"): IndexEntry {
  return {
    baseOffset,
    count,
    bytes: 100 * count + 61,
    objectKey: `objects/${unique()}/${String(baseOffset).padStart(20, "0")}.log`,
    minTimestamp: 1_700_000_000_000 + baseOffset,
    maxTimestamp: 1_700_000_000_000 + baseOffset + count,
    kind,
  };
}

/** Commits one entry per count, in order, each at the head it reads; none may lose a race. */
async function appendAll(store: MetaStore, topicId: string, partition: number, counts: number[]) {
  const committed: IndexEntry[] = [];
  for (const count of counts) {
    const { logEndOffset } = await store.getHead(topicId, partition);
    const e = entry(logEndOffset, count);
    const result = await store.commitAppend({
      topicId,
      partition,
      expectedLogEndOffset: logEndOffset,
      entry: e,
    });
    expect(result.committed).toBe(true);
    committed.push(e);
  }
  return committed;
}

/** The flush loop of the write path: read the head, commit, on a lost race retry at the winner's head. */
async function commitWithRetry(
  store: MetaStore,
  topicId: string,
  partition: number,
  count: number,
  objectKey: string,
): Promise<IndexEntry> {
  let { logEndOffset } = await store.getHead(topicId, partition);
  for (;;) {
    const e = { ...entry(logEndOffset, count), objectKey };
    const result: CommitResult = await store.commitAppend({
      topicId,
      partition,
      expectedLogEndOffset: logEndOffset,
      entry: e,
    });
    if (result.committed) return e;
    expect(result.head.logEndOffset).toBeGreaterThan(logEndOffset);
    logEndOffset = result.head.logEndOffset;
  }
}

/** Asserts the offsets-unique-and-contiguous invariant: entries tile [0, total) exactly. */
function expectTiling(entries: IndexEntry[], total: number): void {
  let next = 0;
  for (const e of entries) {
    expect(e.baseOffset).toBe(next);
    next += e.count;
  }
  expect(next).toBe(total);
}

/**
 * The MetaStore contract, run unchanged against every adapter. It sees stores only through
 * the port, and every test uses fresh topic names and ids.
 */
export function metaStoreContract(name: string, factory: () => Promise<MetaStoreFixture>): void {
  describe(`MetaStore contract: ${name}`, () => {
    let store: MetaStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
    });

    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    describe("topics", () => {
      it("creates, gets and lists topics with their config intact", async () => {
        const suffix = unique();
        const a = topic({ name: `list-${suffix}-a`, partitions: 1 });
        const b = topic({
          name: `list-${suffix}-b`,
          partitions: 7,
          config: { ...topicConfigDefaults, "max.message.bytes": 12_345, "retention.bytes": 9 },
        });
        await store.createTopic(a);
        await store.createTopic(b);

        expect(await store.getTopic(a.name)).toEqual(a);
        expect(await store.getTopic(b.name)).toEqual(b);
        expect(await store.getTopic(`missing-${suffix}`)).toBeUndefined();
        const listed = (await store.listTopics()).filter((t) => t.name.includes(suffix));
        expect(listed.sort((x, y) => x.name.localeCompare(y.name))).toEqual([a, b]);
      });

      it("hands out copies that callers cannot use to change the store", async () => {
        const t = topic();
        const stored = structuredClone(t);
        await store.createTopic(t);
        t.config["segment.ms"] = 2;
        const got = await store.getTopic(t.name);
        got!.config["retention.ms"] = 1;
        got!.partitions = 99;
        (await store.listTopics()).forEach((x) => (x.config["retention.ms"] = 3));
        expect(await store.getTopic(t.name)).toEqual(stored);
      });

      it("rejects a duplicate name with topic_exists and keeps the original", async () => {
        const original = topic();
        await store.createTopic(original);
        const duplicate = topic({ name: original.name, partitions: 5 });
        await expect(store.createTopic(duplicate)).rejects.toSatisfy((err) =>
          isSluiceError(err, "topic_exists"),
        );
        expect(await store.getTopic(original.name)).toEqual(original);
      });

      it("deletes only when the id matches", async () => {
        const t = topic();
        await store.createTopic(t);
        expect(await store.deleteTopic(t.name, randomUUID())).toBe(false);
        expect(await store.getTopic(t.name)).toEqual(t);

        expect(await store.deleteTopic(t.name, t.id)).toBe(true);
        expect(await store.getTopic(t.name)).toBeUndefined();
        expect((await store.listTopics()).map((x) => x.name)).not.toContain(t.name);
        expect(await store.deleteTopic(t.name, t.id)).toBe(false);
      });

      it("gives a re-created topic fresh partitions under its new id", async () => {
        const old = topic({ partitions: 2 });
        await store.createTopic(old);
        await appendAll(store, old.id, 0, [3, 4]);
        expect(await store.deleteTopic(old.name, old.id)).toBe(true);

        const recreated = topic({ name: old.name, partitions: 2 });
        await store.createTopic(recreated);
        expect(await store.getTopic(old.name)).toEqual(recreated);
        for (const p of [0, 1]) {
          expect(await store.getHead(recreated.id, p)).toEqual({
            logStartOffset: 0,
            logEndOffset: 0,
          });
          expect(await store.readIndex(recreated.id, p, 0, 100)).toEqual([]);
        }
        const [first] = await appendAll(store, recreated.id, 0, [1]);
        expect(await store.readIndex(recreated.id, 0, 0, 100)).toEqual([first]);
      });
    });

    describe("heads and commits", () => {
      it("reads an untouched partition as empty at offset 0", async () => {
        const t = topic();
        await store.createTopic(t);
        const empty = { logStartOffset: 0, logEndOffset: 0 };
        expect(await store.getHead(t.id, 2)).toEqual(empty);
        expect(await store.getHead(randomUUID(), 0)).toEqual(empty);
        expect(await store.readIndex(t.id, 2, 0, 10)).toEqual([]);
      });

      it("moves the head and stores the entry on a successful commit", async () => {
        const t = topic();
        await store.createTopic(t);
        const first = entry(0, 5, "sealed");
        expect(
          await store.commitAppend({
            topicId: t.id,
            partition: 1,
            expectedLogEndOffset: 0,
            entry: first,
          }),
        ).toEqual({ committed: true, head: { logStartOffset: 0, logEndOffset: 5 } });
        const second = entry(5, 1);
        expect(
          await store.commitAppend({
            topicId: t.id,
            partition: 1,
            expectedLogEndOffset: 5,
            entry: second,
          }),
        ).toEqual({ committed: true, head: { logStartOffset: 0, logEndOffset: 6 } });

        expect(await store.getHead(t.id, 1)).toEqual({ logStartOffset: 0, logEndOffset: 6 });
        expect(await store.readIndex(t.id, 1, 0, 10)).toEqual([first, second]);
      });

      it("rejects a stale or future expected offset with the current head and changes nothing", async () => {
        const t = topic();
        await store.createTopic(t);
        const committed = await appendAll(store, t.id, 0, [4, 2]);

        for (const expected of [0, 4, 7]) {
          expect(
            await store.commitAppend({
              topicId: t.id,
              partition: 0,
              expectedLogEndOffset: expected,
              entry: entry(expected, 3),
            }),
          ).toEqual({ committed: false, head: { logStartOffset: 0, logEndOffset: 6 } });
        }
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 6 });
        expect(await store.readIndex(t.id, 0, 0, 10)).toEqual(committed);
      });

      it("rejects a malformed commit and changes nothing", async () => {
        const t = topic();
        await store.createTopic(t);
        const committed = await appendAll(store, t.id, 0, [2]);
        const malformed = [
          { expectedLogEndOffset: 2, entry: entry(3, 1) },
          { expectedLogEndOffset: 2, entry: entry(2, 0) },
          { expectedLogEndOffset: 2, entry: entry(2, 1.5) },
        ];
        for (const request of malformed) {
          await expect(
            store.commitAppend({ topicId: t.id, partition: 0, ...request }),
          ).rejects.toSatisfy((err) => isSluiceError(err));
        }
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 2 });
        expect(await store.readIndex(t.id, 0, 0, 10)).toEqual(committed);
      });

      it("keeps partitions and topics apart", async () => {
        const a = topic({ partitions: 2 });
        const b = topic({ partitions: 2 });
        await store.createTopic(a);
        await store.createTopic(b);
        const a0 = await appendAll(store, a.id, 0, [1, 2]);
        const a1 = await appendAll(store, a.id, 1, [3]);
        const b0 = await appendAll(store, b.id, 0, [4, 5, 6]);

        expect(await store.readIndex(a.id, 0, 0, 10)).toEqual(a0);
        expect(await store.readIndex(a.id, 1, 0, 10)).toEqual(a1);
        expect(await store.readIndex(b.id, 0, 0, 10)).toEqual(b0);
        expect(await store.readIndex(b.id, 1, 0, 10)).toEqual([]);
        expect(await store.getHead(a.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 3 });
        expect(await store.getHead(a.id, 1)).toEqual({ logStartOffset: 0, logEndOffset: 3 });
        expect(await store.getHead(b.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 15 });
      });

      it("lets commits on different partitions proceed without conflict", async () => {
        const t = topic({ partitions: 4 });
        await store.createTopic(t);
        const results = await Promise.all(
          [0, 1, 2, 3].map((partition) =>
            store.commitAppend({
              topicId: t.id,
              partition,
              expectedLogEndOffset: 0,
              entry: entry(0, partition + 1),
            }),
          ),
        );
        expect(results.map((r) => r.committed)).toEqual([true, true, true, true]);
        for (const p of [0, 1, 2, 3]) {
          expect(await store.getHead(t.id, p)).toEqual({ logStartOffset: 0, logEndOffset: p + 1 });
        }
      });
    });

    describe("readIndex", () => {
      let t: TopicMeta;
      let entries: IndexEntry[];

      beforeEach(async () => {
        t = topic();
        await store.createTopic(t);
        // Entries at 0, 5 and 8; the log-end offset is 18.
        entries = await appendAll(store, t.id, 0, [5, 3, 10]);
      });

      it("starts at the entry holding an offset inside it", async () => {
        expect(await store.readIndex(t.id, 0, 6, 10)).toEqual(entries.slice(1));
        expect(await store.readIndex(t.id, 0, 4, 10)).toEqual(entries);
        expect(await store.readIndex(t.id, 0, 17, 10)).toEqual(entries.slice(2));
      });

      it("starts at the entry whose base is the offset", async () => {
        expect(await store.readIndex(t.id, 0, 0, 10)).toEqual(entries);
        expect(await store.readIndex(t.id, 0, 5, 10)).toEqual(entries.slice(1));
        expect(await store.readIndex(t.id, 0, 8, 10)).toEqual(entries.slice(2));
      });

      it("returns the last entry for an offset at or past the log end", async () => {
        expect(await store.readIndex(t.id, 0, 18, 10)).toEqual(entries.slice(2));
        expect(await store.readIndex(t.id, 0, 1_000_000, 10)).toEqual(entries.slice(2));
      });

      it("is empty when no entry starts at or before the offset", async () => {
        expect(await store.readIndex(t.id, 0, -1, 10)).toEqual([]);
        expect(await store.readIndex(t.id, 1, 0, 10)).toEqual([]);
        expect(await store.readIndex(t.id, 1, 7, 10)).toEqual([]);
      });

      it("honors the limit", async () => {
        expect(await store.readIndex(t.id, 0, 0, 1)).toEqual(entries.slice(0, 1));
        expect(await store.readIndex(t.id, 0, 6, 1)).toEqual(entries.slice(1, 2));
        expect(await store.readIndex(t.id, 0, 0, 2)).toEqual(entries.slice(0, 2));
        expect(await store.readIndex(t.id, 0, 0, 3)).toEqual(entries);
      });
    });

    describe("concurrency", () => {
      it("gives 64 racing writers unique, contiguous offsets", async () => {
        const t = topic({ partitions: 1 });
        await store.createTopic(t);
        const writers = Array.from({ length: 64 }, (_, i) => ({
          objectKey: `writer-${i}-${unique()}`,
          count: randomInt(1, 11),
        }));

        const committed = await Promise.all(
          writers.map((w) => commitWithRetry(store, t.id, 0, w.count, w.objectKey)),
        );

        const total = writers.reduce((sum, w) => sum + w.count, 0);
        const index = await store.readIndex(t.id, 0, 0, writers.length + 1);
        expectTiling(index, total);
        expect(index).toHaveLength(writers.length);
        expect([...index].sort((x, y) => x.objectKey.localeCompare(y.objectKey))).toEqual(
          [...committed].sort((x, y) => x.objectKey.localeCompare(y.objectKey)),
        );
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: total });
      });
    });
  });
}
