import type { ObjectStore } from "../storage/object-store.js";

/**
 * Objects are immutable, so a key's bytes never go stale: cache whole objects by key, least
 * recently used out first, and let concurrent readers of one key share a single GET.
 */
export class ObjectCache {
  private readonly entries = new Map<string, Uint8Array>();
  private readonly inFlight = new Map<string, Promise<Uint8Array>>();
  private bytes = 0;

  constructor(
    private readonly store: ObjectStore,
    private readonly maxBytes: number,
  ) {}

  async get(key: string): Promise<Uint8Array> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const load = this.store
      .get(key)
      .then((body) => {
        this.remember(key, body);
        return body;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, load);
    return load;
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
}
