import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { topicConfigDefaults } from "../../src/config.js";
import { isSluiceError } from "../../src/errors.js";
import type { CommittedOffset, GroupRecord } from "../../src/meta/group-store.js";
import type { TopicMeta } from "../../src/meta/meta-store.js";
import { SqliteMetaStore } from "../../src/meta/sqlite.js";
import { groupStoreContract } from "../contract/group-store.case.js";

groupStoreContract("sqlite", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sluice-groups-"));
  const store = SqliteMetaStore.open(join(dir, "sluice.db"));
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

/** The schema as the first release created it (migration 1), frozen here on purpose. */
const schemaV1 = `CREATE TABLE topics (
     name TEXT PRIMARY KEY,
     id TEXT NOT NULL,
     partitions INTEGER NOT NULL,
     config TEXT NOT NULL,
     created_at INTEGER NOT NULL
   ) STRICT, WITHOUT ROWID;
   CREATE TABLE heads (
     topic_id TEXT NOT NULL,
     partition INTEGER NOT NULL,
     log_start_offset INTEGER NOT NULL,
     log_end_offset INTEGER NOT NULL,
     PRIMARY KEY (topic_id, partition)
   ) STRICT, WITHOUT ROWID;
   CREATE TABLE segments (
     topic_id TEXT NOT NULL,
     partition INTEGER NOT NULL,
     base_offset INTEGER NOT NULL,
     count INTEGER NOT NULL,
     bytes INTEGER NOT NULL,
     object_key TEXT NOT NULL,
     min_ts INTEGER NOT NULL,
     max_ts INTEGER NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('chunk', 'sealed')),
     PRIMARY KEY (topic_id, partition, base_offset)
   ) STRICT, WITHOUT ROWID;`;

const group = (): GroupRecord => ({
  name: `g-${randomUUID().slice(0, 8)}`,
  incarnation: randomUUID(),
  createdAt: 1_700_000_000_000,
  version: 1,
  fence: 0,
  doc: "{}",
});

const offset = (partition: number, value: number): CommittedOffset => ({
  topic: "orders",
  partition,
  topicId: "orders-id",
  offset: value,
  metadata: null,
  generation: 1,
  memberId: "m",
  committedAt: 1_700_000_000_001,
});

describe("SqliteMetaStore groups", () => {
  let dir: string;
  let path: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "sluice-groups-"));
    path = join(dir, "sluice.db");
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("upgrades a database of the previous schema in place and keeps its topics", async () => {
    const t: TopicMeta = {
      name: "orders",
      id: randomUUID(),
      partitions: 2,
      config: { ...topicConfigDefaults, "retention.ms": 1234 },
      createdAt: 1_700_000_000_000,
    };
    const old = new Database(path);
    old.pragma("journal_mode = WAL");
    old.exec(schemaV1);
    old.pragma("user_version = 1");
    old
      .prepare("INSERT INTO topics VALUES (?, ?, ?, ?, ?)")
      .run(t.name, t.id, t.partitions, JSON.stringify(t.config), t.createdAt);
    old.prepare("INSERT INTO heads VALUES (?, 0, 3, 8)").run(t.id);
    old.prepare("INSERT INTO heads VALUES (?, 1, 0, 0)").run(t.id);
    old.prepare("INSERT INTO segments VALUES (?, 0, 3, 5, 500, 'k/3', 10, 20, 'sealed')").run(t.id);
    old.close();

    const store = SqliteMetaStore.open(path);
    expect(await store.listTopics()).toEqual([t]);
    expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 3, logEndOffset: 8 });
    expect(await store.readIndex(t.id, 0, 4, 10)).toEqual([
      {
        baseOffset: 3,
        count: 5,
        bytes: 500,
        objectKey: "k/3",
        minTimestamp: 10,
        maxTimestamp: 20,
        kind: "sealed",
      },
    ]);
    const g = group();
    expect(await store.putGroup(g, null)).toBe(true);
    expect(await store.writeOffsets(g.name, g, [{ value: offset(0, 5), expected: null }])).toEqual({
      ok: true,
    });
    // Appends still work on the upgraded tables.
    expect(
      (
        await store.commitAppend({
          topicId: t.id,
          partition: 0,
          expectedLogEndOffset: 8,
          entry: {
            baseOffset: 8,
            count: 1,
            bytes: 10,
            objectKey: "k/8",
            minTimestamp: 30,
            maxTimestamp: 30,
            kind: "chunk",
          },
        })
      ).committed,
    ).toBe(true);
    await store.close();

    const raw = new Database(path, { readonly: true });
    expect(raw.pragma("user_version", { simple: true })).toBe(5);
    raw.close();

    // Opening again migrates nothing and keeps the groups.
    const reopened = SqliteMetaStore.open(path);
    expect(await reopened.getGroup(g.name)).toEqual(g);
    expect(await reopened.getOffsets(g.name, g.incarnation)).toEqual([offset(0, 5)]);
    expect(await reopened.getTopic(t.name)).toEqual(t);
    await reopened.close();
  });

  it("sees another connection's group writes at once", async () => {
    const a = SqliteMetaStore.open(path);
    const b = SqliteMetaStore.open(path);
    try {
      const g = group();
      expect(await a.putGroup(g, null)).toBe(true);
      expect(await b.putGroup({ ...g, incarnation: randomUUID() }, null)).toBe(false);
      const g2 = { ...g, version: 2, fence: 1 };
      expect(await b.putGroup(g2, 1)).toBe(true);
      expect(await a.putGroup({ ...g, version: 2, doc: "stale" }, 1)).toBe(false);
      expect(await a.getGroup(g.name)).toEqual(g2);

      const guard = { incarnation: g.incarnation, fence: 0 };
      expect(
        await a.writeOffsets(g.name, guard, [{ value: offset(0, 1), expected: null }]),
      ).toEqual({ ok: false, conflict: "group" });
      expect(
        await a.writeOffsets(g.name, { ...guard, fence: 1 }, [
          { value: offset(0, 1), expected: null },
        ]),
      ).toEqual({ ok: true });
      expect(await b.getOffsets(g.name, g.incarnation)).toEqual([offset(0, 1)]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("reports a write lock held past the busy timeout as storage_unavailable", async () => {
    const store = SqliteMetaStore.open(path, { busyTimeoutMs: 20 });
    const g = group();
    expect(await store.putGroup(g, null)).toBe(true);
    const other = new Database(path);
    other.exec("BEGIN IMMEDIATE");

    const unavailable = (err: unknown) => isSluiceError(err, "storage_unavailable");
    const writes = [{ value: offset(0, 1), expected: null }];
    await expect(store.writeOffsets(g.name, g, writes)).rejects.toSatisfy(unavailable);
    await expect(store.putGroup({ ...g, version: 2 }, 1)).rejects.toSatisfy(unavailable);
    await expect(store.deleteGroup(g.name, g.incarnation, 1)).rejects.toSatisfy(unavailable);
    await expect(store.purgeOffsets(g.name)).rejects.toSatisfy(unavailable);
    // WAL readers are not blocked by the writer.
    expect(await store.getGroup(g.name)).toEqual(g);

    other.exec("ROLLBACK");
    other.close();
    expect(await store.writeOffsets(g.name, g, writes)).toEqual({ ok: true });
    await store.close();
  });
});
