/**
 * What a record is, independent of how it travels (JSON over HTTP) or rests (the batch codec).
 */
export type KeyEncoding = "utf8" | "binary";
export type ValueEncoding = "json" | "binary";

export interface LogRecord {
  /** Milliseconds since the epoch. */
  timestamp: number;
  key: Uint8Array | null;
  keyEncoding: KeyEncoding;
  value: Uint8Array;
  valueEncoding: ValueEncoding;
  headers: Record<string, string>;
}

export interface RecordBatch {
  /** Offset of the batch's first record relative to the base offset of the object holding it. */
  firstOffsetDelta: number;
  records: LogRecord[];
}

export interface DecodedBatch extends RecordBatch {
  firstTimestamp: number;
  maxTimestamp: number;
  /** Byte position of the batch within the decoded buffer, and its length. */
  position: number;
  size: number;
}
