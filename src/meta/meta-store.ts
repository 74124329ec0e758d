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
  /** Deletes the topic item if it still has this id; false if it was already gone or replaced. */
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
  close(): Promise<void>;
}

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
