/**
 * Sluice under test: `sluice serve` as a child process on 127.0.0.1 (the way users run it), and
 * the same stores opened in this process for what needs the log itself (rolls, counters).
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { join } from "node:path";
import { zeroCounters, type TopicCounters } from "../src/log/metrics.js";
import { DynamoMetaStore } from "../src/meta/dynamodb.js";
import type { GroupStore } from "../src/meta/group-store.js";
import type { MetaStore } from "../src/meta/meta-store.js";
import { SqliteMetaStore } from "../src/meta/sqlite.js";
import { FileSystemObjectStore } from "../src/storage/filesystem.js";
import type { ObjectStore } from "../src/storage/object-store.js";
import { S3ObjectStore } from "../src/storage/s3.js";
import { fileURLToPath } from "node:url";
import { startServer } from "../test/support/server-process.js";
import { startChild } from "./children.js";
import { sluiceServerEnv } from "./config.js";
import { HttpClient } from "./load.js";
import type { Standins } from "./standins.js";
import type { BackendName } from "./types.js";

/** Where one backend's data lives, so that a restarted server (or this process) finds it. */
export interface BackendPlace {
  backend: BackendName;
  /** The server's data directory (objects and SQLite for the embedded store). */
  dataDir: string;
  /** Key prefix in the bucket, for S3. */
  prefix: string;
  standins?: Standins;
}

export interface SluiceServer {
  url: string;
  client: HttpClient;
  stop: () => Promise<void>;
}

export function backendEnv(place: BackendPlace): Record<string, string> {
  if (place.backend === "embedded") return {};
  const s = place.standins;
  if (!s) throw new Error("the s3+dynamodb backend needs the stand-ins");
  return { ...s.env, SLUICE_BUCKET: s.bucket, SLUICE_TABLE: s.table, SLUICE_PREFIX: place.prefix };
}

/**
 * `sluice serve` on 127.0.0.1 and a port of its own, through the tests' server-process helper;
 * with `custom` the bench spawns it itself: other node flags (`--cpu-prof`, which NODE_OPTIONS
 * refuses) and another entry script (a bundle of src/cli/main.ts).
 */
export async function startSluice(
  place: BackendPlace,
  extraEnv: Record<string, string> = {},
  custom?: { nodeArgs: string[]; script: string },
): Promise<SluiceServer> {
  const env = { ...sluiceServerEnv, ...backendEnv(place), ...extraEnv };
  if (custom) return startCustom(place, env, custom.nodeArgs, custom.script);
  const server = await startServer({ dataDir: place.dataDir, env, startTimeoutMs: 60_000 });
  const client = new HttpClient(server.url, 128);
  return {
    url: server.url,
    client,
    stop: async () => {
      client.close();
      const exit = await server.stop(30_000);
      if (exit.code !== 0) {
        const { stderr } = server.output();
        throw new Error(`sluice exited with ${exit.code ?? exit.signal}: ${stderr.slice(-2000)}`);
      }
    },
  };
}

const repoRoot = fileURLToPath(new URL("..", import.meta.url));

async function startCustom(
  place: BackendPlace,
  env: Record<string, string>,
  nodeArgs: string[],
  script: string,
): Promise<SluiceServer> {
  // prettier-ignore
  const args = [
    ...nodeArgs, script, "serve",
    "--host", "127.0.0.1", "--port", "0", "--data-dir", place.dataDir,
  ];
  const child = await startChild(
    process.execPath,
    args,
    (line) => {
      if (!line.includes('"msg":"sluice listening"')) return undefined;
      return (JSON.parse(line) as { port: number }).port;
    },
    { env, cwd: repoRoot, timeoutMs: 60_000 },
  );
  const url = `http://127.0.0.1:${child.ready}`;
  const client = new HttpClient(url, 128);
  return {
    url,
    client,
    stop: async () => {
      client.close();
      await child.stop();
    },
  };
}

export async function topicMetrics(client: HttpClient, topic: string): Promise<TopicCounters> {
  const { topics } = await client.json<{ topics: Record<string, TopicCounters> }>(
    "GET",
    "/v1/metrics",
  );
  return topics[topic] ?? zeroCounters();
}

export async function createTopic(
  client: HttpClient,
  name: string,
  config: Record<string, number> = {},
): Promise<void> {
  await client.json("POST", "/v1/topics", { name, partitions: 1, config });
}

export interface OpenStores {
  store: ObjectStore;
  meta: MetaStore & GroupStore;
  close: () => Promise<void>;
}

/**
 * The backend's stores opened in this process, as `sluice serve` opens them. The embedded
 * store's SQLite file must not be written by a running server at the same time. A DynamoDB
 * client can be passed to count what reaches the table.
 */
export function openBackend(place: BackendPlace, dynamo?: DynamoDBClient): OpenStores {
  if (place.backend === "embedded") {
    const store = new FileSystemObjectStore({ root: join(place.dataDir, "objects") });
    const meta = SqliteMetaStore.open(join(place.dataDir, "meta.sqlite"));
    return {
      store,
      meta,
      close: async () => {
        await meta.close();
        await store.close();
      },
    };
  }
  const s = place.standins!;
  const store = new S3ObjectStore({ bucket: s.bucket, prefix: place.prefix });
  const client = dynamo ?? new DynamoDBClient({});
  const meta = new DynamoMetaStore({ table: s.table, client });
  return {
    store,
    meta,
    close: async () => {
      await meta.close();
      await store.close();
      if (dynamo === undefined) client.destroy();
    },
  };
}
