import { MemoryMetaStore } from "../../src/meta/memory.js";
import { groupStoreContract } from "../contract/group-store.case.js";

groupStoreContract("memory", () =>
  Promise.resolve({ store: new MemoryMetaStore(), cleanup: () => Promise.resolve() }),
);
