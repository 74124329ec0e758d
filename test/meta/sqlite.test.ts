import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { topicConfigDefaults } from "../../src/config.js";
import { isSluiceError } from "../../src/errors.js";
import type { IndexEntry, TopicMeta } from "../../src/meta/meta-store.js";
import { SqliteMetaStore } from "../../src/meta/sqlite.js";
import { keyStoreContract } from "../contract/key-store.case.js";
import { metaStoreContract } from "../contract/meta-store.case.js";

const committerScript = fileURLToPath(new URL("./fixtures/sqlite-committer.ts", import.meta.url));

metaStoreContract("sqlite", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sluice-meta-"));
  return {
    // A missing parent directory is part of what open() must handle.
    store: SqliteMetaStore.open(join(dir, "meta", "sluice.db")),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

keyStoreContract("sqlite", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sluice-keys-"));
  const store = SqliteMetaStore.open(join(dir, "sluice.db"));
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

const topic = (): TopicMeta => ({
  name: `sqlite-${randomUUID().slice(0, 8)}`,
  id: randomUUID(),
  partitions: 2,
  config: { ...topicConfigDefaults },
  createdAt: Date.now(),
});

const entry = (baseOffset: number, count: number, objectKey = `k/${baseOffset}`): IndexEntry => ({
  baseOffset,
  count,
  bytes: count * 10,
  objectKey,
  minTimestamp: 1,
  maxTimestamp: 2,
  kind: "chunk",
});

describe("SqliteMetaStore", () => {
  let dir: string;
  let path: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "sluice-meta-"));
    path = join(dir, "sluice.db");
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps topics, heads and the index across close and reopen", async () => {
    const t = topic();
    const first = SqliteMetaStore.open(path);
    await first.createTopic(t);
    await first.commitAppend({
      topicId: t.id,
      partition: 1,
      expectedLogEndOffset: 0,
      entry: entry(0, 7),
    });
    await first.close();

    const reopened = SqliteMetaStore.open(path);
    expect(await reopened.getTopic(t.name)).toEqual(t);
    expect(await reopened.getHead(t.id, 1)).toEqual({ logStartOffset: 0, logEndOffset: 7 });
    expect(await reopened.readIndex(t.id, 1, 3, 10)).toEqual([entry(0, 7)]);
    await reopened.close();
  });

  it("keeps footers, intents and tombstones across close and reopen", async () => {
    const t = topic();
    const first = SqliteMetaStore.open(path);
    await first.createTopic(t);
    const chunks = [entry(0, 2, "k/a"), entry(2, 3, "k/b")];
    for (const e of chunks) {
      const committed = await first.commitAppend({
        topicId: t.id,
        partition: 0,
        expectedLogEndOffset: e.baseOffset,
        entry: e,
      });
      expect(committed.committed).toBe(true);
    }
    const roll = {
      kind: "roll" as const,
      baseOffset: 0,
      id: "01ROLL",
      objectKeys: ["k/a", "k/b"],
      sealedKey: "s/0-01ROLL.log",
      createdAt: 5,
      doneAt: null,
    };
    const sealed: IndexEntry = {
      ...entry(0, 5, roll.sealedKey),
      kind: "sealed",
      footer: { position: 50, length: 68 },
    };
    expect(await first.beginIntent(t, 0, roll)).toBe(true);
    expect(await first.replaceEntries(t.id, 0, roll.id, chunks, sealed, 9)).toBe(true);
    const retire = { ...roll, kind: "retire" as const, id: "01RETIRE", sealedKey: null };
    expect(await first.beginIntent(t, 1, retire)).toBe(true);
    const other = { ...topic(), partitions: 3 };
    await first.createTopic(other);
    expect(await first.deleteTopic(other.name, other.id)).toBe(true);
    await first.close();

    const reopened = SqliteMetaStore.open(path);
    expect(await reopened.readIndex(t.id, 0, 3, 10)).toEqual([sealed]);
    expect(await reopened.listIntents(t.id, 0)).toEqual([{ ...roll, doneAt: 9 }]);
    expect(await reopened.listIntents(t.id, 1)).toEqual([retire]);
    expect(await reopened.listDeletedTopics()).toEqual([
      { id: other.id, name: other.name, partitions: 3, deletedAt: expect.any(Number) },
    ]);
    await reopened.close();
  });

  it("upgrades a version-2 file in place, keeping its topics and index, to version 5", async () => {
    const t = topic();
    const store = SqliteMetaStore.open(path);
    await store.createTopic(t);
    const chunk = entry(0, 4);
    await store.commitAppend({
      topicId: t.id,
      partition: 0,
      expectedLogEndOffset: 0,
      entry: chunk,
    });
    await store.close();
    // Take the file back to the schema before migration 3.
    const raw = new Database(path);
    raw.exec(`DROP TABLE api_keys;
      DROP TABLE producers;
      DROP TABLE intents;
      DROP TABLE deleted_topics;
      ALTER TABLE segments DROP COLUMN footer_position;
      ALTER TABLE segments DROP COLUMN footer_length;`);
    raw.pragma("user_version = 2");
    raw.close();

    const upgraded = SqliteMetaStore.open(path);
    expect(await upgraded.getTopic(t.name)).toEqual(t);
    expect(await upgraded.readIndex(t.id, 0, 0, 10)).toEqual([chunk]);
    expect((await upgraded.readIndex(t.id, 0, 0, 10))[0]).not.toHaveProperty("footer");
    const retire = {
      kind: "retire" as const,
      baseOffset: 0,
      id: "01RETIRE",
      objectKeys: [],
      sealedKey: null,
      createdAt: 1,
      doneAt: null,
    };
    expect(await upgraded.beginIntent(t, 0, retire)).toBe(true);
    expect(await upgraded.listIntents(t.id, 0)).toEqual([retire]);
    // Migration 4: producer states.
    const producer = {
      epoch: 0,
      lastSeq: 0,
      recent: [{ seq: 0, baseOffset: 4, count: 1 }],
      updatedAt: 1,
      version: 1,
    };
    const committed = await upgraded.commitAppend({
      topicId: t.id,
      partition: 0,
      expectedLogEndOffset: 4,
      entry: entry(4, 1),
      producers: [{ producerId: "p", expected: null, state: producer }],
    });
    expect(committed.committed).toBe(true);
    expect(await upgraded.getProducers(t.id, 0, ["p"])).toEqual(new Map([["p", producer]]));
    // Migration 5: API keys.
    const key = {
      id: "01KEY",
      secretHash: new Uint8Array(32).fill(7),
      scopes: ["admin"],
      description: "",
      createdAt: 1,
      expiresAt: null,
      revokedAt: null,
      rateLimit: { perSecond: 0.5, burst: 2 },
    };
    await upgraded.putKey(key);
    expect(await upgraded.revokeKey(key.id, 3)).toBe(true);
    expect(await upgraded.getKey(key.id)).toEqual({ ...key, revokedAt: 3 });
    await upgraded.close();
    const check = new Database(path);
    expect(check.pragma("user_version", { simple: true })).toBe(5);
    check.close();
  });

  it("works on an in-memory database", async () => {
    const store = SqliteMetaStore.open(":memory:");
    const t = topic();
    await store.createTopic(t);
    expect(await store.listTopics()).toEqual([t]);
    await store.close();
  });

  it("refuses a schema newer than it knows", async () => {
    await SqliteMetaStore.open(path).close();
    const raw = new Database(path);
    raw.pragma("user_version = 999");
    raw.close();
    expect(() => SqliteMetaStore.open(path)).toThrow(/newer/);
  });

  it("reports a write lock held past the busy timeout as storage_unavailable", async () => {
    const store = SqliteMetaStore.open(path, { busyTimeoutMs: 20 });
    const t = topic();
    await store.createTopic(t);
    const other = new Database(path);
    other.exec("BEGIN IMMEDIATE");

    const request = { topicId: t.id, partition: 0, expectedLogEndOffset: 0, entry: entry(0, 1) };
    await expect(store.commitAppend(request)).rejects.toSatisfy((err) =>
      isSluiceError(err, "storage_unavailable"),
    );
    // WAL readers are not blocked by the writer.
    expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 0 });

    other.exec("ROLLBACK");
    other.close();
    expect((await store.commitAppend(request)).committed).toBe(true);
    await store.close();
  });

  it("gives processes racing on one file unique, contiguous offsets", async () => {
    const processes = 3;
    const commits = 50;
    const t = topic();
    // The children open the file before it exists, so they also race to create the schema.
    const children = Array.from({ length: processes }, (_, i) =>
      fork(committerScript, [path, t.id, `writer-${i}`, String(commits)], {
        execArgv: ["--import", "tsx"],
      }),
    );
    const exits = children.map((child) => once(child, "exit"));
    try {
      await Promise.all(children.map(nextMessage));
      const setup = SqliteMetaStore.open(path);
      await setup.createTopic(t);
      await setup.close();

      const done = children.map(nextMessage);
      children.forEach((child) => child.send("go"));
      const results = (await Promise.all(done)) as { conflicts: number }[];
      expect((await Promise.all(exits)).map(([code]) => code as number)).toEqual(
        children.map(() => 0),
      );
      // Without lost races the processes did not overlap, and the test proved nothing.
      expect(results.reduce((sum, r) => sum + r.conflicts, 0)).toBeGreaterThan(0);
    } finally {
      children.forEach((child) => child.kill());
    }

    const store = SqliteMetaStore.open(path);
    const head = await store.getHead(t.id, 0);
    const index = await store.readIndex(t.id, 0, 0, processes * commits + 1);
    await store.close();

    let next = 0;
    for (const e of index) {
      expect(e.baseOffset).toBe(next);
      next += e.count;
    }
    expect(head.logEndOffset).toBe(next);
    const keys = index.map((e) => e.objectKey).sort();
    const expected = Array.from({ length: processes }, (_, w) =>
      Array.from({ length: commits }, (_, i) => `writer-${w}/${i}`),
    )
      .flat()
      .sort();
    expect(keys).toEqual(expected);
  });
});

/** The child's next IPC message; rejects if the child exits first. */
async function nextMessage(child: ChildProcess): Promise<unknown> {
  const abort = new AbortController();
  try {
    const [message] = await Promise.race([
      once(child, "message", { signal: abort.signal }),
      once(child, "exit", { signal: abort.signal }).then(([code]) => {
        throw new Error(`committer exited with code ${String(code)} before reporting`);
      }),
    ]);
    return message;
  } finally {
    abort.abort();
  }
}
