import { MemoryObjectStore } from "../../src/storage/memory.js";
import { objectStoreContract } from "../contract/object-store.case.js";

objectStoreContract("memory", () =>
  Promise.resolve({ store: new MemoryObjectStore(), cleanup: () => Promise.resolve() }),
);
