import { join, resolve } from "node:path";
import type { ServerConfig } from "./config.js";
import type { MetaStore } from "./meta/meta-store.js";
import { SqliteMetaStore } from "./meta/sqlite.js";
import { FileSystemObjectStore } from "./storage/filesystem.js";
import type { ObjectStore } from "./storage/object-store.js";

export interface Stores {
  store: ObjectStore;
  meta: MetaStore;
  /** Where the data lives, for the start-up log line. */
  description: Record<string, string>;
}

/** Picks the adapters the configuration asks for: the embedded default is one local directory. */
export function openStores(config: ServerConfig): Stores {
  const dataDir = resolve(config.dataDir);
  const store = new FileSystemObjectStore({ root: join(dataDir, "objects") });
  const meta = SqliteMetaStore.open(join(dataDir, "meta.sqlite"));
  return { store, meta, description: { mode: "embedded", dataDir } };
}
