import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  callJson,
  killAllServers,
  makeDataDir,
  startServer,
  type JsonResponse,
  type ServerProcess,
} from "../support/server-process.js";
import { range, sleep } from "./workload.js";

const GROUP = "eo";
const TOPIC = "orders";
const PARTITIONS = 4;
const TOTAL = 1_000;
/** The shortest session a member may ask for (docs/rfcs/0002-consumer-groups.md §3). */
const SESSION = 6_000;
/** B joins once A has processed this many records. */
const JOIN_AFTER = 300;
/** Production pauses here until A has left; A leaves once this much is produced. */
const LEAVE_AT = 700;

type Id = "A" | "B";

interface Member {
  id: Id;
  /** The next call goes to servers[turn % 2]: every call alternates, nothing is sticky. */
  turn: number;
  /** Calls per kind, per server: [A, B]. */
  calls: Map<string, [number, number]>;
  view: any;
  joined: boolean;
  left: boolean;
}

/** One partition's records from one fetch answer. */
interface Batch {
  member: Id;
  partition: number;
  first: number;
  last: number;
  receivedAt: number;
}

interface Delivery {
  member: Id;
  partition: number;
  offset: number;
  value: string;
}

/**
 * Consumer groups across two real server processes on one data directory (SQLite + files):
 * the group state is only in the shared table, so every request of a member can go to the
 * other process. A consumes alone, B joins, A commits, releases and leaves, while records
 * keep arriving through both processes; each record must be processed exactly once
 * (docs/rfcs/0002-consumer-groups.md §4.4).
 */
describe("a consumer group served by two server processes sharing one data directory", () => {
  let data: Awaited<ReturnType<typeof makeDataDir>>;
  let servers: ServerProcess[];
  const env = { SLUICE_LINGER_MS: "2", SLUICE_POLL_INTERVAL_MS: "25" };

  beforeAll(async () => {
    data = await makeDataDir("sluice-groups-two-");
    // One after the other: the first start creates the SQLite file and runs the migrations.
    const a = await startServer({ dataDir: data.dir, env });
    const b = await startServer({ dataDir: data.dir, env });
    servers = [a, b];
  }, 60_000);

  afterAll(async () => {
    await killAllServers();
    await data?.cleanup();
  });

  it("delivers 1,000 records exactly once while B joins and A leaves, every call alternating processes", async () => {
    const created = await callJson(servers[0]!.url, "POST", "/v1/topics", {
      name: TOPIC,
      partitions: PARTITIONS,
    });
    expect(created.status).toBe(201);

    const started = performance.now();
    // Every loop stops by this time, finished or not.
    const hardDeadline = started + 30_000;
    let failed = false;
    const running = () => !failed && performance.now() < hardDeadline;

    const produced = new Map<string, string>();
    const producedPer = range(PARTITIONS).map(() => 0);
    let producedCount = 0;
    let producerDone = false;
    const deliveries: Delivery[] = [];
    const delivered = { A: 0, B: 0 };
    const batches: Batch[] = [];
    const fenced: string[] = [];
    /** When A sent the request that gave each partition up (release or leave). */
    const gaveUp = new Map<number, number>();
    /** Partitions A had processed but not committed when B joined. */
    const inFlightAtJoin: number[] = [];

    const member = (id: Id, firstServer: number): Member => ({
      id,
      turn: firstServer,
      calls: new Map(),
      view: undefined,
      joined: false,
      left: false,
    });
    const a = member("A", 0);
    const b = member("B", 1);
    const at = (...ps: number[]) => ps.map((partition) => ({ topic: TOPIC, partition }));
    const parts = (list: { partition: number }[]) => list.map((x) => x.partition).sort();

    const call = async (
      m: Member,
      kind: string,
      method: string,
      path: string,
      body?: unknown,
    ): Promise<JsonResponse & { sentAt: number }> => {
      const server = (m.turn++ % 2) as 0 | 1;
      const counts = m.calls.get(kind) ?? [0, 0];
      counts[server]++;
      m.calls.set(kind, counts);
      const sentAt = performance.now();
      const res = await callJson(servers[server]!.url, method, path, body, 10_000);
      return { ...res, sentAt };
    };
    const expectStatus = (res: JsonResponse, status: number, what: string) => {
      if (res.status !== status) {
        throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
      }
      return res.body;
    };
    /** A member view answer: the client's lease deadline is send time + leaseExpiresInMs. */
    const viewOf = (m: Member, res: JsonResponse & { sentAt: number }, what: string) => {
      const view = expectStatus(res, what === "join" ? 201 : 200, `${m.id} ${what}`);
      expect(view.memberId).toBe(m.id);
      if (performance.now() >= res.sentAt + view.leaseExpiresInMs) {
        throw new Error(`${m.id} ${what}: answered after the member's lease deadline`);
      }
      m.view = view;
      return view;
    };

    const join = async (m: Member) => {
      const res = await call(m, "join", "POST", `/v1/groups/${GROUP}/members`, {
        topics: [TOPIC],
        memberId: m.id,
        sessionTimeoutMs: SESSION,
        resetPolicy: "earliest",
      });
      const view = viewOf(m, res, "join");
      m.joined = true;
      return view;
    };

    const heartbeat = async (m: Member, released: { topic: string; partition: number }[]) => {
      const res = await call(
        m,
        "heartbeat",
        "POST",
        `/v1/groups/${GROUP}/members/${m.id}/heartbeat`,
        released.length > 0 ? { released } : {},
      );
      if (m.id === "A") {
        for (const { partition } of released) {
          if (!gaveUp.has(partition)) gaveUp.set(partition, res.sentAt);
        }
      }
      return viewOf(m, res, "heartbeat");
    };

    /** Commits each position; a fenced partition is no longer this member's and is dropped. */
    const commit = async (m: Member, generation: number, positions: any[]) => {
      let pending = positions;
      while (pending.length > 0) {
        const res = await call(m, "commit", "POST", `/v1/groups/${GROUP}/offsets`, {
          memberId: m.id,
          generation,
          offsets: pending,
        });
        if (res.status === 409 && res.body?.error?.code === "fenced") {
          fenced.push(`${m.id} gen ${generation}: ${JSON.stringify(res.body.error.details)}`);
          const lost = new Set(res.body.error.details.partitions.map((p: any) => p.partition));
          pending = pending.filter((p) => !lost.has(p.partition));
          continue;
        }
        const body = expectStatus(res, 200, `${m.id} commit`);
        expect(body.offsets.map((o: any) => [o.partition, o.offset, o.moved])).toEqual(
          pending.map((p) => [p.partition, p.offset, true]),
        );
        return;
      }
    };

    /**
     * The client loop of §4.4: fetch, process (record), commit the next offsets with the
     * fetch's generation, then heartbeat, releasing every revoking partition: all it
     * processed of them is committed by then, and no fetch is in flight.
     */
    const consume = async (
      m: Member,
      hooks: {
        /** Runs after the records are processed and before they are committed. */
        beforeCommit?: (fetched: any) => Promise<void>;
        shouldLeave?: () => boolean;
        finished?: () => boolean;
      },
    ) => {
      while (running()) {
        const res = await call(m, "fetch", "POST", `/v1/groups/${GROUP}/members/${m.id}/fetch`, {
          maxRecords: 40,
          waitMs: 200,
        });
        const fetched = viewOf(m, res, "fetch");
        const receivedAt = performance.now();
        const assigned = new Set(fetched.assignments.map((x: any) => x.partition));
        const positions = [];
        for (const p of fetched.partitions) {
          // Served only what it is assigned, never what it is releasing or waiting for.
          expect(assigned.has(p.partition)).toBe(true);
          if (p.records.length === 0) continue;
          const offsets = p.records.map((r: any) => r.offset);
          expect(offsets).toEqual(offsets.map((_: number, i: number) => offsets[0] + i));
          expect(p.nextOffset).toBe(offsets[offsets.length - 1] + 1);
          batches.push({
            member: m.id,
            partition: p.partition,
            first: offsets[0],
            last: offsets[offsets.length - 1],
            receivedAt,
          });
          for (const r of p.records) {
            deliveries.push({
              member: m.id,
              partition: p.partition,
              offset: r.offset,
              value: r.value,
            });
          }
          delivered[m.id] += p.records.length;
          positions.push({ topic: TOPIC, partition: p.partition, offset: p.nextOffset });
        }
        await hooks.beforeCommit?.(fetched);
        if (positions.length > 0) await commit(m, fetched.generation, positions);
        let view = await heartbeat(m, fetched.revoking);
        for (let i = 0; view.revoking.length > 0 && i < 10; i++) {
          view = await heartbeat(m, view.revoking);
        }
        if (hooks.shouldLeave?.()) {
          // Everything processed is committed and every revocation released: now leave.
          const held = [...view.assignments, ...view.revoking].map((x: any) => x.partition);
          const left = await call(m, "leave", "DELETE", `/v1/groups/${GROUP}/members/${m.id}`);
          expectStatus(left, 204, `${m.id} leave`);
          for (const p of held) if (!gaveUp.has(p)) gaveUp.set(p, left.sentAt);
          m.left = true;
          return;
        }
        if (hooks.finished?.()) return;
      }
      if (!failed) {
        throw new Error(
          `${m.id} did not finish before the deadline: ${deliveries.length} of ${producedCount} processed`,
        );
      }
    };

    const waitFor = async (what: string, condition: () => boolean) => {
      while (!condition()) {
        if (!running()) throw new Error(`gave up waiting for ${what}`);
        await sleep(10);
      }
    };
    /** Runs a task; the first failure stops every other loop. */
    const task = async (body: () => Promise<void>) => {
      try {
        await body();
      } catch (err) {
        failed = true;
        throw err;
      }
    };

    const first = await join(a);
    expect(first).toMatchObject({ generation: 1, revoking: [], pending: [] });
    expect(parts(first.assignments)).toEqual(range(PARTITIONS));

    let producerTurn = 0;
    const produce = async (upTo: number) => {
      while (producedCount < upTo) {
        if (!running()) throw new Error("producer stopped at the deadline");
        const ids = range(10).map((i) => producedCount + i);
        const records = ids.map((i) => ({ value: `record-${i}`, partition: i % PARTITIONS }));
        const server = servers[producerTurn++ % 2]!;
        const res = await callJson(server.url, "POST", `/v1/topics/${TOPIC}/records`, { records });
        const body = expectStatus(res, 200, "produce");
        body.offsets.forEach(({ partition, offset }: any, i: number) => {
          expect(partition).toBe(records[i]!.partition);
          const key = `${partition}/${offset}`;
          if (produced.has(key)) throw new Error(`${key} acknowledged twice`);
          produced.set(key, records[i]!.value);
          producedPer[partition]!++;
        });
        producedCount += records.length;
        await sleep(5);
      }
    };

    const results = await Promise.allSettled([
      task(async () => {
        await produce(LEAVE_AT);
        await waitFor("A to leave", () => a.left);
        await produce(TOTAL);
        producerDone = true;
      }),
      task(() =>
        consume(a, {
          // B's join lands in A's most delicate moment: records of partitions that are about to
          // be revoked are processed but not yet committed. A must commit them (with the
          // generation of its fetch, now stale) before it releases them.
          beforeCommit: async (fetched) => {
            if (b.joined || delivered.A < JOIN_AFTER) return;
            const revocable = fetched.partitions
              .filter((p: any) => p.partition >= 2 && p.records.length > 0)
              .map((p: any) => p.partition);
            if (revocable.length === 0) return;
            const view = await join(b);
            // A holds all four: B is granted nothing until A lets go of 2 and 3 (§4.2).
            expect(view).toMatchObject({ generation: 2, assignments: [], revoking: [] });
            expect(view.pending).toEqual(at(2, 3));
            inFlightAtJoin.push(...revocable);
          },
          // Once B is processing what it was handed. (B is left at least the records of 2 and
          // 3 that A had not reached when B joined; what comes after the pause is B's alone.)
          shouldLeave: () => delivered.B > 0 && producedCount >= LEAVE_AT,
        }),
      ),
      task(async () => {
        await waitFor("B to join", () => b.joined);
        await consume(b, {
          finished: () =>
            producerDone &&
            a.left &&
            deliveries.length >= TOTAL &&
            b.view.assignments.length === PARTITIONS &&
            b.view.revoking.length === 0 &&
            b.view.pending.length === 0,
        });
      }),
    ]);
    const elapsed = performance.now() - started;
    const errors = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
    if (errors.length > 0) throw errors[0];
    expect(elapsed).toBeLessThan(30_000);

    // Exactly once: every produced record processed by A or B, none twice.
    expect(produced.size).toBe(TOTAL);
    const keys = deliveries.map((d) => `${d.partition}/${d.offset}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(keys)).toEqual(new Set(produced.keys()));
    for (const d of deliveries) expect(d.value).toBe(produced.get(`${d.partition}/${d.offset}`));
    const values = deliveries.map((d) => d.value);
    expect(new Set(values).size).toBe(TOTAL);
    expect(new Set(values)).toEqual(new Set(produced.values()));
    expect(delivered.A).toBeGreaterThanOrEqual(JOIN_AFTER);
    expect(delivered.B).toBeGreaterThanOrEqual(TOTAL - LEAVE_AT);
    expect(delivered.A + delivered.B).toBe(TOTAL);
    // Following the rules, no commit was fenced and no lease lapsed (the generation says so below).
    expect(fenced).toEqual([]);
    // B's join did land between A's fetch and A's commit.
    expect(inFlightAtJoin.length).toBeGreaterThan(0);

    // Never both: per partition, every batch A received precedes A giving the partition up,
    // which precedes every batch B received, and their offset ranges do not overlap.
    let handedOver = 0;
    for (const p of range(PARTITIONS)) {
      const of = (id: Id) => batches.filter((x) => x.member === id && x.partition === p);
      const [ofA, ofB] = [of("A"), of("B")];
      for (const x of ofA) {
        for (const y of ofB) expect(x.last < y.first || y.last < x.first).toBe(true);
      }
      if (ofB.length === 0) continue;
      handedOver++;
      const released = gaveUp.get(p);
      expect(released).toBeDefined();
      for (const x of ofA) expect(x.receivedAt).toBeLessThan(released!);
      for (const y of ofB) expect(y.receivedAt).toBeGreaterThan(released!);
      if (ofA.length > 0) {
        expect(Math.max(...ofA.map((x) => x.last))).toBeLessThan(
          Math.min(...ofB.map((y) => y.first)),
        );
      }
    }
    // All four moved: two when B joined, two when A left.
    expect(handedOver).toBe(PARTITIONS);

    // No instance was sticky: each kind of call reached both processes.
    for (const m of [a, b]) {
      for (const kind of ["fetch", "commit", "heartbeat"]) {
        const [onA, onB] = m.calls.get(kind) ?? [0, 0];
        expect({ member: m.id, kind, both: onA > 0 && onB > 0 }).toEqual({
          member: m.id,
          kind,
          both: true,
        });
      }
    }

    // A is gone: its late commit is refused and moves nothing.
    const zombie = await call(a, "commit", "POST", `/v1/groups/${GROUP}/offsets`, {
      memberId: "A",
      generation: 1,
      offsets: [{ topic: TOPIC, partition: 0, offset: 0 }],
    });
    expect(zombie.status).toBe(404);
    expect(zombie.body.error.code).toBe("unknown_member");

    // B, alone, has nothing left to read.
    const last = viewOf(
      b,
      await call(b, "fetch", "POST", `/v1/groups/${GROUP}/members/B/fetch`, { waitMs: 0 }),
      "fetch",
    );
    expect(
      last.partitions
        .map((p: any) => [p.partition, p.records.length, p.nextOffset])
        .sort((x: number[], y: number[]) => x[0]! - y[0]!),
    ).toEqual(range(PARTITIONS).map((p) => [p, 0, producedPer[p]]));

    // Both processes describe the same end: B owns all four, committed at the log end, no lag.
    for (const server of servers) {
      const res = await callJson(server.url, "GET", `/v1/groups/${GROUP}`);
      expect(res.status).toBe(200);
      const d = res.body;
      expect(d).toMatchObject({ group: GROUP, state: "stable", generation: 3, totalLag: 0 });
      expect(d.members.map((m: any) => m.memberId)).toEqual(["B"]);
      expect(d.members[0]).toMatchObject({ revoking: [], pending: [] });
      expect(d.members[0].assignments).toEqual(at(...range(PARTITIONS)));
      expect(
        d.partitions.map((p: any) => ({
          partition: p.partition,
          currentOffset: p.currentOffset,
          logEndOffset: p.logEndOffset,
          lag: p.lag,
          memberId: p.memberId,
        })),
      ).toEqual(
        range(PARTITIONS).map((p) => ({
          partition: p,
          currentOffset: producedPer[p],
          logEndOffset: producedPer[p],
          lag: 0,
          memberId: "B",
        })),
      );
    }
  }, 60_000);
});
