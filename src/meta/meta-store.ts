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

/** One applied idempotent request (docs/rfcs/0004-idempotent-produce.md). */
export interface ProducerBatch {
  seq: number;
  baseOffset: number;
  count: number;
}

/** An idempotent producer's state in one partition. */
export interface ProducerState {
  epoch: number;
  /** The sequence number of the last applied request. */
  lastSeq: number;
  /** The last applied requests, oldest first, at most PRODUCER_RECENT_BATCHES; ends at lastSeq. */
  recent: ProducerBatch[];
  updatedAt: number;
  /** 1 when created, one more with every write: what a commit's producer condition pins. */
  version: number;
}

/** A producer state written with a commit, on the condition that the stored version is `expected`. */
export interface ProducerWrite {
  producerId: string;
  /** The version read; null: no state may be stored for this producer. */
  expected: number | null;
  /** Its `version` must be `(expected ?? 0) + 1`. */
  state: ProducerState;
}

export interface CommitRequest {
  topicId: string;
  partition: number;
  /** The log-end offset the writer read; the commit applies only if it is still current. */
  expectedLogEndOffset: number;
  /** Must have `baseOffset === expectedLogEndOffset`. */
  entry: IndexEntry;
  /** Producer states stored in the same atomic step; distinct ids, at most MAX_PRODUCERS_PER_COMMIT. */
  producers?: ProducerWrite[];
}

/**
 * On success `head` is the new head; on a lost race it is the head that won. `producerConflict`
 * says that a producer's stored version was not the expected one (reported at least whenever
 * the head's condition held; `head` is then the unchanged current head).
 */
export type CommitResult =
  | { committed: true; head: PartitionHead }
  | { committed: false; head: PartitionHead; producerConflict?: boolean };

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
   * Atomically: if the head's log-end offset equals `expectedLogEndOffset` and every producer
   * write's `expected` version is the stored one, move the head to `expected + entry.count`,
   * store the index entry and the producer states; otherwise change nothing.
   */
  commitAppend(request: CommitRequest): Promise<CommitResult>;
  /**
   * The stored states of these producers in the partition, strongly consistent; producers
   * without state are absent from the map.
   */
  getProducers(
    topicId: string,
    partition: number,
    producerIds: readonly string[],
  ): Promise<Map<string, ProducerState>>;
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
   * Deletes up to `limit` items (head, index entries, intents, producer states) of a deleted
   * topic's partition, the head last;
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

/**
 * Producers one commit may carry: a DynamoDB transaction holds 100 items, two of which are the
 * head and the entry; the same on every adapter.
 */
export const MAX_PRODUCERS_PER_COMMIT = 90;

/** Applied requests a producer state remembers, to answer resends (Kafka keeps 5 batches). */
export const PRODUCER_RECENT_BATCHES = 5;

/** Largest epoch and sequence number: Kafka's int32 range. */
export const MAX_PRODUCER_NUMBER = 2 ** 31 - 1;

export const PRODUCER_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

const isProducerNumber = (n: number) => Number.isInteger(n) && n >= 0 && n <= MAX_PRODUCER_NUMBER;

function wellFormedProducerWrite({ producerId, expected, state }: ProducerWrite): boolean {
  const { recent } = state;
  return (
    PRODUCER_ID_PATTERN.test(producerId) &&
    (expected === null || (Number.isSafeInteger(expected) && expected >= 1)) &&
    state.version === (expected ?? 0) + 1 &&
    isProducerNumber(state.epoch) &&
    isProducerNumber(state.lastSeq) &&
    Number.isSafeInteger(state.updatedAt) &&
    recent.length >= 1 &&
    recent.length <= PRODUCER_RECENT_BATCHES &&
    recent[recent.length - 1]!.seq === state.lastSeq &&
    recent.every(
      (b) =>
        isProducerNumber(b.seq) &&
        Number.isSafeInteger(b.baseOffset) &&
        b.baseOffset >= 0 &&
        Number.isSafeInteger(b.count) &&
        b.count >= 1,
    )
  );
}

/** Adapters call this first: a malformed commit is a bug in the caller, never applied. */
export function checkCommitRequest({
  expectedLogEndOffset,
  entry,
  producers,
}: CommitRequest): void {
  const writes = producers ?? [];
  if (
    writes.length > MAX_PRODUCERS_PER_COMMIT ||
    new Set(writes.map((w) => w.producerId)).size !== writes.length ||
    !writes.every(wellFormedProducerWrite)
  ) {
    throw new SluiceError(
      "internal",
      `malformed commit: ${writes.length} producer writes, not all distinct and well-formed`,
    );
  }
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
