import type {
  CommitRequest,
  CommitResult,
  IndexEntry,
  MetaStore,
  PartitionHead,
  TopicMeta,
} from "../../src/meta/meta-store.js";

/** Forwards every call to another MetaStore; tests subclass it to intercept one operation. */
export class DelegatingMetaStore implements MetaStore {
  constructor(protected readonly inner: MetaStore) {}

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
}
