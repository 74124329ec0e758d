import { SluiceError } from "../errors.js";
import type { IndexEntry, MetaStore, PartitionHead } from "../meta/meta-store.js";
import type { LogRecord } from "../record/record.js";
import { IndexGaps } from "./index-walk.js";
import { retryIdempotent } from "./retry.js";
import type { SegmentFiles } from "./segment-files.js";

export interface ReadLimits {
  maxRecords: number;
  maxBytes: number;
}

export interface ReadRecord extends LogRecord {
  offset: number;
}

export interface ReadResult {
  records: ReadRecord[];
  nextOffset: number;
  head: PartitionHead;
}

/** Index entries fetched per metadata round trip while paging through a partition. */
const INDEX_PAGE = 32;

/**
 * Reads committed records from `offset`. Only the index (written in the same atomic step as the
 * log-end offset) leads to objects, so an uploaded but uncommitted object is never read.
 *
 * Rolls and retention rewrite the index under a running reader, and an index query may show
 * half of such a change (docs/rfcs/0003-segments.md §4). Every version of the index maps an
 * offset to the same record, so the reader emits records only at `next`, skips entries that end
 * before it, and treats a missing entry or object as a gap: it returns what it has, or re-reads.
 */
export async function readPartition(
  meta: MetaStore,
  files: SegmentFiles,
  topicId: string,
  partition: number,
  offset: number,
  limits: ReadLimits,
): Promise<ReadResult> {
  let head = await retryIdempotent(() => meta.getHead(topicId, partition));
  if (offset < head.logStartOffset || offset > head.logEndOffset) throw outOfRange(offset, head);
  const logEnd = head.logEndOffset;
  const records: ReadRecord[] = [];
  let next = offset;
  let bytes = 0;
  const gaps = new IndexGaps(meta, topicId, partition);

  /** A gap at `next`: answer with what we have, or re-read after a pause. */
  const onGap = async (): Promise<"return" | "reread"> => {
    if (records.length > 0) return "return";
    head = await gaps.pause(next);
    if (next < head.logStartOffset) throw outOfRange(next, head);
    return "reread";
  };

  collect: while (next < logEnd) {
    const entries = await retryIdempotent(() =>
      meta.readIndex(topicId, partition, next, INDEX_PAGE),
    );
    const ahead = entries.filter((e) => e.baseOffset + e.count > next);
    if (ahead.length === 0) {
      if ((await onGap()) === "return") break;
      continue;
    }
    for (const entry of ahead) {
      // Entries overlap when the query saw both a sealed segment and chunks it replaced.
      if (entry.baseOffset + entry.count <= next) continue;
      if (entry.baseOffset > next) {
        if ((await onGap()) === "return") break collect;
        continue collect;
      }
      let full: boolean;
      try {
        full = await collectEntry(entry);
      } catch (err) {
        // The object went away: this reader stalled past the grace period of a roll or
        // retention that replaced it. A fresh index leads to the objects that hold it now.
        if (!(err instanceof SluiceError && err.code === "not_found")) throw err;
        if ((await onGap()) === "return") break collect;
        continue collect;
      }
      if (full) break collect;
    }
  }
  return { records, nextOffset: next, head: { ...head, logEndOffset: logEnd } };

  /** Collects from one entry; true when the limits are reached or the log end is. */
  async function collectEntry(entry: IndexEntry): Promise<boolean> {
    for await (const { baseOffset, batch } of files.batches(entry, next)) {
      for (let i = Math.max(0, next - baseOffset); i < batch.records.length; i++) {
        const recordOffset = baseOffset + i;
        if (recordOffset >= logEnd) return true;
        const record = batch.records[i]!;
        const size = recordSize(record);
        // Kafka's rule: the first record is returned even when it alone exceeds maxBytes.
        const overBytes = records.length > 0 && bytes + size > limits.maxBytes;
        if (records.length >= limits.maxRecords || overBytes) return true;
        records.push({ ...record, offset: recordOffset });
        bytes += size;
        next = recordOffset + 1;
      }
    }
    return false;
  }
}

function outOfRange(offset: number, head: PartitionHead): SluiceError {
  return new SluiceError(
    "offset_out_of_range",
    `offset ${offset} is outside [${head.logStartOffset}, ${head.logEndOffset}]`,
    { details: { ...head } },
  );
}

/** The size a fetch's maxBytes counts: payload bytes, not the encoding's. */
export function recordSize(record: LogRecord): number {
  let size = record.value.byteLength + (record.key?.byteLength ?? 0);
  for (const [k, v] of Object.entries(record.headers)) size += k.length + v.length;
  return size;
}
