import { DeleteTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoMetaStore, ensureTable } from "../../src/meta/dynamodb.js";
import { S3ObjectStore } from "../../src/storage/s3.js";
import { s3Endpoint } from "./standins/s3.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { GroupStore } from "../../src/meta/group-store.js";
import type { MetaStore } from "../../src/meta/meta-store.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import { SqliteMetaStore } from "../../src/meta/sqlite.js";
import { FileSystemObjectStore } from "../../src/storage/filesystem.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";
import type { ObjectStore } from "../../src/storage/object-store.js";

export interface TestStores {
  store: ObjectStore;
  meta: MetaStore & GroupStore;
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
  /**
   * S3 + DynamoDB through the SDK's own configuration: the stand-ins test/global-setup.ts
   * starts, or MinIO / DynamoDB Local / AWS when the endpoint variables say so. Each call gets
   * a bucket and a table of its own.
   */
  "s3+dynamodb": async () => {
    const s3 = await s3Endpoint();
    const client = new DynamoDBClient({});
    const table = `sluice-e2e-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    await ensureTable(client, table);
    const store = new S3ObjectStore({ bucket: s3.bucket, prefix: "e2e/" });
    const meta = new DynamoMetaStore({ table, client });
    return {
      store,
      meta,
      cleanup: async () => {
        await meta.close();
        await store.close();
        await client.send(new DeleteTableCommand({ TableName: table }));
        client.destroy();
        await s3.stop();
      },
    };
  },
};
