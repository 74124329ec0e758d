import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ScheduledEvent } from "aws-lambda";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { MIN_ORPHAN_GRACE_MS, serverConfigFromEnv } from "../../src/config.js";
import { chunkKey } from "../../src/log/keys.js";
import type { MaintenanceReport } from "../../src/log/maintenance.js";
import { openStores, type Stores } from "../../src/stores.js";
import { makeHarness, type Harness } from "../support/harness.js";

/**
 * The scheduled maintenance entry point, invoked with the event an EventBridge rule really
 * sends on a schedule, over the embedded adapters in a fresh directory: no cloud, no network.
 * The test writes through its own log on the same directory, as the HTTP function and the
 * maintenance function share one bucket and one table. The handler takes no clock, so the test
 * moves the one it reads (Date alone; timers keep real time).
 */

const HOUR = 60 * 60 * 1000;

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
  // The shortest grace allowed; the test moves the clock past it instead of waiting.
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

/** From now on, the clock reads `ms` later than the real one. */
function clockAhead(ms: number): void {
  vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + ms, shouldAdvanceTime: true });
}

afterEach(() => {
  vi.useRealTimers();
});

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
  it("runs a full pass: rolls, deletes orphans and deleted topics, keeps everything committed", async () => {
    expect((await h.call("POST", "/v1/topics", { name: "kept", partitions: 1 })).status).toBe(201);
    await h.call("POST", "/v1/topics/kept/records", { records: [{ value: 1 }, { value: 2 }] });
    await h.call("POST", "/v1/topics/kept/records", { records: [{ value: 3 }] });
    const kept = await h.log.topics.get("kept");
    const chunks = await keysUnder(`kept/${kept.id}/`);
    expect(chunks).toHaveLength(2);

    // An upload whose writer never committed it: no index entry points to it.
    const orphan = chunkKey("kept", kept.id, 0, "01ORPHAN0000000000000000000");
    await stores.store.put(orphan, new Uint8Array([1, 2, 3]));

    await h.call("POST", "/v1/topics", { name: "gone", partitions: 1 });
    const gone = await h.log.topics.get("gone");
    await h.call("POST", "/v1/topics/gone/records", { records: [{ value: "x" }] });
    expect(await keysUnder(`gone/${gone.id}/`)).toHaveLength(1);
    expect((await h.call("DELETE", "/v1/topics/gone")).status).toBe(204);

    // Two hours on: past the grace period, rollMinAgeMs, and the default segment.ms (1 h).
    clockAhead(2 * HOUR);
    const report = await handler(scheduledEvent());
    expect(report).toEqual({
      partitions: 2,
      // The listing comes last: the rolled chunks, the new segment, the orphan, the dead chunk.
      objectsScanned: 5,
      orphansDeleted: 1,
      deletedTopicObjectsDeleted: 1,
      segmentsRolled: 1,
      chunksReplaced: 2,
      segmentsRetired: 0,
      intentsAborted: 0,
      garbageObjectsDeleted: 0,
      // The dead topic's head and index entry, then its tombstone.
      deletedTopicItemsDeleted: 3,
      rollsFailed: 0,
    });

    // The chunks stay until a grace period after the roll: a reader may still be on them.
    const afterRoll = await keysUnder(`kept/${kept.id}/`);
    expect(afterRoll).toHaveLength(3);
    expect(afterRoll).toEqual(expect.arrayContaining(chunks));
    expect(afterRoll).not.toContain(orphan);
    expect(await keysUnder(`gone/`)).toEqual([]);
    const described = await h.call("GET", "/v1/topics/kept");
    expect(described.body.partitions[0].segments).toMatchObject([
      { baseOffset: 0, count: 3, state: "sealed" },
      { baseOffset: 3, count: 0, state: "active", chunks: 0 },
    ]);
    expect(await readAll("kept")).toEqual([1, 2, 3]);

    // `aws lambda invoke --function-name …` sends `{}` unless told otherwise: the event is not
    // read, so that runs the same pass, and a repeat finds nothing left to do.
    const idle = {
      partitions: 1,
      objectsScanned: 3,
      orphansDeleted: 0,
      deletedTopicObjectsDeleted: 0,
      segmentsRolled: 0,
      chunksReplaced: 0,
      segmentsRetired: 0,
      intentsAborted: 0,
      garbageObjectsDeleted: 0,
      deletedTopicItemsDeleted: 0,
      rollsFailed: 0,
    };
    expect(await handler({} as ScheduledEvent)).toEqual(idle);

    // A grace period later, the rolled chunks go and only the segment is left.
    clockAhead(2 * HOUR + 2 * MIN_ORPHAN_GRACE_MS);
    expect(await handler(scheduledEvent())).toEqual({
      ...idle,
      objectsScanned: 1,
      garbageObjectsDeleted: 2,
    });
    expect(await keysUnder(`kept/${kept.id}/`)).toEqual(
      afterRoll.filter((k) => !chunks.includes(k)),
    );
    expect(await readAll("kept")).toEqual([1, 2, 3]);
  });
});
