import { randomInt, randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { topicConfigDefaults } from "../../src/config.js";
import { isSluiceError } from "../../src/errors.js";
import type {
  CommitResult,
  IndexEntry,
  Intent,
  IntentKind,
  MetaStore,
  ProducerState,
  ProducerWrite,
  SegmentKind,
  TopicMeta,
} from "../../src/meta/meta-store.js";
import { MAX_PRODUCERS_PER_COMMIT } from "../../src/meta/meta-store.js";

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

/** Asserts the offsets-unique-and-contiguous invariant: entries tile [from, total) exactly. */
function expectTiling(entries: IndexEntry[], total: number, from = 0): void {
  let next = from;
  for (const e of entries) {
    expect(e.baseOffset).toBe(next);
    next += e.count;
  }
  expect(next).toBe(total);
}

/**
 * Commits one chunk per count at the partition's log end, taking each next expected offset
 * from the previous answer (one head read in all, so that long runs stay cheap).
 */
async function commitChunks(
  store: MetaStore,
  topicId: string,
  partition: number,
  counts: number[],
): Promise<IndexEntry[]> {
  let { logEndOffset } = await store.getHead(topicId, partition);
  const committed: IndexEntry[] = [];
  for (const count of counts) {
    const e = entry(logEndOffset, count);
    const result = await store.commitAppend({
      topicId,
      partition,
      expectedLogEndOffset: logEndOffset,
      entry: e,
    });
    expect(result.committed).toBe(true);
    logEndOffset = result.head.logEndOffset;
    committed.push(e);
  }
  return committed;
}

const T_INTENT = 1_700_000_100_000;

/** A pending intent with a fresh id; a roll's names its sealed upload. */
function intent(kind: IntentKind, baseOffset: number, objectKeys: string[] = []): Intent {
  const id = `intent-${randomUUID()}`;
  return {
    kind,
    baseOffset,
    id,
    objectKeys,
    sealedKey:
      kind === "roll" ? `segments/${String(baseOffset).padStart(20, "0")}-${id}.log` : null,
    createdAt: T_INTENT,
    doneAt: null,
  };
}

/** The sealed segment a roll of `chunks` uploads: their sum, with a footer after the batches. */
function sealedOf(chunks: IndexEntry[], objectKey = `segments/${unique()}.log`): IndexEntry {
  const bytes = chunks.reduce((sum, c) => sum + c.bytes, 0);
  return {
    baseOffset: chunks[0]!.baseOffset,
    count: chunks.reduce((sum, c) => sum + c.count, 0),
    bytes: bytes + 80,
    objectKey,
    minTimestamp: Math.min(...chunks.map((c) => c.minTimestamp)),
    maxTimestamp: Math.max(...chunks.map((c) => c.maxTimestamp)),
    kind: "sealed",
    footer: { position: bytes, length: 80 },
  };
}

/** Rolls `chunks` into one sealed segment through an intent, as maintenance does. */
async function roll(
  store: MetaStore,
  t: TopicMeta,
  partition: number,
  chunks: IndexEntry[],
  now = T_INTENT + 1,
): Promise<{ sealed: IndexEntry; intent: Intent }> {
  const begun = intent(
    "roll",
    chunks[0]!.baseOffset,
    chunks.map((c) => c.objectKey),
  );
  expect(await store.beginIntent(t, partition, begun)).toBe(true);
  const sealed = sealedOf(chunks, begun.sealedKey!);
  expect(await store.replaceEntries(t.id, partition, begun.id, chunks, sealed, now)).toBe(true);
  return { sealed, intent: { ...begun, doneAt: now } };
}

/** Commits chunks with these counts and rolls each group of them into a sealed segment. */
async function sealedLog(
  store: MetaStore,
  t: TopicMeta,
  partition: number,
  groups: number[][],
): Promise<IndexEntry[]> {
  const chunks = await commitChunks(store, t.id, partition, groups.flat());
  const segments: IndexEntry[] = [];
  let at = 0;
  for (const group of groups) {
    const run = chunks.slice(at, at + group.length);
    at += group.length;
    segments.push((await roll(store, t, partition, run)).sealed);
  }
  return segments;
}

/** Everything an operation could change in a partition, to show that it changed nothing. */
async function snapshot(store: MetaStore, topicId: string, partition: number) {
  return {
    head: await store.getHead(topicId, partition),
    entries: await store.listEntries(topicId, partition, 0, 1000),
    intents: await store.listIntents(topicId, partition),
  };
}

const isInternal = (err: unknown) => isSluiceError(err, "internal");

/** A producer state whose last request, `seq`, was written at [base, base + count). */
function producerState(
  seq: number,
  base: number,
  count: number,
  version: number,
  epoch = 0,
): ProducerState {
  return {
    epoch,
    lastSeq: seq,
    recent: [{ seq, baseOffset: base, count }],
    updatedAt: 1_700_000_200_000 + version,
    version,
  };
}

/** A write of `state` over the stored version `expected` (null: none stored yet). */
function producerWrite(producerId: string, expected: number | null, state: ProducerState) {
  return { producerId, expected, state } satisfies ProducerWrite;
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

    describe("listEntries", () => {
      it("lists entries from a base offset, ascending, honoring the limit", async () => {
        const t = topic();
        await store.createTopic(t);
        // Entries at 0, 5 and 8; the log-end offset is 18.
        const entries = await commitChunks(store, t.id, 0, [5, 3, 10]);

        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual(entries);
        // Unlike readIndex, an offset inside an entry does not bring that entry.
        expect(await store.listEntries(t.id, 0, 1, 10)).toEqual(entries.slice(1));
        expect(await store.listEntries(t.id, 0, 5, 10)).toEqual(entries.slice(1));
        expect(await store.listEntries(t.id, 0, 6, 10)).toEqual(entries.slice(2));
        expect(await store.listEntries(t.id, 0, 9, 10)).toEqual([]);
        expect(await store.listEntries(t.id, 0, 0, 2)).toEqual(entries.slice(0, 2));
        expect(await store.listEntries(t.id, 0, 5, 1)).toEqual(entries.slice(1, 2));
        expect(await store.listEntries(t.id, 0, 0, 0)).toEqual([]);
        expect(await store.listEntries(t.id, 1, 0, 10)).toEqual([]);
        expect(await store.listEntries(randomUUID(), 0, 0, 10)).toEqual([]);
      });
    });

    describe("intents", () => {
      it("admits exactly one of 8 concurrent beginIntent calls at one kind and base", async () => {
        const t = topic();
        await store.createTopic(t);
        const racers = Array.from({ length: 8 }, () => intent("roll", 0, ["a", "b"]));
        const answers = await Promise.all(racers.map((i) => store.beginIntent(t, 1, i)));

        expect(answers.filter(Boolean)).toHaveLength(1);
        const winner = racers[answers.indexOf(true)]!;
        expect(await store.listIntents(t.id, 1)).toEqual([winner]);
        expect(await store.beginIntent(t, 1, intent("roll", 0))).toBe(false);
        expect(await store.listIntents(t.id, 1)).toEqual([winner]);
      });

      it("keys intents by partition, kind and base offset", async () => {
        const t = topic();
        await store.createTopic(t);
        const roll0 = intent("roll", 0, ["c0"]);
        const retire0 = intent("retire", 0, ["s0"]);
        const roll0p2 = intent("roll", 0);
        const roll1 = intent("roll", 1);
        for (const [p, i] of [
          [1, roll0],
          [1, retire0],
          [2, roll0p2],
          [1, roll1],
        ] as const) {
          expect(await store.beginIntent(t, p, i)).toBe(true);
        }
        expect(await store.listIntents(t.id, 1)).toEqual([retire0, roll0, roll1]);
        expect(await store.listIntents(t.id, 2)).toEqual([roll0p2]);
        expect(await store.listIntents(t.id, 0)).toEqual([]);
      });

      it("refuses beginIntent once the topic is deleted or re-created", async () => {
        const t = topic();
        await store.createTopic(t);
        expect(
          await store.beginIntent({ name: t.name, id: randomUUID() }, 0, intent("roll", 0)),
        ).toBe(false);
        expect(
          await store.beginIntent({ name: `missing-${unique()}`, id: t.id }, 0, intent("roll", 0)),
        ).toBe(false);
        expect(await store.deleteTopic(t.name, t.id)).toBe(true);
        expect(await store.beginIntent(t, 0, intent("roll", 0))).toBe(false);

        const recreated = topic({ name: t.name });
        await store.createTopic(recreated);
        expect(await store.beginIntent(t, 0, intent("retire", 0))).toBe(false);
        expect(await store.listIntents(t.id, 0)).toEqual([]);
        const fresh = intent("roll", 0);
        expect(await store.beginIntent(recreated, 0, fresh)).toBe(true);
        expect(await store.listIntents(recreated.id, 0)).toEqual([fresh]);
      });

      it("lists intents by kind, then base offset numerically, and drops them in any state", async () => {
        const t = topic();
        await store.createTopic(t);
        const [c0, c1] = await commitChunks(store, t.id, 0, [2, 1]);
        const { intent: done } = await roll(store, t, 0, [c0!, c1!], T_INTENT + 7);
        // Bases that sort differently as text: 2 < 10 < 100 only numerically.
        const pending = [
          intent("roll", 100, ["x"]),
          intent("roll", 10, ["y"]),
          intent("roll", 2, ["z"]),
          intent("retire", 10, ["u", "v"]),
          intent("retire", 9),
        ];
        for (const i of pending) expect(await store.beginIntent(t, 0, i)).toBe(true);
        const [roll100, roll10, roll2, retire10, retire9] = pending;

        expect(await store.listIntents(t.id, 0)).toEqual([
          retire9,
          retire10,
          done,
          roll2,
          roll10,
          roll100,
        ]);

        await store.dropIntent(t.id, 0, "roll", 0);
        await store.dropIntent(t.id, 0, "retire", 10);
        await store.dropIntent(t.id, 0, "roll", 3); // none there: nothing happens
        await store.dropIntent(t.id, 1, "roll", 2); // another partition's: nothing happens
        expect(await store.listIntents(t.id, 0)).toEqual([retire9, roll2, roll10, roll100]);
        // A dropped intent's place is free again.
        expect(await store.beginIntent(t, 0, intent("roll", 0))).toBe(true);
      });

      it("aborts only a pending intent with the same id", async () => {
        const t = topic();
        await store.createTopic(t);
        const pending = intent("retire", 4, ["s"]);
        expect(await store.beginIntent(t, 0, pending)).toBe(true);

        expect(await store.abortIntent(t.id, 0, "retire", 4, `other-${unique()}`)).toBe(false);
        expect(await store.abortIntent(t.id, 0, "roll", 4, pending.id)).toBe(false);
        expect(await store.abortIntent(t.id, 0, "retire", 5, pending.id)).toBe(false);
        expect(await store.abortIntent(t.id, 1, "retire", 4, pending.id)).toBe(false);
        expect(await store.listIntents(t.id, 0)).toEqual([pending]);

        expect(await store.abortIntent(t.id, 0, "retire", 4, pending.id)).toBe(true);
        expect(await store.listIntents(t.id, 0)).toEqual([]);
        expect(await store.abortIntent(t.id, 0, "retire", 4, pending.id)).toBe(false);
      });

      it("hands out copies of intents and entries", async () => {
        const t = topic();
        await store.createTopic(t);
        const chunks = await commitChunks(store, t.id, 0, [1, 1]);
        const begun = intent(
          "roll",
          0,
          chunks.map((c) => c.objectKey),
        );
        const stored = structuredClone(begun);
        expect(await store.beginIntent(t, 0, begun)).toBe(true);
        begun.objectKeys.push("changed");
        begun.id = "changed";
        const sealed = sealedOf(chunks, stored.sealedKey!);
        const kept = structuredClone(sealed);
        expect(await store.replaceEntries(t.id, 0, stored.id, chunks, sealed, 5)).toBe(true);
        sealed.footer!.position = 1;
        sealed.objectKey = "changed";

        (await store.listIntents(t.id, 0))[0]!.objectKeys.push("changed");
        (await store.listEntries(t.id, 0, 0, 10))[0]!.footer!.length = 1;
        (await store.readIndex(t.id, 0, 0, 10))[0]!.footer!.position = 2;
        expect(await store.listIntents(t.id, 0)).toEqual([{ ...stored, doneAt: 5 }]);
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([kept]);
      });
    });

    describe("replaceEntries", () => {
      it("swaps 3 chunks for a sealed segment in one step and leaves the rest alone", async () => {
        const t = topic();
        await store.createTopic(t);
        const chunks = await commitChunks(store, t.id, 0, [2, 3, 4, 5, 6]);
        const other = await commitChunks(store, t.id, 1, [7]);
        const head = { logStartOffset: 0, logEndOffset: 20 };
        const begun = intent(
          "roll",
          0,
          chunks.slice(0, 3).map((c) => c.objectKey),
        );
        expect(await store.beginIntent(t, 0, begun)).toBe(true);
        const sealed = sealedOf(chunks.slice(0, 3), begun.sealedKey!);
        expect(sealed).toMatchObject({ baseOffset: 0, count: 9, footer: expect.any(Object) });

        expect(
          await store.replaceEntries(t.id, 0, begun.id, chunks.slice(0, 3), sealed, T_INTENT + 9),
        ).toBe(true);

        const after = [sealed, ...chunks.slice(3)];
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual(after);
        expect(await store.readIndex(t.id, 0, 0, 10)).toEqual(after);
        // Offsets inside the sealed segment now find it.
        expect(await store.readIndex(t.id, 0, 3, 10)).toEqual(after);
        expect(await store.readIndex(t.id, 0, 8, 1)).toEqual([sealed]);
        expect(await store.readIndex(t.id, 0, 9, 10)).toEqual(chunks.slice(3));
        expectTiling(await store.listEntries(t.id, 0, 0, 10), 20);
        expect(await store.getHead(t.id, 0)).toEqual(head);
        expect(await store.listIntents(t.id, 0)).toEqual([{ ...begun, doneAt: T_INTENT + 9 }]);
        expect(await store.listEntries(t.id, 1, 0, 10)).toEqual(other);

        // Commits carry on at the log end, after the rewritten entries.
        const [next] = await commitChunks(store, t.id, 0, [1]);
        expect(next!.baseOffset).toBe(20);
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([...after, next]);
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 21 });
      });

      it("rolls a run in the middle of the index, after an earlier sealed segment", async () => {
        const t = topic();
        await store.createTopic(t);
        const chunks = await commitChunks(store, t.id, 0, [1, 2, 3, 4, 5]);
        const { sealed: first } = await roll(store, t, 0, chunks.slice(0, 2));
        const { sealed: second } = await roll(store, t, 0, chunks.slice(2, 4));
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([first, second, chunks[4]]);
        expect(await store.readIndex(t.id, 0, 4, 10)).toEqual([second, chunks[4]]);
        expectTiling(await store.listEntries(t.id, 0, 0, 10), 15);
      });

      it("swaps 99 chunks in one step", async () => {
        expect(store.maxReplacedPerRoll).toBe(99);
        const t = topic({ partitions: 1 });
        await store.createTopic(t);
        const chunks = await commitChunks(
          store,
          t.id,
          0,
          Array.from({ length: 100 }, (_, i) => 1 + (i % 3)),
        );
        const total = chunks.reduce((sum, c) => sum + c.count, 0);
        const { sealed } = await roll(store, t, 0, chunks.slice(0, 99));

        expect(sealed.count).toBe(total - chunks[99]!.count);
        expect(await store.listEntries(t.id, 0, 0, 200)).toEqual([sealed, chunks[99]]);
        expect(await store.readIndex(t.id, 0, 50, 200)).toEqual([sealed, chunks[99]]);
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: total });
      });

      it("refuses a swap when any replaced entry no longer names its object, and changes nothing", async () => {
        const t = topic();
        await store.createTopic(t);
        const chunks = await commitChunks(store, t.id, 0, [2, 2, 2, 2]);
        const run = chunks.slice(0, 3);
        const begun = intent(
          "roll",
          0,
          run.map((c) => c.objectKey),
        );
        expect(await store.beginIntent(t, 0, begun)).toBe(true);
        const sealed = sealedOf(run, begun.sealedKey!);
        const before = await snapshot(store, t.id, 0);

        const stale = run.map((c, i) => (i === 1 ? { ...c, objectKey: `${c.objectKey}-old` } : c));
        expect(await store.replaceEntries(t.id, 0, begun.id, stale, sealed, 9)).toBe(false);
        // A replaced entry past the log end is not in the index either.
        const beyond = [...chunks, entry(8, 1)].slice(1);
        const beyondSealed = sealedOf(beyond);
        const later = intent("roll", 2);
        expect(await store.beginIntent(t, 0, later)).toBe(true);
        const withLater = await snapshot(store, t.id, 0);
        expect(await store.replaceEntries(t.id, 0, later.id, beyond, beyondSealed, 9)).toBe(false);
        expect(await snapshot(store, t.id, 0)).toEqual(withLater);
        expect(await store.abortIntent(t.id, 0, "roll", 2, later.id)).toBe(true);
        expect(await snapshot(store, t.id, 0)).toEqual(before);

        // The intent is still pending, so the right swap applies.
        expect(await store.replaceEntries(t.id, 0, begun.id, run, sealed, 9)).toBe(true);
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([sealed, chunks[3]]);
      });

      it("needs the pending roll intent at the sealed base with the same id", async () => {
        const t = topic();
        await store.createTopic(t);
        const chunks = await commitChunks(store, t.id, 0, [2, 2, 2]);
        const run = chunks.slice(1);
        const sealed = sealedOf(run);
        const before = await snapshot(store, t.id, 0);

        // No intent at all.
        expect(await store.replaceEntries(t.id, 0, `none-${unique()}`, run, sealed, 9)).toBe(false);
        // A retire intent, or a roll intent at another base or partition, does not do.
        const retire = intent("retire", 2);
        const elsewhere = intent("roll", 0);
        const otherPartition = intent("roll", 2);
        expect(await store.beginIntent(t, 0, retire)).toBe(true);
        expect(await store.beginIntent(t, 0, elsewhere)).toBe(true);
        expect(await store.beginIntent(t, 1, otherPartition)).toBe(true);
        for (const id of [retire.id, elsewhere.id, otherPartition.id]) {
          expect(await store.replaceEntries(t.id, 0, id, run, sealed, 9)).toBe(false);
        }
        // The right place, another id.
        const mine = intent("roll", 2);
        expect(await store.beginIntent(t, 0, mine)).toBe(true);
        expect(await store.replaceEntries(t.id, 0, `other-${unique()}`, run, sealed, 9)).toBe(
          false,
        );
        const intents = await store.listIntents(t.id, 0);
        expect(intents.every((i) => i.doneAt === null)).toBe(true);
        expect({ ...(await snapshot(store, t.id, 0)), intents: before.intents }).toEqual(before);
      });

      it("cannot apply after abortIntent, and abortIntent cannot undo an applied swap", async () => {
        const t = topic();
        await store.createTopic(t);
        const chunks = await commitChunks(store, t.id, 0, [3, 3, 3, 3]);

        const aborted = intent("roll", 0);
        expect(await store.beginIntent(t, 0, aborted)).toBe(true);
        expect(await store.abortIntent(t.id, 0, "roll", 0, aborted.id)).toBe(true);
        const before = await snapshot(store, t.id, 0);
        const sealed = sealedOf(chunks.slice(0, 2));
        expect(await store.replaceEntries(t.id, 0, aborted.id, chunks.slice(0, 2), sealed, 9)).toBe(
          false,
        );
        expect(await snapshot(store, t.id, 0)).toEqual(before);

        const { sealed: applied, intent: done } = await roll(store, t, 0, chunks.slice(0, 2), 11);
        expect(await store.abortIntent(t.id, 0, "roll", 0, done.id)).toBe(false);
        expect(await store.listIntents(t.id, 0)).toEqual([done]);
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([applied, ...chunks.slice(2)]);
      });

      it("lets exactly one of a racing swap and abort apply", async () => {
        const t = topic();
        await store.createTopic(t);
        const chunks = await commitChunks(store, t.id, 0, [1, 1, 1]);
        const begun = intent("roll", 0);
        expect(await store.beginIntent(t, 0, begun)).toBe(true);
        const sealed = sealedOf(chunks);

        const [swapped, aborted] = await Promise.all([
          store.replaceEntries(t.id, 0, begun.id, chunks, sealed, 9),
          store.abortIntent(t.id, 0, "roll", 0, begun.id),
        ]);
        expect(swapped).toBe(!aborted);
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual(swapped ? [sealed] : chunks);
        expect(await store.listIntents(t.id, 0)).toEqual(swapped ? [{ ...begun, doneAt: 9 }] : []);
      });

      it("answers a replay of an applied swap true without applying it again", async () => {
        const t = topic();
        await store.createTopic(t);
        const chunks = await commitChunks(store, t.id, 0, [2, 2, 2, 2]);
        const { sealed, intent: done } = await roll(store, t, 0, chunks.slice(0, 2), 21);
        const after = await snapshot(store, t.id, 0);

        // The caller lost the answer and asks again, later.
        expect(await store.replaceEntries(t.id, 0, done.id, chunks.slice(0, 2), sealed, 99)).toBe(
          true,
        );
        expect(await snapshot(store, t.id, 0)).toEqual(after);
        expect((await store.listIntents(t.id, 0))[0]!.doneAt).toBe(21);

        // Not a replay: another id, or another sealed object at that base.
        expect(
          await store.replaceEntries(t.id, 0, `other-${unique()}`, chunks.slice(0, 2), sealed, 99),
        ).toBe(false);
        const impostor = sealedOf(chunks.slice(0, 2));
        expect(await store.replaceEntries(t.id, 0, done.id, chunks.slice(0, 2), impostor, 99)).toBe(
          false,
        );
        expect(await snapshot(store, t.id, 0)).toEqual(after);
      });

      it("rejects a malformed swap with internal and changes nothing", async () => {
        const t = topic();
        await store.createTopic(t);
        const chunks = await commitChunks(store, t.id, 0, [2, 2, 2]);
        const begun = intent("roll", 0);
        expect(await store.beginIntent(t, 0, begun)).toBe(true);
        const good = sealedOf(chunks);
        const { footer: _, ...noFooter } = good;
        const many = Array.from({ length: store.maxReplacedPerRoll + 1 }, (_, i) => entry(i, 1));
        const malformed: [IndexEntry[], IndexEntry][] = [
          [[], good],
          [[chunks[0]!, chunks[2]!], good], // not contiguous
          [[{ ...chunks[0]!, kind: "sealed" }, chunks[1]!, chunks[2]!], good], // not all chunks
          [chunks, { ...good, count: good.count - 1 }],
          [chunks, { ...good, baseOffset: 1 }],
          [chunks, { ...good, kind: "chunk" }],
          [chunks, noFooter],
          [many, sealedOf(many)], // more than one transaction holds
        ];
        const before = await snapshot(store, t.id, 0);
        for (const [replaced, sealed] of malformed) {
          await expect(
            store.replaceEntries(t.id, 0, begun.id, replaced, sealed, 9),
          ).rejects.toSatisfy(isInternal);
        }
        expect(await snapshot(store, t.id, 0)).toEqual(before);
        expect(await store.replaceEntries(t.id, 0, begun.id, chunks, good, 9)).toBe(true);
      });
    });

    describe("advanceLogStart", () => {
      /** Sealed segments [0, 5), [5, 9), [9, 15), then chunks [15, 22) and [22, 24). */
      async function retentionLog(t: TopicMeta) {
        await store.createTopic(t);
        const segments = await sealedLog(store, t, 0, [[2, 3], [4], [5, 1]]);
        const tail = await commitChunks(store, t.id, 0, [7, 2]);
        return { segments, tail };
      }

      it("removes a prefix of sealed segments and moves the log start in one step", async () => {
        const t = topic();
        const { segments, tail } = await retentionLog(t);
        const removed = segments.slice(0, 2);
        const retire = intent(
          "retire",
          0,
          removed.map((s) => s.objectKey),
        );
        expect(await store.beginIntent(t, 0, retire)).toBe(true);

        expect(await store.advanceLogStart(t.id, 0, retire.id, 0, removed, T_INTENT + 30)).toBe(
          true,
        );
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 9, logEndOffset: 24 });
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([segments[2], ...tail]);
        expect(await store.readIndex(t.id, 0, 0, 10)).toEqual([]);
        expect(await store.readIndex(t.id, 0, 9, 10)).toEqual([segments[2], ...tail]);
        expectTiling(await store.listEntries(t.id, 0, 0, 10), 24, 9);
        const intents = await store.listIntents(t.id, 0);
        expect(intents.find((i) => i.kind === "retire")).toEqual({
          ...retire,
          doneAt: T_INTENT + 30,
        });

        // Commits carry on at the log end and keep the new log start.
        const [next] = await commitChunks(store, t.id, 0, [3]);
        expect(next!.baseOffset).toBe(24);
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 9, logEndOffset: 27 });

        // The next step starts from the new log start.
        const again = intent("retire", 9, [segments[2]!.objectKey]);
        expect(await store.beginIntent(t, 0, again)).toBe(true);
        expect(await store.advanceLogStart(t.id, 0, again.id, 9, [segments[2]!], 40)).toBe(true);
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 15, logEndOffset: 27 });
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([...tail, next]);
      });

      it("may move the log start to the log end, and commits carry on from there", async () => {
        const t = topic();
        await store.createTopic(t);
        const segments = await sealedLog(store, t, 0, [[2, 3], [1]]);
        const retire = intent("retire", 0);
        expect(await store.beginIntent(t, 0, retire)).toBe(true);

        expect(await store.advanceLogStart(t.id, 0, retire.id, 0, segments, 50)).toBe(true);
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 6, logEndOffset: 6 });
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([]);
        expect(await store.readIndex(t.id, 0, 6, 10)).toEqual([]);

        const next = entry(6, 4);
        expect(
          await store.commitAppend({
            topicId: t.id,
            partition: 0,
            expectedLogEndOffset: 6,
            entry: next,
          }),
        ).toEqual({ committed: true, head: { logStartOffset: 6, logEndOffset: 10 } });
        expect(
          await store.commitAppend({
            topicId: t.id,
            partition: 0,
            expectedLogEndOffset: 6,
            entry: entry(6, 1),
          }),
        ).toEqual({ committed: false, head: { logStartOffset: 6, logEndOffset: 10 } });
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 6, logEndOffset: 10 });
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([next]);
        expect(await store.readIndex(t.id, 0, 7, 10)).toEqual([next]);
      });

      it("refuses a stale expected log start, a wrong intent or a stale entry, and changes nothing", async () => {
        const t = topic();
        const { segments } = await retentionLog(t);
        const [s0, s1] = segments;

        // The log start is 0, not 5.
        const stale = intent("retire", 5);
        expect(await store.beginIntent(t, 0, stale)).toBe(true);
        const before = await snapshot(store, t.id, 0);
        expect(await store.advanceLogStart(t.id, 0, stale.id, 5, [s1!], 9)).toBe(false);
        expect(await snapshot(store, t.id, 0)).toEqual(before);

        // No intent at 0, then one with another id, a roll's, or another partition's.
        expect(await store.advanceLogStart(t.id, 0, stale.id, 0, [s0!], 9)).toBe(false);
        // The roll that sealed the first segment left its (done) intent at 0.
        const rollAt0 = before.intents.find((i) => i.kind === "roll" && i.baseOffset === 0)!;
        expect(rollAt0).toBeDefined();
        const otherPartition = intent("retire", 0);
        const mine = intent("retire", 0);
        expect(await store.beginIntent(t, 1, otherPartition)).toBe(true);
        expect(await store.beginIntent(t, 0, mine)).toBe(true);
        const withIntents = await snapshot(store, t.id, 0);
        for (const id of [rollAt0.id, otherPartition.id, `other-${unique()}`]) {
          expect(await store.advanceLogStart(t.id, 0, id, 0, [s0!, s1!], 9)).toBe(false);
        }
        // One removed entry no longer names its object.
        const renamed = { ...s1!, objectKey: `${s1!.objectKey}-old` };
        expect(await store.advanceLogStart(t.id, 0, mine.id, 0, [s0!, renamed], 9)).toBe(false);
        // A removed entry that is not in the index (here, past the last sealed segment).
        const ghost = { ...entry(15, 7, "sealed"), footer: { position: 1, length: 1 } };
        expect(await store.advanceLogStart(t.id, 0, mine.id, 0, [...segments, ghost], 9)).toBe(
          false,
        );
        expect(await snapshot(store, t.id, 0)).toEqual(withIntents);

        // After an abort, the intent's id no longer applies.
        expect(await store.abortIntent(t.id, 0, "retire", 0, mine.id)).toBe(true);
        expect(await store.advanceLogStart(t.id, 0, mine.id, 0, [s0!], 9)).toBe(false);
        expect((await snapshot(store, t.id, 0)).head).toEqual(before.head);
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual(withIntents.entries);
      });

      it("answers a replay of an applied advance true without applying it again", async () => {
        const t = topic();
        const { segments } = await retentionLog(t);
        const retire = intent("retire", 0);
        expect(await store.beginIntent(t, 0, retire)).toBe(true);
        expect(await store.advanceLogStart(t.id, 0, retire.id, 0, [segments[0]!], 60)).toBe(true);
        const after = await snapshot(store, t.id, 0);
        expect(after.head.logStartOffset).toBe(5);

        expect(await store.advanceLogStart(t.id, 0, retire.id, 0, [segments[0]!], 61)).toBe(true);
        expect(await snapshot(store, t.id, 0)).toEqual(after);
        expect(after.intents.find((i) => i.kind === "retire")!.doneAt).toBe(60);
        expect(await store.abortIntent(t.id, 0, "retire", 0, retire.id)).toBe(false);
        expect(
          await store.advanceLogStart(t.id, 0, `other-${unique()}`, 0, [segments[0]!], 61),
        ).toBe(false);
        expect(await snapshot(store, t.id, 0)).toEqual(after);
      });

      it("rejects a malformed advance with internal and changes nothing", async () => {
        const t = topic();
        const { segments, tail } = await retentionLog(t);
        const retire = intent("retire", 0);
        expect(await store.beginIntent(t, 0, retire)).toBe(true);
        const [s0, s1, s2] = segments;
        const malformed: [number, IndexEntry[]][] = [
          [0, []],
          [0, [s1!]], // does not start at expected
          [0, [s0!, s2!]], // not contiguous
          [0, [s0!, s1!, s2!, tail[0]!]], // a chunk
          [1, [s0!]],
        ];
        if (Number.isFinite(store.maxRemovedPerAdvance)) {
          const many = Array.from({ length: store.maxRemovedPerAdvance + 1 }, (_, i) => ({
            ...entry(i, 1, "sealed"),
            footer: { position: 1, length: 1 },
          }));
          malformed.push([0, many]);
        }
        const before = await snapshot(store, t.id, 0);
        for (const [expected, removed] of malformed) {
          await expect(
            store.advanceLogStart(t.id, 0, retire.id, expected, removed, 9),
          ).rejects.toSatisfy(isInternal);
        }
        expect(await snapshot(store, t.id, 0)).toEqual(before);
        expect(await store.advanceLogStart(t.id, 0, retire.id, 0, [s0!, s1!], 9)).toBe(true);
      });
    });

    describe("producer states", () => {
      it("stores producer states in the same step as the entry", async () => {
        const t = topic();
        await store.createTopic(t);
        const first = entry(0, 3);
        const a = producerState(0, 0, 3, 1);
        const b = producerState(0, 0, 3, 1, 4);
        expect(await store.getProducers(t.id, 0, ["a", "b"])).toEqual(new Map());
        expect(
          await store.commitAppend({
            topicId: t.id,
            partition: 0,
            expectedLogEndOffset: 0,
            entry: first,
            producers: [producerWrite("a", null, a), producerWrite("b.2_X-y", null, b)],
          }),
        ).toEqual({ committed: true, head: { logStartOffset: 0, logEndOffset: 3 } });
        expect(await store.getProducers(t.id, 0, ["a", "b.2_X-y", "missing"])).toEqual(
          new Map([
            ["a", a],
            ["b.2_X-y", b],
          ]),
        );
        expect(await store.readIndex(t.id, 0, 0, 10)).toEqual([first]);

        // The next request of "a": version 2, with both requests in `recent`.
        const next: ProducerState = {
          epoch: 0,
          lastSeq: 1,
          recent: [...a.recent, { seq: 1, baseOffset: 3, count: 2 }],
          updatedAt: a.updatedAt + 1,
          version: 2,
        };
        const second = entry(3, 2);
        expect(
          await store.commitAppend({
            topicId: t.id,
            partition: 0,
            expectedLogEndOffset: 3,
            entry: second,
            producers: [producerWrite("a", 1, next)],
          }),
        ).toEqual({ committed: true, head: { logStartOffset: 0, logEndOffset: 5 } });
        expect(await store.getProducers(t.id, 0, ["a", "b.2_X-y"])).toEqual(
          new Map([
            ["a", next],
            ["b.2_X-y", b],
          ]),
        );
        // A commit without producers leaves them alone.
        await appendAll(store, t.id, 0, [1]);
        expect((await store.getProducers(t.id, 0, ["a"])).get("a")).toEqual(next);
      });

      it("refuses a commit whose producer version is stale, and writes nothing", async () => {
        const t = topic();
        await store.createTopic(t);
        const a = producerState(0, 0, 2, 1);
        await store.commitAppend({
          topicId: t.id,
          partition: 1,
          expectedLogEndOffset: 0,
          entry: entry(0, 2),
          producers: [producerWrite("a", null, a)],
        });
        const before = await snapshot(store, t.id, 1);
        const stale: ProducerWrite[][] = [
          // Created meanwhile by another writer.
          [producerWrite("a", null, producerState(0, 2, 1, 1))],
          // Another version than the stored one.
          [producerWrite("a", 2, producerState(1, 2, 1, 3))],
          // One right, one wrong: neither is written.
          [
            producerWrite("fresh", null, producerState(0, 2, 1, 1)),
            producerWrite("a", 7, producerState(1, 2, 1, 8)),
          ],
        ];
        for (const producers of stale) {
          expect(
            await store.commitAppend({
              topicId: t.id,
              partition: 1,
              expectedLogEndOffset: 2,
              entry: entry(2, 1),
              producers,
            }),
          ).toEqual({
            committed: false,
            head: { logStartOffset: 0, logEndOffset: 2 },
            producerConflict: true,
          });
        }
        expect(await snapshot(store, t.id, 1)).toEqual(before);
        expect(await store.getProducers(t.id, 1, ["a", "fresh"])).toEqual(new Map([["a", a]]));
      });

      it("does not call a lost race on the head alone a producer conflict", async () => {
        const t = topic();
        await store.createTopic(t);
        await appendAll(store, t.id, 0, [4]);
        const result = await store.commitAppend({
          topicId: t.id,
          partition: 0,
          expectedLogEndOffset: 0,
          entry: entry(0, 1),
          producers: [producerWrite("a", null, producerState(0, 0, 1, 1))],
        });
        expect(result.committed).toBe(false);
        expect(result.head).toEqual({ logStartOffset: 0, logEndOffset: 4 });
        expect("producerConflict" in result && result.producerConflict).toBeFalsy();
        expect(await store.getProducers(t.id, 0, ["a"])).toEqual(new Map());
      });

      it("lets exactly one of 8 writers racing on one producer commit", async () => {
        const t = topic();
        await store.createTopic(t);
        const results = await Promise.all(
          Array.from({ length: 8 }, () =>
            store.commitAppend({
              topicId: t.id,
              partition: 0,
              expectedLogEndOffset: 0,
              entry: entry(0, 1),
              producers: [producerWrite("racer", null, producerState(0, 0, 1, 1))],
            }),
          ),
        );
        expect(results.filter((r) => r.committed)).toHaveLength(1);
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 1 });
      });

      it("keeps producer states apart by partition and topic", async () => {
        const t = topic({ partitions: 2 });
        const other = topic({ partitions: 1 });
        await store.createTopic(t);
        await store.createTopic(other);
        const states = [producerState(0, 0, 1, 1), producerState(0, 0, 2, 1, 3)];
        for (const [i, [topicId, partition]] of [
          [t.id, 1],
          [other.id, 0],
        ].entries()) {
          await store.commitAppend({
            topicId: topicId as string,
            partition: partition as number,
            expectedLogEndOffset: 0,
            entry: entry(0, i + 1),
            producers: [producerWrite("p", null, states[i]!)],
          });
        }
        expect(await store.getProducers(t.id, 0, ["p"])).toEqual(new Map());
        expect(await store.getProducers(t.id, 1, ["p"])).toEqual(new Map([["p", states[0]]]));
        expect(await store.getProducers(other.id, 0, ["p"])).toEqual(new Map([["p", states[1]]]));
      });

      it(`writes ${MAX_PRODUCERS_PER_COMMIT} producers in one commit`, async () => {
        const t = topic();
        await store.createTopic(t);
        const ids = Array.from({ length: MAX_PRODUCERS_PER_COMMIT }, (_, i) => `producer-${i}`);
        const producers = ids.map((id, i) => producerWrite(id, null, producerState(0, i, 1, 1)));
        const result = await store.commitAppend({
          topicId: t.id,
          partition: 0,
          expectedLogEndOffset: 0,
          entry: entry(0, ids.length),
          producers,
        });
        expect(result.committed).toBe(true);
        const stored = await store.getProducers(t.id, 0, ids);
        expect(stored.size).toBe(ids.length);
        ids.forEach((id, i) => expect(stored.get(id)).toEqual(producers[i]!.state));
      });

      it("rejects malformed producer writes with internal and changes nothing", async () => {
        const t = topic();
        await store.createTopic(t);
        const ok = producerState(0, 0, 1, 1);
        const malformed: ProducerWrite[][] = [
          [producerWrite("a", null, { ...ok, version: 2 })],
          [producerWrite("a", 3, { ...ok, version: 3 })],
          [producerWrite("a", null, ok), producerWrite("a", null, ok)],
          [producerWrite("bad id", null, ok)],
          [producerWrite("x".repeat(65), null, ok)],
          [producerWrite("a", null, { ...ok, lastSeq: 1 })],
          [producerWrite("a", null, { ...ok, epoch: 2 ** 31 })],
          [producerWrite("a", null, { ...ok, recent: [] })],
          Array.from({ length: MAX_PRODUCERS_PER_COMMIT + 1 }, (_, i) =>
            producerWrite(`p${i}`, null, ok),
          ),
        ];
        for (const producers of malformed) {
          await expect(
            store.commitAppend({
              topicId: t.id,
              partition: 0,
              expectedLogEndOffset: 0,
              entry: entry(0, 1),
              producers,
            }),
          ).rejects.toSatisfy(isInternal);
        }
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 0 });
        expect(await store.getProducers(t.id, 0, ["a"])).toEqual(new Map());
      });

      it("hands out copies of producer states", async () => {
        const t = topic();
        await store.createTopic(t);
        const a = producerState(0, 0, 1, 1);
        const write = producerWrite("a", null, structuredClone(a));
        await store.commitAppend({
          topicId: t.id,
          partition: 0,
          expectedLogEndOffset: 0,
          entry: entry(0, 1),
          producers: [write],
        });
        write.state.recent[0]!.baseOffset = 99;
        const got = (await store.getProducers(t.id, 0, ["a"])).get("a")!;
        got.recent[0]!.count = 42;
        got.recent.push({ seq: 1, baseOffset: 1, count: 1 });
        expect((await store.getProducers(t.id, 0, ["a"])).get("a")).toEqual(a);
      });

      it("purges producer states with a deleted topic's partition", async () => {
        const t = topic({ partitions: 1 });
        await store.createTopic(t);
        await store.commitAppend({
          topicId: t.id,
          partition: 0,
          expectedLogEndOffset: 0,
          entry: entry(0, 1),
          producers: ["a", "b", "c"].map((id) =>
            producerWrite(id, null, producerState(0, 0, 1, 1)),
          ),
        });
        expect(await store.deleteTopic(t.name, t.id)).toBe(true);
        let total = 0;
        for (let n = -1; n !== 0;) {
          n = await store.purgePartition(t.id, 0, 2);
          expect(n).toBeLessThanOrEqual(2);
          total += n;
        }
        // The head, the entry and three producers.
        expect(total).toBe(5);
        expect(await store.getProducers(t.id, 0, ["a", "b", "c"])).toEqual(new Map());
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 0 });
      });
    });

    describe("deleted topics", () => {
      it("records a tombstone with the delete, purges the partitions and forgets it", async () => {
        const t = topic({ partitions: 2 });
        const live = topic({ partitions: 1 });
        await store.createTopic(t);
        await store.createTopic(live);
        const chunks = await commitChunks(store, t.id, 0, [1, 2, 3, 4]);
        await roll(store, t, 0, chunks.slice(0, 2));
        const pending = intent("roll", 3);
        expect(await store.beginIntent(t, 0, pending)).toBe(true);
        expect(await store.beginIntent(t, 1, intent("retire", 0))).toBe(true);
        const liveEntries = await commitChunks(store, live.id, 0, [5]);
        const liveIntent = intent("roll", 0);
        expect(await store.beginIntent(live, 0, liveIntent)).toBe(true);

        const mine = async () => (await store.listDeletedTopics()).filter((d) => d.id === t.id);
        expect(await store.deleteTopic(t.name, randomUUID())).toBe(false);
        expect(await mine()).toEqual([]);
        const before = Date.now();
        expect(await store.deleteTopic(t.name, t.id)).toBe(true);
        const after = Date.now();
        const [tombstone] = await mine();
        expect(tombstone).toEqual({
          id: t.id,
          name: t.name,
          partitions: 2,
          deletedAt: expect.any(Number),
        });
        expect(tombstone!.deletedAt).toBeGreaterThanOrEqual(before);
        expect(tombstone!.deletedAt).toBeLessThanOrEqual(after);
        expect(await store.deleteTopic(t.name, t.id)).toBe(false);
        expect(await mine()).toEqual([tombstone]);
        // Until it is purged, the partition's items are still there.
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 10 });

        // Partition 0 holds its head, 3 entries (a sealed one and 2 chunks) and 2 intents.
        const counts: number[] = [];
        for (let n = -1; n !== 0;) {
          n = await store.purgePartition(t.id, 0, 2);
          expect(n).toBeLessThanOrEqual(2);
          counts.push(n);
          expect(counts.length).toBeLessThan(10);
        }
        expect(counts.reduce((sum, n) => sum + n, 0)).toBe(6);
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 0 });
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([]);
        expect(await store.readIndex(t.id, 0, 5, 10)).toEqual([]);
        expect(await store.listIntents(t.id, 0)).toEqual([]);
        // Partition 1 was left alone until purged in turn.
        expect(await store.listIntents(t.id, 1)).toHaveLength(1);
        expect(await store.purgePartition(t.id, 1, 100)).toBeGreaterThanOrEqual(1);
        expect(await store.purgePartition(t.id, 1, 100)).toBe(0);
        expect(await store.listIntents(t.id, 1)).toEqual([]);
        // Another topic's items are untouched.
        expect(await store.listEntries(live.id, 0, 0, 10)).toEqual(liveEntries);
        expect(await store.listIntents(live.id, 0)).toEqual([liveIntent]);
        expect(await store.getHead(live.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 5 });

        expect(await mine()).toEqual([tombstone]);
        await store.forgetDeletedTopic(t.id);
        expect(await mine()).toEqual([]);
        await store.forgetDeletedTopic(t.id);
      });

      it("purges a commit that lands after the delete", async () => {
        const t = topic({ partitions: 1 });
        await store.createTopic(t);
        expect(await store.deleteTopic(t.name, t.id)).toBe(true);
        // A writer that still had the topic cached.
        await commitChunks(store, t.id, 0, [2]);
        while ((await store.purgePartition(t.id, 0, 10)) > 0);
        expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 0 });
        expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([]);
      });

      it("keeps one tombstone per deleted incarnation of a name", async () => {
        const first = topic({ partitions: 1 });
        await store.createTopic(first);
        expect(await store.deleteTopic(first.name, first.id)).toBe(true);
        const second = topic({ name: first.name, partitions: 4 });
        await store.createTopic(second);
        expect(await store.deleteTopic(second.name, second.id)).toBe(true);

        const tombstones = (await store.listDeletedTopics()).filter((d) => d.name === first.name);
        expect(
          tombstones.map(({ deletedAt: _, ...d }) => d).sort((a, b) => a.partitions - b.partitions),
        ).toEqual([
          { id: first.id, name: first.name, partitions: 1 },
          { id: second.id, name: first.name, partitions: 4 },
        ]);
        await store.forgetDeletedTopic(first.id);
        await store.forgetDeletedTopic(second.id);
        expect((await store.listDeletedTopics()).filter((d) => d.name === first.name)).toEqual([]);
      });
    });
  });
}
