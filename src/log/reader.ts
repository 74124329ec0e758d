import { SluiceError } from "../errors.js";
import type { MetaStore, PartitionHead } from "../meta/meta-store.js";
import { decodeBatches } from "../record/codec.js";
import type { LogRecord } from "../record/record.js";
import type { ObjectCache } from "./object-cache.js";
import { retryIdempotent } from "./retry.js";

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
 */
export async function readPartition(
  meta: MetaStore,
  cache: ObjectCache,
  topicId: string,
  partition: number,
  offset: number,
  limits: ReadLimits,
): Promise<ReadResult> {
  const head = await retryIdempotent(() => meta.getHead(topicId, partition));
  if (offset < head.logStartOffset || offset > head.logEndOffset) {
    throw new SluiceError(
      "offset_out_of_range",
      `offset ${offset} is outside [${head.logStartOffset}, ${head.logEndOffset}]`,
      { details: { ...head } },
    );
  }
  const records: ReadRecord[] = [];
  let next = offset;
  let bytes = 0;

  collect: while (next < head.logEndOffset) {
    const entries = await retryIdempotent(() =>
      meta.readIndex(topicId, partition, next, INDEX_PAGE),
    );
    const first = entries[0];
    if (!first || first.baseOffset + first.count <= next) {
      throw new SluiceError("internal", `no index entry holds offset ${next}`, {
        details: { topicId, partition, offset: next },
      });
    }
    for (const entry of entries) {
      if (entry.baseOffset > next) {
        throw new SluiceError("internal", `index gap before offset ${entry.baseOffset}`, {
          details: { topicId, partition, expected: next },
        });
      }
      const body = await retryIdempotent(() => cache.get(entry.objectKey));
      for (const batch of decodeBatches(body)) {
        const batchBase = entry.baseOffset + batch.firstOffsetDelta;
        for (let i = Math.max(0, next - batchBase); i < batch.records.length; i++) {
          const recordOffset = batchBase + i;
          if (recordOffset >= head.logEndOffset) break collect;
          const record = batch.records[i]!;
          const size = recordSize(record);
          // Kafka's rule: the first record is returned even when it alone exceeds maxBytes.
          const overBytes = records.length > 0 && bytes + size > limits.maxBytes;
          if (records.length >= limits.maxRecords || overBytes) break collect;
          records.push({ ...record, offset: recordOffset });
          bytes += size;
          next = recordOffset + 1;
        }
      }
    }
  }
  return { records, nextOffset: next, head };
}

/** The size a fetch's maxBytes counts: payload bytes, not the encoding's. */
export function recordSize(record: LogRecord): number {
  let size = record.value.byteLength + (record.key?.byteLength ?? 0);
  for (const [k, v] of Object.entries(record.headers)) size += k.length + v.length;
  return size;
}
