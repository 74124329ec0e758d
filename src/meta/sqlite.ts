import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createRequire } from "node:module";
import type BetterSqlite3 from "better-sqlite3";
import type { TopicConfig } from "../config.js";
import { SluiceError } from "../errors.js";
import type {
  CommittedOffset,
  GroupGuard,
  GroupRecord,
  GroupStore,
  GroupSummary,
  OffsetWrite,
  OffsetWriteResult,
} from "./group-store.js";
import { checkGroupPut, checkOffsetWrites, currentOffset, guardHolds } from "./group-store.js";
import type { ApiKeyInfo, ApiKeyRecord, KeyStore } from "./key-store.js";
import type {
  CommitRequest,
  CommitResult,
  DeletedTopic,
  IndexEntry,
  Intent,
  IntentKind,
  MetaStore,
  PartitionHead,
  ProducerBatch,
  ProducerState,
  SegmentKind,
  TopicMeta,
} from "./meta-store.js";
import {
  MAX_REPLACED_PER_ROLL,
  checkAdvanceRequest,
  checkCommitRequest,
  checkReplaceRequest,
} from "./meta-store.js";

/**
 * Loaded on first use, not imported: bundlers hoist a static import of a native module to the
 * top of the bundle, and the Lambda bundle, which never opens SQLite, must not need it.
 */
const loadSqlite = () => createRequire(import.meta.url)("better-sqlite3") as typeof BetterSqlite3;

/** Migration i moves the schema from `user_version` i to i + 1. */
const migrations = [
  `CREATE TABLE topics (
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
   ) STRICT, WITHOUT ROWID;`,
  // Consumer groups (docs/rfcs/0002-consumer-groups.md §8). One offset row per partition,
  // overwritten by whichever incarnation commits next.
  `CREATE TABLE groups (
     name TEXT PRIMARY KEY,
     incarnation TEXT NOT NULL,
     version INTEGER NOT NULL,
     fence INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     doc TEXT NOT NULL
   ) STRICT, WITHOUT ROWID;
   CREATE TABLE group_offsets (
     group_name TEXT NOT NULL,
     topic TEXT NOT NULL,
     partition INTEGER NOT NULL,
     incarnation TEXT NOT NULL,
     topic_id TEXT NOT NULL,
     "offset" INTEGER NOT NULL,
     metadata TEXT,
     generation INTEGER,
     member_id TEXT,
     committed_at INTEGER NOT NULL,
     PRIMARY KEY (group_name, topic, partition)
   ) STRICT, WITHOUT ROWID;`,
  // Segments (docs/rfcs/0003-segments.md §3): a sealed entry's footer range (NULL for chunks),
  // roll and retire intents, and deleted topics' tombstones until maintenance has purged them.
  `ALTER TABLE segments ADD COLUMN footer_position INTEGER;
   ALTER TABLE segments ADD COLUMN footer_length INTEGER;
   CREATE TABLE intents (
     topic_id TEXT NOT NULL,
     partition INTEGER NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('roll', 'retire')),
     base_offset INTEGER NOT NULL,
     id TEXT NOT NULL,
     object_keys TEXT NOT NULL,
     sealed_key TEXT,
     created_at INTEGER NOT NULL,
     done_at INTEGER,
     PRIMARY KEY (topic_id, partition, kind, base_offset)
   ) STRICT, WITHOUT ROWID;
   CREATE TABLE deleted_topics (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     partitions INTEGER NOT NULL,
     deleted_at INTEGER NOT NULL
   ) STRICT, WITHOUT ROWID;`,
  // Idempotent produce (docs/rfcs/0004-idempotent-produce.md §3): each producer's state per
  // partition, written in the commit's transaction. `recent` is a JSON array of batches.
  `CREATE TABLE producers (
     topic_id TEXT NOT NULL,
     partition INTEGER NOT NULL,
     producer_id TEXT NOT NULL,
     epoch INTEGER NOT NULL,
     last_seq INTEGER NOT NULL,
     recent TEXT NOT NULL,
     updated_at INTEGER NOT NULL,
     version INTEGER NOT NULL,
     PRIMARY KEY (topic_id, partition, producer_id)
   ) STRICT, WITHOUT ROWID;`,
  // API keys (docs/rfcs/0005-auth-and-limits.md §3): the secret's SHA-256 digest, never the
  // secret. `scopes` is a JSON array of strings; a rate limit has both of its columns or neither.
  `CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     secret_hash BLOB NOT NULL,
     scopes TEXT NOT NULL,
     description TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER,
     revoked_at INTEGER,
     rate_per_second REAL,
     rate_burst INTEGER,
     CHECK ((rate_per_second IS NULL) = (rate_burst IS NULL))
   ) STRICT, WITHOUT ROWID;`,
];

/** SQLite primary result codes that describe the environment, not the request. */
const transientCodes = new Set([
  "BUSY",
  "LOCKED",
  "IOERR",
  "FULL",
  "CANTOPEN",
  "NOMEM",
  "PROTOCOL",
]);

/** Caps the jittered pause between attempts to take a lock another process holds. */
const maxBusyPauseMs = 4;

const topicColumns = "name, id, partitions, config, created_at AS createdAt";
const headColumns = "log_start_offset AS logStartOffset, log_end_offset AS logEndOffset";
const entryColumns = `base_offset AS baseOffset, count, bytes, object_key AS objectKey,
  min_ts AS minTimestamp, max_ts AS maxTimestamp, kind,
  footer_position AS footerPosition, footer_length AS footerLength`;
const intentColumns = `kind, base_offset AS baseOffset, id, object_keys AS objectKeys,
  sealed_key AS sealedKey, created_at AS createdAt, done_at AS doneAt`;
const producerColumns = `producer_id AS producerId, epoch, last_seq AS lastSeq, recent,
  updated_at AS updatedAt, version`;
const deletedTopicColumns = "id, name, partitions, deleted_at AS deletedAt";
const groupColumns = "name, incarnation, version, fence, created_at AS createdAt, doc";
const offsetColumns = `topic, partition, topic_id AS topicId, "offset" AS "offset", metadata,
  generation, member_id AS memberId, committed_at AS committedAt`;
/** Every column but the digest, which only getKey reads. */
const keyInfoColumns = `id, scopes, description, created_at AS createdAt, expires_at AS expiresAt,
  revoked_at AS revokedAt, rate_per_second AS ratePerSecond, rate_burst AS rateBurst`;

type GroupState = Pick<GroupRecord, "incarnation" | "version" | "fence">;
type OffsetRow = CommittedOffset & { group: string; incarnation: string };

/** An API key as stored, without its digest. */
interface KeyInfoRow extends Omit<ApiKeyInfo, "scopes" | "rateLimit"> {
  scopes: string;
  ratePerSecond: number | null;
  rateBurst: number | null;
}

interface KeyRow extends KeyInfoRow {
  secretHash: Uint8Array;
}

interface TopicRow extends Omit<TopicMeta, "config"> {
  config: string;
}

interface EntryRow {
  baseOffset: number;
  count: number;
  bytes: number;
  objectKey: string;
  minTimestamp: number;
  maxTimestamp: number;
  kind: SegmentKind;
  footerPosition: number | null;
  footerLength: number | null;
}

/** The row an entry is stored as, with the partition it belongs to. */
type EntryParams = EntryRow & { topicId: string; partition: number };

interface ProducerRow extends Omit<ProducerState, "recent"> {
  producerId: string;
  recent: string;
}

interface IntentRow extends Omit<Intent, "objectKeys"> {
  objectKeys: string;
}

/** Named parameters of the statements that address one partition. */
interface PartitionParams {
  topicId: string;
  partition: number;
}

export interface SqliteMetaStoreOptions {
  /** How long an operation waits for another process's lock before `storage_unavailable`. */
  busyTimeoutMs?: number;
}

/**
 * The embedded MetaStore: one SQLite file that several server processes may share. Every
 * write is a `BEGIN IMMEDIATE` transaction, so a commit's read-check-write holds the file's
 * write lock throughout, and `synchronous = FULL` makes the commit durable when it returns.
 *
 * better-sqlite3 is synchronous, and SQLite's own busy handler sleeps inside the call, which
 * would stall this process's event loop for as long as another process holds the lock (and
 * its growing sleeps let a busy process starve the others). So after open, SQLite gives up
 * at once and the wait happens here, between event-loop turns, in short jittered pauses.
 */
export class SqliteMetaStore implements MetaStore, GroupStore, KeyStore {
  readonly maxOffsetsPerWrite = Infinity;
  readonly maxReplacedPerRoll = MAX_REPLACED_PER_ROLL;
  readonly maxRemovedPerAdvance = Infinity;
  readonly #db: BetterSqlite3.Database;
  readonly #busyTimeoutMs: number;
  readonly #statements;
  readonly #createTopic;
  readonly #deleteTopic;
  readonly #commitAppend;
  readonly #beginIntent;
  readonly #replaceEntries;
  readonly #advanceLogStart;
  readonly #purgePartition;
  readonly #putGroup;
  readonly #deleteGroup;
  readonly #writeOffsets;
  readonly #purgeOffsets;

  /** Blocks while it waits for locks: at open there is nothing else for the process to do. */
  static open(
    path: string,
    { busyTimeoutMs = 5000 }: SqliteMetaStoreOptions = {},
  ): SqliteMetaStore {
    try {
      if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
      const db = new (loadSqlite())(path, { timeout: busyTimeoutMs });
      try {
        db.pragma("journal_mode = WAL");
        db.pragma("synchronous = FULL");
        migrate(db);
        db.pragma("busy_timeout = 0");
        return new SqliteMetaStore(db, busyTimeoutMs);
      } catch (err) {
        db.close();
        throw err;
      }
    } catch (err) {
      throw storageError("open", err);
    }
  }

  private constructor(db: BetterSqlite3.Database, busyTimeoutMs: number) {
    this.#db = db;
    this.#busyTimeoutMs = busyTimeoutMs;
    const s = {
      insertTopic: db.prepare<[TopicRow]>(
        `INSERT INTO topics (name, id, partitions, config, created_at)
         VALUES (@name, @id, @partitions, @config, @createdAt) ON CONFLICT (name) DO NOTHING`,
      ),
      insertHead: db.prepare<[string, number]>(
        "INSERT INTO heads (topic_id, partition, log_start_offset, log_end_offset) VALUES (?, ?, 0, 0)",
      ),
      getTopic: db.prepare<[string], TopicRow>(`SELECT ${topicColumns} FROM topics WHERE name = ?`),
      listTopics: db.prepare<[], TopicRow>(`SELECT ${topicColumns} FROM topics ORDER BY name`),
      getTopicIdentity: db.prepare<[string], { id: string; partitions: number }>(
        "SELECT id, partitions FROM topics WHERE name = ?",
      ),
      deleteTopic: db.prepare<[string, string]>("DELETE FROM topics WHERE name = ? AND id = ?"),
      insertDeletedTopic: db.prepare<[DeletedTopic]>(
        `INSERT INTO deleted_topics (id, name, partitions, deleted_at)
         VALUES (@id, @name, @partitions, @deletedAt) ON CONFLICT (id) DO NOTHING`,
      ),
      listDeletedTopics: db.prepare<[], DeletedTopic>(
        `SELECT ${deletedTopicColumns} FROM deleted_topics ORDER BY id`,
      ),
      forgetDeletedTopic: db.prepare<[string]>("DELETE FROM deleted_topics WHERE id = ?"),
      getHead: db.prepare<[string, number], PartitionHead>(
        `SELECT ${headColumns} FROM heads WHERE topic_id = ? AND partition = ?`,
      ),
      putHead: db.prepare<[string, number, number, number]>(
        `INSERT INTO heads (topic_id, partition, log_start_offset, log_end_offset) VALUES (?, ?, ?, ?)
         ON CONFLICT (topic_id, partition) DO UPDATE SET log_end_offset = excluded.log_end_offset`,
      ),
      setLogStart: db.prepare<[number, string, number]>(
        "UPDATE heads SET log_start_offset = ? WHERE topic_id = ? AND partition = ?",
      ),
      insertEntry: db.prepare<[EntryParams]>(
        `INSERT INTO segments (topic_id, partition, base_offset, count, bytes, object_key,
           min_ts, max_ts, kind, footer_position, footer_length)
         VALUES (@topicId, @partition, @baseOffset, @count, @bytes, @objectKey,
           @minTimestamp, @maxTimestamp, @kind, @footerPosition, @footerLength)`,
      ),
      getEntryKey: db.prepare<[string, number, number], { objectKey: string }>(
        `SELECT object_key AS objectKey FROM segments
         WHERE topic_id = ? AND partition = ? AND base_offset = ?`,
      ),
      deleteEntry: db.prepare<[string, number, number]>(
        "DELETE FROM segments WHERE topic_id = ? AND partition = ? AND base_offset = ?",
      ),
      listEntries: db.prepare<[PartitionParams & { from: number; limit: number }], EntryRow>(
        `SELECT ${entryColumns} FROM segments
         WHERE topic_id = @topicId AND partition = @partition AND base_offset >= @from
         ORDER BY base_offset LIMIT @limit`,
      ),
      insertIntent: db.prepare<[PartitionParams & IntentRow]>(
        `INSERT INTO intents (topic_id, partition, kind, base_offset, id, object_keys, sealed_key,
           created_at, done_at)
         VALUES (@topicId, @partition, @kind, @baseOffset, @id, @objectKeys, @sealedKey,
           @createdAt, NULL)
         ON CONFLICT (topic_id, partition, kind, base_offset) DO NOTHING`,
      ),
      getIntentState: db.prepare<
        [string, number, IntentKind, number],
        { id: string; doneAt: number | null }
      >(
        `SELECT id, done_at AS doneAt FROM intents
         WHERE topic_id = ? AND partition = ? AND kind = ? AND base_offset = ?`,
      ),
      finishIntent: db.prepare<[number, string, number, IntentKind, number]>(
        `UPDATE intents SET done_at = ?
         WHERE topic_id = ? AND partition = ? AND kind = ? AND base_offset = ?`,
      ),
      abortIntent: db.prepare<[string, number, IntentKind, number, string]>(
        `DELETE FROM intents WHERE topic_id = ? AND partition = ? AND kind = ? AND base_offset = ?
           AND id = ? AND done_at IS NULL`,
      ),
      dropIntent: db.prepare<[string, number, IntentKind, number]>(
        "DELETE FROM intents WHERE topic_id = ? AND partition = ? AND kind = ? AND base_offset = ?",
      ),
      listIntents: db.prepare<[string, number], IntentRow>(
        `SELECT ${intentColumns} FROM intents WHERE topic_id = ? AND partition = ?
         ORDER BY kind, base_offset`,
      ),
      purgeIntents: db.prepare<[PartitionParams & { limit: number }]>(
        `DELETE FROM intents WHERE topic_id = @topicId AND partition = @partition
           AND (kind, base_offset) IN (SELECT kind, base_offset FROM intents
             WHERE topic_id = @topicId AND partition = @partition LIMIT @limit)`,
      ),
      purgeEntries: db.prepare<[PartitionParams & { limit: number }]>(
        `DELETE FROM segments WHERE topic_id = @topicId AND partition = @partition
           AND base_offset IN (SELECT base_offset FROM segments
             WHERE topic_id = @topicId AND partition = @partition LIMIT @limit)`,
      ),
      getProducer: db.prepare<[string, number, string], ProducerRow>(
        `SELECT ${producerColumns} FROM producers
         WHERE topic_id = ? AND partition = ? AND producer_id = ?`,
      ),
      getProducerVersion: db.prepare<[string, number, string], { version: number }>(
        "SELECT version FROM producers WHERE topic_id = ? AND partition = ? AND producer_id = ?",
      ),
      putProducer: db.prepare<[PartitionParams & ProducerRow]>(
        `INSERT INTO producers (topic_id, partition, producer_id, epoch, last_seq, recent,
           updated_at, version)
         VALUES (@topicId, @partition, @producerId, @epoch, @lastSeq, @recent, @updatedAt, @version)
         ON CONFLICT (topic_id, partition, producer_id) DO UPDATE SET
           epoch = excluded.epoch, last_seq = excluded.last_seq, recent = excluded.recent,
           updated_at = excluded.updated_at, version = excluded.version`,
      ),
      purgeProducers: db.prepare<[PartitionParams & { limit: number }]>(
        `DELETE FROM producers WHERE topic_id = @topicId AND partition = @partition
           AND producer_id IN (SELECT producer_id FROM producers
             WHERE topic_id = @topicId AND partition = @partition LIMIT @limit)`,
      ),
      deleteHead: db.prepare<[string, number]>(
        "DELETE FROM heads WHERE topic_id = ? AND partition = ?",
      ),
      // A NULL floor (no entry at or before the offset) makes the comparison fail: no rows.
      readIndex: db.prepare<[PartitionParams & { offset: number; limit: number }], EntryRow>(
        `SELECT ${entryColumns} FROM segments
         WHERE topic_id = @topicId AND partition = @partition AND base_offset >= (
           SELECT base_offset FROM segments
           WHERE topic_id = @topicId AND partition = @partition AND base_offset <= @offset
           ORDER BY base_offset DESC LIMIT 1)
         ORDER BY base_offset LIMIT @limit`,
      ),
      getGroup: db.prepare<[string], GroupRecord>(
        `SELECT ${groupColumns} FROM groups WHERE name = ?`,
      ),
      // The guard's columns only: the document may be 100 KB.
      getGroupState: db.prepare<[string], GroupState>(
        "SELECT incarnation, version, fence FROM groups WHERE name = ?",
      ),
      listGroups: db.prepare<[], GroupSummary>(
        "SELECT name, incarnation, created_at AS createdAt FROM groups ORDER BY name",
      ),
      insertGroup: db.prepare<[GroupRecord]>(
        `INSERT INTO groups (name, incarnation, version, fence, created_at, doc)
         VALUES (@name, @incarnation, @version, @fence, @createdAt, @doc)
         ON CONFLICT (name) DO NOTHING`,
      ),
      // The incarnation is part of the condition: a group deleted and re-created may have
      // reached the same version, and a write based on the old one must not bring it back.
      replaceGroup: db.prepare<[GroupRecord & { expectedVersion: number }]>(
        `UPDATE groups SET version = @version, fence = @fence, created_at = @createdAt, doc = @doc
         WHERE name = @name AND incarnation = @incarnation AND version = @expectedVersion`,
      ),
      deleteGroup: db.prepare<[string, string, number]>(
        "DELETE FROM groups WHERE name = ? AND incarnation = ? AND version = ?",
      ),
      getOffsets: db.prepare<[string, string], CommittedOffset>(
        `SELECT ${offsetColumns} FROM group_offsets WHERE group_name = ? AND incarnation = ?
         ORDER BY topic, partition`,
      ),
      getTopicOffsets: db.prepare<[string, string, string], CommittedOffset>(
        `SELECT ${offsetColumns} FROM group_offsets
         WHERE group_name = ? AND incarnation = ? AND topic = ? ORDER BY partition`,
      ),
      getStoredOffset: db.prepare<
        [string, string, number],
        { incarnation: string; topicId: string; offset: number }
      >(
        `SELECT incarnation, topic_id AS topicId, "offset" AS "offset" FROM group_offsets
         WHERE group_name = ? AND topic = ? AND partition = ?`,
      ),
      putOffset: db.prepare<[OffsetRow]>(
        `INSERT INTO group_offsets (group_name, topic, partition, incarnation, topic_id, "offset",
           metadata, generation, member_id, committed_at)
         VALUES (@group, @topic, @partition, @incarnation, @topicId, @offset,
           @metadata, @generation, @memberId, @committedAt)
         ON CONFLICT (group_name, topic, partition) DO UPDATE SET
           incarnation = excluded.incarnation, topic_id = excluded.topic_id,
           "offset" = excluded."offset", metadata = excluded.metadata,
           generation = excluded.generation, member_id = excluded.member_id,
           committed_at = excluded.committed_at`,
      ),
      purgeOffsets: db.prepare<[string, string]>(
        "DELETE FROM group_offsets WHERE group_name = ? AND incarnation <> ?",
      ),
      purgeAllOffsets: db.prepare<[string]>("DELETE FROM group_offsets WHERE group_name = ?"),
      insertKey: db.prepare<[KeyRow]>(
        `INSERT INTO api_keys (id, secret_hash, scopes, description, created_at, expires_at,
           revoked_at, rate_per_second, rate_burst)
         VALUES (@id, @secretHash, @scopes, @description, @createdAt, @expiresAt,
           @revokedAt, @ratePerSecond, @rateBurst)
         ON CONFLICT (id) DO NOTHING`,
      ),
      getKey: db.prepare<[string], KeyRow>(
        `SELECT ${keyInfoColumns}, secret_hash AS secretHash FROM api_keys WHERE id = ?`,
      ),
      listKeys: db.prepare<[], KeyInfoRow>(`SELECT ${keyInfoColumns} FROM api_keys ORDER BY id`),
      // The first revocation's time stays: a second one matches the row but keeps its value.
      revokeKey: db.prepare<[number, string]>(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
      ),
    };
    this.#statements = s;

    this.#createTopic = db.transaction((topic: TopicMeta) => {
      const row = { ...topic, config: JSON.stringify(topic.config) };
      if (s.insertTopic.run(row).changes === 0) {
        throw new SluiceError("topic_exists", `topic ${topic.name} already exists`);
      }
      for (let p = 0; p < topic.partitions; p++) s.insertHead.run(topic.id, p);
    });

    this.#deleteTopic = db.transaction((name: string, id: string): boolean => {
      const topic = s.getTopicIdentity.get(name);
      if (topic?.id !== id) return false;
      s.deleteTopic.run(name, id);
      s.insertDeletedTopic.run({ id, name, partitions: topic.partitions, deletedAt: Date.now() });
      return true;
    });

    this.#commitAppend = db.transaction((request: CommitRequest): CommitResult => {
      const { topicId, partition, expectedLogEndOffset, entry } = request;
      const producers = request.producers ?? [];
      const head = s.getHead.get(topicId, partition) ?? { logStartOffset: 0, logEndOffset: 0 };
      const producerConflict = producers.some(
        (w) =>
          (s.getProducerVersion.get(topicId, partition, w.producerId)?.version ?? null) !==
          w.expected,
      );
      if (head.logEndOffset !== expectedLogEndOffset || producerConflict) {
        return { committed: false, head, ...(producerConflict ? { producerConflict } : {}) };
      }
      const next = { ...head, logEndOffset: expectedLogEndOffset + entry.count };
      s.putHead.run(topicId, partition, next.logStartOffset, next.logEndOffset);
      s.insertEntry.run(toEntryParams(topicId, partition, entry));
      for (const { producerId, state } of producers) {
        s.putProducer.run({
          topicId,
          partition,
          producerId,
          ...state,
          recent: JSON.stringify(state.recent),
        });
      }
      return { committed: true, head: next };
    });

    this.#beginIntent = db.transaction(
      (topic: { name: string; id: string }, partition: number, intent: Intent): boolean => {
        if (s.getTopicIdentity.get(topic.name)?.id !== topic.id) return false;
        const row = { ...intent, objectKeys: JSON.stringify(intent.objectKeys), doneAt: null };
        return s.insertIntent.run({ topicId: topic.id, partition, ...row }).changes > 0;
      },
    );

    /** Whether every entry is still in the index at its base, naming its object. */
    const entriesHold = (topicId: string, partition: number, entries: IndexEntry[]) =>
      entries.every(
        (e) => s.getEntryKey.get(topicId, partition, e.baseOffset)?.objectKey === e.objectKey,
      );

    this.#replaceEntries = db.transaction(
      (
        topicId: string,
        partition: number,
        intentId: string,
        replaced: IndexEntry[],
        sealed: IndexEntry,
        now: number,
      ): boolean => {
        const base = sealed.baseOffset;
        const intent = s.getIntentState.get(topicId, partition, "roll", base);
        if (intent?.id !== intentId) return false;
        // A replay of a swap that applied: its sealed entry is where the swap put it.
        if (intent.doneAt !== null) return entriesHold(topicId, partition, [sealed]);
        if (!entriesHold(topicId, partition, replaced)) return false;
        for (const e of replaced) s.deleteEntry.run(topicId, partition, e.baseOffset);
        s.insertEntry.run(toEntryParams(topicId, partition, sealed));
        s.finishIntent.run(now, topicId, partition, "roll", base);
        return true;
      },
    );

    this.#advanceLogStart = db.transaction(
      (
        topicId: string,
        partition: number,
        intentId: string,
        expected: number,
        removed: IndexEntry[],
        now: number,
      ): boolean => {
        const intent = s.getIntentState.get(topicId, partition, "retire", expected);
        if (intent?.id !== intentId) return false;
        const last = removed[removed.length - 1]!;
        const start = last.baseOffset + last.count;
        const head = s.getHead.get(topicId, partition);
        // A replay of an advance that applied: the log start has moved at least that far.
        if (intent.doneAt !== null) return head !== undefined && head.logStartOffset >= start;
        if (head?.logStartOffset !== expected) return false;
        if (!entriesHold(topicId, partition, removed)) return false;
        for (const e of removed) s.deleteEntry.run(topicId, partition, e.baseOffset);
        s.setLogStart.run(start, topicId, partition);
        s.finishIntent.run(now, topicId, partition, "retire", expected);
        return true;
      },
    );

    this.#purgePartition = db.transaction(
      (topicId: string, partition: number, limit: number): number => {
        const where = { topicId, partition };
        let purged = s.purgeIntents.run({ ...where, limit }).changes;
        if (purged < limit)
          purged += s.purgeProducers.run({ ...where, limit: limit - purged }).changes;
        if (purged < limit)
          purged += s.purgeEntries.run({ ...where, limit: limit - purged }).changes;
        // The head goes last, once nothing else of the partition is left.
        if (purged < limit) purged += s.deleteHead.run(topicId, partition).changes;
        return purged;
      },
    );

    this.#putGroup = db.transaction(
      (record: GroupRecord, expectedVersion: number | null): boolean =>
        (expectedVersion === null
          ? s.insertGroup.run(record)
          : s.replaceGroup.run({ ...record, expectedVersion })
        ).changes > 0,
    );

    this.#deleteGroup = db.transaction(
      (name: string, incarnation: string, expectedVersion: number): boolean =>
        s.deleteGroup.run(name, incarnation, expectedVersion).changes > 0,
    );

    this.#writeOffsets = db.transaction(
      (group: string, guard: GroupGuard, writes: OffsetWrite[]): OffsetWriteResult => {
        if (!guardHolds(s.getGroupState.get(group), guard)) return { ok: false, conflict: "group" };
        for (const { value, expected } of writes) {
          const stored = s.getStoredOffset.get(group, value.topic, value.partition);
          if (currentOffset(stored, guard.incarnation, value.topicId) !== expected) {
            return { ok: false, conflict: "offset" };
          }
        }
        for (const { value } of writes) {
          s.putOffset.run({ ...value, group, incarnation: guard.incarnation });
        }
        return { ok: true };
      },
    );

    this.#purgeOffsets = db.transaction(
      (group: string, keep: string | undefined): number =>
        (keep === undefined ? s.purgeAllOffsets.run(group) : s.purgeOffsets.run(group, keep))
          .changes,
    );
  }

  async createTopic(topic: TopicMeta): Promise<void> {
    await this.#run("createTopic", () => this.#createTopic.immediate(topic));
  }

  async getTopic(name: string): Promise<TopicMeta | undefined> {
    const row = await this.#run("getTopic", () => this.#statements.getTopic.get(name));
    return row && toTopic(row);
  }

  async listTopics(): Promise<TopicMeta[]> {
    return (await this.#run("listTopics", () => this.#statements.listTopics.all())).map(toTopic);
  }

  async deleteTopic(name: string, id: string): Promise<boolean> {
    return this.#run("deleteTopic", () => this.#deleteTopic.immediate(name, id));
  }

  async getHead(topicId: string, partition: number): Promise<PartitionHead> {
    const head = await this.#run("getHead", () => this.#statements.getHead.get(topicId, partition));
    return head ?? { logStartOffset: 0, logEndOffset: 0 };
  }

  async commitAppend(request: CommitRequest): Promise<CommitResult> {
    checkCommitRequest(request);
    return this.#run("commitAppend", () => this.#commitAppend.immediate(request));
  }

  async getProducers(
    topicId: string,
    partition: number,
    producerIds: readonly string[],
  ): Promise<Map<string, ProducerState>> {
    const rows = await this.#run("getProducers", () =>
      producerIds.flatMap((id) => this.#statements.getProducer.get(topicId, partition, id) ?? []),
    );
    return new Map(
      rows.map(({ producerId, recent, ...state }) => [
        producerId,
        { ...state, recent: JSON.parse(recent) as ProducerBatch[] },
      ]),
    );
  }

  async readIndex(
    topicId: string,
    partition: number,
    offset: number,
    limit: number,
  ): Promise<IndexEntry[]> {
    if (!(limit > 0)) return [];
    const rows = await this.#run("readIndex", () =>
      this.#statements.readIndex.all({ topicId, partition, offset, limit: rowLimit(limit) }),
    );
    return rows.map(toEntry);
  }

  async listEntries(
    topicId: string,
    partition: number,
    from: number,
    limit: number,
  ): Promise<IndexEntry[]> {
    if (!(limit > 0)) return [];
    const rows = await this.#run("listEntries", () =>
      this.#statements.listEntries.all({ topicId, partition, from, limit: rowLimit(limit) }),
    );
    return rows.map(toEntry);
  }

  async beginIntent(
    topic: { name: string; id: string },
    partition: number,
    intent: Intent,
  ): Promise<boolean> {
    return this.#run("beginIntent", () => this.#beginIntent.immediate(topic, partition, intent));
  }

  async replaceEntries(
    topicId: string,
    partition: number,
    intentId: string,
    replaced: IndexEntry[],
    sealed: IndexEntry,
    now: number,
  ): Promise<boolean> {
    checkReplaceRequest(replaced, sealed);
    return this.#run("replaceEntries", () =>
      this.#replaceEntries.immediate(topicId, partition, intentId, replaced, sealed, now),
    );
  }

  async advanceLogStart(
    topicId: string,
    partition: number,
    intentId: string,
    expected: number,
    removed: IndexEntry[],
    now: number,
  ): Promise<boolean> {
    checkAdvanceRequest(expected, removed, this.maxRemovedPerAdvance);
    return this.#run("advanceLogStart", () =>
      this.#advanceLogStart.immediate(topicId, partition, intentId, expected, removed, now),
    );
  }

  async abortIntent(
    topicId: string,
    partition: number,
    kind: IntentKind,
    baseOffset: number,
    id: string,
  ): Promise<boolean> {
    const { changes } = await this.#run("abortIntent", () =>
      this.#statements.abortIntent.run(topicId, partition, kind, baseOffset, id),
    );
    return changes > 0;
  }

  async listIntents(topicId: string, partition: number): Promise<Intent[]> {
    const rows = await this.#run("listIntents", () =>
      this.#statements.listIntents.all(topicId, partition),
    );
    return rows.map((row) => ({ ...row, objectKeys: JSON.parse(row.objectKeys) as string[] }));
  }

  async dropIntent(
    topicId: string,
    partition: number,
    kind: IntentKind,
    baseOffset: number,
  ): Promise<void> {
    await this.#run("dropIntent", () =>
      this.#statements.dropIntent.run(topicId, partition, kind, baseOffset),
    );
  }

  async listDeletedTopics(): Promise<DeletedTopic[]> {
    return this.#run("listDeletedTopics", () => this.#statements.listDeletedTopics.all());
  }

  async purgePartition(topicId: string, partition: number, limit: number): Promise<number> {
    if (!(limit > 0)) return 0;
    return this.#run("purgePartition", () =>
      this.#purgePartition.immediate(topicId, partition, rowLimit(limit)),
    );
  }

  async forgetDeletedTopic(id: string): Promise<void> {
    await this.#run("forgetDeletedTopic", () => this.#statements.forgetDeletedTopic.run(id));
  }

  async getGroup(name: string): Promise<GroupRecord | undefined> {
    return this.#run("getGroup", () => this.#statements.getGroup.get(name));
  }

  async listGroups(): Promise<GroupSummary[]> {
    return this.#run("listGroups", () => this.#statements.listGroups.all());
  }

  async putGroup(record: GroupRecord, expectedVersion: number | null): Promise<boolean> {
    checkGroupPut(record, expectedVersion);
    return this.#run("putGroup", () => this.#putGroup.immediate(record, expectedVersion));
  }

  async deleteGroup(name: string, incarnation: string, expectedVersion: number): Promise<boolean> {
    return this.#run("deleteGroup", () =>
      this.#deleteGroup.immediate(name, incarnation, expectedVersion),
    );
  }

  async getOffsets(group: string, incarnation: string, topic?: string): Promise<CommittedOffset[]> {
    const s = this.#statements;
    return this.#run("getOffsets", () =>
      topic === undefined
        ? s.getOffsets.all(group, incarnation)
        : s.getTopicOffsets.all(group, incarnation, topic),
    );
  }

  async writeOffsets(
    group: string,
    guard: GroupGuard,
    writes: OffsetWrite[],
  ): Promise<OffsetWriteResult> {
    checkOffsetWrites(writes, this.maxOffsetsPerWrite);
    return this.#run("writeOffsets", () => this.#writeOffsets.immediate(group, guard, writes));
  }

  async purgeOffsets(group: string, keep?: string): Promise<number> {
    return this.#run("purgeOffsets", () => this.#purgeOffsets.immediate(group, keep));
  }

  async putKey(record: ApiKeyRecord): Promise<void> {
    const row: KeyRow = {
      id: record.id,
      secretHash: record.secretHash,
      scopes: JSON.stringify(record.scopes),
      description: record.description,
      createdAt: record.createdAt,
      expiresAt: record.expiresAt,
      revokedAt: record.revokedAt,
      ratePerSecond: record.rateLimit?.perSecond ?? null,
      rateBurst: record.rateLimit?.burst ?? null,
    };
    const { changes } = await this.#run("putKey", () => this.#statements.insertKey.run(row));
    if (changes === 0) throw new SluiceError("conflict", `API key ${record.id} already exists`);
  }

  async getKey(id: string): Promise<ApiKeyRecord | undefined> {
    const row = await this.#run("getKey", () => this.#statements.getKey.get(id));
    // A plain Uint8Array, not the Buffer SQLite hands out, so that it compares like the others.
    return row && { ...toKeyInfo(row), secretHash: new Uint8Array(row.secretHash) };
  }

  async listKeys(): Promise<ApiKeyInfo[]> {
    return (await this.#run("listKeys", () => this.#statements.listKeys.all())).map(toKeyInfo);
  }

  async revokeKey(id: string, at: number): Promise<boolean> {
    const { changes } = await this.#run("revokeKey", () => this.#statements.revokeKey.run(at, id));
    return changes > 0;
  }

  close(): Promise<void> {
    this.#db.close();
    return Promise.resolve();
  }

  /**
   * Runs one statement or transaction, retrying while another process holds a lock. A busy
   * failure happens before anything is written (the write lock is taken at BEGIN), so the
   * retry cannot apply a change twice.
   */
  async #run<T>(action: string, fn: () => T): Promise<T> {
    const deadline = Date.now() + this.#busyTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return fn();
      } catch (err) {
        const busy = err instanceof loadSqlite().SqliteError && err.code.startsWith("SQLITE_BUSY");
        if (!busy || Date.now() >= deadline) throw storageError(action, err);
        await sleep(Math.random() * Math.min(2 ** attempt, maxBusyPauseMs));
      }
    }
  }
}

function migrate(db: BetterSqlite3.Database): void {
  // IMMEDIATE so that two processes opening a fresh file do not both run the migrations.
  db.transaction(() => {
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version > migrations.length) {
      throw new SluiceError(
        "internal",
        `metadata schema version ${version} is newer than this build supports (${migrations.length})`,
      );
    }
    for (const sql of migrations.slice(version)) db.exec(sql);
    db.pragma(`user_version = ${migrations.length}`);
  }).immediate();
}

function toTopic(row: TopicRow): TopicMeta {
  return { ...row, config: JSON.parse(row.config) as TopicConfig };
}

function toKeyInfo(row: KeyInfoRow): ApiKeyInfo {
  return {
    id: row.id,
    scopes: JSON.parse(row.scopes) as string[],
    description: row.description,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
    revokedAt: row.revokedAt,
    rateLimit:
      row.ratePerSecond === null || row.rateBurst === null
        ? null
        : { perSecond: row.ratePerSecond, burst: row.rateBurst },
  };
}

function toEntry({ footerPosition, footerLength, ...entry }: EntryRow): IndexEntry {
  return footerPosition === null || footerLength === null
    ? entry
    : { ...entry, footer: { position: footerPosition, length: footerLength } };
}

function toEntryParams(topicId: string, partition: number, entry: IndexEntry): EntryParams {
  const { baseOffset, count, bytes, objectKey, minTimestamp, maxTimestamp, kind, footer } = entry;
  return {
    topicId,
    partition,
    baseOffset,
    count,
    bytes,
    objectKey,
    minTimestamp,
    maxTimestamp,
    kind,
    footerPosition: footer?.position ?? null,
    footerLength: footer?.length ?? null,
  };
}

/** SQLite's LIMIT takes an integer: a caller's `Infinity` means no limit. */
function rowLimit(limit: number): number {
  return Math.min(Math.floor(limit), Number.MAX_SAFE_INTEGER);
}

/** Failures a later retry may cure become `storage_unavailable`; anything else is a bug. */
function storageError(action: string, err: unknown): unknown {
  const primary = /^SQLITE_([A-Z]+)/.exec(err instanceof loadSqlite().SqliteError ? err.code : "");
  if (!primary || !transientCodes.has(primary[1]!)) return err;
  return new SluiceError("storage_unavailable", `metadata ${action} failed: ${String(err)}`, {
    cause: err,
  });
}
