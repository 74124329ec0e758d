import { mkdtemp, readdir, rm, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ScheduledEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIN_ORPHAN_GRACE_MS, serverConfigFromEnv } from "../../src/config.js";
import { chunkKey } from "../../src/log/keys.js";
import type { MaintenanceReport } from "../../src/log/maintenance.js";
import { openStores, type Stores } from "../../src/stores.js";
import { makeHarness, type Harness } from "../support/harness.js";

/**
 * The scheduled maintenance entry point, invoked with the event an EventBridge rule really
 * sends on a schedule, over the embedded adapters in a fresh directory: no cloud, no network.
 * The test writes through its own log on the same directory, as the HTTP function and the
 * maintenance function share one bucket and one table.
 */

let handler: (event: ScheduledEvent) => Promise<MaintenanceReport>;
let dataDir: string;
let stores: Stores;
let h: Harness;
const savedEnv: Record<string, string | undefined> = {};
const envKeys = [
  "SLUICE_DATA_DIR",
  "SLUICE_BUCKET",
  "SLUICE_TABLE",
  "SLUICE_ORPHAN_GRACE_MS",
] as const;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "sluice-maintenance-lambda-"));
  for (const key of envKeys) savedEnv[key] = process.env[key];
  // functions/maintenance.ts reads its configuration when it is imported: set it first, and
  // make sure a developer's shell pointing at a bucket or table cannot send this to the cloud.
  process.env.SLUICE_DATA_DIR = dataDir;
  delete process.env.SLUICE_BUCKET;
  delete process.env.SLUICE_TABLE;
  // The shortest grace allowed; the test ages the objects' files past it instead of waiting.
  process.env.SLUICE_ORPHAN_GRACE_MS = String(MIN_ORPHAN_GRACE_MS);
  ({ handler } = await import("../../functions/maintenance.js"));
  stores = await openStores(serverConfigFromEnv());
  h = makeHarness(stores);
});

afterAll(async () => {
  await h?.log.close();
  await stores?.meta.close();
  await stores?.store.close();
  for (const key of envKeys) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
  await rm(dataDir, { recursive: true, force: true });
});

/** What a rule with `rate(15 minutes)` delivers (AWS documentation's sample, our names). */
function scheduledEvent(): ScheduledEvent {
  return {
    version: "0",
    id: "89d1a02d-5ec7-412e-82f5-13505f849b41",
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: "123456789012",
    time: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
    region: "us-east-1",
    resources: ["arn:aws:events:us-east-1:123456789012:rule/Sluice-MaintenanceSchedule0A1B2C3D"],
    detail: {},
  };
}

async function ageFiles(dir: string, mtimeMs: number): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await ageFiles(path, mtimeMs);
    else await utimes(path, mtimeMs / 1000, mtimeMs / 1000);
  }
}

async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of stores.store.list(prefix)) keys.push(object.key);
  return keys.sort();
}

const readAll = async (topic: string) =>
  (await h.call("GET", `/v1/topics/${topic}/partitions/0/records?offset=0`)).body.records.map(
    (r: any) => r.value,
  );

describe("functions/maintenance handler on an EventBridge schedule", () => {
  it("deletes orphans and a deleted topic's objects, and nothing committed; a repeat is a no-op", async () => {
    expect((await h.call("POST", "/v1/topics", { name: "kept", partitions: 1 })).status).toBe(201);
    await h.call("POST", "/v1/topics/kept/records", { records: [{ value: 1 }, { value: 2 }] });
    await h.call("POST", "/v1/topics/kept/records", { records: [{ value: 3 }] });
    const kept = await h.log.topics.get("kept");
    const committed = await keysUnder(`kept/${kept.id}/`);
    expect(committed).toHaveLength(2);

    // An upload whose writer never committed it: no index entry points to it.
    const orphan = chunkKey("kept", kept.id, 0, "01ORPHAN0000000000000000000");
    await stores.store.put(orphan, new Uint8Array([1, 2, 3]));

    await h.call("POST", "/v1/topics", { name: "gone", partitions: 1 });
    const gone = await h.log.topics.get("gone");
    await h.call("POST", "/v1/topics/gone/records", { records: [{ value: "x" }] });
    expect(await keysUnder(`gone/${gone.id}/`)).toHaveLength(1);
    expect((await h.call("DELETE", "/v1/topics/gone")).status).toBe(204);

    // The filesystem store reports a file's mtime as the object's age: make them all old.
    await ageFiles(join(dataDir, "objects"), Date.now() - 2 * MIN_ORPHAN_GRACE_MS);

    const report = await handler(scheduledEvent());
    expect(report).toEqual({
      partitions: 2,
      objectsScanned: 4,
      orphansDeleted: 1,
      deletedTopicObjectsDeleted: 1,
    });

    expect(await keysUnder(`kept/${kept.id}/`)).toEqual(committed);
    expect(await keysUnder(`gone/`)).toEqual([]);
    expect(await readAll("kept")).toEqual([1, 2, 3]);

    // `aws lambda invoke --function-name …` sends `{}` unless told otherwise: the event is not
    // read, so that runs the same pass, and a repeat finds nothing left to delete.
    expect(await handler({} as ScheduledEvent)).toEqual({
      partitions: 1,
      objectsScanned: 2,
      orphansDeleted: 0,
      deletedTopicObjectsDeleted: 0,
    });
    expect(await readAll("kept")).toEqual([1, 2, 3]);
  });
});
