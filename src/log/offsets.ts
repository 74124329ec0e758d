import { SluiceError } from "../errors.js";
import type { IndexEntry, MetaStore } from "../meta/meta-store.js";
import { IndexGaps } from "./index-walk.js";
import { retryIdempotent } from "./retry.js";
import type { SegmentFiles } from "./segment-files.js";

/** Index entries fetched per metadata round trip while scanning for a timestamp. */
const INDEX_PAGE = 32;

/**
 * Kafka's ListOffsets by time: the first readable offset whose record timestamp is ≥
 * `timestamp`, or the log-end offset when there is none. Timestamps may be set by producers and
 * need not grow with offsets, so the index's per-object maximum only says which object to open
 * first, and a sealed segment's time index where in it to start; records below the log start
 * offset do not count.
 */
export async function offsetForTimestamp(
  meta: MetaStore,
  files: SegmentFiles,
  topicId: string,
  partition: number,
  timestamp: number,
): Promise<number> {
  const head = await retryIdempotent(() => meta.getHead(topicId, partition));
  const logEnd = head.logEndOffset;
  let next = head.logStartOffset;
  const gaps = new IndexGaps(meta, topicId, partition);
  const onGap = async () => {
    next = Math.max(next, (await gaps.pause(next)).logStartOffset);
  };

  scan: while (next < logEnd) {
    const entries = await retryIdempotent(() =>
      meta.readIndex(topicId, partition, next, INDEX_PAGE),
    );
    const ahead = entries.filter((e) => e.baseOffset + e.count > next);
    if (ahead.length === 0) {
      await onGap();
      continue;
    }
    for (const entry of ahead) {
      if (entry.baseOffset + entry.count <= next) continue;
      if (entry.baseOffset > next) {
        await onGap();
        continue scan;
      }
      if (entry.maxTimestamp >= timestamp) {
        let found: number | undefined;
        try {
          found = await firstAtOrAfter(files, entry, next, timestamp);
        } catch (err) {
          if (!(err instanceof SluiceError && err.code === "not_found")) throw err;
          await onGap();
          continue scan;
        }
        if (found !== undefined) return Math.min(found, logEnd);
      }
      next = entry.baseOffset + entry.count;
    }
  }
  return logEnd;
}

async function firstAtOrAfter(
  files: SegmentFiles,
  entry: IndexEntry,
  from: number,
  timestamp: number,
): Promise<number | undefined> {
  const start = Math.max(from, await files.scanStartForTimestamp(entry, timestamp));
  for await (const { baseOffset, batch } of files.batches(entry, start)) {
    if (batch.maxTimestamp < timestamp) continue;
    const found = batch.records.findIndex(
      (r, i) => baseOffset + i >= start && r.timestamp >= timestamp,
    );
    if (found >= 0) return baseOffset + found;
  }
  return undefined;
}
