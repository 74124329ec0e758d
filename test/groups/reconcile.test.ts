import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  emptyGroupDoc,
  heldBy,
  parseGroupDoc,
  partitionKey,
  serializeGroupDoc,
  type GroupDoc,
  type HeldPartition,
  type PartitionRef,
  type TopicSnapshot,
} from "../../src/groups/doc.js";
import {
  groupState,
  newMember,
  pendingOf,
  release,
  removeMember,
  subscribe,
} from "../../src/groups/membership.js";
import { reconcile } from "../../src/groups/reconcile.js";

const SKEW = 1000;
const SESSION = 6000;
const orders = new Map<string, TopicSnapshot>([["orders", { id: "t1", partitions: 4 }]]);

const refs = (held: HeldPartition[]): PartitionRef[] => held.map(([t, p]) => [t, p]);

/** Held sets of every member, as sorted partition lists. */
const held = (doc: GroupDoc, id: string) =>
  heldBy(doc.members[id]!)
    .map(([, p]) => p)
    .sort();
const assigned = (doc: GroupDoc, id: string) => doc.members[id]!.assigned.map(([, p]) => p);
const revoking = (doc: GroupDoc, id: string) => doc.members[id]!.revoking.map(([, p]) => p);
const pending = (doc: GroupDoc, id: string) => pendingOf(doc.members[id]!).map(([, p]) => p);

/** Invariant H, and that every stored document survives its own serialization. */
function checkInvariantH(doc: GroupDoc): void {
  const seen = new Set<string>();
  for (const m of Object.values(doc.members)) {
    for (const [t, p] of heldBy(m)) {
      const key = partitionKey(t, p);
      expect(seen.has(key), `${t}/${p} held twice`).toBe(false);
      seen.add(key);
    }
  }
  expect(parseGroupDoc(serializeGroupDoc(doc))).toEqual(doc);
}

function join(doc: GroupDoc, id: string, now: number, topics = ["orders"], t = orders) {
  const before = reconcile(doc, now, t, SKEW).doc;
  before.members[id] = newMember({ clientId: null, topics, sessionTimeoutMs: SESSION }, now);
  return reconcile(before, now, t, SKEW, true);
}

describe("reconcile", () => {
  it("walks through §4.2: revoke from A, then grant to B in the write that releases", () => {
    let doc = join(emptyGroupDoc("latest"), "A", 0).doc;
    expect(doc.generation).toBe(1);
    expect(doc.members.A!.assigned).toEqual([0, 1, 2, 3].map((p) => ["orders", p, 1]));

    doc = join(doc, "B", 10).doc;
    expect(doc.generation).toBe(2);
    expect(assigned(doc, "A")).toEqual([0, 1]);
    expect(revoking(doc, "A")).toEqual([2, 3]);
    expect(assigned(doc, "B")).toEqual([]);
    expect(pending(doc, "B")).toEqual([2, 3]);
    expect(groupState(doc)).toBe("reconciling");

    const next = structuredClone(doc);
    expect(
      release(next.members.A!, [
        ["orders", 2],
        ["orders", 3],
        ["orders", 9],
      ]),
    ).toBe(true);
    const r = reconcile(next, 20, orders, SKEW);
    expect(r.doc.generation).toBe(2);
    expect(r.doc.members.B!.assigned).toEqual([
      ["orders", 2, 2],
      ["orders", 3, 2],
    ]);
    expect(held(r.doc, "A")).toEqual([0, 1]);
    expect(groupState(r.doc)).toBe("stable");
    // Releasing again is harmless.
    expect(release(r.doc.members.A!, [["orders", 2]])).toBe(false);
  });

  it("holds a lapsed member's partitions through the skew window, then grants them", () => {
    let doc = join(emptyGroupDoc("latest"), "A", 0).doc;
    doc = join(doc, "B", 0).doc;
    const a = structuredClone(doc);
    release(a.members.A!, [
      ["orders", 2],
      ["orders", 3],
    ]);
    doc = reconcile(a, 0, orders, SKEW).doc;
    // A renews; B falls silent at lease SESSION.
    doc.members.A!.leaseExpiresAt = 100_000;
    const lease = doc.members.B!.leaseExpiresAt;

    const before = reconcile(doc, lease - 1, orders, SKEW);
    expect(serializeGroupDoc(before.doc)).toBe(serializeGroupDoc(doc));

    const lapsed = reconcile(doc, lease + 1, orders, SKEW);
    expect(lapsed.fenced).toBe(false);
    expect(lapsed.doc.generation).toBe(doc.generation + 1);
    expect(lapsed.doc.members.B!.dead).toBe(true);
    expect(revoking(lapsed.doc, "B")).toEqual([2, 3]);
    expect(pending(lapsed.doc, "A")).toEqual([2, 3]);

    const stillHeld = reconcile(lapsed.doc, lease + SKEW, orders, SKEW);
    expect(stillHeld.doc.members.B).toBeDefined();

    const gone = reconcile(lapsed.doc, lease + SKEW + 1, orders, SKEW);
    expect(gone.fenced).toBe(true);
    expect(gone.doc.members.B).toBeUndefined();
    expect(gone.doc.generation).toBe(lapsed.doc.generation);
    expect(gone.doc.members.A!.assigned).toEqual([
      ["orders", 0, 1],
      ["orders", 1, 1],
      ["orders", 2, 3],
      ["orders", 3, 3],
    ]);
    // Straight from before the lapse to after the window: the same end state.
    expect(reconcile(doc, lease + SKEW + 1, orders, SKEW).doc).toEqual(gone.doc);
  });

  it("keeps a revoked partition's grant when the target hands it back", () => {
    let doc = join(emptyGroupDoc("latest"), "A", 0).doc;
    doc = join(doc, "B", 0).doc;
    expect(revoking(doc, "A")).toEqual([2, 3]);
    removeMember(doc, "B");
    doc = reconcile(doc, 0, orders, SKEW, true).doc;
    expect(doc.members.A!.assigned).toEqual([0, 1, 2, 3].map((p) => ["orders", p, 1]));
  });

  it("drops partitions of a re-created topic and recomputes the target", () => {
    const doc = join(emptyGroupDoc("latest"), "A", 0).doc;
    const recreated = new Map([["orders", { id: "t2", partitions: 2 }]]);
    const r = reconcile(doc, 1, recreated, SKEW);
    expect(r.fenced).toBe(true);
    expect(r.doc.generation).toBe(2);
    expect(r.doc.topics).toEqual({ orders: { id: "t2", partitions: 2 } });
    expect(r.doc.members.A!.assigned).toEqual([
      ["orders", 0, 2],
      ["orders", 1, 2],
    ]);
    const deleted = reconcile(doc, 1, new Map(), SKEW);
    expect(deleted.doc.topics).toEqual({});
    expect(deleted.doc.members.A!.assigned).toEqual([]);
    // Growing partitions keeps what is held and retargets.
    const grown = reconcile(doc, 1, new Map([["orders", { id: "t1", partitions: 6 }]]), SKEW);
    expect(grown.fenced).toBe(false);
    expect(assigned(grown.doc, "A")).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("changes nothing when nothing is due", () => {
    const doc = join(emptyGroupDoc("latest"), "A", 0).doc;
    const r = reconcile(doc, 5, orders, SKEW);
    expect(r).toEqual({ doc, fenced: false });
  });

  it("keeps invariant H after any sequence of joins, leaves, lapses and releases, then converges", () => {
    const topics = new Map<string, TopicSnapshot>([
      ["a", { id: "ta", partitions: 5 }],
      ["b", { id: "tb", partitions: 3 }],
    ]);
    const ids = ["m0", "m1", "m2", "m3"];
    const op = fc.oneof(
      fc.record({ kind: fc.constant("join" as const), m: fc.nat(3), subs: fc.nat(2) }),
      fc.record({ kind: fc.constant("leave" as const), m: fc.nat(3) }),
      fc.record({
        kind: fc.constant("heartbeat" as const),
        m: fc.nat(3),
        releaseAll: fc.boolean(),
      }),
      fc.record({ kind: fc.constant("subscribe" as const), m: fc.nat(3), subs: fc.nat(2) }),
      fc.record({ kind: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 4000 }) }),
    );
    const subscriptions = [["a"], ["b"], ["a", "b"]];
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        let doc = emptyGroupDoc("earliest");
        let now = 0;
        let generation = 0;
        for (const o of ops) {
          const r0 = reconcile(doc, now, topics, SKEW);
          const d = r0.doc;
          let retarget = false;
          if (o.kind === "tick") {
            now += o.ms;
          } else {
            const id = ids[o.m]!;
            const m = d.members[id];
            if (o.kind === "join" && !m) {
              d.members[id] = newMember(
                { clientId: null, topics: subscriptions[o.subs]!, sessionTimeoutMs: SESSION },
                now,
              );
              retarget = true;
            } else if (o.kind === "leave" && m) {
              removeMember(d, id);
              retarget = true;
            } else if (o.kind === "heartbeat" && m && !m.dead) {
              m.leaseExpiresAt = now + SESSION;
              if (o.releaseAll) release(m, refs(m.revoking));
            } else if (o.kind === "subscribe" && m && !m.dead) {
              retarget = subscribe(m, subscriptions[o.subs]!);
            }
          }
          const r = reconcile(d, now, topics, SKEW, retarget);
          expect(r.doc.generation).toBeGreaterThanOrEqual(generation);
          generation = r.doc.generation;
          checkInvariantH(r.doc);
          for (const m of Object.values(r.doc.members)) {
            // Assigned is always targeted; grants never predate the tenure's generation.
            for (const [t, p, g] of m.assigned) {
              expect(m.target).toContainEqual([t, p]);
              expect(g).toBeLessThanOrEqual(r.doc.generation);
            }
            if (m.dead) expect(m.target).toEqual([]);
          }
          doc = r.doc;
        }
        // Everyone releases what they are asked to, twice: the group converges to its target.
        for (let round = 0; round < 2; round++) {
          const d = reconcile(doc, now, topics, SKEW).doc;
          for (const m of Object.values(d.members)) if (!m.dead) release(m, refs(m.revoking));
          doc = reconcile(d, now, topics, SKEW).doc;
        }
        const allLive = Object.values(doc.members).every((m) => !m.dead);
        for (const m of Object.values(doc.members)) {
          if (m.dead) continue;
          expect(m.revoking).toEqual([]);
          // Only a dead member's hold window may keep a live member waiting.
          if (allLive) expect(m.assigned.map(([t, p]) => [t, p])).toEqual(m.target);
        }
        // Past every lease and its window, nobody is left holding anything.
        const later = reconcile(doc, now + SESSION + SKEW + 1, topics, SKEW).doc;
        expect(later.members).toEqual({});
      }),
      { numRuns: 300 },
    );
  });
});
