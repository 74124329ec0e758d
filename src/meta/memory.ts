/* eslint-disable @typescript-eslint/require-await -- the port is async; a Map has nothing to wait for, and async turns throws into rejections. */
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

/** A committed offset as stored: one per (group, topic, partition), of whichever incarnation wrote last. */
interface StoredOffset extends CommittedOffset {
  incarnation: string;
}

/**
 * The reference semantics of the MetaStore and GroupStore ports, for tests and single-process
 * use. It hands out copies so that callers can never change what it holds.
 */
export class MemoryMetaStore implements MetaStore, GroupStore {
  readonly maxOffsetsPerWrite = Infinity;
  readonly #topics = new Map<string, TopicMeta>();
  readonly #partitions = new Map<string, PartitionState>();
  readonly #groups = new Map<string, GroupRecord>();
  /** Group name → partitionKey(topic, partition) → offset. */
  readonly #offsets = new Map<string, Map<string, StoredOffset>>();

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
      .sort((a, b) => compareText(a.name, b.name))
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

  async getGroup(name: string): Promise<GroupRecord | undefined> {
    const group = this.#groups.get(name);
    return group && { ...group };
  }

  async listGroups(): Promise<GroupSummary[]> {
    return [...this.#groups.values()]
      .sort((a, b) => compareText(a.name, b.name))
      .map(({ name, incarnation, createdAt }) => ({ name, incarnation, createdAt }));
  }

  async putGroup(record: GroupRecord, expectedVersion: number | null): Promise<boolean> {
    checkGroupPut(record, expectedVersion);
    const current = this.#groups.get(record.name);
    const applies =
      expectedVersion === null
        ? current === undefined
        : current?.version === expectedVersion && current.incarnation === record.incarnation;
    if (applies) this.#groups.set(record.name, { ...record });
    return applies;
  }

  async deleteGroup(name: string, incarnation: string, expectedVersion: number): Promise<boolean> {
    const current = this.#groups.get(name);
    if (current?.incarnation !== incarnation || current.version !== expectedVersion) return false;
    return this.#groups.delete(name);
  }

  async getOffsets(group: string, incarnation: string, topic?: string): Promise<CommittedOffset[]> {
    return [...(this.#offsets.get(group)?.values() ?? [])]
      .filter((o) => o.incarnation === incarnation && (topic === undefined || o.topic === topic))
      .sort(compareOffsets)
      .map(({ incarnation: _, ...offset }) => offset);
  }

  async writeOffsets(
    group: string,
    guard: GroupGuard,
    writes: OffsetWrite[],
  ): Promise<OffsetWriteResult> {
    checkOffsetWrites(writes, this.maxOffsetsPerWrite);
    if (!guardHolds(this.#groups.get(group), guard)) return { ok: false, conflict: "group" };
    const offsets = this.#offsets.get(group) ?? new Map<string, StoredOffset>();
    const keys = writes.map(({ value }) => partitionKey(value.topic, value.partition));
    const matches = writes.every(({ value, expected }, i) => {
      const stored = offsets.get(keys[i]!);
      return currentOffset(stored, guard.incarnation, value.topicId) === expected;
    });
    if (!matches) return { ok: false, conflict: "offset" };
    writes.forEach(({ value }, i) =>
      offsets.set(keys[i]!, { ...value, incarnation: guard.incarnation }),
    );
    this.#offsets.set(group, offsets);
    return { ok: true };
  }

  async purgeOffsets(group: string, keep?: string): Promise<number> {
    const offsets = this.#offsets.get(group);
    if (!offsets) return 0;
    let purged = 0;
    for (const [key, offset] of offsets) {
      if (offset.incarnation !== keep && offsets.delete(key)) purged++;
    }
    if (offsets.size === 0) this.#offsets.delete(group);
    return purged;
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

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** By topic, then partition numerically. */
function compareOffsets(a: CommittedOffset, b: CommittedOffset): number {
  return compareText(a.topic, b.topic) || a.partition - b.partition;
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
