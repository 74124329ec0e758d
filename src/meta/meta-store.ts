import type { TopicConfig } from "../config.js";
import { SluiceError } from "../errors.js";

/**
 * The metadata port: topics, each partition's head (log start and log-end offsets) and its
 * segment index. The conditional commit here is the single point that makes a flush durable
 * and visible, so every adapter must make `commitAppend` atomic across processes.
 *
 * Adapters throw SluiceError: `topic_exists` for a duplicate create, `storage_unavailable`
 * for a failure that may succeed when retried.
 */
export interface TopicMeta {
  name: string;
  /** New on every create; object keys and partition items hang off it, not off the name. */
  id: string;
  partitions: number;
  config: TopicConfig;
  createdAt: number;
}

export interface PartitionHead {
  /** First offset still readable. */
  logStartOffset: number;
  /** Offset the next committed record will get (Kafka's LOG-END-OFFSET). */
  logEndOffset: number;
}

export type SegmentKind = "chunk" | "sealed";

export interface IndexEntry {
  baseOffset: number;
  /** Records in the object; the entry covers [baseOffset, baseOffset + count). */
  count: number;
  bytes: number;
  objectKey: string;
  minTimestamp: number;
  maxTimestamp: number;
  kind: SegmentKind;
  /** Sealed segments only: where the footer (offset and time index) sits in the object. */
  footer?: SegmentFooterRange;
}

export interface SegmentFooterRange {
  position: number;
  length: number;
}

export type IntentKind = "roll" | "retire";

/**
 * A pending or finished change to a partition's index (docs/rfcs/0003-segments.md §3). It is
 * written before the change, so it is the lock (one per kind and base), the fence (the change
 * applies only while it is pending) and the record of which objects become garbage.
 */
export interface Intent {
  kind: IntentKind;
  /** A roll's: the sealed segment's base. A retire's: the log start offset it moves from. */
  baseOffset: number;
  /** A ULID; a roll's id is also in its sealed key. */
  id: string;
  /** Objects the change makes unreferenced; deleted a grace period after `doneAt`. */
  objectKeys: string[];
  /** A roll's upload: deleted if the intent is aborted. */
  sealedKey: string | null;
  createdAt: number;
  /** null while pending. */
  doneAt: number | null;
}

/** What is left of a deleted topic until maintenance has removed its items and objects. */
export interface DeletedTopic {
  id: string;
  name: string;
  partitions: number;
  deletedAt: number;
}

export interface CommitRequest {
  topicId: string;
  partition: number;
  /** The log-end offset the writer read; the commit applies only if it is still current. */
  expectedLogEndOffset: number;
  /** Must have `baseOffset === expectedLogEndOffset`. */
  entry: IndexEntry;
}

/** On success `head` is the new head; on a lost race it is the head that won. */
export type CommitResult =
  { committed: true; head: PartitionHead } | { committed: false; head: PartitionHead };

export interface MetaStore {
  /** Creates the topic and its partitions' heads at offset 0; `topic_exists` if the name is taken. */
  createTopic(topic: TopicMeta): Promise<void>;
  getTopic(name: string): Promise<TopicMeta | undefined>;
  listTopics(): Promise<TopicMeta[]>;
  /**
   * Deletes the topic item if it still has this id, and in the same atomic step records a
   * DeletedTopic tombstone; false if it was already gone or replaced.
   */
  deleteTopic(name: string, id: string): Promise<boolean>;
  /** A strongly consistent read; a partition never written has both offsets at 0. */
  getHead(topicId: string, partition: number): Promise<PartitionHead>;
  /**
   * Atomically: if the head's log-end offset equals `expectedLogEndOffset`, move it to
   * `expected + entry.count` and store the index entry; otherwise change nothing.
   */
  commitAppend(request: CommitRequest): Promise<CommitResult>;
  /**
   * The entry holding `offset` (greatest base offset ≤ offset) followed by the entries after
   * it, ascending, at most `limit` in all. Empty if no entry starts at or before the offset.
   */
  readIndex(
    topicId: string,
    partition: number,
    offset: number,
    limit: number,
  ): Promise<IndexEntry[]>;
  /** Entries with baseOffset ≥ `from`, ascending, at most `limit` (maintenance, describe). */
  listEntries(
    topicId: string,
    partition: number,
    from: number,
    limit: number,
  ): Promise<IndexEntry[]>;
  /**
   * Creates `intent` (pending: `doneAt` null) iff no intent exists at (kind, baseOffset) and
   * topic `topic.name` still has id `topic.id`; false otherwise.
   */
  beginIntent(
    topic: { name: string; id: string },
    partition: number,
    intent: Intent,
  ): Promise<boolean>;
  /**
   * Atomically, iff the roll intent at `sealed.baseOffset` is pending with id `intentId` and
   * every replaced entry is still in the index naming its object: `sealed` replaces
   * `replaced[0]`, the other replaced entries are deleted and the intent's `doneAt` = `now`.
   * Otherwise nothing is written and the answer is false. A replay of an applied call (its answer
   * was lost) answers true.
   */
  replaceEntries(
    topicId: string,
    partition: number,
    intentId: string,
    replaced: IndexEntry[],
    sealed: IndexEntry,
    now: number,
  ): Promise<boolean>;
  /**
   * Atomically, iff the head's logStartOffset is `expected`, the retire intent at `expected` is
   * pending with id `intentId`, and every removed entry is still in the index naming its object:
   * deletes the removed entries, sets logStartOffset to the end of the last one and the intent's
   * `doneAt` = `now`. Otherwise nothing is written: false. A replay of an applied call: true.
   */
  advanceLogStart(
    topicId: string,
    partition: number,
    intentId: string,
    expected: number,
    removed: IndexEntry[],
    now: number,
  ): Promise<boolean>;
  /** Deletes the intent iff it is still pending with this id, so its change can never apply. */
  abortIntent(
    topicId: string,
    partition: number,
    kind: IntentKind,
    baseOffset: number,
    id: string,
  ): Promise<boolean>;
  /** The partition's intents, pending and done, by kind then base offset. */
  listIntents(topicId: string, partition: number): Promise<Intent[]>;
  /** Removes an intent whatever its state (its garbage has been deleted). */
  dropIntent(
    topicId: string,
    partition: number,
    kind: IntentKind,
    baseOffset: number,
  ): Promise<void>;
  listDeletedTopics(): Promise<DeletedTopic[]>;
  /**
   * Deletes up to `limit` items (head, index entries, intents) of a deleted topic's partition;
   * answers how many it deleted, 0 when none are left.
   */
  purgePartition(topicId: string, partition: number, limit: number): Promise<number>;
  /** Removes the tombstone. */
  forgetDeletedTopic(id: string): Promise<void>;
  /** Chunks one roll may replace: the same on every adapter, so segments look alike everywhere. */
  readonly maxReplacedPerRoll: number;
  /** Segments one advanceLogStart may remove (DynamoDB: a transaction holds 100 items). */
  readonly maxRemovedPerAdvance: number;
  close(): Promise<void>;
}

/** Chunks per roll: a DynamoDB transaction holds 100 items, one of which is the intent. */
export const MAX_REPLACED_PER_ROLL = 99;

/** Adapters call this first: a malformed commit is a bug in the caller, never applied. */
export function checkCommitRequest({ expectedLogEndOffset, entry }: CommitRequest): void {
  if (
    !Number.isSafeInteger(expectedLogEndOffset) ||
    expectedLogEndOffset < 0 ||
    entry.baseOffset !== expectedLogEndOffset ||
    !Number.isSafeInteger(entry.count) ||
    entry.count < 1 ||
    !Number.isSafeInteger(expectedLogEndOffset + entry.count)
  ) {
    throw new SluiceError(
      "internal",
      `malformed commit: expected log-end offset ${expectedLogEndOffset}, entry base ${entry.baseOffset}, count ${entry.count}`,
    );
  }
}

/** Adapters call this first: a malformed swap is a bug in the caller, never applied. */
export function checkReplaceRequest(replaced: IndexEntry[], sealed: IndexEntry): void {
  const first = replaced[0];
  let next = first?.baseOffset ?? 0;
  const contiguousChunks = replaced.every((e) => {
    const ok = e.kind === "chunk" && e.baseOffset === next && e.count >= 1;
    next += e.count;
    return ok;
  });
  if (
    first === undefined ||
    replaced.length > MAX_REPLACED_PER_ROLL ||
    !contiguousChunks ||
    sealed.kind !== "sealed" ||
    sealed.footer === undefined ||
    sealed.baseOffset !== first.baseOffset ||
    sealed.count !== next - first.baseOffset
  ) {
    throw new SluiceError(
      "internal",
      `malformed roll of ${replaced.length} entries into a segment at ${sealed.baseOffset}`,
    );
  }
}

/** Adapters call this first: removed entries must be contiguous sealed segments from `expected`. */
export function checkAdvanceRequest(expected: number, removed: IndexEntry[], max: number): void {
  let next = expected;
  const contiguousSealed = removed.every((e) => {
    const ok = e.kind === "sealed" && e.baseOffset === next && e.count >= 1;
    next += e.count;
    return ok;
  });
  if (removed.length === 0 || removed.length > max || !contiguousSealed) {
    throw new SluiceError(
      "internal",
      `malformed retention of ${removed.length} entries from offset ${expected}`,
    );
  }
}
