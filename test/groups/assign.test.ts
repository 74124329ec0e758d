import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { assign, type AssignMember } from "../../src/groups/assign.js";
import { partitionKey, type PartitionRef } from "../../src/groups/doc.js";

/** Members m0..m{n-1}, topics t0..t{k-1} with partition counts, and who holds what now. */
const scenario = fc
  .record({
    members: fc.integer({ min: 1, max: 8 }),
    counts: fc.array(fc.integer({ min: 1, max: 24 }), { minLength: 1, maxLength: 4 }),
    seed: fc.array(fc.nat(), { minLength: 200, maxLength: 200 }),
  })
  .map(({ members, counts, seed }) => {
    const ids = Array.from({ length: members }, (_, i) => `m${i}`);
    const partitions = Object.fromEntries(counts.map((c, i) => [`t${i}`, c]));
    // Each partition is held by some member, or by none (seed picks), as after any history.
    const holders = new Map<string, string>();
    let i = 0;
    for (const [t, c] of Object.entries(partitions)) {
      for (let p = 0; p < c; p++) {
        const pick = seed[i++ % seed.length]! % (members + 1);
        if (pick < members) holders.set(partitionKey(t, p), ids[pick]!);
      }
    }
    return { ids, partitions, holders };
  });

const everyone = (ids: string[], topics: string[]): AssignMember[] =>
  ids.map((memberId) => ({ memberId, topics }));

const count = (target: Map<string, PartitionRef[]>, id: string, topic?: string) =>
  (target.get(id) ?? []).filter(([t]) => topic === undefined || t === topic).length;

describe("assign", () => {
  it("covers every subscribed partition exactly once, and nothing else", () => {
    fc.assert(
      fc.property(scenario, fc.array(fc.boolean(), { minLength: 40 }), (s, subs) => {
        const topics = Object.keys(s.partitions);
        // Arbitrary subscriptions: a member takes topic j when its flag says so.
        const members = s.ids.map((memberId, i) => ({
          memberId,
          topics: [...topics.filter((_, j) => subs[(i * 5 + j) % subs.length]), "missing"],
        }));
        const target = assign(members, s.partitions, s.holders);
        const seen = new Map<string, string>();
        for (const [id, refs] of target) {
          const m = members.find((x) => x.memberId === id)!;
          for (const [t, p] of refs) {
            expect(m.topics).toContain(t);
            expect(p).toBeLessThan(s.partitions[t]!);
            expect(seen.has(partitionKey(t, p))).toBe(false);
            seen.set(partitionKey(t, p), id);
          }
        }
        for (const t of topics) {
          const subscribed = members.some((m) => m.topics.includes(t));
          for (let p = 0; p < s.partitions[t]!; p++) {
            expect(seen.has(partitionKey(t, p))).toBe(subscribed);
          }
        }
      }),
    );
  });

  it("balances within 1 per topic, and in total for identical subscriptions", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const topics = Object.keys(s.partitions);
        const target = assign(everyone(s.ids, topics), s.partitions, s.holders);
        const totals = s.ids.map((id) => count(target, id));
        expect(Math.max(...totals) - Math.min(...totals)).toBeLessThanOrEqual(1);
        for (const t of topics) {
          const per = s.ids.map((id) => count(target, id, t));
          expect(Math.max(...per) - Math.min(...per)).toBeLessThanOrEqual(1);
        }
      }),
    );
  });

  it("keeps as many partitions in place as any balanced assignment could", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        // One topic: the best balanced result keeps min(owned, quota) with the +1s going to
        // the members owning the most.
        const [topic, total] = Object.entries(s.partitions)[0]!;
        const target = assign(everyone(s.ids, [topic]), { [topic]: total }, s.holders);
        const owned = s.ids
          .map((id) => {
            let n = 0;
            for (let p = 0; p < total; p++) if (s.holders.get(partitionKey(topic, p)) === id) n++;
            return n;
          })
          .sort((a, b) => b - a);
        const q = Math.floor(total / s.ids.length);
        const r = total % s.ids.length;
        const best = owned.reduce((sum, n, i) => sum + Math.min(n, q + (i < r ? 1 : 0)), 0);
        let kept = 0;
        for (const [id, refs] of target) {
          kept += refs.filter(([t, p]) => s.holders.get(partitionKey(t, p)) === id).length;
        }
        expect(kept).toBe(best);
      }),
    );
  });

  it("gives the same answer whatever the order of its input", () => {
    fc.assert(
      fc.property(
        scenario,
        fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
        (s, [a = 0, b = 0, c = 0]) => {
          const topics = Object.keys(s.partitions);
          const members = everyone(s.ids, topics).map((m, i) => ({
            ...m,
            topics: i % 2 === 0 ? m.topics : [...m.topics].reverse(),
          }));
          const expected = assign(members, s.partitions, s.holders);
          const shuffle = <T>(xs: T[], seed: number) =>
            xs
              .map((x, i) => ({ x, k: (i * 7919 + seed * 104729) % 1009 }))
              .sort((l, r) => l.k - r.k)
              .map(({ x }) => x);
          const again = assign(
            shuffle(members, a).map((m) => ({ ...m, topics: shuffle([...m.topics], b) })),
            Object.fromEntries(shuffle(Object.entries(s.partitions), c)),
            new Map(shuffle([...s.holders], a + c)),
          );
          expect(new Map([...again].sort())).toEqual(new Map([...expected].sort()));
        },
      ),
    );
  });

  it("moves only what balance requires when a second member joins", () => {
    const holders = new Map([0, 1, 2, 3].map((p) => [partitionKey("orders", p), "a"]));
    const target = assign(everyone(["a", "b"], ["orders"]), { orders: 4 }, holders);
    expect(target.get("a")).toEqual([
      ["orders", 0],
      ["orders", 1],
    ]);
    expect(target.get("b")).toEqual([
      ["orders", 2],
      ["orders", 3],
    ]);
  });
});
