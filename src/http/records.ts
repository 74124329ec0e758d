import type { z } from "@hono/zod-openapi";
import { SluiceError } from "../errors.js";
import type { ProduceRecord } from "../log/log.js";
import type { ReadRecord, ReadResult } from "../log/reader.js";
import type { ProduceRecordIn } from "./schemas.js";

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** JSON values are stored as their JSON text, so they can be sent back without re-parsing. */
export function toProduceRecord(input: z.output<typeof ProduceRecordIn>): ProduceRecord {
  const binaryKey = input.keyBase64 !== undefined;
  const binaryValue = input.valueBase64 !== undefined;
  return {
    key: binaryKey
      ? Buffer.from(input.keyBase64!, "base64")
      : input.key === undefined
        ? null
        : utf8.encode(input.key),
    keyEncoding: binaryKey ? "binary" : "utf8",
    value: binaryValue ? Buffer.from(input.valueBase64!, "base64") : jsonValue(input.value),
    valueEncoding: binaryValue ? "binary" : "json",
    headers: input.headers ?? {},
    ...(input.partition === undefined ? {} : { partition: input.partition }),
    ...(input.timestamp === undefined ? {} : { timestamp: input.timestamp }),
  };
}

function jsonValue(value: unknown): Uint8Array {
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    // JSON.parse accepts nesting deeper than JSON.stringify can recurse: refuse it whole.
    if (err instanceof RangeError) {
      throw new SluiceError("invalid_request", "value: nested too deeply to store");
    }
    throw err;
  }
  return utf8.encode(text);
}

/**
 * Writes the fetch response by hand: stored JSON values are spliced in verbatim (they were
 * produced by JSON.stringify and are CRC-checked), which saves a parse and a stringify per
 * record on the hottest read path.
 */
export function fetchResponseJson(result: ReadResult): string {
  return `{"records":${recordsJson(result.records)},"nextOffset":${result.nextOffset},"logEndOffset":${result.head.logEndOffset}}`;
}

/** A JSON array of records, as every fetch answer carries them. */
export function recordsJson(records: readonly ReadRecord[]): string {
  return `[${records.map(recordJson).join(",")}]`;
}

/** One record's JSON, as it appears in a fetch answer (and in an event stream's `data:`). */
export function recordJson(r: ReadRecord): string {
  const key =
    r.key === null
      ? '"key":null'
      : r.keyEncoding === "binary"
        ? `"keyBase64":"${Buffer.from(r.key).toString("base64")}"`
        : `"key":${JSON.stringify(utf8Decoder.decode(r.key))}`;
  const value =
    r.valueEncoding === "json"
      ? `"value":${utf8Decoder.decode(r.value)}`
      : `"valueBase64":"${Buffer.from(r.value).toString("base64")}"`;
  return `{"offset":${r.offset},"timestamp":${r.timestamp},${key},${value},"headers":${JSON.stringify(r.headers)}}`;
}
