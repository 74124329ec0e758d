import type { ByteRange, ObjectInfo, ObjectStore } from "../../src/storage/object-store.js";

/** Counts the requests that reach an object store, to check the cost model (PUTs per flush). */
export class CountingObjectStore implements ObjectStore {
  puts = 0;
  gets = 0;
  /** Every GET, in order, with its range (undefined: the whole object). */
  readonly getLog: { key: string; range: ByteRange | undefined }[] = [];

  constructor(readonly inner: ObjectStore) {}

  put(key: string, body: Uint8Array): Promise<void> {
    this.puts++;
    return this.inner.put(key, body);
  }

  get(key: string, range?: ByteRange): Promise<Uint8Array> {
    this.gets++;
    this.getLog.push({ key, range });
    return this.inner.get(key, range);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  delete(keys: readonly string[]): Promise<void> {
    return this.inner.delete(keys);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
