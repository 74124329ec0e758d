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
  IndexEntry,
  MetaStore,
  PartitionHead,
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
  readIndex(
    topicId: string,
    partition: number,
    offset: number,
    limit: number,
  ): Promise<IndexEntry[]> {
    return this.inner.readIndex(topicId, partition, offset, limit);
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
