import { heldBy, parseGroupDoc, partitionKey } from "../../src/groups/doc.js";
import type {
  GroupGuard,
  GroupRecord,
  OffsetWrite,
  OffsetWriteResult,
} from "../../src/meta/group-store.js";
import type { PartitionHead } from "../../src/meta/meta-store.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";

/**
 * Watches every group write on its way to the real store: invariant H (no partition in two
 * held sets) must hold in every stored state, and every offset write that lands is recorded so
 * a test can check offsets never moved backwards. It can also stand in for retention, which
 * the log does not implement yet, by raising partitions' log start offsets.
 */
export class CheckedMetaStore extends DelegatingMetaStore {
  /** Invariant H violations, one line each; a test fails if any appear. */
  readonly violations: string[] = [];
  /** Offset writes that landed with a known previous offset and went below it. */
  readonly backwards: {
    group: string;
    topic: string;
    partition: number;
    from: number;
    to: number;
  }[] = [];
  private readonly logStarts = new Map<string, number>();

  override async putGroup(record: GroupRecord, expectedVersion: number | null): Promise<boolean> {
    const doc = parseGroupDoc(record.doc);
    const holder = new Map<string, string>();
    for (const [id, m] of Object.entries(doc.members)) {
      for (const [t, p] of heldBy(m)) {
        const key = partitionKey(t, p);
        const other = holder.get(key);
        if (other !== undefined) {
          this.violations.push(
            `${record.name} v${record.version}: ${t}/${p} held by ${other} and ${id}`,
          );
        }
        holder.set(key, id);
      }
    }
    return this.inner.putGroup(record, expectedVersion);
  }

  override async writeOffsets(
    group: string,
    guard: GroupGuard,
    writes: OffsetWrite[],
  ): Promise<OffsetWriteResult> {
    const result = await this.inner.writeOffsets(group, guard, writes);
    if (result.ok) {
      for (const { value, expected } of writes) {
        if (expected !== null && value.offset < expected) {
          const { topic, partition, offset: to } = value;
          this.backwards.push({ group, topic, partition, from: expected, to });
        }
      }
    }
    return result;
  }

  override async getHead(topicId: string, partition: number): Promise<PartitionHead> {
    const head = await this.inner.getHead(topicId, partition);
    const start = this.logStarts.get(`${topicId}/${partition}`) ?? 0;
    return { ...head, logStartOffset: Math.max(head.logStartOffset, start) };
  }

  /** What retention would do: records below `offset` are no longer readable. */
  retain(topicId: string, partition: number, offset: number): void {
    this.logStarts.set(`${topicId}/${partition}`, offset);
  }
}
