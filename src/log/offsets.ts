import type { MetaStore } from "../meta/meta-store.js";
import { decodeBatches } from "../record/codec.js";
import type { ObjectCache } from "./object-cache.js";
import { retryIdempotent } from "./retry.js";

/** Index entries fetched per metadata round trip while scanning for a timestamp. */
const INDEX_PAGE = 32;

/**
 * Kafka's ListOffsets by time: the first readable offset whose record timestamp is ≥
 * `timestamp`, or the log-end offset when there is none. Timestamps may be set by producers and
 * need not grow with offsets, so the index's per-object maximum only says which object to open
 * first; records in it below the log start offset do not count.
 */
export async function offsetForTimestamp(
  meta: MetaStore,
  cache: ObjectCache,
  topicId: string,
  partition: number,
  timestamp: number,
): Promise<number> {
  const head = await retryIdempotent(() => meta.getHead(topicId, partition));
  let next = head.logStartOffset;
  while (next < head.logEndOffset) {
    const entries = await retryIdempotent(() =>
      meta.readIndex(topicId, partition, next, INDEX_PAGE),
    );
    if (entries.length === 0) break;
    for (const entry of entries) {
      if (entry.maxTimestamp >= timestamp) {
        const body = await retryIdempotent(() => cache.get(entry.objectKey));
        for (const batch of decodeBatches(body)) {
          if (batch.maxTimestamp < timestamp) continue;
          const base = entry.baseOffset + batch.firstOffsetDelta;
          const found = batch.records.findIndex(
            (r, i) => base + i >= next && r.timestamp >= timestamp,
          );
          if (found >= 0) return base + found;
        }
      }
      next = Math.max(next, entry.baseOffset + entry.count);
    }
  }
  return head.logEndOffset;
}
