/**
 * Sluice record-batch format v1: Kafka's RecordBatch v2, simplified. An object (flush chunk or
 * sealed segment) is zero or more batches back to back. Fixed-width fields are big-endian.
 *
 * Batch
 *   offset size
 *        0    1  magic = 1
 *        1    1  attributes = 0 (reserved)
 *        2    4  batchLength: bytes after this field
 *        6    4  crc: CRC32C of every byte after this field to the end of the batch
 *       10    4  firstOffsetDelta: offset of the first record relative to the object's base
 *       14    4  recordCount, at least 1; record i has offset firstOffsetDelta + i
 *       18    8  firstTimestamp: the first record's timestamp, ms since the epoch
 *       26    8  maxTimestamp
 *       34       records
 *
 * Record (uvarint: unsigned; varint, varlong: zigzag; see varint.ts)
 *   length          uvarint  bytes after this field
 *   attributes      u8       bit0: value is JSON text (else binary);
 *                            bit1: key is binary (else UTF-8); other bits 0
 *   timestampDelta  varlong  timestamp - firstTimestamp
 *   keyLength       varint   -1 for a null key
 *   key             bytes
 *   valueLength     uvarint
 *   value           bytes
 *   headerCount     uvarint
 *   headers         per header: keyLength uvarint, UTF-8 key, valueLength uvarint, UTF-8 value
 *
 * Decoding is strict: anything the encoder would not have written is corrupt_data, never a
 * best guess. Decoded keys and values are views into the decoded buffer, not copies: objects are
 * immutable, so sharing is safe, but holding one record keeps the whole buffer alive.
 */
import { crc32c } from "@aws-crypto/crc32c";
import { SluiceError } from "../errors.js";
import type { DecodedBatch, LogRecord, RecordBatch } from "./record.js";
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
} from "./varint.js";

export const BATCH_MAGIC = 1;
export const BATCH_HEADER_BYTES = 34;

/** magic, attributes and batchLength: the bytes batchLength does not count. */
const BATCH_PREFIX_BYTES = 6;
const CRC_START = 10;
/** The smallest record: a one-byte length, then attributes, delta, key, value and header count. */
const MIN_RECORD_BYTES = 6;
const MAX_U32 = 0xffffffff;
/** Timestamps are at most 2^53 - 1, so the high 32 bits of the i64 field are at most this. */
const MAX_TIMESTAMP_HIGH = 0x1fffff;

const VALUE_IS_JSON = 0x01;
const KEY_IS_BINARY = 0x02;

const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Bytes `record` takes inside a batch whose first timestamp is `firstTimestamp`; a batch holding
 * only this record is BATCH_HEADER_BYTES + encodedRecordSize(record) bytes long. Throws
 * invalid_request for a record that encodeBatch would refuse.
 */
export function encodedRecordSize(record: LogRecord, firstTimestamp = record.timestamp): number {
  const body = recordBodySize(record, firstTimestamp);
  return uvarintSize(body) + body;
}

export function encodeBatch(batch: RecordBatch): Uint8Array {
  const { firstOffsetDelta, records } = batch;
  const first = records[0];
  if (first === undefined) throw invalid("a batch must hold at least one record");
  if (
    !Number.isInteger(firstOffsetDelta) ||
    firstOffsetDelta < 0 ||
    firstOffsetDelta + records.length - 1 > MAX_U32
  ) {
    throw invalid(`firstOffsetDelta ${firstOffsetDelta} is out of range for this batch`);
  }

  const firstTimestamp = first.timestamp;
  let maxTimestamp = firstTimestamp;
  const bodySizes = new Array<number>(records.length);
  let size = BATCH_HEADER_BYTES;
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    const body = recordBodySize(record, firstTimestamp);
    bodySizes[i] = body;
    size += uvarintSize(body) + body;
    if (record.timestamp > maxTimestamp) maxTimestamp = record.timestamp;
  }
  if (size - BATCH_PREFIX_BYTES > MAX_U32) throw invalid("batch is larger than 4 GiB");

  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = BATCH_MAGIC;
  out[1] = 0;
  view.setUint32(2, size - BATCH_PREFIX_BYTES);
  view.setUint32(10, firstOffsetDelta);
  view.setUint32(14, records.length);
  setTimestamp(view, 18, firstTimestamp);
  setTimestamp(view, 26, maxTimestamp);

  let pos = BATCH_HEADER_BYTES;
  for (let i = 0; i < records.length; i++) {
    pos = writeRecord(out, pos, records[i]!, bodySizes[i]!, firstTimestamp);
  }
  view.setUint32(6, crc32c(out.subarray(CRC_START)));
  return out;
}

export interface DecodeOptions {
  /**
   * False skips the CRC check, only for bytes this process has already decoded with it (a
   * cached object read again): the check guards against storage, and costs more than the rest
   * of decoding. Everything else is still checked.
   */
  verifyCrc?: boolean;
}

/** Decodes every batch in `bytes`, in order. Throws corrupt_data unless all of it is valid. */
export function decodeBatches(bytes: Uint8Array, options: DecodeOptions = {}): DecodedBatch[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const batches: DecodedBatch[] = [];
  const verifyCrc = options.verifyCrc ?? true;
  let position = 0;
  while (position < bytes.length) {
    const batch = decodeBatch(bytes, view, position, verifyCrc);
    batches.push(batch);
    position += batch.size;
  }
  return batches;
}

function decodeBatch(
  bytes: Uint8Array,
  view: DataView,
  position: number,
  verifyCrc: boolean,
): DecodedBatch {
  const fail = (message: string): SluiceError => corrupt(message, position);
  const available = bytes.length - position;
  if (available < BATCH_PREFIX_BYTES) throw fail("truncated batch header");
  const magic = bytes[position]!;
  if (magic !== BATCH_MAGIC) throw fail(`unknown batch magic ${magic}`);
  if (bytes[position + 1] !== 0) throw fail("reserved batch attributes are set");
  const size = BATCH_PREFIX_BYTES + view.getUint32(position + 2);
  if (size < BATCH_HEADER_BYTES + MIN_RECORD_BYTES) throw fail("batch length is too small");
  if (size > available) throw fail("truncated batch");
  const end = position + size;
  if (
    verifyCrc &&
    crc32c(bytes.subarray(position + CRC_START, end)) !== view.getUint32(position + 6)
  ) {
    throw fail("batch CRC mismatch");
  }

  const firstOffsetDelta = view.getUint32(position + 10);
  const recordCount = view.getUint32(position + 14);
  const firstTimestamp = getTimestamp(view, position + 18);
  const maxTimestamp = getTimestamp(view, position + 26);
  if (firstTimestamp < 0 || maxTimestamp < 0) throw fail("batch timestamp is out of range");
  if (recordCount === 0) throw fail("batch holds no records");
  if (firstOffsetDelta + recordCount - 1 > MAX_U32) throw fail("batch offsets overflow");
  // Bounds the allocation below by the batch's size, whatever the count field claims.
  if (recordCount * MIN_RECORD_BYTES > size - BATCH_HEADER_BYTES) {
    throw fail("record count does not fit the batch");
  }

  const records = new Array<LogRecord>(recordCount);
  const cursor: Cursor = { bytes, pos: position + BATCH_HEADER_BYTES, end };
  let seenMax = 0;
  try {
    for (let i = 0; i < recordCount; i++) {
      const record = readRecord(cursor, end, firstTimestamp);
      if (i === 0 && record.timestamp !== firstTimestamp) {
        throw corrupt("first record's timestamp differs from the batch's", cursor.pos);
      }
      if (record.timestamp > seenMax) seenMax = record.timestamp;
      records[i] = record;
    }
  } catch (err) {
    if (err instanceof SluiceError) {
      throw new SluiceError("corrupt_data", `${err.message} in batch at byte ${position}`, {
        details: { position, at: err.details?.position },
        cause: err,
      });
    }
    throw err;
  }
  if (cursor.pos !== end) throw fail("batch has bytes after its last record");
  if (seenMax !== maxTimestamp) throw fail("batch maxTimestamp differs from its records'");
  return { firstOffsetDelta, records, firstTimestamp, maxTimestamp, position, size };
}

function recordBodySize(record: LogRecord, firstTimestamp: number): number {
  const { timestamp, key, value, headers } = record;
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw invalid(`timestamp ${timestamp} is not a non-negative safe integer`);
  }
  if (key !== null && record.keyEncoding === "utf8" && !isUtf8(key)) {
    throw invalid("key marked as UTF-8 is not valid UTF-8");
  }
  if (key !== null && key.length > 0x7fffffff) throw invalid("key is too long");
  if (value.length > MAX_UVARINT) throw invalid("value is too long");
  let size =
    1 +
    varlongSize(timestamp - firstTimestamp) +
    (key === null ? 1 : varintSize(key.length) + key.length) +
    uvarintSize(value.length) +
    value.length;
  const names = Object.keys(headers);
  size += uvarintSize(names.length);
  for (const name of names) {
    const nameBytes = headerStringLength(name);
    const valueBytes = headerStringLength(headers[name]);
    size += uvarintSize(nameBytes) + nameBytes + uvarintSize(valueBytes) + valueBytes;
  }
  if (size > MAX_UVARINT) throw invalid("record is larger than 4 GiB");
  return size;
}

function writeRecord(
  out: Uint8Array,
  start: number,
  record: LogRecord,
  bodySize: number,
  firstTimestamp: number,
): number {
  const { key, value, headers } = record;
  let pos = writeUVarint(out, start, bodySize);
  out[pos++] =
    (record.valueEncoding === "json" ? VALUE_IS_JSON : 0) |
    (record.keyEncoding === "binary" ? KEY_IS_BINARY : 0);
  pos = writeVarlong(out, pos, record.timestamp - firstTimestamp);
  if (key === null) {
    pos = writeVarint(out, pos, -1);
  } else {
    pos = writeVarint(out, pos, key.length);
    out.set(key, pos);
    pos += key.length;
  }
  pos = writeUVarint(out, pos, value.length);
  out.set(value, pos);
  pos += value.length;
  const names = Object.keys(headers);
  pos = writeUVarint(out, pos, names.length);
  for (const name of names) {
    pos = writeHeaderString(out, pos, name);
    pos = writeHeaderString(out, pos, headers[name]!);
  }
  return pos;
}

function readRecord(c: Cursor, batchEnd: number, firstTimestamp: number): LogRecord {
  c.end = batchEnd;
  const length = readUVarint(c);
  if (length > batchEnd - c.pos) throw corrupt("record length overruns its batch", c.pos);
  const recordEnd = c.pos + length;
  c.end = recordEnd;

  if (c.pos >= recordEnd) throw corrupt("record is empty", c.pos);
  const attributes = c.bytes[c.pos++]!;
  if ((attributes & ~(VALUE_IS_JSON | KEY_IS_BINARY)) !== 0) {
    throw corrupt("reserved record attributes are set", c.pos - 1);
  }
  const timestamp = firstTimestamp + readVarlong(c);
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw corrupt("record timestamp is out of range", c.pos);
  }

  const keyLength = readVarint(c);
  let key: Uint8Array | null = null;
  if (keyLength !== -1) {
    if (keyLength < -1) throw corrupt("negative key length", c.pos);
    key = readBytes(c, keyLength);
  }
  const keyEncoding = (attributes & KEY_IS_BINARY) !== 0 ? "binary" : "utf8";
  if (key !== null && keyEncoding === "utf8" && !isUtf8(key)) {
    throw corrupt("key marked as UTF-8 is not valid UTF-8", c.pos);
  }
  const value = readBytes(c, readUVarint(c));

  const headerCount = readUVarint(c);
  // Each header takes at least two bytes; checked before the loop so a huge count fails fast.
  if (headerCount * 2 > recordEnd - c.pos) throw corrupt("header count overruns record", c.pos);
  const headers: Record<string, string> = {};
  for (let i = 0; i < headerCount; i++) {
    const name = readHeaderString(c);
    if (Object.hasOwn(headers, name)) throw corrupt("duplicate header name", c.pos);
    const headerValue = readHeaderString(c);
    if (name === "__proto__") {
      // Plain assignment would replace the object's prototype instead of adding a header.
      Object.defineProperty(headers, name, {
        value: headerValue,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      headers[name] = headerValue;
    }
  }
  if (c.pos !== recordEnd) throw corrupt("record length does not match its fields", c.pos);

  return {
    timestamp,
    key,
    keyEncoding,
    value,
    valueEncoding: (attributes & VALUE_IS_JSON) !== 0 ? "json" : "binary",
    headers,
  };
}

function readBytes(c: Cursor, length: number): Uint8Array {
  if (length > c.end - c.pos) throw corrupt("field length overruns its record", c.pos);
  const bytes = c.bytes.subarray(c.pos, c.pos + length);
  c.pos += length;
  return bytes;
}

function readHeaderString(c: Cursor): string {
  const bytes = readBytes(c, readUVarint(c));
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw corrupt("header is not valid UTF-8", c.pos);
  }
}

function isUtf8(bytes: Uint8Array): boolean {
  try {
    utf8Decoder.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * UTF-8 byte length of a header name or value. Lone surrogates are refused rather than replaced
 * with U+FFFD as TextEncoder would, so a header always reads back exactly as it was written.
 */
function headerStringLength(s: string | undefined): number {
  if (typeof s !== "string") throw invalid("header names and values must be strings");
  let length = 0;
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i);
    if (unit < 0x80) length += 1;
    else if (unit < 0x800) length += 2;
    else if (unit < 0xd800 || unit > 0xdfff) length += 3;
    else if (unit < 0xdc00 && isLowSurrogate(s.charCodeAt(i + 1))) {
      length += 4;
      i++;
    } else {
      throw invalid("header contains a lone UTF-16 surrogate");
    }
  }
  if (length > MAX_UVARINT) throw invalid("header is too long");
  return length;
}

/** Writes a header string, already checked by headerStringLength, with its length prefix. */
function writeHeaderString(out: Uint8Array, start: number, s: string): number {
  let pos = writeUVarint(out, start, headerStringLength(s));
  for (let i = 0; i < s.length; i++) {
    let code = s.charCodeAt(i);
    if (code < 0x80) {
      out[pos++] = code;
    } else if (code < 0x800) {
      out[pos++] = 0xc0 | (code >> 6);
      out[pos++] = 0x80 | (code & 0x3f);
    } else if (code < 0xd800 || code > 0xdfff) {
      out[pos++] = 0xe0 | (code >> 12);
      out[pos++] = 0x80 | ((code >> 6) & 0x3f);
      out[pos++] = 0x80 | (code & 0x3f);
    } else {
      code = 0x10000 + ((code - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      out[pos++] = 0xf0 | (code >> 18);
      out[pos++] = 0x80 | ((code >> 12) & 0x3f);
      out[pos++] = 0x80 | ((code >> 6) & 0x3f);
      out[pos++] = 0x80 | (code & 0x3f);
    }
  }
  return pos;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/** Timestamps are non-negative safe integers, so two u32 halves avoid BigInt entirely. */
function setTimestamp(view: DataView, at: number, timestamp: number): void {
  view.setUint32(at, Math.floor(timestamp / 0x100000000));
  view.setUint32(at + 4, timestamp % 0x100000000);
}

/** Returns -1 for a value that is not a non-negative safe integer. */
function getTimestamp(view: DataView, at: number): number {
  const high = view.getUint32(at);
  if (high > MAX_TIMESTAMP_HIGH) return -1;
  return high * 0x100000000 + view.getUint32(at + 4);
}

function corrupt(message: string, position: number): SluiceError {
  return new SluiceError("corrupt_data", message, { details: { position } });
}

function invalid(message: string): SluiceError {
  return new SluiceError("invalid_request", message);
}
