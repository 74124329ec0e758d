/**
 * Sealed segment object format (docs/rfcs/0003-segments.md §2): the rolled chunks' batches back
 * to back, then a footer that locates batches by offset and by time, so a reader fetches bounded
 * byte ranges instead of the whole object. Integers are big-endian; u64 is two u32 (no BigInt).
 *
 *   [0, P)      record batches (codec.ts v1), firstOffsetDelta relative to the segment base
 *   [P, P+L)    footer, L = 56 + 12·(n + m):
 *     +0   u32  magic 0x534C5346 "SLSF"      +4   u32  version = 1
 *     +8   u32  n, offset-index slots        +12  u32  m, time-index slots
 *     +16  u32  recordCount                  +20  u64  P
 *     +28  u64  minTimestamp                 +36  u64  maxTimestamp
 *     +44  n × (u32 relativeOffset, u64 position)          offset index, ascending
 *          m × (u64 maxTimestampBefore, u32 relativeOffset) time index, ascending
 *          u32  crc32c of the footer from +0 to here
 *          u32  L, u32 magic 0x534C5347 "SLSG"              the object's last 8 bytes
 *
 * An index entry's `footer` is {position: P, length: L}: L runs from P to the end of the object,
 * CRC and trailer included, so the one ranged GET it names also checks the trailer, and a tool
 * without the index can find P from the last 8 bytes alone.
 */
import { crc32c } from "@aws-crypto/crc32c";
import { SluiceError } from "../errors.js";
import type { SegmentFooterRange } from "../meta/meta-store.js";
import { decodeBatches } from "./codec.js";

export const SEGMENT_INDEX_INTERVAL_BYTES = 64 * 1024;

const FOOTER_MAGIC = 0x534c5346;
const TRAILER_MAGIC = 0x534c5347;
const FOOTER_VERSION = 1;
const FOOTER_HEADER_BYTES = 44;
const SLOT_BYTES = 12;
const TRAILER_BYTES = 8;
/** Header, CRC and trailer: the footer of a segment with no slots. */
const FOOTER_FIXED_BYTES = FOOTER_HEADER_BYTES + 4 + TRAILER_BYTES;
const MAX_U32 = 0xffffffff;
/** Timestamps and positions are at most 2^53 - 1, so a u64's high half is at most this. */
const MAX_U64_HIGH = 0x1fffff;

/** One chunk being rolled: its index base offset, record count and whole object bytes. */
export interface SegmentSource {
  baseOffset: number;
  count: number;
  body: Uint8Array;
}

export interface BuiltSegment {
  /** The whole object: batches, footer, trailer. */
  body: Uint8Array;
  /** Where the footer starts (P) and its length to the end of the object (L). */
  footer: SegmentFooterRange;
  recordCount: number;
  minTimestamp: number;
  maxTimestamp: number;
}

export interface OffsetSlot {
  relativeOffset: number;
  position: number;
}

export interface TimeSlot {
  /** The largest timestamp of every record before `relativeOffset`. */
  maxTimestampBefore: number;
  relativeOffset: number;
}

export interface SegmentFooter {
  recordCount: number;
  /** P: the bytes of batches, which is also where the footer starts. */
  batchBytes: number;
  minTimestamp: number;
  maxTimestamp: number;
  offsetIndex: OffsetSlot[];
  timeIndex: TimeSlot[];
}

/** A byte range of whole batches: [start, end) in the object, whose first record has relative
 *  offset `relativeOffset`. */
export interface SegmentBlock {
  start: number;
  end: number;
  relativeOffset: number;
}

/** A batch whose firstOffsetDelta changes: where it lands in the segment and its new delta. */
interface Restamp {
  position: number;
  size: number;
  firstOffsetDelta: number;
}

/**
 * Concatenates the chunks' batches, byte for byte except firstOffsetDelta, which is re-stamped
 * relative to `baseOffset` (with the CRC recomputed), and appends the footer. Every chunk is
 * decoded first: its batches must cover exactly [chunk.baseOffset, chunk.baseOffset + count) and
 * the chunks must follow each other from `baseOffset`, or corrupt_data is thrown, so bad bytes
 * or a stale index entry are never sealed.
 */
export function buildSegment(baseOffset: number, chunks: SegmentSource[]): BuiltSegment {
  const offsetIndex: OffsetSlot[] = [];
  const timeIndex: TimeSlot[] = [];
  const restamps: Restamp[] = [];
  let batchBytes = 0;
  let recordCount = 0;
  let minTimestamp = Number.MAX_SAFE_INTEGER;
  let maxTimestamp = 0;

  for (const chunk of chunks) {
    if (chunk.baseOffset !== baseOffset + recordCount) {
      throw corrupt(
        `chunk at offset ${chunk.baseOffset} does not follow offset ${baseOffset + recordCount}`,
        { baseOffset: chunk.baseOffset },
      );
    }
    const shift = recordCount;
    let covered = 0;
    for (const batch of decodeBatches(chunk.body)) {
      if (batch.firstOffsetDelta !== covered) {
        throw corrupt(
          `chunk at offset ${chunk.baseOffset} has a batch at delta ${batch.firstOffsetDelta} ` +
            `where ${covered} was due`,
          { baseOffset: chunk.baseOffset, position: batch.position },
        );
      }
      const relativeOffset = shift + covered;
      const position = batchBytes + batch.position;
      const last = offsetIndex.at(-1);
      if (last === undefined || position - last.position >= SEGMENT_INDEX_INTERVAL_BYTES) {
        // maxTimestamp so far is the largest timestamp of every record before this slot.
        const lastTime = timeIndex.at(-1);
        if (
          last !== undefined &&
          (lastTime === undefined || maxTimestamp > lastTime.maxTimestampBefore)
        ) {
          timeIndex.push({ maxTimestampBefore: maxTimestamp, relativeOffset });
        }
        offsetIndex.push({ relativeOffset, position });
      }
      if (shift !== 0) {
        restamps.push({ position, size: batch.size, firstOffsetDelta: relativeOffset });
      }
      for (const record of batch.records) {
        if (record.timestamp < minTimestamp) minTimestamp = record.timestamp;
      }
      if (batch.maxTimestamp > maxTimestamp) maxTimestamp = batch.maxTimestamp;
      covered += batch.records.length;
    }
    if (covered !== chunk.count) {
      throw corrupt(
        `chunk at offset ${chunk.baseOffset} holds ${covered} records, its index entry says ${chunk.count}`,
        { baseOffset: chunk.baseOffset },
      );
    }
    batchBytes += chunk.body.length;
    recordCount += covered;
  }
  if (recordCount === 0) throw new SluiceError("internal", "a segment needs at least one record");
  if (recordCount > MAX_U32) {
    throw new SluiceError("internal", `a segment of ${recordCount} records overflows u32 offsets`);
  }

  const length = FOOTER_FIXED_BYTES + SLOT_BYTES * (offsetIndex.length + timeIndex.length);
  const body = new Uint8Array(batchBytes + length);
  const view = new DataView(body.buffer);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk.body, at);
    at += chunk.body.length;
  }
  for (const { position, size, firstOffsetDelta } of restamps) {
    view.setUint32(position + 10, firstOffsetDelta);
    view.setUint32(position + 6, crc32c(body.subarray(position + 10, position + size)));
  }

  view.setUint32(at, FOOTER_MAGIC);
  view.setUint32(at + 4, FOOTER_VERSION);
  view.setUint32(at + 8, offsetIndex.length);
  view.setUint32(at + 12, timeIndex.length);
  view.setUint32(at + 16, recordCount);
  setU64(view, at + 20, batchBytes);
  setU64(view, at + 28, minTimestamp);
  setU64(view, at + 36, maxTimestamp);
  at += FOOTER_HEADER_BYTES;
  for (const slot of offsetIndex) {
    view.setUint32(at, slot.relativeOffset);
    setU64(view, at + 4, slot.position);
    at += SLOT_BYTES;
  }
  for (const slot of timeIndex) {
    setU64(view, at, slot.maxTimestampBefore);
    view.setUint32(at + 8, slot.relativeOffset);
    at += SLOT_BYTES;
  }
  view.setUint32(at, crc32c(body.subarray(batchBytes, at)));
  view.setUint32(at + 4, length);
  view.setUint32(at + 8, TRAILER_MAGIC);

  return {
    body,
    footer: { position: batchBytes, length },
    recordCount,
    minTimestamp,
    maxTimestamp,
  };
}

/**
 * Parses and verifies a footer, `bytes` being exactly the object's [P, P+L). Beyond the CRC it
 * checks every invariant the readers rely on, and that the footer belongs to the index entry
 * that located it (`expected`); any mismatch is corrupt_data.
 */
export function decodeFooter(
  bytes: Uint8Array,
  expected: { position: number; count: number },
): SegmentFooter {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = bytes.length;
  if (length < FOOTER_FIXED_BYTES) throw corrupt(`segment footer of ${length} bytes is truncated`);
  if (view.getUint32(length - 4) !== TRAILER_MAGIC) throw corrupt("bad segment trailer magic");
  if (view.getUint32(length - 8) !== length) {
    throw corrupt(`segment trailer length ${view.getUint32(length - 8)} differs from ${length}`);
  }
  const crcAt = length - TRAILER_BYTES - 4;
  if (crc32c(bytes.subarray(0, crcAt)) !== view.getUint32(crcAt)) {
    throw corrupt("segment footer CRC mismatch");
  }
  if (view.getUint32(0) !== FOOTER_MAGIC) throw corrupt("bad segment footer magic");
  const version = view.getUint32(4);
  if (version !== FOOTER_VERSION) throw corrupt(`unknown segment footer version ${version}`);
  const n = view.getUint32(8);
  const m = view.getUint32(12);
  if (FOOTER_FIXED_BYTES + SLOT_BYTES * (n + m) !== length) {
    throw corrupt(`segment footer of ${length} bytes cannot hold ${n} + ${m} slots`);
  }

  const recordCount = view.getUint32(16);
  const batchBytes = getU64(view, 20);
  const minTimestamp = getU64(view, 28);
  const maxTimestamp = getU64(view, 36);
  if (batchBytes !== expected.position) {
    throw corrupt(`segment footer says P = ${batchBytes}, its index entry ${expected.position}`);
  }
  if (recordCount !== expected.count) {
    throw corrupt(
      `segment footer counts ${recordCount} records, its index entry ${expected.count}`,
    );
  }
  if (recordCount === 0) throw corrupt("segment holds no records");
  if (minTimestamp < 0 || maxTimestamp < minTimestamp) {
    throw corrupt("segment timestamps are out of range");
  }
  if (n === 0) throw corrupt("segment footer has no offset slot");

  const offsetIndex = new Array<OffsetSlot>(n);
  let at = FOOTER_HEADER_BYTES;
  for (let i = 0; i < n; i++) {
    const slot = { relativeOffset: view.getUint32(at), position: getU64(view, at + 4) };
    const previous = offsetIndex[i - 1];
    const ordered =
      previous === undefined
        ? slot.relativeOffset === 0 && slot.position === 0
        : slot.relativeOffset > previous.relativeOffset && slot.position > previous.position;
    if (!ordered || slot.relativeOffset >= recordCount || slot.position >= batchBytes) {
      throw corrupt(`segment offset slot ${i} is out of order or range`);
    }
    offsetIndex[i] = slot;
    at += SLOT_BYTES;
  }

  const timeIndex = new Array<TimeSlot>(m);
  // startForTimestamp steps back one offset slot from a time slot, so each must sit on one ≥ 1.
  let k = 1;
  for (let i = 0; i < m; i++) {
    const slot = { maxTimestampBefore: getU64(view, at), relativeOffset: view.getUint32(at + 8) };
    const previous = timeIndex[i - 1];
    while (k < n && offsetIndex[k]!.relativeOffset < slot.relativeOffset) k++;
    const ordered =
      previous === undefined ||
      (slot.maxTimestampBefore > previous.maxTimestampBefore &&
        slot.relativeOffset > previous.relativeOffset);
    if (
      !ordered ||
      slot.maxTimestampBefore < minTimestamp ||
      slot.maxTimestampBefore > maxTimestamp ||
      offsetIndex[k]?.relativeOffset !== slot.relativeOffset
    ) {
      throw corrupt(`segment time slot ${i} is out of order or not at an offset slot`);
    }
    timeIndex[i] = slot;
    at += SLOT_BYTES;
  }

  return { recordCount, batchBytes, minTimestamp, maxTimestamp, offsetIndex, timeIndex };
}

/**
 * Block boundaries (RFC §2 "Blocks"): a block starts at slot 0 and at the first slot whose
 * position is ≥ j·blockBytes, for every j; the last block ends at P. Boundaries are batch starts,
 * so each block decodes whole, and depend only on the footer, so every reader asks for the same
 * ranges and they share one cache entry.
 */
export function segmentBlocks(footer: SegmentFooter, blockBytes: number): SegmentBlock[] {
  if (!Number.isSafeInteger(blockBytes) || blockBytes <= 0) {
    throw new SluiceError("invalid_config", `segment block size ${blockBytes} is not positive`);
  }
  const blocks: SegmentBlock[] = [];
  let boundary = 0;
  for (const { relativeOffset, position } of footer.offsetIndex) {
    if (position < boundary) continue;
    const previous = blocks.at(-1);
    if (previous !== undefined) previous.end = position;
    blocks.push({ start: position, end: footer.batchBytes, relativeOffset });
    // This slot is the first at or past every multiple of blockBytes up to its own position.
    boundary = (Math.floor(position / blockBytes) + 1) * blockBytes;
  }
  return blocks;
}

/** Index of the block holding relative offset `relativeOffset` (0 ≤ r < recordCount). */
export function blockForOffset(blocks: SegmentBlock[], relativeOffset: number): number {
  return firstIndex(blocks, (block) => block.relativeOffset > relativeOffset) - 1;
}

/**
 * The relative offset to start scanning from for the first record with timestamp ≥ t (RFC §2
 * "Time index"): the offset slot just before the first time slot with maxTimestampBefore ≥ t,
 * else the last offset slot. Every record before it is < t, whatever the order of timestamps, and
 * it is the latest slot with that guarantee.
 */
export function startForTimestamp(footer: SegmentFooter, t: number): number {
  const { offsetIndex, timeIndex } = footer;
  const pair = timeIndex[firstIndex(timeIndex, (slot) => slot.maxTimestampBefore >= t)];
  if (pair === undefined) return offsetIndex[offsetIndex.length - 1]!.relativeOffset;
  const k = firstIndex(offsetIndex, (slot) => slot.relativeOffset >= pair.relativeOffset);
  return offsetIndex[k - 1]!.relativeOffset;
}

/** The first index whose item satisfies `after`, which must hold for a suffix of `items`. */
function firstIndex<T>(items: T[], after: (item: T) => boolean): number {
  let low = 0;
  let high = items.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (after(items[mid]!)) high = mid;
    else low = mid + 1;
  }
  return low;
}

function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, Math.floor(value / 0x100000000));
  view.setUint32(at + 4, value % 0x100000000);
}

/** Returns -1 for a value above 2^53 - 1, which no field may hold. */
function getU64(view: DataView, at: number): number {
  const high = view.getUint32(at);
  if (high > MAX_U64_HIGH) return -1;
  return high * 0x100000000 + view.getUint32(at + 4);
}

function corrupt(message: string, details?: Record<string, unknown>): SluiceError {
  return new SluiceError("corrupt_data", message, details === undefined ? undefined : { details });
}
