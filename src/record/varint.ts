/**
 * Variable-length integers as in protobuf and Kafka: 7 bits per byte, least significant group
 * first, the high bit set on every byte but the last.
 *
 * - uvarint: unsigned, 0..2^32-1, at most 5 bytes. For lengths and counts.
 * - varint: zigzag-mapped int32, at most 5 bytes. For values that may be -1 (a null key).
 * - varlong: zigzag-mapped safe integer, at most 8 bytes. For timestamp deltas, which span
 *   ±(2^53-1) and so do not fit the 32-bit operators; it is computed with exact float arithmetic
 *   on powers of two instead of BigInt.
 *
 * Writers trust their caller to pass a value in range (the codec validates first). Readers trust
 * nothing: they accept only the shortest encoding of an in-range value, so every value has
 * exactly one encoding and damaged bytes cannot be read as a different, plausible number.
 */
import { SluiceError } from "../errors.js";

/** A read position over `bytes`; readers advance `pos` and never read at or past `end`. */
export interface Cursor {
  readonly bytes: Uint8Array;
  pos: number;
  end: number;
}

export const MAX_UVARINT = 0xffffffff;

const MAX_VARLONG_BYTES = 8;

function corrupt(message: string, position: number): SluiceError {
  return new SluiceError("corrupt_data", message, { details: { position } });
}

export function uvarintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

/** Writes `value` (0..MAX_UVARINT) at `pos` and returns the position after it. */
export function writeUVarint(out: Uint8Array, pos: number, value: number): number {
  let rest = value;
  while (rest >= 0x80) {
    out[pos++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  out[pos++] = rest;
  return pos;
}

export function readUVarint(c: Cursor): number {
  const start = c.pos;
  let pos = start;
  let result = 0;
  for (let shift = 0; ; shift += 7) {
    if (pos >= c.end) throw corrupt("varint runs past the end of its field", start);
    const byte = c.bytes[pos++]!;
    // The fifth byte carries bits 28..31 only; anything more would overflow 32 bits.
    if (shift === 28 && byte > 0x0f) throw corrupt("varint is too long", start);
    result |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      if (byte === 0 && shift > 0) throw corrupt("varint is not minimally encoded", start);
      c.pos = pos;
      return result >>> 0;
    }
  }
}

function zigzag32(value: number): number {
  return ((value << 1) ^ (value >> 31)) >>> 0;
}

export function varintSize(value: number): number {
  return uvarintSize(zigzag32(value));
}

/** Writes an int32 `value` at `pos` and returns the position after it. */
export function writeVarint(out: Uint8Array, pos: number, value: number): number {
  return writeUVarint(out, pos, zigzag32(value));
}

export function readVarint(c: Cursor): number {
  const z = readUVarint(c);
  return (z >>> 1) ^ -(z & 1);
}

/*
 * A zigzag value is 2m + s, where s is the sign bit and m = value for value >= 0, or -value - 1.
 * Working on (m, s) keeps every intermediate below 2^53, where float arithmetic is exact; the
 * zigzag value itself can reach 2^54 - 3, which a double cannot hold exactly.
 */

export function varlongSize(value: number): number {
  let m = Math.floor((value < 0 ? -value - 1 : value) / 64);
  let size = 1;
  while (m > 0) {
    size++;
    m = Math.floor(m / 128);
  }
  return size;
}

/** Writes a safe-integer `value` at `pos` and returns the position after it. */
export function writeVarlong(out: Uint8Array, pos: number, value: number): number {
  const negative = value < 0;
  let m = negative ? -value - 1 : value;
  let group = ((m % 64) << 1) | (negative ? 1 : 0);
  m = Math.floor(m / 64);
  while (m > 0) {
    out[pos++] = group | 0x80;
    group = m % 128;
    m = Math.floor(m / 128);
  }
  out[pos++] = group;
  return pos;
}

export function readVarlong(c: Cursor): number {
  const start = c.pos;
  let pos = start;
  if (pos >= c.end) throw corrupt("varlong runs past the end of its field", start);
  let byte = c.bytes[pos++]!;
  const negative = (byte & 1) === 1;
  let m = (byte & 0x7f) >>> 1;
  let scale = 64;
  while (byte >= 0x80) {
    if (pos - start === MAX_VARLONG_BYTES) throw corrupt("varlong is too long", start);
    if (pos >= c.end) throw corrupt("varlong runs past the end of its field", start);
    byte = c.bytes[pos++]!;
    if (byte === 0) throw corrupt("varlong is not minimally encoded", start);
    m += (byte & 0x7f) * scale;
    scale *= 128;
  }
  // Rounding is monotonic, so a true m above the limit never rounds down to an accepted one.
  if (m > Number.MAX_SAFE_INTEGER || (negative && m === Number.MAX_SAFE_INTEGER)) {
    throw corrupt("varlong is outside the safe integer range", start);
  }
  c.pos = pos;
  return negative ? -m - 1 : m;
}
