import { ulid } from "ulid";
import type { IndexEntry, MetaStore, PartitionHead, TopicMeta } from "../meta/meta-store.js";
import { retryIdempotent } from "./retry.js";

/**
 * The sealed segments retention deletes, oldest first (docs/rfcs/0003-segments.md §6): the
 * longest prefix of sealed segments each past `retention.ms` (by its newest record) or beyond
 * `retention.bytes` (Kafka's rule: delete while what remains is still at least the limit).
 * The walk stops at the first chunk, so the active segment is never touched.
 */
export function chooseRetired(entries: IndexEntry[], topic: TopicMeta, now: number): IndexEntry[] {
  const retentionMs = topic.config["retention.ms"];
  const retentionBytes = topic.config["retention.bytes"];
  let size = entries.reduce((sum, e) => sum + e.bytes, 0);
  const retired: IndexEntry[] = [];
  for (const entry of entries) {
    if (entry.kind !== "sealed") break;
    const expired = retentionMs >= 0 && entry.maxTimestamp < now - retentionMs;
    const oversize = retentionBytes >= 0 && size - entry.bytes >= retentionBytes;
    if (!expired && !oversize) break;
    retired.push(entry);
    size -= entry.bytes;
  }
  return retired;
}

/**
 * Removes `retired` (a prefix of the index from the head's log start) in steps the table can
 * apply atomically, each behind an intent at the log start it moves from. Answers how many
 * segments went; stops at the first step another pass holds or a concurrent change defeats.
 */
export async function retire(
  meta: MetaStore,
  topic: TopicMeta,
  partition: number,
  head: PartitionHead,
  retired: IndexEntry[],
  now: () => number,
): Promise<number> {
  let expected = head.logStartOffset;
  let done = 0;
  while (done < retired.length) {
    const step = retired.slice(done, done + meta.maxRemovedPerAdvance);
    if (step[0]!.baseOffset !== expected) break;
    const id = ulid();
    const begun = await retryIdempotent(() =>
      meta.beginIntent(topic, partition, {
        kind: "retire",
        baseOffset: expected,
        id,
        objectKeys: step.map((e) => e.objectKey),
        sealedKey: null,
        createdAt: now(),
        doneAt: null,
      }),
    );
    if (!begun) break;
    const advanced = await retryIdempotent(() =>
      meta.advanceLogStart(topic.id, partition, id, expected, step, now()),
    );
    if (!advanced) {
      await retryIdempotent(() => meta.abortIntent(topic.id, partition, "retire", expected, id));
      break;
    }
    done += step.length;
    const last = step.at(-1)!;
    expected = last.baseOffset + last.count;
  }
  return done;
}
