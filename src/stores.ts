import { join, resolve } from "node:path";
import type { ServerConfig } from "./config.js";
import type { GroupStore } from "./meta/group-store.js";
import type { KeyStore } from "./meta/key-store.js";
import type { MetaStore } from "./meta/meta-store.js";
import type { ObjectStore } from "./storage/object-store.js";

export interface Stores {
  store: ObjectStore;
  /** The metadata table: topics, consumer groups and API keys. */
  meta: MetaStore & GroupStore & KeyStore;
  /** Where the data lives, for the start-up log line. */
  description: Record<string, string>;
}

/**
 * Picks the adapters the configuration asks for: S3 when a bucket is named, DynamoDB when a
 * table is named, and otherwise the embedded default, one local directory. Adapters are
 * imported only when chosen, so a Lambda bundle never loads SQLite's native module and the
 * embedded server never loads the AWS SDK.
 */
export async function openStores(config: ServerConfig): Promise<Stores> {
  const dataDir = resolve(config.dataDir);
  const store = config.bucket
    ? new (await import("./storage/s3.js")).S3ObjectStore({
        bucket: config.bucket,
        prefix: config.prefix,
      })
    : new (await import("./storage/filesystem.js")).FileSystemObjectStore({
        root: join(dataDir, "objects"),
      });
  const meta = config.table
    ? new (await import("./meta/dynamodb.js")).DynamoMetaStore({ table: config.table })
    : (await import("./meta/sqlite.js")).SqliteMetaStore.open(join(dataDir, "meta.sqlite"));
  return {
    store,
    meta,
    description: {
      objects: config.bucket ? `s3://${config.bucket}/${config.prefix}` : join(dataDir, "objects"),
      metadata: config.table ? `dynamodb:${config.table}` : join(dataDir, "meta.sqlite"),
    },
  };
}
