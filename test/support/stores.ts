import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MetaStore } from "../../src/meta/meta-store.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import { SqliteMetaStore } from "../../src/meta/sqlite.js";
import { FileSystemObjectStore } from "../../src/storage/filesystem.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";
import type { ObjectStore } from "../../src/storage/object-store.js";

export interface TestStores {
  store: ObjectStore;
  meta: MetaStore;
  cleanup: () => Promise<void>;
}

/** Every adapter pair the end-to-end suites run against. */
export const storeKinds: Record<string, () => Promise<TestStores>> = {
  memory: () =>
    Promise.resolve({
      store: new MemoryObjectStore(),
      meta: new MemoryMetaStore(),
      cleanup: () => Promise.resolve(),
    }),
  embedded: async () => {
    const dir = await mkdtemp(join(tmpdir(), "sluice-e2e-"));
    const store = new FileSystemObjectStore({ root: join(dir, "objects") });
    const meta = SqliteMetaStore.open(join(dir, "meta.sqlite"));
    return {
      store,
      meta,
      cleanup: async () => {
        await meta.close();
        await store.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
};
