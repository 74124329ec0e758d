import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { crc32c } from "@aws-crypto/crc32c";
import { isSluiceError, type ErrorCode } from "../../src/errors.js";
import {
  BATCH_HEADER_BYTES,
  decodeBatches,
  encodeBatch,
  encodedRecordSize,
} from "../../src/record/codec.js";
import type { LogRecord, RecordBatch } from "../../src/record/record.js";

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const SAFE = Number.MAX_SAFE_INTEGER;

function record(overrides: Partial<LogRecord> = {}): LogRecord {
  return {
    timestamp: 1_700_000_000_000,
    key: utf8("user-42"),
    keyEncoding: "utf8",
    value: utf8('{"amount":12.5}'),
    valueEncoding: "json",
    headers: { source: "checkout", "trace-id": "ab12" },
    ...overrides,
  };
}

/** A batch exercising every field kind: null keys, both encodings, unicode, time going back. */
const sampleBatch: RecordBatch = {
  firstOffsetDelta: 7,
  records: [
    record(),
    record({ timestamp: 1_700_000_000_500, key: null, headers: {} }),
    record({
      timestamp: 1_699_999_999_000,
      key: new Uint8Array([0, 255, 128]),
      keyEncoding: "binary",
      value: new Uint8Array([1, 2, 3, 0]),
      valueEncoding: "binary",
      headers: { ключ: "значение 🚀", "": "" },
    }),
    record({ timestamp: 1_700_000_001_000, value: new Uint8Array(0), valueEncoding: "binary" }),
  ],
};

function codeOf(fn: () => unknown): ErrorCode | "no error" | "not a SluiceError" {
  try {
    fn();
    return "no error";
  } catch (err) {
    return isSluiceError(err) ? err.code : "not a SluiceError";
  }
}

/** Decodes, returning the error code, or "ok" when the bytes decoded. */
function decodeOutcome(bytes: Uint8Array): ErrorCode | "ok" | "not a SluiceError" {
  const code = codeOf(() => decodeBatches(bytes));
  return code === "no error" ? "ok" : code;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const part of parts) {
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}

/** Recomputes the CRC of the single batch in `bytes`, so edits reach the record parser. */
function reseal(bytes: Uint8Array): Uint8Array {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(6, crc32c(bytes.subarray(10)));
  return bytes;
}

/** A batch header with a valid CRC around arbitrary content. */
function sealed(header: { firstOffsetDelta: number; recordCount: number }, body: Uint8Array) {
  const out = new Uint8Array(BATCH_HEADER_BYTES + body.length);
  const view = new DataView(out.buffer);
  out[0] = 1;
  view.setUint32(2, out.length - 6);
  view.setUint32(10, header.firstOffsetDelta);
  view.setUint32(14, header.recordCount);
  out.set(body, BATCH_HEADER_BYTES);
  return reseal(out);
}

/** Decoded records compared as plain data, so a view and a copy of the same bytes are equal. */
function plain(records: LogRecord[]) {
  return records.map((r) => ({
    ...r,
    key: r.key === null ? null : Array.from(r.key),
    value: Array.from(r.value),
    headers: Object.entries(r.headers),
  }));
}

const timestampArb = fc.oneof(
  fc.constantFrom(0, 1, 2 ** 32, 2 ** 50, SAFE),
  fc.integer({ min: 0, max: 2 ** 50 }),
  fc.integer({ min: 1_700_000_000_000, max: 1_700_000_100_000 }),
);
const textArb = fc.string({ unit: "binary", maxLength: 20 });

const recordArb: fc.Arbitrary<LogRecord> = fc
  .record({
    timestamp: timestampArb,
    key: fc.oneof(
      fc.constant(null),
      textArb.map((s) => ({ key: utf8(s), keyEncoding: "utf8" as const })),
      fc.uint8Array({ maxLength: 40 }).map((b) => ({ key: b, keyEncoding: "binary" as const })),
    ),
    nullKeyEncoding: fc.constantFrom("utf8" as const, "binary" as const),
    value: fc.oneof(
      fc
        .uint8Array({ maxLength: 200 })
        .map((b) => ({ value: b, valueEncoding: "binary" as const })),
      fc.json().map((j) => ({ value: utf8(j), valueEncoding: "json" as const })),
    ),
    headers: fc.dictionary(textArb, textArb, { maxKeys: 5, noNullPrototype: true }),
  })
  .map(({ timestamp, key, nullKeyEncoding, value, headers }) => ({
    timestamp,
    ...(key ?? { key: null, keyEncoding: nullKeyEncoding }),
    ...value,
    headers,
  }));

const batchArb: fc.Arbitrary<RecordBatch> = fc.record({
  firstOffsetDelta: fc.oneof(fc.constant(0), fc.nat(), fc.constant(2 ** 32 - 100)),
  records: fc.array(recordArb, { minLength: 1, maxLength: 40 }),
});

describe("encodeBatch / decodeBatches", () => {
  it("round-trips random batches", () => {
    fc.assert(
      fc.property(batchArb, (batch) => {
        const bytes = encodeBatch(batch);
        const [decoded, ...rest] = decodeBatches(bytes);
        expect(rest).toEqual([]);
        expect(decoded!.firstOffsetDelta).toBe(batch.firstOffsetDelta);
        expect(plain(decoded!.records)).toEqual(plain(batch.records));
        expect(decoded!.firstTimestamp).toBe(batch.records[0]!.timestamp);
        expect(decoded!.maxTimestamp).toBe(Math.max(...batch.records.map((r) => r.timestamp)));
        expect(decoded!.position).toBe(0);
        expect(decoded!.size).toBe(bytes.length);
      }),
      { numRuns: 300 },
    );
  });

  it("round-trips a batch of many records", () => {
    const records = Array.from({ length: 20_000 }, (_, i) =>
      record({ timestamp: 1_700_000_000_000 + (i % 1000), key: utf8(`k${i}`) }),
    );
    const [decoded] = decodeBatches(encodeBatch({ firstOffsetDelta: 0, records }));
    expect(decoded!.records).toHaveLength(20_000);
    expect(plain(decoded!.records)).toEqual(plain(records));
  });

  it("keeps awkward header names and byte-order marks intact", () => {
    const batch: RecordBatch = {
      firstOffsetDelta: 0,
      records: [
        record({
          key: utf8("\uFEFFkey"),
          headers: JSON.parse('{"__proto__":"p","constructor":"c","2":"two","\uFEFF":"\uFEFF"}'),
        }),
      ],
    };
    const decoded = decodeBatches(encodeBatch(batch))[0]!.records[0]!;
    expect(Object.getPrototypeOf(decoded.headers)).toBe(Object.prototype);
    expect(Object.entries(decoded.headers)).toEqual(Object.entries(batch.records[0]!.headers));
    expect(new TextDecoder("utf-8", { ignoreBOM: true }).decode(decoded.key!)).toBe("\uFEFFkey");
  });

  it("decodes concatenated batches in order, with their positions and sizes", () => {
    fc.assert(
      fc.property(fc.array(batchArb, { maxLength: 5 }), (batches) => {
        const encoded = batches.map(encodeBatch);
        const decoded = decodeBatches(concat(encoded));
        expect(decoded).toHaveLength(batches.length);
        let position = 0;
        decoded.forEach((d, i) => {
          expect(d.position).toBe(position);
          expect(d.size).toBe(encoded[i]!.length);
          expect(d.firstOffsetDelta).toBe(batches[i]!.firstOffsetDelta);
          expect(plain(d.records)).toEqual(plain(batches[i]!.records));
          position += d.size;
        });
      }),
      { numRuns: 100 },
    );
  });

  it("decodes an empty buffer as no batches", () => {
    expect(decodeBatches(new Uint8Array(0))).toEqual([]);
  });

  it("decodes a view that does not start at the beginning of its buffer", () => {
    const bytes = encodeBatch(sampleBatch);
    const padded = new Uint8Array(bytes.length + 5);
    padded.set(bytes, 3);
    const [decoded] = decodeBatches(padded.subarray(3, 3 + bytes.length));
    expect(plain(decoded!.records)).toEqual(plain(sampleBatch.records));
  });

  it("skips only the CRC check when told the bytes were verified before", () => {
    const bytes = encodeBatch(sampleBatch);
    bytes[6] = bytes[6]! ^ 0xff;
    expect(codeOf(() => decodeBatches(bytes))).toBe("corrupt_data");
    const [decoded] = decodeBatches(bytes, { verifyCrc: false });
    expect(plain(decoded!.records)).toEqual(plain(sampleBatch.records));
    bytes[0] = 9;
    expect(codeOf(() => decodeBatches(bytes, { verifyCrc: false }))).toBe("corrupt_data");
  });

  it("returns keys and values as views into the input", () => {
    const bytes = encodeBatch(sampleBatch);
    const decoded = decodeBatches(bytes)[0]!.records[0]!;
    expect(decoded.value.buffer).toBe(bytes.buffer);
    expect(decoded.key!.buffer).toBe(bytes.buffer);
  });
});

describe("encodedRecordSize", () => {
  it("is the record's share of its batch", () => {
    fc.assert(
      fc.property(batchArb, (batch) => {
        const first = batch.records[0]!.timestamp;
        const sizes = batch.records.map((r) => encodedRecordSize(r, first));
        const total = sizes.reduce((a, b) => a + b, BATCH_HEADER_BYTES);
        expect(encodeBatch(batch).length).toBe(total);
      }),
      { numRuns: 100 },
    );
  });

  it("sizes a record alone in its batch by default", () => {
    const r = sampleBatch.records[2]!;
    const alone = encodeBatch({ firstOffsetDelta: 0, records: [r] });
    expect(alone.length).toBe(BATCH_HEADER_BYTES + encodedRecordSize(r));
  });
});

describe("encodeBatch refuses what it could not read back", () => {
  const refuse = (batch: RecordBatch) =>
    expect(codeOf(() => encodeBatch(batch))).toBe("invalid_request");
  const one = (overrides: Partial<LogRecord>): RecordBatch => ({
    firstOffsetDelta: 0,
    records: [record(overrides)],
  });

  it("refuses bad timestamps", () => {
    for (const timestamp of [-1, 1.5, NaN, Infinity, SAFE + 1, 2 ** 60]) {
      refuse(one({ timestamp }));
      expect(codeOf(() => encodedRecordSize(record({ timestamp })))).toBe("invalid_request");
    }
  });

  it("refuses empty batches and out-of-range offset deltas", () => {
    refuse({ firstOffsetDelta: 0, records: [] });
    refuse({ firstOffsetDelta: -1, records: [record()] });
    refuse({ firstOffsetDelta: 0.5, records: [record()] });
    refuse({ firstOffsetDelta: 2 ** 32, records: [record()] });
    refuse({ firstOffsetDelta: 2 ** 32 - 1, records: [record(), record()] });
    expect(encodeBatch({ firstOffsetDelta: 2 ** 32 - 1, records: [record()] }).length).toBe(
      BATCH_HEADER_BYTES + encodedRecordSize(record()),
    );
  });

  it("refuses a UTF-8 key that is not UTF-8, and headers with lone surrogates", () => {
    refuse(one({ key: new Uint8Array([0xff]), keyEncoding: "utf8" }));
    refuse(one({ headers: { a: "\uD800" } }));
    refuse(one({ headers: { "x\uDC00": "b" } }));
    refuse(one({ headers: { a: 1 as unknown as string } }));
    expect(
      codeOf(() => encodeBatch(one({ key: new Uint8Array([0xff]), keyEncoding: "binary" }))),
    ).toBe("no error");
  });
});

describe("decodeBatches detects corruption", () => {
  const encoded = encodeBatch(sampleBatch);

  it("detects every single-bit flip", () => {
    for (let bit = 0; bit < encoded.length * 8; bit++) {
      const copy = encoded.slice();
      copy[bit >> 3]! ^= 1 << (bit & 7);
      expect(decodeOutcome(copy), `bit ${bit}`).toBe("corrupt_data");
    }
  });

  it("detects a random bit flip in random batches", () => {
    fc.assert(
      fc.property(batchArb, fc.nat(), (batch, n) => {
        const bytes = encodeBatch(batch);
        const bit = n % (bytes.length * 8);
        bytes[bit >> 3]! ^= 1 << (bit & 7);
        expect(decodeOutcome(bytes)).toBe("corrupt_data");
      }),
      { numRuns: 300 },
    );
  });

  it("detects every truncation", () => {
    for (let length = 1; length < encoded.length; length++) {
      expect(decodeOutcome(encoded.subarray(0, length)), `length ${length}`).toBe("corrupt_data");
    }
    const two = concat([encoded, encoded]);
    for (let length = encoded.length + 1; length < two.length; length++) {
      expect(decodeOutcome(two.subarray(0, length)), `length ${length}`).toBe("corrupt_data");
    }
  });

  it("detects trailing garbage, with the position of the bad batch", () => {
    for (const tail of [[0], [1], [1, 0, 0, 0, 0, 0, 0], Array.from(encoded.subarray(0, 40))]) {
      const bytes = concat([encoded, Uint8Array.from(tail)]);
      let error: unknown;
      try {
        decodeBatches(bytes);
      } catch (err) {
        error = err;
      }
      expect(isSluiceError(error, "corrupt_data")).toBe(true);
      expect((error as { details: unknown }).details).toMatchObject({ position: encoded.length });
    }
  });

  it("reports a CRC mismatch as such", () => {
    const copy = encoded.slice();
    copy[copy.length - 1]! ^= 0x10;
    expect(() => decodeBatches(copy)).toThrow(/CRC/);
  });

  describe("with a valid CRC over inconsistent content", () => {
    // Offsets into sampleBatch's encoding: its first record starts right after the header,
    // with a one-byte length.
    const recordStart = BATCH_HEADER_BYTES;
    const edited = (edit: (bytes: Uint8Array, view: DataView) => void): Uint8Array => {
      const bytes = encoded.slice();
      edit(bytes, new DataView(bytes.buffer));
      return reseal(bytes);
    };
    const expectCorrupt = (bytes: Uint8Array, message: RegExp) => {
      expect(decodeOutcome(bytes)).toBe("corrupt_data");
      expect(() => decodeBatches(bytes)).toThrow(message);
    };

    it("rejects a wrong record count", () => {
      expectCorrupt(
        edited((_, v) => v.setUint32(14, 3)),
        /after its last record/,
      );
      expectCorrupt(
        edited((_, v) => v.setUint32(14, 5)),
        /overruns|runs past/,
      );
      expectCorrupt(
        edited((_, v) => v.setUint32(14, 0)),
        /no records/,
      );
      expectCorrupt(
        edited((_, v) => v.setUint32(14, 1_000_000)),
        /record count/,
      );
    });

    it("rejects inconsistent timestamps", () => {
      const maxTs = 1_700_000_001_000;
      expectCorrupt(
        edited((_, v) => v.setUint32(30, (maxTs % 2 ** 32) - 1)),
        /maxTimestamp/,
      );
      // Moving firstTimestamp moves every record with it, so only the maximum disagrees.
      expectCorrupt(
        edited((_, v) => v.setUint32(22, v.getUint32(22) - 1)),
        /maxTimestamp/,
      );
      expect(encoded[recordStart + 2]).toBe(0); // the first record's timestampDelta
      expectCorrupt(
        edited((b) => (b[recordStart + 2] = 0x02)),
        /first record/,
      );
      expectCorrupt(
        edited((_, v) => v.setUint32(18, 0x00200000)),
        /timestamp/,
      );
      expectCorrupt(
        edited((_, v) => v.setUint32(26, 0x80000000)),
        /timestamp/,
      );
    });

    it("rejects offsets past 2^32", () => {
      expectCorrupt(
        edited((_, v) => v.setUint32(10, 0xfffffffe)),
        /offsets overflow/,
      );
    });

    it("rejects reserved attribute bits", () => {
      expect(encodedRecordSize(sampleBatch.records[0]!)).toBeLessThan(128);
      expectCorrupt(
        edited((b) => (b[recordStart + 1]! |= 0x04)),
        /reserved record attributes/,
      );
    });

    it("rejects an invalid UTF-8 key only when the key is marked UTF-8", () => {
      const binaryKey = encodeBatch({
        firstOffsetDelta: 0,
        records: [record({ key: new Uint8Array([0xc3, 0x28]), keyEncoding: "binary" })],
      });
      expect(decodeOutcome(binaryKey)).toBe("ok");
      binaryKey[recordStart + 1]! &= ~0x02;
      expectCorrupt(reseal(binaryKey), /not valid UTF-8/);
    });

    it("rejects invalid UTF-8 and duplicate names in headers", () => {
      const bytes = encodeBatch({
        firstOffsetDelta: 0,
        records: [record({ headers: { ab: "x", ac: "y" } })],
      });
      const at = (s: string) =>
        bytes.findIndex((_, i) => bytes[i] === s.charCodeAt(0) && bytes[i + 1] === s.charCodeAt(1));
      const dup = bytes.slice();
      dup[at("ac") + 1] = "b".charCodeAt(0);
      expectCorrupt(reseal(dup), /duplicate header/);
      const bad = bytes.slice();
      bad[at("ac") + 1] = 0xff;
      expectCorrupt(reseal(bad), /header is not valid UTF-8/);
    });

    it("rejects a key length below -1", () => {
      // Record 2 has a null key, written as zigzag(-1) = 0x01; zigzag(-2) is 0x03.
      const second = recordStart + encodedRecordSize(sampleBatch.records[0]!);
      const bytes = encoded.slice();
      const keyAt = second + 1 + 1 + 2; // length, attributes, 2-byte timestamp delta (+500)
      expect(bytes[keyAt]).toBe(0x01);
      bytes[keyAt] = 0x03;
      expectCorrupt(reseal(bytes), /negative key length/);
    });

    it("rejects a record length that does not match its fields", () => {
      expectCorrupt(
        edited((b) => (b[recordStart]! -= 1)),
        /overruns|runs past|does not match/,
      );
      expectCorrupt(
        edited((b) => (b[recordStart]! += 1)),
        /does not match|overruns|runs past/,
      );
    });
  });
});

describe("decodeBatches on arbitrary input", () => {
  const outcomes = new Set(["corrupt_data", "ok"]);

  it("throws only corrupt_data on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(outcomes).toContain(decodeOutcome(bytes));
      }),
      { numRuns: 1000 },
    );
  });

  it("throws only corrupt_data on random bytes behind a valid header and CRC", () => {
    fc.assert(
      fc.property(
        fc.record({ firstOffsetDelta: fc.nat(), recordCount: fc.integer({ min: 1, max: 6 }) }),
        fc.uint8Array({ minLength: 6, maxLength: 200 }),
        (header, body) => {
          expect(outcomes).toContain(decodeOutcome(sealed(header, body)));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("throws only corrupt_data on damaged records whose CRC was fixed up, or reads them consistently", () => {
    fc.assert(
      fc.property(
        batchArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (batch, edits) => {
          const bytes = encodeBatch(batch);
          for (const [at, value] of edits)
            bytes[BATCH_HEADER_BYTES + (at % (bytes.length - BATCH_HEADER_BYTES))] = value;
          const outcome = decodeOutcome(reseal(bytes));
          expect(outcomes).toContain(outcome);
          if (outcome === "ok") {
            const decoded = decodeBatches(bytes)[0]!;
            const again = decodeBatches(encodeBatch(decoded))[0]!;
            expect(plain(again.records)).toEqual(plain(decoded.records));
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
