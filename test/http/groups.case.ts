import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CheckedMetaStore } from "../groups/checked-meta.js";
import { makeHarness, type GroupOptions, type Harness } from "../support/harness.js";
import type { TestStores } from "../support/stores.js";

const T0 = 1_800_000_000_000;
/** The shortest session a member may ask for, and the default clock-skew margin. */
const SESSION = 6_000;
const SKEW = 1_000;

type Call = Harness["call"];

/**
 * Consumer groups end to end through the real Hono app (docs/rfcs/0002-consumer-groups.md §9),
 * run unchanged against every adapter pair. Leases follow a fake clock the tests move; every
 * group state written is checked for invariant H on its way to the store.
 */
export function groupsSuite(kind: string, makeStores: () => Promise<TestStores>): void {
  describe(`consumer groups over ${kind}`, () => {
    let stores: TestStores;
    let meta: CheckedMetaStore;
    let h: Harness;
    let clock: number;
    const extra: Harness[] = [];

    /** Another app instance over the same stores and clock: no instance is sticky. */
    const instance = (options: GroupOptions = {}) => {
      const other = makeHarness({ store: stores.store, meta }, {}, undefined, {
        now: () => clock,
        ...options,
      });
      extra.push(other);
      return other;
    };

    beforeEach(async () => {
      stores = await makeStores();
      meta = new CheckedMetaStore(stores.meta);
      clock = T0;
      h = makeHarness({ store: stores.store, meta }, {}, undefined, { now: () => clock });
    });
    afterEach(async () => {
      for (const other of extra.splice(0)) await other.log.close();
      await h.log.close();
      await stores.cleanup();
      expect(meta.violations).toEqual([]);
    });

    const createTopic = async (name: string, partitions: number) => {
      expect((await h.call("POST", "/v1/topics", { name, partitions })).status).toBe(201);
    };
    const produce = async (
      topic: string,
      partition: number,
      count: number,
      timestamps?: number[],
    ) => {
      const records = Array.from({ length: count }, (_, i) => ({
        value: i,
        partition,
        ...(timestamps ? { timestamp: timestamps[i] } : {}),
      }));
      expect((await h.call("POST", `/v1/topics/${topic}/records`, { records })).status).toBe(200);
    };
    const join = (group: string, memberId: string, body: object = {}, call: Call = h.call) =>
      call("POST", `/v1/groups/${group}/members`, {
        topics: ["orders"],
        memberId,
        sessionTimeoutMs: SESSION,
        ...body,
      });
    const beat = (group: string, memberId: string, body: object = {}, call: Call = h.call) =>
      call("POST", `/v1/groups/${group}/members/${memberId}/heartbeat`, body);
    const fetchAs = (group: string, memberId: string, body: object = {}, call: Call = h.call) =>
      call("POST", `/v1/groups/${group}/members/${memberId}/fetch`, body);
    const commit = (group: string, body: object, call: Call = h.call) =>
      call("POST", `/v1/groups/${group}/offsets`, body);
    const reset = (group: string, body: object) =>
      h.call("POST", `/v1/groups/${group}/offsets/reset`, body);
    const leave = (group: string, memberId: string) =>
      h.call("DELETE", `/v1/groups/${group}/members/${memberId}`);
    const describeGroup = async (group: string) => {
      const res = await h.call("GET", `/v1/groups/${group}`);
      expect(res.status).toBe(200);
      return res.body;
    };
    /** topic/partition → committed offset (null when none). */
    const offsets = async (group: string) =>
      Object.fromEntries(
        (await describeGroup(group)).partitions.map((p: any) => [
          `${p.topic}/${p.partition}`,
          p.currentOffset,
        ]),
      );
    const parts = (list: { partition: number }[]) => list.map((x) => x.partition);
    const at = (...partitions: number[]) =>
      partitions.map((partition) => ({ topic: "orders", partition }));
    const offset = (partition: number, value: number) => ({
      topic: "orders",
      partition,
      offset: value,
    });

    /** §4.2 steps 1-2: A owns 0-3, B joins; A keeps 0 and 1 and must give up 2 and 3. */
    async function twoMembers(group = "g") {
      await createTopic("orders", 4);
      for (let p = 0; p < 4; p++) await produce("orders", p, 10);
      const a = await join(group, "A", { resetPolicy: "earliest" });
      expect(a.status).toBe(201);
      expect(a.body).toMatchObject({ generation: 1, revoking: [], pending: [] });
      expect(parts(a.body.assignments)).toEqual([0, 1, 2, 3]);
      const b = await join(group, "B");
      expect(b.status).toBe(201);
      expect(b.body).toMatchObject({ generation: 2, assignments: [], revoking: [] });
      expect(b.body.pending).toEqual(at(2, 3));
      const a2 = await beat(group, "A");
      expect(a2.body).toMatchObject({ generation: 2, state: "reconciling" });
      expect(a2.body.assignments).toEqual(at(0, 1));
      expect(a2.body.revoking).toEqual(at(2, 3));
    }

    /** Continues twoMembers: A commits 2 and 3, then releases them; B is granted both. */
    async function handOver(group = "g") {
      const c = await commit(group, {
        memberId: "A",
        generation: 1,
        offsets: [offset(2, 4), offset(3, 6)],
      });
      expect(c.status).toBe(200);
      expect(c.body.offsets).toEqual([
        { ...offset(2, 4), moved: true },
        { ...offset(3, 6), moved: true },
      ]);
      const a = await beat(group, "A", { released: at(2, 3) });
      expect(a.body).toMatchObject({ generation: 2, revoking: [], pending: [] });
      expect(a.body.assignments).toEqual(at(0, 1));
    }

    describe("membership", () => {
      it("splits a 4-partition topic disjointly: revoked from A first, then granted to B", async () => {
        await twoMembers();
        // A is served only what it is assigned, never what it is releasing.
        const fetched = await fetchAs("g", "A");
        expect(fetched.status).toBe(200);
        expect(parts(fetched.body.partitions)).toEqual([0, 1]);
        expect(fetched.body.partitions.every((p: any) => p.records.length === 10)).toBe(true);
        // B gets nothing while A still holds 2 and 3.
        expect((await beat("g", "B")).body).toMatchObject({ assignments: [], pending: at(2, 3) });
        expect((await fetchAs("g", "B")).body.partitions).toEqual([]);

        await handOver();
        const b = await beat("g", "B");
        expect(b.body).toMatchObject({ generation: 2, state: "stable", revoking: [], pending: [] });
        expect(b.body.assignments).toEqual(at(2, 3));
        const holders = (await describeGroup("g")).partitions.map((p: any) => p.memberId);
        expect(holders).toEqual(["A", "A", "B", "B"]);

        // B starts where A committed.
        const bf = await fetchAs("g", "B");
        expect(bf.body.partitions.map((p: any) => [p.partition, p.records[0].offset])).toEqual([
          [2, 4],
          [3, 6],
        ]);
        expect(bf.body.partitions.some((p: any) => "reset" in p)).toBe(false);

        // §4.2 step 5: A's late commit of a released partition moves nothing.
        const late = await commit("g", { memberId: "A", generation: 2, offsets: [offset(2, 9)] });
        expect(late.status).toBe(409);
        expect(late.body.error).toMatchObject({
          code: "fenced",
          details: { generation: 2, reason: "not_held", partitions: at(2) },
        });
        expect((await offsets("g"))["orders/2"]).toBe(4);
      });

      it("gives the remaining member everything when the other leaves", async () => {
        await twoMembers();
        await handOver();
        expect((await leave("g", "B")).status).toBe(204);
        expect((await leave("g", "B")).status).toBe(204);
        const a = await beat("g", "A");
        expect(a.body).toMatchObject({ generation: 3, state: "stable", revoking: [], pending: [] });
        expect(parts(a.body.assignments)).toEqual([0, 1, 2, 3]);
        const zombie = await commit("g", { memberId: "B", generation: 2, offsets: [offset(2, 8)] });
        expect(zombie.status).toBe(404);
        expect(zombie.body.error.code).toBe("unknown_member");
        expect((await beat("g", "B")).body.error.code).toBe("unknown_member");
        expect((await offsets("g"))["orders/2"]).toBe(4);
      });

      it("takes partitions from a silent member only after its lease and the skew margin", async () => {
        await twoMembers();
        await handOver();
        const leaseB = T0 + SESSION;
        clock = T0 + SESSION / 2 + 500;
        expect((await beat("g", "A")).body.leaseExpiresInMs).toBe(SESSION);

        clock = leaseB - 1;
        const before = await beat("g", "A");
        expect(before.body).toMatchObject({ generation: 2, pending: [] });
        expect(before.body.assignments).toEqual(at(0, 1));
        const described = await describeGroup("g");
        expect(described.members.find((m: any) => m.memberId === "B").leaseExpiresInMs).toBe(1);

        clock = leaseB + 1;
        const lapsed = await beat("g", "A");
        expect(lapsed.body).toMatchObject({ generation: 3, state: "reconciling" });
        expect(lapsed.body.assignments).toEqual(at(0, 1));
        expect(lapsed.body.pending).toEqual(at(2, 3));
        expect((await beat("g", "B")).body.error.code).toBe("unknown_member");
        expect(
          (await commit("g", { memberId: "B", generation: 2, offsets: [offset(2, 5)] })).status,
        ).toBe(404);
        // B still holds 2 and 3: nobody is served them yet.
        const held = (await describeGroup("g")).partitions.map((p: any) => p.memberId);
        expect(held).toEqual(["A", "A", "B", "B"]);
        expect(parts((await fetchAs("g", "A")).body.partitions)).toEqual([0, 1]);

        clock = leaseB + SKEW;
        expect((await beat("g", "A")).body.pending).toEqual(at(2, 3));

        clock = leaseB + SKEW + 1;
        const granted = await beat("g", "A");
        expect(granted.body).toMatchObject({ generation: 3, state: "stable", pending: [] });
        expect(parts(granted.body.assignments)).toEqual([0, 1, 2, 3]);
        const members = (await describeGroup("g")).members.map((m: any) => m.memberId);
        expect(members).toEqual(["A"]);
      });

      it("treats a retried join with the same memberId as the same member", async () => {
        await createTopic("orders", 2);
        const first = await join("g", "A", { clientId: "w1" });
        expect(first.status).toBe(201);
        const again = await join("g", "A", { clientId: "w1" });
        expect(again.status).toBe(200);
        expect(again.body).toEqual(first.body);
        expect((await describeGroup("g")).members.map((m: any) => m.memberId)).toEqual(["A"]);
        const generated = await h.call("POST", "/v1/groups/g/members", { topics: ["orders"] });
        expect(generated.status).toBe(201);
        expect(generated.body.memberId).toMatch(/^[0-9A-Z]{26}$/);
        expect(generated.body.generation).toBe(2);
      });

      it("refuses a rejoin under a lapsed member's id until its hold window is over", async () => {
        await createTopic("orders", 2);
        await join("g", "A");
        clock = T0 + SESSION + 1;
        const early = await join("g", "A");
        expect(early.status).toBe(409);
        expect(early.body.error).toMatchObject({
          code: "conflict",
          details: { retryAfterMs: SKEW },
        });
        clock += SKEW;
        expect((await join("g", "A")).status).toBe(201);
      });

      it("changes the subscription on a heartbeat and bumps the generation", async () => {
        await createTopic("orders", 2);
        await createTopic("payments", 2);
        await join("g", "A");
        const payments = [0, 1].map((partition) => ({ topic: "payments", partition }));
        const moved = await beat("g", "A", { topics: ["payments"] });
        expect(moved.body).toMatchObject({
          generation: 2,
          assignments: payments,
          revoking: at(0, 1),
        });
        const released = await beat("g", "A", { released: at(0, 1) });
        expect(released.body).toMatchObject({ generation: 2, assignments: payments, revoking: [] });
        expect((await describeGroup("g")).members[0].topics).toEqual(["payments"]);
        expect((await beat("g", "A", { topics: ["missing"] })).body.error.code).toBe(
          "topic_not_found",
        );
      });

      it("says group_full at the member limit and conflict for another reset policy", async () => {
        await createTopic("orders", 1);
        const small = instance({ config: { maxMembers: 2 } });
        expect((await join("g", "A", { resetPolicy: "earliest" }, small.call)).status).toBe(201);
        const other = await join("g", "B", { resetPolicy: "latest" }, small.call);
        expect(other.status).toBe(409);
        expect(other.body.error.code).toBe("conflict");
        expect((await join("g", "B", {}, small.call)).status).toBe(201);
        const full = await join("g", "C", {}, small.call);
        expect(full.status).toBe(409);
        expect(full.body.error.code).toBe("group_full");
        expect((await describeGroup("g")).resetPolicy).toBe("earliest");
      });
    });

    describe("fencing", () => {
      it("fences a commit from before the partition's current tenure, and one from the future", async () => {
        await twoMembers();
        await handOver();
        expect((await leave("g", "B")).status).toBe(204);
        // A's tenure of 2 and 3 restarted at generation 3; of 0 and 1 it runs since 1.
        const a = await beat("g", "A");
        expect(a.body.generation).toBe(3);
        const before = await offsets("g");
        for (const generation of [1, 2]) {
          const stale = await commit("g", {
            memberId: "A",
            generation,
            offsets: [offset(0, 1), offset(2, 9)],
          });
          expect(stale.status).toBe(409);
          expect(stale.body.error).toMatchObject({
            code: "fenced",
            details: { generation: 3, reason: "stale_generation", partitions: at(2) },
          });
        }
        const future = await commit("g", { memberId: "A", generation: 4, offsets: [offset(0, 1)] });
        expect(future.status).toBe(409);
        expect(future.body.error.details).toMatchObject({ reason: "stale_generation" });
        expect(await offsets("g")).toEqual(before);

        expect(
          (await commit("g", { memberId: "A", generation: 1, offsets: [offset(0, 1)] })).status,
        ).toBe(200);
        expect(
          (await commit("g", { memberId: "A", generation: 3, offsets: [offset(2, 9)] })).status,
        ).toBe(200);
        expect(await offsets("g")).toMatchObject({ "orders/0": 1, "orders/2": 9 });
      });

      it("fences a commit of a partition that is only pending", async () => {
        await twoMembers();
        const pending = await commit("g", {
          memberId: "B",
          generation: 2,
          offsets: [offset(2, 1)],
        });
        expect(pending.status).toBe(409);
        expect(pending.body.error.details).toMatchObject({ reason: "not_held", partitions: at(2) });
      });
    });

    describe("offsets", () => {
      it("keeps a committed offset through a change of owner and never moves it back without rewind", async () => {
        await createTopic("orders", 1);
        await produce("orders", 0, 20);
        await join("g", "A", { resetPolicy: "earliest" });
        await fetchAs("g", "A");
        expect(
          (await commit("g", { memberId: "A", generation: 1, offsets: [offset(0, 10)] })).status,
        ).toBe(200);
        await leave("g", "A");
        const b = await join("g", "B");
        const fetched = await fetchAs("g", "B");
        expect(fetched.body.partitions[0].records[0].offset).toBe(10);
        expect(fetched.body.partitions[0]).not.toHaveProperty("reset");
        const back = await commit("g", {
          memberId: "B",
          generation: b.body.generation,
          offsets: [offset(0, 5)],
        });
        expect(back.body.offsets).toEqual([{ ...offset(0, 10), moved: false }]);
        expect((await offsets("g"))["orders/0"]).toBe(10);
        const same = await commit("g", {
          memberId: "B",
          generation: b.body.generation,
          offsets: [offset(0, 10)],
        });
        expect(same.body.offsets).toEqual([{ ...offset(0, 10), moved: false }]);
        const rewind = await commit("g", {
          memberId: "B",
          generation: b.body.generation,
          offsets: [offset(0, 5)],
          rewind: true,
        });
        expect(rewind.body.offsets).toEqual([{ ...offset(0, 5), moved: true }]);
        const past = await commit("g", {
          memberId: "B",
          generation: b.body.generation,
          offsets: [offset(0, 21)],
        });
        expect(past.status).toBe(416);
        expect(past.body.error).toMatchObject({
          code: "offset_out_of_range",
          details: { topic: "orders", partition: 0, logStartOffset: 0, logEndOffset: 20 },
        });
      });

      it("writes down `latest` on the first fetch, so a successor reads on from there, not from 0", async () => {
        await createTopic("orders", 1);
        await produce("orders", 0, 100);
        await join("g", "A", { resetPolicy: "latest" });
        const first = await fetchAs("g", "A");
        expect(first.body.partitions).toEqual([
          {
            topic: "orders",
            partition: 0,
            records: [],
            nextOffset: 100,
            logEndOffset: 100,
            reset: { from: null, to: 100 },
          },
        ]);
        await produce("orders", 0, 10);
        // A crashes without committing; B takes over once A's lease and the margin are over.
        clock = T0 + SESSION / 2;
        await join("g", "B");
        clock = T0 + SESSION + SKEW + 1;
        const b = await fetchAs("g", "B");
        const records = b.body.partitions[0].records.map((r: any) => r.offset);
        expect(records).toEqual(Array.from({ length: 10 }, (_, i) => 100 + i));
        expect(b.body.partitions[0]).not.toHaveProperty("reset");
      });

      it("ignores an offset of a deleted and re-created topic and applies the policy again", async () => {
        await createTopic("orders", 1);
        await produce("orders", 0, 5);
        await join("g", "A", { resetPolicy: "earliest" });
        await fetchAs("g", "A");
        await commit("g", { memberId: "A", generation: 1, offsets: [offset(0, 5)] });
        await leave("g", "A");
        expect((await h.call("DELETE", "/v1/topics/orders")).status).toBe(204);
        await createTopic("orders", 1);
        await produce("orders", 0, 3);
        // Nobody subscribes and the only offset is of the old topic: nothing to show.
        expect((await describeGroup("g")).partitions).toEqual([]);
        await join("g", "B");
        expect((await describeGroup("g")).partitions).toEqual([
          expect.objectContaining({ partition: 0, currentOffset: null, logEndOffset: 3, lag: 3 }),
        ]);
        const b = await fetchAs("g", "B");
        expect(b.body.partitions[0].reset).toEqual({ from: null, to: 0 });
        expect(b.body.partitions[0].records.map((r: any) => r.offset)).toEqual([0, 1, 2]);
      });

      it("long-polls a fetch until records arrive, and commits what it returns with autoCommit", async () => {
        await createTopic("orders", 2);
        await join("g", "A", { resetPolicy: "earliest" });
        const idle = Date.now();
        const empty = await fetchAs("g", "A", { waitMs: 300 });
        expect(empty.body.partitions.flatMap((p: any) => p.records)).toEqual([]);
        expect(Date.now() - idle).toBeGreaterThanOrEqual(250);

        const started = Date.now();
        // Bounded by a quarter of the session (1.5 s), so the lease outlives the wait.
        const poll = fetchAs("g", "A", { waitMs: 60_000, autoCommit: true });
        await new Promise((r) => setTimeout(r, 100));
        await produce("orders", 1, 3);
        const woken = await poll;
        expect(Date.now() - started).toBeLessThan(1_400);
        const p1 = woken.body.partitions.find((p: any) => p.partition === 1);
        expect(p1.records.map((r: any) => r.offset)).toEqual([0, 1, 2]);
        expect(await offsets("g")).toEqual({ "orders/0": 0, "orders/1": 3 });
      });

      it("commits without a member only while the group is empty, creating it if needed", async () => {
        await createTopic("orders", 2);
        await produce("orders", 0, 5);
        const created = await commit("fresh", { offsets: [offset(0, 3)] });
        expect(created.status).toBe(200);
        expect((await describeGroup("fresh")).state).toBe("empty");
        expect(await offsets("fresh")).toEqual({ "orders/0": 3, "orders/1": null });
        await join("fresh", "A");
        const refused = await commit("fresh", { offsets: [offset(0, 4)] });
        expect(refused.status).toBe(409);
        expect(refused.body.error.code).toBe("group_not_empty");
        expect(await offsets("fresh")).toMatchObject({ "orders/0": 3 });
      });

      it("reports lag = LEO − committed for every partition, by the reset policy where none is committed", async () => {
        await createTopic("orders", 3);
        await produce("orders", 0, 5);
        await produce("orders", 1, 4);
        await produce("orders", 1, 3);
        for (const [group, resetPolicy] of [
          ["early", "earliest"],
          ["late", "latest"],
        ] as const) {
          await join(group, "A", { resetPolicy });
          expect(
            (await commit(group, { memberId: "A", generation: 1, offsets: [offset(0, 2)] })).status,
          ).toBe(200);
        }
        const early = await describeGroup("early");
        expect(
          early.partitions.map((p: any) => [
            p.currentOffset,
            p.logStartOffset,
            p.logEndOffset,
            p.lag,
          ]),
        ).toEqual([
          [2, 0, 5, 3],
          [null, 0, 7, 7],
          [null, 0, 0, 0],
        ]);
        expect(early.totalLag).toBe(10);
        expect(early.partitions.map((p: any) => p.memberId)).toEqual(["A", "A", "A"]);
        const late = await describeGroup("late");
        expect(late.partitions.map((p: any) => p.lag)).toEqual([3, 0, 0]);
        expect(late.totalLag).toBe(3);

        const topic = await h.log.topics.get("orders");
        meta.retain(topic.id, 1, 4);
        const retained = await describeGroup("early");
        expect(retained.partitions[1]).toMatchObject({ logStartOffset: 4, lag: 3 });
        expect(retained.totalLag).toBe(6);
        // A position behind retention restarts at the log start under "earliest".
        const fetched = await fetchAs("early", "A");
        const p1 = fetched.body.partitions.find((p: any) => p.partition === 1);
        expect(p1.reset).toEqual({ from: null, to: 4 });
        expect(p1.records.map((r: any) => r.offset)).toEqual([4, 5, 6]);
      });
    });

    describe("reset", () => {
      it("resets only without members, including a lapsed one that still holds partitions", async () => {
        await createTopic("orders", 2);
        await produce("orders", 0, 10);
        await join("g", "A", { resetPolicy: "earliest" });
        await fetchAs("g", "A");
        const live = await reset("g", { to: "latest", topic: "orders" });
        expect(live.status).toBe(409);
        expect(live.body.error.code).toBe("group_not_empty");
        clock = T0 + SESSION + 1;
        const dead = await reset("g", { to: "latest", topic: "orders" });
        expect(dead.status).toBe(409);
        expect(dead.body.error).toMatchObject({
          code: "group_not_empty",
          details: { retryAfterMs: SKEW },
        });
        expect(await offsets("g")).toEqual({ "orders/0": 0, "orders/1": 0 });
        clock += SKEW;
        const done = await reset("g", { to: "latest", topic: "orders" });
        expect(done.status).toBe(200);
        expect(done.body).toEqual({
          dryRun: false,
          offsets: [
            { topic: "orders", partition: 0, previousOffset: 0, offset: 10 },
            { topic: "orders", partition: 1, previousOffset: 0, offset: 0 },
          ],
        });
        expect(await offsets("g")).toEqual({ "orders/0": 10, "orders/1": 0 });
      });

      it("computes without writing on dryRun, refuses offsets outside the log, and moves backwards on request", async () => {
        await createTopic("orders", 2);
        await produce("orders", 0, 10);
        await produce("orders", 1, 10);
        expect((await commit("g", { offsets: [offset(0, 3)] })).status).toBe(200);
        const dry = await reset("g", { to: "latest", topic: "orders", dryRun: true });
        expect(dry.body).toEqual({
          dryRun: true,
          offsets: [
            { topic: "orders", partition: 0, previousOffset: 3, offset: 10 },
            { topic: "orders", partition: 1, previousOffset: null, offset: 10 },
          ],
        });
        expect(await offsets("g")).toEqual({ "orders/0": 3, "orders/1": null });

        const outside = await reset("g", {
          to: "offset",
          offset: 11,
          topic: "orders",
          partitions: [0],
        });
        expect(outside.status).toBe(416);
        expect(outside.body.error.details).toMatchObject({
          partition: 0,
          logStartOffset: 0,
          logEndOffset: 10,
        });
        const topic = await h.log.topics.get("orders");
        meta.retain(topic.id, 1, 2);
        const below = await reset("g", { to: "offset", offset: 1, topic: "orders" });
        expect(below.status).toBe(416);
        expect(await offsets("g")).toEqual({ "orders/0": 3, "orders/1": null });

        const set = await reset("g", { to: "offset", offset: 7, topic: "orders" });
        expect(set.status).toBe(200);
        expect(await offsets("g")).toEqual({ "orders/0": 7, "orders/1": 7 });
        // Without a topic: every partition with an offset, backwards if that is where it goes.
        const back = await reset("g", { to: "earliest" });
        expect(back.body.offsets).toEqual([
          { topic: "orders", partition: 0, previousOffset: 7, offset: 0 },
          { topic: "orders", partition: 1, previousOffset: 7, offset: 2 },
        ]);
        const missing = await reset("nope", { to: "earliest" });
        expect(missing.status).toBe(404);
        expect(missing.body.error.code).toBe("group_not_found");
      });

      it("resolves a timestamp to the first readable record at or after it", async () => {
        await createTopic("orders", 1);
        await produce("orders", 0, 3, [1000, 2000, 3000]);
        await produce("orders", 0, 3, [4000, 2500, 5000]);
        const resolve = async (timestamp: number) => {
          const res = await reset("ts", {
            to: "timestamp",
            timestamp,
            topic: "orders",
            dryRun: true,
          });
          expect(res.status).toBe(200);
          return res.body.offsets[0].offset;
        };
        expect(await resolve(0)).toBe(0);
        expect(await resolve(2000)).toBe(1);
        expect(await resolve(2500)).toBe(2);
        expect(await resolve(4500)).toBe(5);
        expect(await resolve(9999)).toBe(6);
        const topic = await h.log.topics.get("orders");
        meta.retain(topic.id, 0, 3);
        expect(await resolve(2500)).toBe(3);
        expect(await resolve(0)).toBe(3);
        expect((await h.call("GET", "/v1/groups/ts")).status).toBe(404);
      });
    });

    describe("admin", () => {
      it("deletes only an empty group; a re-created one starts without offsets", async () => {
        await createTopic("orders", 1);
        await produce("orders", 0, 5);
        await join("g", "A", { resetPolicy: "earliest" });
        await commit("g", { memberId: "A", generation: 1, offsets: [offset(0, 4)] });
        const busy = await h.call("DELETE", "/v1/groups/g");
        expect(busy.status).toBe(409);
        expect(busy.body.error.code).toBe("group_not_empty");
        expect(busy.body.error.details).not.toHaveProperty("retryAfterMs");
        clock = T0 + SESSION + 1;
        const dying = await h.call("DELETE", "/v1/groups/g");
        expect(dying.body.error).toMatchObject({
          code: "group_not_empty",
          details: { retryAfterMs: SKEW },
        });
        clock += SKEW;
        expect((await h.call("DELETE", "/v1/groups/g")).status).toBe(204);
        expect((await h.call("GET", "/v1/groups/g")).body.error.code).toBe("group_not_found");
        expect((await h.call("DELETE", "/v1/groups/g")).status).toBe(404);
        expect((await h.call("GET", "/v1/groups")).body).toEqual({ groups: [] });

        await join("g", "B", { resetPolicy: "earliest" });
        expect(await offsets("g")).toEqual({ "orders/0": null });
        const b = await fetchAs("g", "B");
        expect(b.body.partitions[0].reset).toEqual({ from: null, to: 0 });
      });

      it("lists groups by name", async () => {
        await createTopic("orders", 1);
        await join("zeta", "A");
        await commit("alpha", { offsets: [offset(0, 0)] });
        const list = await h.call("GET", "/v1/groups");
        expect(list.body.groups).toEqual([
          { group: "alpha", createdAt: T0 },
          { group: "zeta", createdAt: T0 },
        ]);
      });

      it("answers bad input with a 4xx and a code, and changes nothing", async () => {
        await createTopic("orders", 4);
        await produce("orders", 0, 10);
        await join("g", "A", { resetPolicy: "earliest" });
        await commit("g", { memberId: "A", generation: 1, offsets: [offset(0, 5)] });
        const snapshot = async () => {
          const record = await meta.getGroup("g");
          return { record, offsets: await meta.getOffsets("g", record!.incarnation) };
        };
        const before = await snapshot();
        const cases: [string, string, unknown, number, string][] = [
          ["POST", "/v1/groups/g/members", { topics: [] }, 400, "invalid_request"],
          ["POST", "/v1/groups/g/members", { topics: ["no/slash"] }, 400, "invalid_request"],
          ["POST", "/v1/groups/g/members", { topics: ["missing"] }, 404, "topic_not_found"],
          [
            "POST",
            "/v1/groups/g/members",
            { topics: ["orders"], sessionTimeoutMs: 10 },
            400,
            "invalid_request",
          ],
          [
            "POST",
            "/v1/groups/g/members",
            { topics: ["orders"], resetPolicy: "never" },
            400,
            "invalid_request",
          ],
          [
            "POST",
            "/v1/groups/g/members",
            { topics: ["orders"], resetPolicy: "latest" },
            409,
            "conflict",
          ],
          [
            "POST",
            "/v1/groups/g/members",
            { topics: ["orders"], extra: 1 },
            400,
            "invalid_request",
          ],
          ["POST", "/v1/groups/g/members", "{not json", 400, "invalid_json"],
          ["POST", "/v1/groups/a%24b/members", { topics: ["orders"] }, 400, "invalid_name"],
          [
            "POST",
            "/v1/groups/g/members/A/heartbeat",
            { released: [{ topic: "orders" }] },
            400,
            "invalid_partition",
          ],
          [
            "POST",
            "/v1/groups/g/members/A/heartbeat",
            { topics: ["missing"] },
            404,
            "topic_not_found",
          ],
          ["POST", "/v1/groups/g/members/nobody/heartbeat", {}, 404, "unknown_member"],
          ["POST", "/v1/groups/none/members/A/heartbeat", {}, 404, "group_not_found"],
          ["POST", "/v1/groups/g/members/A/fetch", { maxRecords: 0 }, 400, "invalid_request"],
          ["POST", "/v1/groups/g/offsets", { offsets: [] }, 400, "invalid_request"],
          [
            "POST",
            "/v1/groups/g/offsets",
            { offsets: [offset(0, 6)], memberId: "A" },
            400,
            "invalid_request",
          ],
          [
            "POST",
            "/v1/groups/g/offsets",
            { offsets: [offset(0, -1)], memberId: "A", generation: 1 },
            400,
            "invalid_offset",
          ],
          [
            "POST",
            "/v1/groups/g/offsets",
            { offsets: [offset(9, 1)], memberId: "A", generation: 1 },
            400,
            "invalid_partition",
          ],
          [
            "POST",
            "/v1/groups/g/offsets",
            { offsets: [offset(0, 6), offset(0, 7)], memberId: "A", generation: 1 },
            400,
            "invalid_request",
          ],
          [
            "POST",
            "/v1/groups/g/offsets",
            {
              offsets: [{ ...offset(0, 6), metadata: "x".repeat(4097) }],
              memberId: "A",
              generation: 1,
            },
            400,
            "invalid_request",
          ],
          [
            "POST",
            "/v1/groups/g/offsets",
            {
              offsets: [{ topic: "missing", partition: 0, offset: 1 }],
              memberId: "A",
              generation: 1,
            },
            404,
            "topic_not_found",
          ],
          [
            "POST",
            "/v1/groups/g/offsets",
            { offsets: [offset(0, 11)], memberId: "A", generation: 1 },
            416,
            "offset_out_of_range",
          ],
          ["POST", "/v1/groups/g/offsets", { offsets: [offset(0, 6)] }, 409, "group_not_empty"],
          ["POST", "/v1/groups/g/offsets/reset", { to: "timestamp" }, 400, "invalid_request"],
          [
            "POST",
            "/v1/groups/g/offsets/reset",
            { to: "offset", offset: -1 },
            400,
            "invalid_offset",
          ],
          [
            "POST",
            "/v1/groups/g/offsets/reset",
            { to: "earliest", partitions: [0] },
            400,
            "invalid_request",
          ],
          [
            "POST",
            "/v1/groups/g/offsets/reset",
            { to: "earliest", topic: "orders" },
            409,
            "group_not_empty",
          ],
          ["DELETE", "/v1/groups/g", undefined, 409, "group_not_empty"],
          ["GET", "/v1/groups/a%24b", undefined, 400, "invalid_name"],
        ];
        for (const [method, path, body, status, code] of cases) {
          const res = await h.call(method, path, body);
          expect([method, path, body, res.status, res.body?.error?.code]).toEqual([
            method,
            path,
            body,
            status,
            code,
          ]);
        }
        expect(await snapshot()).toEqual(before);
      });

      it("lists every group route in the OpenAPI document", async () => {
        const doc = (await h.call("GET", "/v1/openapi.json")).body;
        const routes = Object.entries(doc.paths).flatMap(([path, ops]: [string, any]) =>
          Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
        );
        expect(routes).toEqual(
          expect.arrayContaining([
            "POST /v1/groups/{group}/members",
            "POST /v1/groups/{group}/members/{memberId}/heartbeat",
            "DELETE /v1/groups/{group}/members/{memberId}",
            "POST /v1/groups/{group}/members/{memberId}/fetch",
            "POST /v1/groups/{group}/offsets",
            "POST /v1/groups/{group}/offsets/reset",
            "GET /v1/groups/{group}",
            "GET /v1/groups",
            "DELETE /v1/groups/{group}",
          ]),
        );
        for (const schema of [
          "MemberView",
          "GroupFetchResponse",
          "CommitRequest",
          "GroupDescription",
        ]) {
          expect(doc.components.schemas).toHaveProperty(schema);
        }
      });
    });

    describe("delivery", () => {
      /**
       * Members that fetch, process (record what they saw), commit and release, as a client
       * following §4.4's rules does, while records keep arriving. B joins after 500 records, C
       * after 800 and then falls silent, A leaves after 1,200. With `releaseFirst` the client
       * breaks rule 2 and releases before committing.
       */
      async function consume(options: { releaseFirst: boolean; instances: Harness[] }) {
        const total = 2_000;
        const seen = new Map<string, number>();
        const consumers = new Set<string>();
        let turn = 0;
        // Each request goes to the next instance.
        const call: Call = (...args) =>
          options.instances[turn++ % options.instances.length]!.call(...args);
        const active = new Set<string>();
        const polls = new Map<string, number>();
        const start = async (id: string) => {
          expect((await join("eo", id, { resetPolicy: "earliest" }, call)).status).toBe(201);
          active.add(id);
          polls.set(id, 0);
        };
        let produced = 0;

        const release = async (id: string) => {
          const view = await beat("eo", id, {}, call);
          expect(view.status).toBe(200);
          if (view.body.revoking.length > 0) {
            expect((await beat("eo", id, { released: view.body.revoking }, call)).status).toBe(200);
          }
        };
        const commitSeen = async (id: string, generation: number, positions: object[]) => {
          let pending = positions;
          while (pending.length > 0) {
            const res = await commit("eo", { memberId: id, generation, offsets: pending }, call);
            if (res.status === 200) return;
            // Fenced partitions are no longer this member's: drop them and commit the rest.
            expect(res.body.error.code).toBe("fenced");
            const lost = new Set(res.body.error.details.partitions.map((p: any) => p.partition));
            pending = pending.filter((p: any) => !lost.has(p.partition));
          }
        };
        const poll = async (id: string) => {
          // Larger than a round's production: every fetch reads every partition it is assigned.
          const fetched = await fetchAs("eo", id, { maxRecords: 100 }, call);
          expect(fetched.status).toBe(200);
          const positions = [];
          for (const p of fetched.body.partitions) {
            for (const r of p.records) {
              const key = `${p.partition}/${r.offset}`;
              seen.set(key, (seen.get(key) ?? 0) + 1);
            }
            if (p.records.length > 0) {
              positions.push(offset(p.partition, p.nextOffset));
              consumers.add(id);
            }
          }
          // Membership changes land between this member's fetch and its commit.
          if (seen.size >= 500 && !polls.has("B")) await start("B");
          if (seen.size >= 800 && !polls.has("C")) await start("C");
          if (options.releaseFirst) {
            await release(id);
            await commitSeen(id, fetched.body.generation, positions);
          } else {
            await commitSeen(id, fetched.body.generation, positions);
            await release(id);
          }
          polls.set(id, (polls.get(id) ?? 0) + 1);
          if (id === "A" && seen.size >= 1_200) {
            expect((await call("DELETE", "/v1/groups/eo/members/A")).status).toBe(204);
            active.delete("A");
          }
          // C stops after three rounds, everything it processed committed; its lease lapses.
          if (id === "C" && polls.get("C") === 3) active.delete("C");
        };

        await createTopic("orders", 4);
        await start("A");
        for (let round = 0; round < 300 && (produced < total || seen.size < total); round++) {
          if (produced < total) {
            const records = Array.from({ length: 50 }, (_, i) => ({
              value: produced + i,
              partition: (produced + i) % 4,
            }));
            expect((await call("POST", "/v1/topics/orders/records", { records })).status).toBe(200);
            produced += records.length;
          }
          for (const id of [...active]) await poll(id);
          clock += 250;
        }
        // A left and C lapsed: B alone owns everything at the end.
        const end = await describeGroup("eo");
        expect(end.members.map((m: any) => m.memberId)).toEqual(["B"]);
        expect(end.totalLag).toBe(0);
        expect([...consumers].sort()).toEqual(["A", "B", "C"]);
        const counts = [...seen.values()];
        return { distinct: seen.size, duplicates: counts.filter((c) => c > 1).length };
      }

      it("delivers every record exactly once across rebalances when commits precede releases", async () => {
        const result = await consume({ releaseFirst: false, instances: [h] });
        expect(result).toEqual({ distinct: 2_000, duplicates: 0 });
        expect(meta.backwards).toEqual([]);
      }, 180_000);

      it("does so with every request going to another app instance", async () => {
        const result = await consume({ releaseFirst: false, instances: [h, instance()] });
        expect(result).toEqual({ distinct: 2_000, duplicates: 0 });
        expect(meta.backwards).toEqual([]);
      }, 180_000);

      it("duplicates records when a client releases before it commits (the control run)", async () => {
        const result = await consume({ releaseFirst: true, instances: [h] });
        expect(result.distinct).toBe(2_000);
        expect(result.duplicates).toBeGreaterThan(0);
        expect(meta.backwards).toEqual([]);
      }, 180_000);

      it("never moves a committed offset back in a random run of joins, leaves, lapses, fetches and commits", async () => {
        await createTopic("orders", 8);
        let commits = 0;
        let lapses = 0;
        for (const seed of [7, 42]) {
          let state = seed;
          // mulberry32: a small seeded generator, so a failure replays exactly.
          const random = () => {
            state = (state + 0x6d2b79f5) | 0;
            let t = Math.imul(state ^ (state >>> 15), 1 | state);
            t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
            return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
          };
          const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
          const group = `random-${seed}`;
          const joined = new Set<string>();
          const steps = 500;
          for (let step = 0; step < steps; step++) {
            const id = pick(["m0", "m1", "m2", "m3"]);
            const action = pick([
              "join",
              "poll",
              "poll",
              "poll",
              "leave",
              "tick",
              "produce",
              "crash",
            ]);
            if (action === "join" && !joined.has(id)) {
              const res = await join(group, id, { resetPolicy: pick(["earliest", "latest"]) });
              if (res.status === 201 || res.status === 200) joined.add(id);
            } else if (action === "poll" && joined.has(id)) {
              const fetched = await fetchAs(group, id, { maxRecords: 7 });
              if (fetched.status === 404) {
                lapses++;
                joined.delete(id);
                continue;
              }
              const positions = fetched.body.partitions
                .filter((p: any) => p.records.length > 0)
                .map((p: any) => offset(p.partition, p.nextOffset));
              if (positions.length > 0) {
                const res = await commit(group, {
                  memberId: id,
                  generation: fetched.body.generation,
                  offsets: positions,
                });
                expect([200, 404, 409]).toContain(res.status);
                if (res.status === 200) commits++;
              }
              const view = await beat(group, id, { released: fetched.body.revoking });
              if (view.status === 404) joined.delete(id);
            } else if (action === "leave" && joined.has(id)) {
              expect((await leave(group, id)).status).toBe(204);
              joined.delete(id);
            } else if (action === "crash") {
              joined.delete(id);
            } else if (action === "tick") {
              clock += Math.floor(random() * 4_000);
            } else if (action === "produce") {
              await produce("orders", Math.floor(random() * 8), 1 + Math.floor(random() * 5));
            }
          }
        }
        // The run did commit, and did see members lapse under it.
        expect(commits).toBeGreaterThan(50);
        expect(lapses).toBeGreaterThan(5);
        expect(meta.backwards).toEqual([]);
        expect(meta.violations).toEqual([]);
      }, 180_000);
    });
  });
}
