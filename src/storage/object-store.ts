import { SluiceError } from "../errors.js";

/**
 * The object-store port. Objects are immutable once written: Sluice never overwrites a key with
 * different bytes, which is what makes caching by key and retrying a PUT safe.
 *
 * Adapters throw SluiceError: `not_found` for a missing key, `storage_unavailable` for a
 * failure that may succeed when retried. They know nothing of topics or offsets.
 */
export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, exclusive. */
  end: number;
}

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

export interface ObjectStore {
  /** Stores the bytes durably under the key; resolves only once they would survive a crash. */
  put(key: string, body: Uint8Array): Promise<void>;
  /** Reads the whole object, or the given range of it (clamped to the object's end). */
  get(key: string, range?: ByteRange): Promise<Uint8Array>;
  /** Every object whose key starts with the prefix, in ascending key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removes the keys; keys that do not exist are ignored. */
  delete(keys: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

const KEY_SEGMENT = /^[A-Za-z0-9._=-]+$/;

/**
 * Keys are `/`-separated segments of a safe alphabet, never `.` or `..`, so that every adapter
 * (a directory tree included) maps them to a location inside its own root.
 */
export function isValidObjectKey(key: string): boolean {
  if (key.length === 0 || key.length > 1024) return false;
  return key
    .split("/")
    .every((segment) => KEY_SEGMENT.test(segment) && segment !== "." && segment !== "..");
}

export function isValidKeyPrefix(prefix: string): boolean {
  if (prefix === "") return true;
  const trimmed = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  return isValidObjectKey(trimmed);
}

/** Adapters call these before touching storage, so that every adapter refuses the same input. */
export function assertValidKey(key: string): void {
  if (!isValidObjectKey(key)) {
    throw new SluiceError("invalid_request", `invalid object key: ${JSON.stringify(key)}`, {
      details: { key },
    });
  }
}

export function assertValidPrefix(prefix: string): void {
  if (!isValidKeyPrefix(prefix)) {
    throw new SluiceError("invalid_request", `invalid key prefix: ${JSON.stringify(prefix)}`, {
      details: { prefix },
    });
  }
}

export function assertValidRange({ start, end }: ByteRange): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new SluiceError("invalid_request", `invalid byte range [${start}, ${end})`, {
      details: { start, end },
    });
  }
}
