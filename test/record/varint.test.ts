import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { isSluiceError } from "../../src/errors.js";
import {
  MAX_UVARINT,
  readUVarint,
  readVarint,
  readVarlong,
  uvarintSize,
  varintSize,
  varlongSize,
  writeUVarint,
  writeVarint,
  writeVarlong,
  type Cursor,
} from "../../src/record/varint.js";

type Reader = (c: Cursor) => number;

function cursor(bytes: number[] | Uint8Array, end = bytes.length): Cursor {
  return { bytes: Uint8Array.from(bytes), pos: 0, end };
}

function roundTrip(
  value: number,
  size: (v: number) => number,
  write: (out: Uint8Array, pos: number, v: number) => number,
  read: Reader,
): Uint8Array {
  const out = new Uint8Array(size(value) + 2);
  const end = write(out, 1, value);
  expect(end).toBe(1 + size(value));
  const c: Cursor = { bytes: out, pos: 1, end };
  expect(read(c)).toBe(value);
  expect(c.pos).toBe(end);
  return out.subarray(1, end);
}

function expectCorrupt(read: Reader, bytes: number[], end = bytes.length): void {
  const c = cursor(bytes, end);
  let thrown: unknown;
  try {
    read(c);
  } catch (err) {
    thrown = err;
  }
  expect(isSluiceError(thrown, "corrupt_data"), String(thrown)).toBe(true);
  expect(c.pos).toBe(0);
}

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const SAFE = Number.MAX_SAFE_INTEGER;

describe("uvarint", () => {
  it("round-trips boundaries with the expected sizes", () => {
    const cases: [number, number][] = [
      [0, 1],
      [127, 1],
      [128, 2],
      [16383, 2],
      [16384, 3],
      [0x1fffff, 3],
      [0x200000, 4],
      [0xfffffff, 4],
      [0x10000000, 5],
      [INT32_MAX, 5],
      [MAX_UVARINT, 5],
    ];
    for (const [value, size] of cases) {
      expect(uvarintSize(value)).toBe(size);
      roundTrip(value, uvarintSize, writeUVarint, readUVarint);
    }
    expect([...roundTrip(300, uvarintSize, writeUVarint, readUVarint)]).toEqual([0xac, 0x02]);
  });

  it("round-trips any uint32", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_UVARINT }), (v) => {
        roundTrip(v, uvarintSize, writeUVarint, readUVarint);
      }),
    );
  });

  it("rejects truncated, over-long and non-minimal input", () => {
    expectCorrupt(readUVarint, []);
    expectCorrupt(readUVarint, [0x80]);
    expectCorrupt(readUVarint, [0xff, 0xff]);
    // Readable only by looking past the cursor's end.
    expectCorrupt(readUVarint, [0x80, 0x01], 1);
    // Six bytes, and a fifth byte with bits beyond 32.
    expectCorrupt(readUVarint, [0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    expectCorrupt(readUVarint, [0xff, 0xff, 0xff, 0xff, 0x1f]);
    expectCorrupt(readUVarint, [0xff, 0xff, 0xff, 0xff, 0x8f, 0x00]);
    // 0 and 1 written with a redundant trailing group.
    expectCorrupt(readUVarint, [0x80, 0x00]);
    expectCorrupt(readUVarint, [0x81, 0x80, 0x00]);
  });
});

describe("varint (zigzag int32)", () => {
  it("round-trips boundaries", () => {
    const cases: [number, number[]][] = [
      [0, [0x00]],
      [-1, [0x01]],
      [1, [0x02]],
      [-64, [0x7f]],
      [64, [0x80, 0x01]],
      [INT32_MAX, [0xfe, 0xff, 0xff, 0xff, 0x0f]],
      [INT32_MIN, [0xff, 0xff, 0xff, 0xff, 0x0f]],
    ];
    for (const [value, bytes] of cases) {
      expect(varintSize(value)).toBe(bytes.length);
      expect([...roundTrip(value, varintSize, writeVarint, readVarint)]).toEqual(bytes);
    }
  });

  it("round-trips any int32", () => {
    fc.assert(
      fc.property(fc.integer({ min: INT32_MIN, max: INT32_MAX }), (v) => {
        roundTrip(v, varintSize, writeVarint, readVarint);
      }),
    );
  });

  it("rejects truncated and over-long input", () => {
    expectCorrupt(readVarint, []);
    expectCorrupt(readVarint, [0xff, 0xff, 0xff, 0xff]);
    expectCorrupt(readVarint, [0xff, 0xff, 0xff, 0xff, 0x1f]);
    expectCorrupt(readVarint, [0x81, 0x00]);
  });
});

describe("varlong (zigzag safe integer)", () => {
  it("round-trips boundaries", () => {
    const cases: [number, number][] = [
      [0, 1],
      [-1, 1],
      [63, 1],
      [-64, 1],
      [64, 2],
      [-65, 2],
      [INT32_MAX, 5],
      [INT32_MIN, 5],
      [2 ** 32, 5],
      [2 ** 50, 8],
      [SAFE, 8],
      [-SAFE, 8],
    ];
    for (const [value, size] of cases) {
      expect(varlongSize(value)).toBe(size);
      roundTrip(value, varlongSize, writeVarlong, readVarlong);
    }
  });

  it("writes the same bytes as zigzag over 64 bits", () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), (v) => {
        const z = (BigInt(v) << 1n) ^ (BigInt(v) >> 63n);
        const expected: number[] = [];
        let rest = BigInt.asUintN(64, z);
        while (rest >= 0x80n) {
          expected.push(Number(rest & 0x7fn) | 0x80);
          rest >>= 7n;
        }
        expected.push(Number(rest));
        expect([...roundTrip(v, varlongSize, writeVarlong, readVarlong)]).toEqual(expected);
      }),
    );
  });

  it("rejects truncated, over-long, non-minimal and unsafe input", () => {
    expectCorrupt(readVarlong, []);
    expectCorrupt(readVarlong, [0x80]);
    expectCorrupt(readVarlong, [0x80, 0x01], 1);
    expectCorrupt(readVarlong, [0x80, 0x00]);
    expectCorrupt(readVarlong, [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    // Zigzag 2^54 (m = 2^53) and 2^54 - 1 (value -2^53): one past the safe range each way.
    expectCorrupt(readVarlong, [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    expectCorrupt(readVarlong, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f]);
    expectCorrupt(readVarlong, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
  });

  it("accepts the largest values exactly", () => {
    // Zigzag 2^54 - 2 is 2^53 - 1; zigzag 2^54 - 3 is -(2^53 - 1).
    expect(readVarlong(cursor([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f]))).toBe(SAFE);
    expect(readVarlong(cursor([0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f]))).toBe(-SAFE);
  });
});
