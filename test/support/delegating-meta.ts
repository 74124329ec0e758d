import type {
  CommittedOffset,
  GroupGuard,
  GroupRecord,
  GroupStore,
  GroupSummary,
  OffsetWrite,
  OffsetWriteResult,
} from "../../src/meta/group-store.js";
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
} from "../../src/meta/meta-store.js";

/**
 * Forwards every call to another store (both ports of the metadata table); tests subclass it to
 * intercept one operation.
 */
export class DelegatingMetaStore implements MetaStore, GroupStore {
  constructor(protected readonly inner: MetaStore & GroupStore) {}

  createTopic(topic: TopicMeta): Promise<void> {
    return this.inner.createTopic(topic);
  }
  getTopic(name: string): Promise<TopicMeta | undefined> {
    return this.inner.getTopic(name);
  }
  listTopics(): Promise<TopicMeta[]> {
    return this.inner.listTopics();
  }
  deleteTopic(name: string, id: string): Promise<boolean> {
    return this.inner.deleteTopic(name, id);
  }
  getHead(topicId: string, partition: number): Promise<PartitionHead> {
    return this.inner.getHead(topicId, partition);
  }
  commitAppend(request: CommitRequest): Promise<CommitResult> {
    return this.inner.commitAppend(request);
  }
  getProducers(
    topicId: string,
    partition: number,
    producerIds: readonly string[],
  ): Promise<Map<string, ProducerState>> {
    return this.inner.getProducers(topicId, partition, producerIds);
  }
  readIndex(
    topicId: string,
    partition: number,
    offset: number,
    limit: number,
  ): Promise<IndexEntry[]> {
    return this.inner.readIndex(topicId, partition, offset, limit);
  }
  listEntries(
    topicId: string,
    partition: number,
    from: number,
    limit: number,
  ): Promise<IndexEntry[]> {
    return this.inner.listEntries(topicId, partition, from, limit);
  }
  beginIntent(
    topic: { name: string; id: string },
    partition: number,
    intent: Intent,
  ): Promise<boolean> {
    return this.inner.beginIntent(topic, partition, intent);
  }
  replaceEntries(
    topicId: string,
    partition: number,
    intentId: string,
    replaced: IndexEntry[],
    sealed: IndexEntry,
    now: number,
  ): Promise<boolean> {
    return this.inner.replaceEntries(topicId, partition, intentId, replaced, sealed, now);
  }
  advanceLogStart(
    topicId: string,
    partition: number,
    intentId: string,
    expected: number,
    removed: IndexEntry[],
    now: number,
  ): Promise<boolean> {
    return this.inner.advanceLogStart(topicId, partition, intentId, expected, removed, now);
  }
  abortIntent(
    topicId: string,
    partition: number,
    kind: IntentKind,
    baseOffset: number,
    id: string,
  ): Promise<boolean> {
    return this.inner.abortIntent(topicId, partition, kind, baseOffset, id);
  }
  listIntents(topicId: string, partition: number): Promise<Intent[]> {
    return this.inner.listIntents(topicId, partition);
  }
  dropIntent(
    topicId: string,
    partition: number,
    kind: IntentKind,
    baseOffset: number,
  ): Promise<void> {
    return this.inner.dropIntent(topicId, partition, kind, baseOffset);
  }
  listDeletedTopics(): Promise<DeletedTopic[]> {
    return this.inner.listDeletedTopics();
  }
  purgePartition(topicId: string, partition: number, limit: number): Promise<number> {
    return this.inner.purgePartition(topicId, partition, limit);
  }
  forgetDeletedTopic(id: string): Promise<void> {
    return this.inner.forgetDeletedTopic(id);
  }
  get maxReplacedPerRoll(): number {
    return this.inner.maxReplacedPerRoll;
  }
  get maxRemovedPerAdvance(): number {
    return this.inner.maxRemovedPerAdvance;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  getGroup(name: string): Promise<GroupRecord | undefined> {
    return this.inner.getGroup(name);
  }
  listGroups(): Promise<GroupSummary[]> {
    return this.inner.listGroups();
  }
  putGroup(record: GroupRecord, expectedVersion: number | null): Promise<boolean> {
    return this.inner.putGroup(record, expectedVersion);
  }
  deleteGroup(name: string, incarnation: string, expectedVersion: number): Promise<boolean> {
    return this.inner.deleteGroup(name, incarnation, expectedVersion);
  }
  getOffsets(group: string, incarnation: string, topic?: string): Promise<CommittedOffset[]> {
    return this.inner.getOffsets(group, incarnation, topic);
  }
  writeOffsets(
    group: string,
    guard: GroupGuard,
    writes: OffsetWrite[],
  ): Promise<OffsetWriteResult> {
    return this.inner.writeOffsets(group, guard, writes);
  }
  purgeOffsets(group: string, keep?: string): Promise<number> {
    return this.inner.purgeOffsets(group, keep);
  }
  get maxOffsetsPerWrite(): number {
    return this.inner.maxOffsetsPerWrite;
  }
}
