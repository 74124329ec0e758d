/* eslint-disable @typescript-eslint/require-await -- the port is async; a Map has nothing to wait for, and async turns throws into rejections. */
import { SluiceError } from "../errors.js";
import type {
  CommitRequest,
  CommitResult,
  IndexEntry,
  MetaStore,
  PartitionHead,
  TopicMeta,
} from "./meta-store.js";
import { checkCommitRequest } from "./meta-store.js";

interface PartitionState {
  head: PartitionHead;
  /** Ascending by base offset: a commit always appends at the log-end offset. */
  entries: IndexEntry[];
}

/**
 * The reference semantics of the MetaStore port, for tests and single-process use. It
 * hands out copies so that callers can never change what it holds.
 */
export class MemoryMetaStore implements MetaStore {
  readonly #topics = new Map<string, TopicMeta>();
  readonly #partitions = new Map<string, PartitionState>();

  async createTopic(topic: TopicMeta): Promise<void> {
    if (this.#topics.has(topic.name)) {
      throw new SluiceError("topic_exists", `topic ${topic.name} already exists`);
    }
    this.#topics.set(topic.name, structuredClone(topic));
    for (let p = 0; p < topic.partitions; p++) {
      this.#partitions.set(partitionKey(topic.id, p), emptyPartition());
    }
  }

  async getTopic(name: string): Promise<TopicMeta | undefined> {
    const topic = this.#topics.get(name);
    return topic && structuredClone(topic);
  }

  async listTopics(): Promise<TopicMeta[]> {
    return [...this.#topics.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((t) => structuredClone(t));
  }

  async deleteTopic(name: string, id: string): Promise<boolean> {
    if (this.#topics.get(name)?.id !== id) return false;
    return this.#topics.delete(name);
  }

  async getHead(topicId: string, partition: number): Promise<PartitionHead> {
    return { ...this.#state(topicId, partition).head };
  }

  async commitAppend(request: CommitRequest): Promise<CommitResult> {
    checkCommitRequest(request);
    const key = partitionKey(request.topicId, request.partition);
    const state = this.#partitions.get(key) ?? emptyPartition();
    if (state.head.logEndOffset !== request.expectedLogEndOffset) {
      return { committed: false, head: { ...state.head } };
    }
    state.head = {
      logStartOffset: state.head.logStartOffset,
      logEndOffset: request.expectedLogEndOffset + request.entry.count,
    };
    state.entries.push({ ...request.entry });
    this.#partitions.set(key, state);
    return { committed: true, head: { ...state.head } };
  }

  async readIndex(
    topicId: string,
    partition: number,
    offset: number,
    limit: number,
  ): Promise<IndexEntry[]> {
    const { entries } = this.#state(topicId, partition);
    const floor = floorIndex(entries, offset);
    if (floor < 0 || limit <= 0) return [];
    return entries.slice(floor, floor + limit).map((e) => ({ ...e }));
  }

  async close(): Promise<void> {}

  /** A partition never written reads as an empty one at offset 0, as the port requires. */
  #state(topicId: string, partition: number): PartitionState {
    return this.#partitions.get(partitionKey(topicId, partition)) ?? emptyPartition();
  }
}

function emptyPartition(): PartitionState {
  return { head: { logStartOffset: 0, logEndOffset: 0 }, entries: [] };
}

function partitionKey(topicId: string, partition: number): string {
  return JSON.stringify([topicId, partition]);
}

/** Position of the entry with the greatest base offset ≤ offset, or -1. */
function floorIndex(entries: IndexEntry[], offset: number): number {
  let lo = 0;
  let hi = entries.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.baseOffset <= offset) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}
