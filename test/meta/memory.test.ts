import { MemoryMetaStore } from "../../src/meta/memory.js";
import { keyStoreContract } from "../contract/key-store.case.js";
import { metaStoreContract } from "../contract/meta-store.case.js";

metaStoreContract("memory", () =>
  Promise.resolve({ store: new MemoryMetaStore(), cleanup: () => Promise.resolve() }),
);

keyStoreContract("memory", () =>
  Promise.resolve({ store: new MemoryMetaStore(), cleanup: () => Promise.resolve() }),
);
