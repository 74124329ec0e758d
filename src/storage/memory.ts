import { SluiceError } from "../errors.js";
import { assertValidKey, assertValidPrefix, assertValidRange } from "./object-store.js";
import type { ByteRange, ObjectInfo, ObjectStore } from "./object-store.js";

interface StoredObject {
  bytes: Uint8Array;
  lastModified: Date;
}

/** The simplest adapter: a Map in this process. The reference for the port, and for unit tests. */
export class MemoryObjectStore implements ObjectStore {
  readonly #objects = new Map<string, StoredObject>();

  put(key: string, body: Uint8Array): Promise<void> {
    return settle(() => {
      assertValidKey(key);
      // Copied both ways: a caller reusing its buffer must not change an immutable object.
      this.#objects.set(key, { bytes: new Uint8Array(body), lastModified: new Date() });
    });
  }

  get(key: string, range?: ByteRange): Promise<Uint8Array> {
    return settle(() => {
      assertValidKey(key);
      if (range !== undefined) assertValidRange(range);
      const stored = this.#objects.get(key);
      if (stored === undefined) {
        throw new SluiceError("not_found", `no object at key ${key}`, { details: { key } });
      }
      return stored.bytes.slice(range?.start ?? 0, range?.end ?? stored.bytes.length);
    });
  }

  // The port's listing is async for remote stores; a Map has nothing to await.
  // eslint-disable-next-line @typescript-eslint/require-await
  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    assertValidPrefix(prefix);
    const keys = [...this.#objects.keys()].filter((key) => key.startsWith(prefix)).sort();
    for (const key of keys) {
      // Looked up again because a delete may have run while the consumer was busy.
      const stored = this.#objects.get(key);
      if (stored !== undefined) {
        yield { key, size: stored.bytes.length, lastModified: stored.lastModified };
      }
    }
  }

  delete(keys: readonly string[]): Promise<void> {
    return settle(() => {
      // All keys are checked before any is removed, so a bad request changes nothing.
      keys.forEach(assertValidKey);
      for (const key of keys) this.#objects.delete(key);
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Turns a synchronous throw into a rejection, as callers of a promise-returning method expect. */
function settle<T>(fn: () => T): Promise<T> {
  return new Promise((resolve) => resolve(fn()));
}
