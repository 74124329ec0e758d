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
  ProducerState,
  TopicMeta,
} from "./meta-store.js";
import {
  MAX_REPLACED_PER_ROLL,
  checkAdvanceRequest,
  checkCommitRequest,
  checkReplaceRequest,
} from "./meta-store.js";

interface PartitionState {
  head: PartitionHead;
  /**
   * Ascending by base offset: a commit appends at the log-end offset, a roll rewrites a run of
   * entries below it in place and retention removes a prefix.
   */
  entries: IndexEntry[];
  /** intentKey(kind, base) → intent. */
  intents: Map<string, Intent>;
  /** Producer id → its idempotent-produce state in this partition. */
  producers: Map<string, ProducerState>;
}

/** A committed offset as stored: one per (group, topic, partition), of whichever incarnation wrote last. */
interface StoredOffset extends CommittedOffset {
  incarnation: string;
}

/**
 * The reference semantics of the MetaStore, GroupStore and KeyStore ports, for tests and
 * single-process use. It hands out copies so that callers can never change what it holds.
 */
export class MemoryMetaStore implements MetaStore, GroupStore, KeyStore {
  readonly maxOffsetsPerWrite = Infinity;
  readonly maxReplacedPerRoll = MAX_REPLACED_PER_ROLL;
  readonly maxRemovedPerAdvance = Infinity;
  readonly #topics = new Map<string, TopicMeta>();
  readonly #partitions = new Map<string, PartitionState>();
  /** Topic id → tombstone. */
  readonly #deleted = new Map<string, DeletedTopic>();
  readonly #groups = new Map<string, GroupRecord>();
  /** Group name → partitionKey(topic, partition) → offset. */
  readonly #offsets = new Map<string, Map<string, StoredOffset>>();
  readonly #keys = new Map<string, ApiKeyRecord>();

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
    const topic = this.#topics.get(name);
    if (topic?.id !== id) return false;
    this.#topics.delete(name);
    this.#deleted.set(id, { id, name, partitions: topic.partitions, deletedAt: Date.now() });
    return true;
  }

  async getHead(topicId: string, partition: number): Promise<PartitionHead> {
    return { ...this.#state(topicId, partition).head };
  }

  async commitAppend(request: CommitRequest): Promise<CommitResult> {
    checkCommitRequest(request);
    const key = partitionKey(request.topicId, request.partition);
    const state = this.#partitions.get(key) ?? emptyPartition();
    const producers = request.producers ?? [];
    const producerConflict = producers.some(
      (w) => (state.producers.get(w.producerId)?.version ?? null) !== w.expected,
    );
    if (state.head.logEndOffset !== request.expectedLogEndOffset || producerConflict) {
      return {
        committed: false,
        head: { ...state.head },
        ...(producerConflict ? { producerConflict } : {}),
      };
    }
    state.head = {
      logStartOffset: state.head.logStartOffset,
      logEndOffset: request.expectedLogEndOffset + request.entry.count,
    };
    state.entries.push(copyEntry(request.entry));
    for (const w of producers) state.producers.set(w.producerId, copyProducer(w.state));
    this.#partitions.set(key, state);
    return { committed: true, head: { ...state.head } };
  }

  async getProducers(
    topicId: string,
    partition: number,
    producerIds: readonly string[],
  ): Promise<Map<string, ProducerState>> {
    const { producers } = this.#state(topicId, partition);
    const found = new Map<string, ProducerState>();
    for (const id of producerIds) {
      const stored = producers.get(id);
      if (stored) found.set(id, copyProducer(stored));
    }
    return found;
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
    return entries.slice(floor, floor + limit).map(copyEntry);
  }

  async listEntries(
    topicId: string,
    partition: number,
    from: number,
    limit: number,
  ): Promise<IndexEntry[]> {
    const { entries } = this.#state(topicId, partition);
    if (limit <= 0) return [];
    const floor = floorIndex(entries, from);
    const start = floor >= 0 && entries[floor]!.baseOffset < from ? floor + 1 : Math.max(floor, 0);
    return entries.slice(start, start + limit).map(copyEntry);
  }

  async beginIntent(
    topic: { name: string; id: string },
    partition: number,
    intent: Intent,
  ): Promise<boolean> {
    if (this.#topics.get(topic.name)?.id !== topic.id) return false;
    const key = partitionKey(topic.id, partition);
    const state = this.#partitions.get(key) ?? emptyPartition();
    const ik = intentKey(intent.kind, intent.baseOffset);
    if (state.intents.has(ik)) return false;
    state.intents.set(ik, { ...copyIntent(intent), doneAt: null });
    this.#partitions.set(key, state);
    return true;
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
    const state = this.#partitions.get(partitionKey(topicId, partition));
    const intent = state?.intents.get(intentKey("roll", sealed.baseOffset));
    if (!state || intent?.id !== intentId) return false;
    const at = floorIndex(state.entries, sealed.baseOffset);
    if (intent.doneAt !== null) {
      // A replay of a swap that applied: its sealed entry is where the swap put it.
      const current = state.entries[at];
      return current?.baseOffset === sealed.baseOffset && current.objectKey === sealed.objectKey;
    }
    if (!holds(state.entries, at, replaced)) return false;
    state.entries.splice(at, replaced.length, copyEntry(sealed));
    intent.doneAt = now;
    return true;
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
    const state = this.#partitions.get(partitionKey(topicId, partition));
    const intent = state?.intents.get(intentKey("retire", expected));
    if (!state || intent?.id !== intentId) return false;
    const last = removed[removed.length - 1]!;
    const start = last.baseOffset + last.count;
    // A replay of an advance that applied: the log start has moved at least that far.
    if (intent.doneAt !== null) return state.head.logStartOffset >= start;
    if (state.head.logStartOffset !== expected) return false;
    const at = floorIndex(state.entries, expected);
    if (!holds(state.entries, at, removed)) return false;
    state.entries.splice(at, removed.length);
    state.head = { ...state.head, logStartOffset: start };
    intent.doneAt = now;
    return true;
  }

  async abortIntent(
    topicId: string,
    partition: number,
    kind: IntentKind,
    baseOffset: number,
    id: string,
  ): Promise<boolean> {
    const intents = this.#partitions.get(partitionKey(topicId, partition))?.intents;
    const key = intentKey(kind, baseOffset);
    const intent = intents?.get(key);
    if (intent?.id !== id || intent.doneAt !== null) return false;
    return intents!.delete(key);
  }

  async listIntents(topicId: string, partition: number): Promise<Intent[]> {
    return [...this.#state(topicId, partition).intents.values()]
      .sort((a, b) => compareText(a.kind, b.kind) || a.baseOffset - b.baseOffset)
      .map(copyIntent);
  }

  async dropIntent(
    topicId: string,
    partition: number,
    kind: IntentKind,
    baseOffset: number,
  ): Promise<void> {
    this.#partitions
      .get(partitionKey(topicId, partition))
      ?.intents.delete(intentKey(kind, baseOffset));
  }

  async listDeletedTopics(): Promise<DeletedTopic[]> {
    return [...this.#deleted.values()]
      .sort((a, b) => compareText(a.id, b.id))
      .map((d) => ({ ...d }));
  }

  async purgePartition(topicId: string, partition: number, limit: number): Promise<number> {
    const key = partitionKey(topicId, partition);
    const state = this.#partitions.get(key);
    if (!state || limit <= 0) return 0;
    let purged = 0;
    for (const ik of state.intents.keys()) {
      if (purged === limit) return purged;
      state.intents.delete(ik);
      purged++;
    }
    for (const id of state.producers.keys()) {
      if (purged === limit) return purged;
      state.producers.delete(id);
      purged++;
    }
    const entries = Math.min(state.entries.length, limit - purged);
    state.entries.splice(state.entries.length - entries, entries);
    purged += entries;
    if (purged === limit) return purged;
    // The head goes last: it is the item that makes the partition exist here.
    this.#partitions.delete(key);
    return purged + 1;
  }

  async forgetDeletedTopic(id: string): Promise<void> {
    this.#deleted.delete(id);
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

  async putKey(record: ApiKeyRecord): Promise<void> {
    if (this.#keys.has(record.id)) {
      throw new SluiceError("conflict", `API key ${record.id} already exists`);
    }
    this.#keys.set(record.id, copyKey(record));
  }

  async getKey(id: string): Promise<ApiKeyRecord | undefined> {
    const key = this.#keys.get(id);
    return key && copyKey(key);
  }

  async listKeys(): Promise<ApiKeyInfo[]> {
    return [...this.#keys.values()]
      .sort((a, b) => compareText(a.id, b.id))
      .map(({ secretHash: _, ...info }) => ({
        ...info,
        scopes: [...info.scopes],
        rateLimit: info.rateLimit && { ...info.rateLimit },
      }));
  }

  async revokeKey(id: string, at: number): Promise<boolean> {
    const key = this.#keys.get(id);
    if (!key) return false;
    key.revokedAt ??= at;
    return true;
  }

  async close(): Promise<void> {}

  /** A partition never written reads as an empty one at offset 0, as the port requires. */
  #state(topicId: string, partition: number): PartitionState {
    return this.#partitions.get(partitionKey(topicId, partition)) ?? emptyPartition();
  }
}

function emptyPartition(): PartitionState {
  return {
    head: { logStartOffset: 0, logEndOffset: 0 },
    entries: [],
    intents: new Map(),
    producers: new Map(),
  };
}

/** A copy sharing nothing with `record`: its digest bytes, scopes and limit included. */
function copyKey(record: ApiKeyRecord): ApiKeyRecord {
  return {
    id: record.id,
    secretHash: new Uint8Array(record.secretHash),
    scopes: [...record.scopes],
    description: record.description,
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    revokedAt: record.revokedAt,
    rateLimit: record.rateLimit && { ...record.rateLimit },
  };
}

function copyProducer(state: ProducerState): ProducerState {
  return { ...state, recent: state.recent.map((b) => ({ ...b })) };
}

function intentKey(kind: IntentKind, baseOffset: number): string {
  return `${kind}#${baseOffset}`;
}

function copyEntry(entry: IndexEntry): IndexEntry {
  const { footer, ...rest } = entry;
  return footer ? { ...rest, footer: { ...footer } } : rest;
}

function copyIntent(intent: Intent): Intent {
  return { ...intent, objectKeys: [...intent.objectKeys] };
}

/**
 * Whether `entries`, from position `at`, are exactly `expected` (contiguous, as the checks
 * require), each still naming its object.
 */
function holds(entries: IndexEntry[], at: number, expected: IndexEntry[]): boolean {
  return (
    at >= 0 &&
    expected.every((e, i) => {
      const current = entries[at + i];
      return current?.baseOffset === e.baseOffset && current.objectKey === e.objectKey;
    })
  );
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
