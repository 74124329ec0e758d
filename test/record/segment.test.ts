import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { crc32c } from "@aws-crypto/crc32c";
import { isSluiceError, type ErrorCode } from "../../src/errors.js";
import { decodeBatches, encodeBatch } from "../../src/record/codec.js";
import type { DecodedBatch, LogRecord } from "../../src/record/record.js";
import {
  SEGMENT_INDEX_INTERVAL_BYTES,
  blockForOffset,
  buildSegment,
  decodeFooter,
  segmentBlocks,
  startForTimestamp,
  type BuiltSegment,
  type OffsetSlot,
  type SegmentFooter,
  type SegmentSource,
  type TimeSlot,
} from "../../src/record/segment.js";

const KIB = 1024;
const SAFE = Number.MAX_SAFE_INTEGER;

/** A record whose value bytes are `fill`, so records from different places never look alike. */
function record(timestamp: number, valueBytes: number, fill: number): LogRecord {
  return {
    timestamp,
    key: null,
    keyEncoding: "utf8",
    value: new Uint8Array(valueBytes).fill(fill & 0xff),
    valueEncoding: "binary",
    headers: { n: String(fill) },
  };
}

/**
 * A chunk object as the writer makes one: batches with deltas 0, c0, c0 + c1, …. The body is a
 * view into a larger buffer, as bytes from a cache or a socket may be.
 */
function chunk(baseOffset: number, batches: LogRecord[][]): SegmentSource {
  let count = 0;
  const parts = batches.map((records) => {
    const bytes = encodeBatch({ firstOffsetDelta: count, records });
    count += records.length;
    return bytes;
  });
  const size = parts.reduce((n, p) => n + p.length, 0);
  const buffer = new Uint8Array(size + 6);
  let pos = 3;
  for (const part of parts) {
    buffer.set(part, pos);
    pos += part.length;
  }
  return { baseOffset, count, body: buffer.subarray(3, 3 + size) };
}

/** Chunk specs: batches of records, each record a timestamp and a value size. */
type Spec = { timestamp: number; valueBytes: number }[][][];

function chunksOf(base: number, spec: Spec): SegmentSource[] {
  let offset = base;
  let fill = 0;
  return spec.map((batches) => {
    const source = chunk(
      offset,
      batches.map((records) => records.map((r) => record(r.timestamp, r.valueBytes, fill++))),
    );
    offset += source.count;
    return source;
  });
}

const timestampArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 2 ** 32 - 1, 2 ** 32, SAFE) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: SAFE }) },
);
/**
 * Mostly small records, with some large enough that slots fall every few batches. A few fixed
 * sizes keep shrinking quick: every attempt encodes and checksums up to megabytes.
 */
const valueBytesArb = fc.constantFrom(0, 0, 0, 40, 300, 9 * KIB, 21 * KIB, 33 * KIB);
const recordSpecArb = fc.record({ timestamp: timestampArb, valueBytes: valueBytesArb });
const specArb: fc.Arbitrary<Spec> = fc.array(
  fc.array(fc.array(recordSpecArb, { minLength: 1, maxLength: 4 }), {
    minLength: 1,
    maxLength: 6,
  }),
  { minLength: 1, maxLength: 5 },
);
const baseArb = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 40 }));

function footerBytes(segment: BuiltSegment): Uint8Array {
  const { position, length } = segment.footer;
  return segment.body.subarray(position, position + length);
}

function footerOf(segment: BuiltSegment): SegmentFooter {
  return decodeFooter(footerBytes(segment), {
    position: segment.footer.position,
    count: segment.recordCount,
  });
}

function sealed(segment: BuiltSegment): DecodedBatch[] {
  return decodeBatches(segment.body.subarray(0, segment.footer.position));
}

/** The segment's records in offset order with their timestamps, from its batches. */
function timestamps(segment: BuiltSegment): number[] {
  return sealed(segment).flatMap((batch) => batch.records.map((r) => r.timestamp));
}

/** The RFC §2 index rules, applied literally to the sealed batches. */
function expectedIndexes(batches: DecodedBatch[]): { offsets: OffsetSlot[]; times: TimeSlot[] } {
  const all = batches.flatMap((batch) => batch.records.map((r) => r.timestamp));
  const offsets: OffsetSlot[] = [];
  const times: TimeSlot[] = [];
  for (const batch of batches) {
    const last = offsets.at(-1);
    if (last !== undefined && batch.position - last.position < SEGMENT_INDEX_INTERVAL_BYTES) {
      continue;
    }
    if (last !== undefined) {
      const before = Math.max(...all.slice(0, batch.firstOffsetDelta));
      const lastTime = times.at(-1);
      if (lastTime === undefined || before > lastTime.maxTimestampBefore) {
        times.push({ maxTimestampBefore: before, relativeOffset: batch.firstOffsetDelta });
      }
    }
    offsets.push({ relativeOffset: batch.firstOffsetDelta, position: batch.position });
  }
  return { offsets, times };
}

function codeOf(fn: () => unknown): ErrorCode | "no error" | "not a SluiceError" {
  try {
    fn();
    return "no error";
  } catch (err) {
    return isSluiceError(err) ? err.code : "not a SluiceError";
  }
}

/** Bytes as hex: comparing large arrays element by element would dominate the run time. */
function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex");
}

/** Decoded records compared as plain data, so a view and a copy of the same bytes are equal. */
function plain(records: LogRecord[]) {
  return records.map((r) => ({ ...r, value: hex(r.value) }));
}

describe("buildSegment / decodeFooter", () => {
  it("round-trips the footer, with indexes following the RFC rules", () => {
    fc.assert(
      fc.property(baseArb, specArb, (base, spec) => {
        const chunks = chunksOf(base, spec);
        const segment = buildSegment(base, chunks);
        const { position, length } = segment.footer;
        const batches = sealed(segment);
        const all = timestamps(segment);
        const { offsets, times } = expectedIndexes(batches);

        expect(position).toBe(chunks.reduce((n, c) => n + c.body.length, 0));
        expect(position + length).toBe(segment.body.length);
        expect(length).toBe(56 + 12 * (offsets.length + times.length));
        expect(segment.recordCount).toBe(all.length);
        expect(segment.minTimestamp).toBe(Math.min(...all));
        expect(segment.maxTimestamp).toBe(Math.max(...all));
        const tail = new DataView(segment.body.buffer, segment.body.length - 8);
        expect([tail.getUint32(0), tail.getUint32(4)]).toEqual([length, 0x534c5347]);

        expect(footerOf(segment)).toEqual({
          recordCount: all.length,
          batchBytes: position,
          minTimestamp: Math.min(...all),
          maxTimestamp: Math.max(...all),
          offsetIndex: offsets,
          timeIndex: times,
        });
      }),
      { numRuns: 30 },
    );
  });

  it("puts every offset slot on a batch start, at least 64 KiB apart", () => {
    fc.assert(
      fc.property(specArb, (spec) => {
        const segment = buildSegment(0, chunksOf(0, spec));
        const footer = footerOf(segment);
        const starts = new Map(sealed(segment).map((b) => [b.position, b.firstOffsetDelta]));
        footer.offsetIndex.forEach((slot, i) => {
          expect(starts.get(slot.position)).toBe(slot.relativeOffset);
          const next = footer.offsetIndex[i + 1];
          const end = next?.position ?? footer.batchBytes;
          expect(decodeBatches(segment.body.subarray(slot.position, end)).length).toBeGreaterThan(
            0,
          );
          if (next !== undefined) {
            expect(next.position - slot.position).toBeGreaterThanOrEqual(
              SEGMENT_INDEX_INTERVAL_BYTES,
            );
          }
        });
      }),
      { numRuns: 25 },
    );
  });

  it("re-stamps batches to the same records at the same offsets, other bytes unchanged", () => {
    fc.assert(
      fc.property(baseArb, specArb, (base, spec) => {
        const chunks = chunksOf(base, spec);
        const segment = buildSegment(base, chunks);
        const batches = sealed(segment);
        const original = chunks.flatMap((c) =>
          decodeBatches(c.body).map((batch) => ({ chunk: c, batch })),
        );
        expect(batches.length).toBe(original.length);
        batches.forEach((batch, i) => {
          const { chunk: from, batch: was } = original[i]!;
          expect(base + batch.firstOffsetDelta).toBe(from.baseOffset + was.firstOffsetDelta);
          expect(plain(batch.records)).toEqual(plain(was.records));
          const now = segment.body.subarray(batch.position, batch.position + batch.size);
          const then = from.body.subarray(was.position, was.position + was.size);
          expect(hex(now.subarray(0, 6))).toBe(hex(then.subarray(0, 6)));
          expect(hex(now.subarray(14))).toBe(hex(then.subarray(14)));
        });
      }),
      { numRuns: 25 },
    );
  });

  it("reads u64 fields above 2^32 and a segment of one small batch", () => {
    const chunks = [chunk(7, [[record(SAFE, 0, 1), record(2 ** 32 + 5, 0, 2)]])];
    const segment = buildSegment(7, chunks);
    const footer = footerOf(segment);
    expect(footer).toMatchObject({ recordCount: 2, minTimestamp: 2 ** 32 + 5, maxTimestamp: SAFE });
    expect(footer.offsetIndex).toEqual([{ relativeOffset: 0, position: 0 }]);
    expect(footer.timeIndex).toEqual([]);
    expect(segment.footer.length).toBe(56 + 12);
  });

  it("refuses chunks that are not contiguous or whose count differs: corrupt_data", () => {
    const batches = [[record(1, 10, 1), record(2, 10, 2)], [record(3, 10, 3)]];
    const a = chunk(100, batches);
    const b = chunk(103, batches);
    expect(codeOf(() => buildSegment(100, [a, b]))).toBe("no error");

    const cases: [string, SegmentSource[], number?][] = [
      ["a gap between chunks", [a, { ...b, baseOffset: 104 }]],
      ["overlapping chunks", [a, { ...b, baseOffset: 102 }]],
      ["a first chunk off the base", [a, b], 99],
      ["a count too high", [{ ...a, count: 4 }]],
      ["a count too low", [{ ...a, count: 2 }]],
      ["a last count too high", [a, { ...b, count: 4 }]],
      ["a last count too low", [a, { ...b, count: 2 }]],
      [
        "a count too high, entries contiguous",
        [
          { ...a, count: 4 },
          { ...b, baseOffset: 104 },
        ],
      ],
      ["batches not starting at delta 0", [chunkWithDeltas(100, [1, 3])]],
      ["a gap between batches", [chunkWithDeltas(100, [0, 3])]],
      ["overlapping batches", [chunkWithDeltas(100, [0, 1])]],
      ["a flipped byte in a batch", [a, { ...b, body: flip(b.body, 40) }]],
      ["a truncated chunk", [a, { ...b, body: b.body.subarray(0, b.body.length - 1) }]],
    ];
    for (const [name, sources, base = 100] of cases) {
      expect(
        codeOf(() => buildSegment(base, sources)),
        name,
      ).toBe("corrupt_data");
    }
    expect(codeOf(() => buildSegment(100, []))).toBe("internal");
  });
});

/** A chunk of 2-record batches at the given deltas, its count matching its records. */
function chunkWithDeltas(baseOffset: number, deltas: number[]): SegmentSource {
  const parts = deltas.map((delta, i) =>
    encodeBatch({ firstOffsetDelta: delta, records: [record(i, 4, i), record(i, 4, i)] }),
  );
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const part of parts) {
    body.set(part, pos);
    pos += part.length;
  }
  return { baseOffset, count: 2 * deltas.length, body };
}

function flip(bytes: Uint8Array, at: number, mask = 0x01): Uint8Array {
  const copy = bytes.slice();
  copy[at]! ^= mask;
  return copy;
}

describe("decodeFooter verification", () => {
  /** Several slots and time slots, so every region of the footer is present. */
  const segment = buildSegment(
    50,
    chunksOf(50, [
      [[{ timestamp: 3, valueBytes: 70 * KIB }], [{ timestamp: 9, valueBytes: 70 * KIB }]],
      [
        [
          { timestamp: 12, valueBytes: 70 * KIB },
          { timestamp: 1, valueBytes: 10 },
        ],
      ],
    ]),
  );
  const bytes = footerBytes(segment);
  const expected = { position: segment.footer.position, count: segment.recordCount };
  const decode = (b: Uint8Array, e = expected) => codeOf(() => decodeFooter(b, e));

  it("accepts the footer as built", () => {
    const footer = decodeFooter(bytes, expected);
    expect(footer.offsetIndex.map((s) => s.relativeOffset)).toEqual([0, 1, 2]);
    expect(footer.timeIndex).toEqual([
      { maxTimestampBefore: 3, relativeOffset: 1 },
      { maxTimestampBefore: 9, relativeOffset: 2 },
    ]);
    expect([footer.recordCount, footer.minTimestamp, footer.maxTimestamp]).toEqual([4, 1, 12]);
  });

  it("refuses any flipped byte, a wrong P or count, and a truncated footer: corrupt_data", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: bytes.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        (at, mask) => decode(flip(bytes, at, mask)) === "corrupt_data",
      ),
    );
    for (let at = 0; at < bytes.length; at++) {
      expect(decode(flip(bytes, at)), `byte ${at}`).toBe("corrupt_data");
    }
    expect(decode(bytes, { ...expected, position: expected.position + 1 })).toBe("corrupt_data");
    expect(decode(bytes, { ...expected, position: expected.position - 1 })).toBe("corrupt_data");
    expect(decode(bytes, { ...expected, count: expected.count + 1 })).toBe("corrupt_data");
    expect(decode(bytes, { ...expected, count: expected.count - 1 })).toBe("corrupt_data");
    expect(decode(bytes.subarray(1))).toBe("corrupt_data");
    expect(decode(bytes.subarray(0, bytes.length - 1))).toBe("corrupt_data");
    expect(decode(bytes.subarray(0, bytes.length - 12))).toBe("corrupt_data");
    expect(decode(new Uint8Array(0))).toBe("corrupt_data");
    expect(decode(segment.body)).toBe("corrupt_data");
  });

  /** Rewrites a footer field and its CRC, so only the semantic checks can catch the edit. */
  function edited(edit: (view: DataView) => void): Uint8Array {
    const copy = bytes.slice();
    const view = new DataView(copy.buffer);
    edit(view);
    const crcAt = copy.length - 12;
    view.setUint32(crcAt, crc32c(copy.subarray(0, crcAt)));
    return copy;
  }
  const slot = (i: number) => 44 + 12 * i;
  const timeSlot = (i: number) => slot(3) + 12 * i;

  it("refuses a well-sealed footer that breaks an invariant: corrupt_data", () => {
    expect(decode(edited(() => {}))).toBe("no error");
    const cases: [string, (view: DataView) => void][] = [
      ["version 2", (v) => v.setUint32(4, 2)],
      ["slot counts not matching the length", (v) => v.setUint32(8, 2)],
      ["slot 0 not at offset 0", (v) => v.setUint32(slot(0), 1)],
      ["slot 0 not at position 0", (v) => v.setUint32(slot(0) + 8, 1)],
      ["offsets not ascending", (v) => v.setUint32(slot(2), v.getUint32(slot(1)))],
      ["positions not ascending", (v) => v.setUint32(slot(2) + 8, v.getUint32(slot(1) + 8))],
      ["a position at P", (v) => v.setUint32(slot(2) + 8, expected.position)],
      [
        "an offset at the record count",
        (v) => {
          v.setUint32(slot(2), expected.count);
          v.setUint32(timeSlot(1) + 8, expected.count);
        },
      ],
      ["a time slot off the offset slots", (v) => v.setUint32(timeSlot(1) + 8, 3)],
      ["a time slot at offset slot 0", (v) => v.setUint32(timeSlot(0) + 8, 0)],
      ["time slots not ascending", (v) => v.setUint32(timeSlot(1) + 4, 3)],
      ["a time below minTimestamp", (v) => v.setUint32(timeSlot(0) + 4, 0)],
      ["a time above maxTimestamp", (v) => v.setUint32(timeSlot(1) + 4, 13)],
      ["minTimestamp above maxTimestamp", (v) => v.setUint32(32, 13)],
      ["a u64 above 2^53", (v) => v.setUint32(36, 0x200000)],
    ];
    for (const [name, edit] of cases) expect(decode(edited(edit)), name).toBe("corrupt_data");
  });
});

describe("startForTimestamp", () => {
  /** Few distinct timestamps, so ties and time going backwards are common. */
  const tieSpecArb: fc.Arbitrary<Spec> = fc.array(
    fc.array(
      fc.array(
        fc.record({
          timestamp: fc.integer({ min: 0, max: 8 }),
          valueBytes: valueBytesArb,
        }),
        { minLength: 1, maxLength: 3 },
      ),
      { minLength: 1, maxLength: 8 },
    ),
    { minLength: 1, maxLength: 4 },
  );

  it("never skips a record ≥ t, and is the latest slot that does not", () => {
    fc.assert(
      fc.property(tieSpecArb, (spec) => {
        const segment = buildSegment(0, chunksOf(0, spec));
        const footer = footerOf(segment);
        const all = timestamps(segment);
        for (let t = 0; t <= 10; t++) {
          const start = startForTimestamp(footer, t);
          const safe = footer.offsetIndex.filter((s) =>
            all.slice(0, s.relativeOffset).every((ts) => ts < t),
          );
          expect(start, `t = ${t}`).toBe(safe.at(-1)!.relativeOffset);
          const first = all.findIndex((ts) => ts >= t);
          if (first !== -1) expect(start).toBeLessThanOrEqual(first);
        }
      }),
      { numRuns: 40 },
    );
  });

  it("finds the RFC example's answers: timestamps 100, 300, 200, 400, 400", () => {
    const spec = [100, 300, 200, 400, 400].map((timestamp) => [
      [{ timestamp, valueBytes: 70 * KIB }],
    ]);
    const footer = footerOf(buildSegment(0, chunksOf(0, spec)));
    expect(footer.timeIndex).toEqual([
      { maxTimestampBefore: 100, relativeOffset: 1 },
      { maxTimestampBefore: 300, relativeOffset: 2 },
      { maxTimestampBefore: 400, relativeOffset: 4 },
    ]);
    const starts = [0, 100, 101, 200, 250, 300, 301, 400, 401].map((t) =>
      startForTimestamp(footer, t),
    );
    expect(starts).toEqual([0, 0, 1, 1, 1, 1, 3, 3, 4]);
  });
});

describe("segmentBlocks / blockForOffset", () => {
  const blockBytesArb = fc.oneof(
    fc.constantFrom(1, 64 * KIB, 100 * KIB, 256 * KIB, 4 * KIB * KIB),
    fc.integer({ min: 1, max: 1024 * KIB }),
  );

  /**
   * Block starts by the RFC rule: slot 0, and each slot that is the first ≥ j·blockBytes for some
   * j, which is each slot with a multiple of blockBytes in (previous slot's position, its own].
   */
  function expectedStarts(footer: SegmentFooter, blockBytes: number): number[] {
    return footer.offsetIndex
      .filter((slot, k) => {
        const previous = footer.offsetIndex[k - 1];
        if (previous === undefined) return true;
        const multiple = (Math.floor(previous.position / blockBytes) + 1) * blockBytes;
        return multiple <= slot.position;
      })
      .map((slot) => slot.position);
  }

  /** Footers alone: blocks depend on nothing else, so many cases cost no encoding. */
  const footerArb: fc.Arbitrary<SegmentFooter> = fc
    .array(
      fc.record({
        bytes: fc.integer({ min: SEGMENT_INDEX_INTERVAL_BYTES, max: 600 * KIB }),
        records: fc.integer({ min: 1, max: 5 }),
      }),
      { minLength: 1, maxLength: 40 },
    )
    .map((spans) => {
      const offsetIndex: OffsetSlot[] = [];
      let position = 0;
      let relativeOffset = 0;
      for (const span of spans) {
        offsetIndex.push({ relativeOffset, position });
        position += span.bytes;
        relativeOffset += span.records;
      }
      return {
        recordCount: relativeOffset,
        batchBytes: position,
        minTimestamp: 0,
        maxTimestamp: 0,
        offsetIndex,
        timeIndex: [],
      };
    });

  it("starts blocks by the RFC rule, covers [0, P) without overlap, and finds each offset", () => {
    fc.assert(
      fc.property(footerArb, blockBytesArb, (footer, blockBytes) => {
        const blocks = segmentBlocks(footer, blockBytes);
        expect(blocks.map((b) => b.start)).toEqual(expectedStarts(footer, blockBytes));
        const slots = new Map(footer.offsetIndex.map((s) => [s.position, s.relativeOffset]));
        blocks.forEach((block, i) => {
          const next = blocks[i + 1];
          expect(block.end).toBe(next?.start ?? footer.batchBytes);
          expect(block.end).toBeGreaterThan(block.start);
          expect(block.relativeOffset).toBe(slots.get(block.start));
        });
        const found = Array.from({ length: footer.recordCount }, (_, r) =>
          blockForOffset(blocks, r),
        );
        const owners = blocks.flatMap((block, i) =>
          Array<number>(
            (blocks[i + 1]?.relativeOffset ?? footer.recordCount) - block.relativeOffset,
          ).fill(i),
        );
        expect(found).toEqual(owners);
      }),
      { numRuns: 300 },
    );
  });

  it("cuts real segments into blocks that each decode whole to exactly their offsets", () => {
    fc.assert(
      fc.property(specArb, blockBytesArb, (spec, blockBytes) => {
        const segment = buildSegment(0, chunksOf(0, spec));
        const footer = footerOf(segment);
        const blocks = segmentBlocks(footer, blockBytes);
        expect(blocks.map((b) => b.start)).toEqual(expectedStarts(footer, blockBytes));
        expect(blocks.at(-1)!.end).toBe(footer.batchBytes);
        blocks.forEach((block, i) => {
          const decoded = decodeBatches(segment.body.subarray(block.start, block.end));
          const count = decoded.reduce((n, b) => n + b.records.length, 0);
          expect(decoded[0]!.firstOffsetDelta).toBe(block.relativeOffset);
          expect(block.relativeOffset + count).toBe(
            blocks[i + 1]?.relativeOffset ?? footer.recordCount,
          );
        });
      }),
      { numRuns: 25 },
    );
  });

  it("makes one block when the block size exceeds the batches", () => {
    const segment = buildSegment(0, chunksOf(0, [[[{ timestamp: 1, valueBytes: 200 * KIB }]]]));
    const footer = footerOf(segment);
    expect(segmentBlocks(footer, 4 * KIB * KIB)).toEqual([
      { start: 0, end: footer.batchBytes, relativeOffset: 0 },
    ]);
    expect(codeOf(() => segmentBlocks(footer, 0))).toBe("invalid_config");
  });
});
