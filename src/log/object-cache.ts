import type { ByteRange, ObjectStore } from "../storage/object-store.js";

/**
 * Objects are immutable, so a key's bytes never go stale: cache whole objects and byte ranges,
 * least recently used out first, and let concurrent readers of one key share a single GET.
 */
export class ObjectCache {
  private readonly entries = new Map<string, Uint8Array>();
  private readonly inFlight = new Map<string, Promise<Uint8Array>>();
  private bytes = 0;

  constructor(
    private readonly store: ObjectStore,
    private readonly maxBytes: number,
  ) {}

  get(key: string): Promise<Uint8Array> {
    return this.load(key, () => this.store.get(key));
  }

  /**
   * A byte range of an object. Cached by key and start, so callers must ask for a range that
   * depends only on the object (a sealed segment's footer or block), never on the request.
   */
  getRange(key: string, range: ByteRange): Promise<Uint8Array> {
    return this.load(`${key}@${range.start}-${range.end}`, () => this.store.get(key, range));
  }

  /** A writer that just uploaded an object can seed the cache so tail reads skip the GET. */
  remember(key: string, body: Uint8Array): void {
    if (body.byteLength > this.maxBytes || this.entries.has(key)) return;
    this.entries.set(key, body);
    this.bytes += body.byteLength;
    for (const [oldKey, oldBody] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldKey);
      this.bytes -= oldBody.byteLength;
    }
  }

  private async load(cacheKey: string, fetch: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const hit = this.entries.get(cacheKey);
    if (hit) {
      this.entries.delete(cacheKey);
      this.entries.set(cacheKey, hit);
      return hit;
    }
    const pending = this.inFlight.get(cacheKey);
    if (pending) return pending;
    const load = fetch()
      .then((body) => {
        this.remember(cacheKey, body);
        return body;
      })
      .finally(() => this.inFlight.delete(cacheKey));
    this.inFlight.set(cacheKey, load);
    return load;
  }
}
