import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { logConfigDefaults } from "../../src/config.js";
import { isSluiceError } from "../../src/errors.js";
import { GroupService } from "../../src/groups/service.js";
import { SluiceLog } from "../../src/log/log.js";
import type {
  GroupGuard,
  GroupRecord,
  OffsetWrite,
  OffsetWriteResult,
} from "../../src/meta/group-store.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";

const T0 = 1_800_000_000_000;
const SESSION = 6_000;

/** Counts group writes, can lose every race, and can run a step after each offset chunk. */
class ScriptedMeta extends DelegatingMetaStore {
  puts = 0;
  loseRaces = false;
  chunkSize = Infinity;
  offsetWrites = 0;
  afterChunk: (() => Promise<void>) | undefined;
  /** Called once, at the next read of a group's offsets. */
  onGetOffsets: (() => void) | undefined;
  /** Every offset write that landed: who wrote which partition. */
  landed: { memberId: string | null; partition: number; offset: number }[] = [];

  override async putGroup(record: GroupRecord, expectedVersion: number | null): Promise<boolean> {
    this.puts++;
    return this.loseRaces ? false : this.inner.putGroup(record, expectedVersion);
  }

  override async writeOffsets(
    group: string,
    guard: GroupGuard,
    writes: OffsetWrite[],
  ): Promise<OffsetWriteResult> {
    this.offsetWrites++;
    const result = await this.inner.writeOffsets(group, guard, writes);
    if (result.ok) {
      for (const { value } of writes) {
        const { memberId, partition, offset } = value;
        this.landed.push({ memberId, partition, offset });
      }
    }
    const step = this.afterChunk;
    this.afterChunk = undefined;
    if (result.ok && step) await step();
    return result;
  }

  override getOffsets(group: string, incarnation: string, topic?: string) {
    const step = this.onGetOffsets;
    this.onGetOffsets = undefined;
    step?.();
    return super.getOffsets(group, incarnation, topic);
  }

  override get maxOffsetsPerWrite(): number {
    return this.chunkSize;
  }
}

describe("GroupService", () => {
  let clock: number;
  let meta: ScriptedMeta;
  let log: SluiceLog;
  let groups: GroupService;

  beforeEach(async () => {
    clock = T0;
    meta = new ScriptedMeta(new MemoryMetaStore());
    log = new SluiceLog({
      store: new MemoryObjectStore(),
      meta,
      config: { ...logConfigDefaults, lingerMs: 0 },
    });
    groups = new GroupService({ log, meta, now: () => clock });
    await log.topics.create("orders", 6);
  });
  afterEach(() => log.close());

  const produceOneEach = () =>
    log.produce(
      "orders",
      [0, 1, 2, 3, 4, 5].map((partition) => ({
        partition,
        key: null,
        keyEncoding: "utf8" as const,
        value: new Uint8Array(1),
        valueEncoding: "binary" as const,
        headers: {},
      })),
    );
  const at = (...partitions: number[]) =>
    partitions.map((partition) => ({ topic: "orders", partition }));

  it("writes a lease renewal only once less than half the session remains", async () => {
    await groups.join("g", { topics: ["orders"], memberId: "A", sessionTimeoutMs: SESSION });
    const joined = meta.puts;
    clock = T0 + SESSION / 2;
    expect((await groups.heartbeat("g", "A", {})).leaseExpiresInMs).toBe(SESSION / 2);
    expect(meta.puts).toBe(joined);
    clock += 1;
    expect((await groups.heartbeat("g", "A", {})).leaseExpiresInMs).toBe(SESSION);
    expect(meta.puts).toBe(joined + 1);
  });

  it("answers storage_unavailable after eight lost races, having written nothing", async () => {
    meta.loseRaces = true;
    const err: unknown = await groups
      .join("g", { topics: ["orders"], memberId: "A" })
      .catch((e: unknown) => e);
    expect(isSluiceError(err, "storage_unavailable")).toBe(true);
    expect(meta.puts).toBe(8);
    expect(await meta.getGroup("g")).toBeUndefined();
  });

  it("writes a commit larger than one transaction in chunks under one guard", async () => {
    meta.chunkSize = 2;
    await produceOneEach();
    const { view } = await groups.join("g", { topics: ["orders"], memberId: "A" });
    const offsets = at(0, 1, 2, 3, 4, 5).map((p) => ({ ...p, offset: 1 }));
    const puts = meta.puts;
    const result = await groups.commit("g", {
      memberId: "A",
      generation: view.generation,
      offsets,
    });
    expect(result).toEqual(offsets.map((o) => ({ ...o, moved: true })));
    expect(meta.offsetWrites).toBe(3);
    // Nothing to reconcile: a commit writes no group state.
    expect(meta.puts).toBe(puts);
  });

  it("says which chunks landed when the guard breaks and the retry is refused", async () => {
    meta.chunkSize = 2;
    await produceOneEach();
    await groups.join("g", { topics: ["orders"], memberId: "A", sessionTimeoutMs: SESSION });
    clock = T0 + SESSION / 2;
    await groups.join("g", { topics: ["orders"], memberId: "B", sessionTimeoutMs: SESSION });
    // After the first chunk, A's lease and hold window pass and B's heartbeat removes A.
    meta.afterChunk = async () => {
      clock = T0 + SESSION + 1_001;
      await groups.heartbeat("g", "B", {});
    };
    const offsets = at(0, 1, 2, 3, 4, 5).map((p) => ({ ...p, offset: 1 }));
    const err: unknown = await groups
      .commit("g", { memberId: "A", generation: 2, offsets })
      .catch((e: unknown) => e);
    expect(isSluiceError(err, "unknown_member")).toBe(true);
    expect((err as { details: unknown }).details).toMatchObject({
      applied: [
        { topic: "orders", partition: 0, offset: 1, moved: true },
        { topic: "orders", partition: 1, offset: 1, moved: true },
      ],
    });
    const stored = await groups.describe("g");
    expect(stored.partitions.map((p) => p.currentOffset)).toEqual([1, 1, null, null, null, null]);
  });

  it("acting on an unwritten grant: never serves or commits a partition granted only in memory", async () => {
    // A holds 0 and 1, B 2 and 3, C 4, D 5, all settled and stored.
    await groups.join("g", {
      topics: ["orders"],
      memberId: "A",
      sessionTimeoutMs: SESSION,
      resetPolicy: "earliest",
    });
    for (const id of ["B", "C", "D"]) {
      await groups.join("g", { topics: ["orders"], memberId: id, sessionTimeoutMs: SESSION });
    }
    await groups.heartbeat("g", "A", {
      released: [2, 3, 4, 5].map((p): [string, number] => ["orders", p]),
    });
    for (const id of ["B", "C", "D"]) await groups.heartbeat("g", id, {});
    const holders = async () =>
      (await groups.describe("g")).partitions.map((p) => p.memberId ?? "-").join("");
    expect(await holders()).toBe("AABBCD");
    // A falls silent. B, C and D renew (leases T0 + 9_001); B's beat after A's lease marks A
    // dead and stores the new target (0 → C, 1 → D), pending while dead A still holds them.
    clock = T0 + SESSION / 2 + 1;
    for (const id of ["B", "C", "D"]) await groups.heartbeat("g", id, {});
    clock = T0 + SESSION + 1;
    const b = await groups.heartbeat("g", "B", {});
    expect(b.generation).toBe(5);
    expect(b.assignments).toEqual(at(2, 3));
    const fence = (await meta.getGroup("g"))!.fence;

    // C long-polls (renewing its lease). While it waits, A's hold window ends and a record
    // arrives on 0; C's re-read sees 0 granted to it, serves it and commits it.
    clock = T0 + SESSION + 500;
    const fetching = new Promise<void>((resolve) => (meta.onGetOffsets = resolve));
    const fetched = groups.fetch("g", "C", {
      maxRecords: 10,
      maxBytes: 1 << 20,
      waitMs: 1_500,
      autoCommit: true,
    });
    await fetching;
    clock = T0 + SESSION + 1_002;
    await log.produce("orders", [
      {
        partition: 0,
        key: null,
        keyEncoding: "utf8",
        value: new Uint8Array(1),
        valueEncoding: "binary",
        headers: {},
      },
    ]);
    const served = await fetched;
    expect(served.partitions.find((p) => p.partition === 0)?.records).toHaveLength(1);
    // What C was served is stored as C's before it is served, under a moved fence.
    const stored = (await meta.getGroup("g"))!;
    expect(stored.fence).toBeGreaterThan(fence);
    expect(await holders()).toBe("CDBBCD");

    // D's lease lapses; B commits 0 on another instance. Recomputing the target there must not
    // hand B the partition C was served: C holds it in the stored state.
    clock = T0 + SESSION / 2 + 1 + SESSION + 1;
    const other = new GroupService({ log, meta, now: () => clock });
    const err: unknown = await other
      .commit("g", { memberId: "B", generation: 6, offsets: [{ ...at(0)[0]!, offset: 1 }] })
      .catch((e: unknown) => e);
    expect(isSluiceError(err, "fenced")).toBe(true);
    expect(meta.landed.filter((w) => w.partition === 0).map((w) => w.memberId)).toEqual(["C", "C"]);
  });
});
