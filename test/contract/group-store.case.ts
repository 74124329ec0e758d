import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isSluiceError } from "../../src/errors.js";
import type {
  CommittedOffset,
  GroupGuard,
  GroupRecord,
  GroupStore,
  OffsetWrite,
} from "../../src/meta/group-store.js";

export interface GroupStoreFixture {
  store: GroupStore;
  /** Runs after each test; it closes the store (the port has no close of its own). */
  cleanup: () => Promise<void>;
}

/** A unique suffix per use, so the suite can share one table with other runs. */
const unique = () => randomUUID().slice(0, 8);

function group(overrides: Partial<GroupRecord> = {}): GroupRecord {
  return {
    name: `group-${unique()}`,
    incarnation: randomUUID(),
    createdAt: 1_700_000_000_456,
    version: 1,
    fence: 0,
    doc: JSON.stringify({ generation: 0, resetPolicy: "latest", topics: {}, members: {} }),
    ...overrides,
  };
}

/** The record a replace of `record` writes: version + 1, with the given changes. */
function next(record: GroupRecord, changes: Partial<GroupRecord> = {}): GroupRecord {
  return { ...record, version: record.version + 1, ...changes };
}

function offset(
  topic: string,
  partition: number,
  overrides: Partial<CommittedOffset> = {},
): CommittedOffset {
  return {
    topic,
    partition,
    topicId: `id-${topic}`,
    offset: 10 * partition + 7,
    metadata: null,
    generation: 3,
    memberId: "member-a",
    committedAt: 1_700_000_100_000 + partition,
    ...overrides,
  };
}

/** Writes with `expected: null`, as a first commit does. */
const fresh = (...values: CommittedOffset[]): OffsetWrite[] =>
  values.map((value) => ({ value, expected: null }));

const fenceGuard = (g: GroupRecord): GroupGuard => ({ incarnation: g.incarnation, fence: g.fence });
const versionGuard = (g: GroupRecord): GroupGuard => ({
  incarnation: g.incarnation,
  version: g.version,
});

/** Topic, then partition, numerically: partition 10 comes after partition 9. */
const byTopicPartition = (a: CommittedOffset, b: CommittedOffset) =>
  a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition;

const sorted = (offsets: CommittedOffset[]) => [...offsets].sort(byTopicPartition);

/**
 * The GroupStore contract (docs/rfcs/0002-consumer-groups.md §8), run unchanged against every
 * adapter. It sees stores only through the port, never assumes an empty table, and every test
 * uses fresh group names, incarnations and topic names.
 */
export function groupStoreContract(name: string, factory: () => Promise<GroupStoreFixture>): void {
  describe(`GroupStore contract: ${name}`, () => {
    let store: GroupStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
    });

    afterEach(async () => {
      await cleanup();
    });

    /** Creates a group and returns what was stored. */
    async function created(overrides: Partial<GroupRecord> = {}): Promise<GroupRecord> {
      const g = group(overrides);
      expect(await store.putGroup(g, null)).toBe(true);
      return g;
    }

    /** Replaces `current` with next(current, changes) and returns it. */
    async function replaced(
      current: GroupRecord,
      changes: Partial<GroupRecord> = {},
    ): Promise<GroupRecord> {
      const n = next(current, changes);
      expect(await store.putGroup(n, current.version)).toBe(true);
      return n;
    }

    /** A group whose old incarnation `old` left offsets behind, now re-created as `current`. */
    async function recreated(
      oldOffsets: CommittedOffset[],
    ): Promise<{ old: GroupRecord; current: GroupRecord }> {
      const old = await created();
      if (oldOffsets.length > 0) {
        expect(await store.writeOffsets(old.name, fenceGuard(old), fresh(...oldOffsets))).toEqual({
          ok: true,
        });
      }
      expect(await store.deleteGroup(old.name, old.incarnation, old.version)).toBe(true);
      const current = await created({ name: old.name, createdAt: old.createdAt + 1 });
      return { old, current };
    }

    describe("group state", () => {
      it("creates a group and reads it back exactly", async () => {
        const g = await created({ version: 1, fence: 0, createdAt: 1_700_000_000_999 });
        expect(await store.getGroup(g.name)).toEqual(g);
        expect(await store.getGroup(`missing-${unique()}`)).toBeUndefined();
      });

      it("round-trips a 100 KB document with any characters exactly", async () => {
        const members: Record<string, unknown> = {};
        for (let i = 0, size = 0; size < 100 * 1024; i++) {
          const member = {
            clientId: i % 3 === 0 ? null : `client-é-💡-"quoted"-\\-${i}`,
            topics: ["orders", "payments"],
            assigned: [["orders", i % 64, i]],
          };
          const key = `member-${String(i).padStart(4, "0")}-${unique()}`;
          members[key] = member;
          size += JSON.stringify(key).length + JSON.stringify(member).length + 2;
        }
        const doc = JSON.stringify({ generation: 42, members, note: "line\nbreak\ttab\u0000nul" });
        expect(doc.length).toBeGreaterThanOrEqual(100 * 1024);
        const g = await created({ doc });
        const got = await store.getGroup(g.name);
        expect(got?.doc).toBe(doc);
        expect(got).toEqual(g);

        const bigger = await replaced(g, { doc: doc.replace("42", "43"), fence: 7 });
        expect(await store.getGroup(g.name)).toEqual(bigger);
      });

      it("round-trips large counters and timestamps exactly", async () => {
        const g = await created({
          createdAt: 1_999_999_999_999,
          version: 2 ** 40,
          fence: Number.MAX_SAFE_INTEGER - 1,
          doc: "",
        });
        expect(await store.getGroup(g.name)).toEqual(g);
      });

      it("refuses a duplicate create and keeps the original", async () => {
        const original = await created();
        const duplicate = group({ name: original.name, doc: '{"other":true}', fence: 5 });
        expect(await store.putGroup(duplicate, null)).toBe(false);
        expect(await store.getGroup(original.name)).toEqual(original);
      });

      it("replaces on the right version and refuses a stale one, changing nothing", async () => {
        const v1 = await created();
        const v2 = await replaced(v1, { doc: '{"v":2}' });
        expect(await store.getGroup(v1.name)).toEqual(v2);
        const v3 = await replaced(v2, { doc: '{"v":3}', fence: v2.fence + 1 });
        expect(await store.getGroup(v1.name)).toEqual(v3);

        // Based on versions 1 and 2: both lost the race to version 3.
        expect(await store.putGroup(next(v1, { doc: '{"stale":1}' }), 1)).toBe(false);
        expect(await store.putGroup(next(v2, { doc: '{"stale":2}' }), 2)).toBe(false);
        // A version from the future is as wrong as a stale one.
        expect(await store.putGroup({ ...v3, version: 10, doc: "{}" }, 9)).toBe(false);
        expect(await store.getGroup(v1.name)).toEqual(v3);
      });

      it("refuses to replace a group that does not exist", async () => {
        const g = group();
        expect(await store.putGroup(next(g), g.version)).toBe(false);
        expect(await store.getGroup(g.name)).toBeUndefined();
      });

      it("refuses to replace a re-created group that reached the same version", async () => {
        // The ABA case: a writer read incarnation A at version 2; meanwhile A was deleted and
        // B created and moved to version 2. The stale write must not bring A back.
        const a1 = await created();
        const a2 = await replaced(a1);
        expect(await store.deleteGroup(a2.name, a2.incarnation, a2.version)).toBe(true);
        const b1 = await created({ name: a1.name });
        const b2 = await replaced(b1);

        expect(await store.putGroup(next(a2, { doc: '{"zombie":true}' }), a2.version)).toBe(false);
        expect(await store.getGroup(a1.name)).toEqual(b2);
      });

      it("throws internal for a replace whose version is not expectedVersion + 1, changing nothing", async () => {
        const v1 = await created();
        for (const version of [1, 3, 0, 1.5]) {
          await expect(
            store.putGroup({ ...v1, version, doc: '{"bad":true}' }, 1),
          ).rejects.toSatisfy((err) => isSluiceError(err, "internal"));
        }
        expect(await store.getGroup(v1.name)).toEqual(v1);
      });

      it("lets exactly one of 16 concurrent replaces on one version win", async () => {
        const v1 = await created();
        const candidates = Array.from({ length: 16 }, (_, i) =>
          next(v1, { doc: `{"writer":${i}}` }),
        );
        const results = await Promise.all(candidates.map((c) => store.putGroup(c, v1.version)));
        expect(results.filter(Boolean)).toHaveLength(1);
        const winner = candidates[results.indexOf(true)];
        expect(await store.getGroup(v1.name)).toEqual(winner);
      });

      it("lets exactly one of 16 concurrent creates win", async () => {
        const name = `group-${unique()}`;
        const candidates = Array.from({ length: 16 }, () => group({ name }));
        const results = await Promise.all(candidates.map((c) => store.putGroup(c, null)));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await store.getGroup(name)).toEqual(candidates[results.indexOf(true)]);
      });

      it("deletes only on the right incarnation and version", async () => {
        const v1 = await created();
        const v2 = await replaced(v1);
        expect(await store.deleteGroup(v2.name, v2.incarnation, 1)).toBe(false);
        expect(await store.deleteGroup(v2.name, v2.incarnation, 3)).toBe(false);
        expect(await store.deleteGroup(v2.name, randomUUID(), 2)).toBe(false);
        expect(await store.deleteGroup(`missing-${unique()}`, v2.incarnation, 2)).toBe(false);
        expect(await store.getGroup(v2.name)).toEqual(v2);

        expect(await store.deleteGroup(v2.name, v2.incarnation, 2)).toBe(true);
        expect(await store.getGroup(v2.name)).toBeUndefined();
        expect(await store.deleteGroup(v2.name, v2.incarnation, 2)).toBe(false);
      });

      it("creates a group again after a delete, as a new incarnation", async () => {
        const old = await created();
        expect(await store.deleteGroup(old.name, old.incarnation, old.version)).toBe(true);
        const fresh = await created({ name: old.name });
        expect(await store.getGroup(old.name)).toEqual(fresh);
      });

      it("lists groups by name as they are created and deleted", async () => {
        const suffix = unique();
        const mine = (names: { name: string }[]) =>
          names.filter((g) => g.name.includes(suffix)).map((g) => g.name);
        const summary = (g: GroupRecord) => ({
          name: g.name,
          incarnation: g.incarnation,
          createdAt: g.createdAt,
        });

        const b = await created({ name: `list-${suffix}-b`, createdAt: 2 });
        const a = await created({ name: `list-${suffix}-a`, createdAt: 1 });
        const c = await created({ name: `list-${suffix}-c`, createdAt: 3 });
        const a2 = await replaced(a, { doc: '{"changed":true}' });
        const listed = await store.listGroups();
        expect(mine(listed)).toEqual([a.name, b.name, c.name]);
        expect(listed.filter((g) => g.name.includes(suffix))).toEqual([a2, b, c].map(summary));

        expect(await store.deleteGroup(b.name, b.incarnation, b.version)).toBe(true);
        expect(mine(await store.listGroups())).toEqual([a.name, c.name]);

        const b2 = await created({ name: b.name, createdAt: 4 });
        const relisted = (await store.listGroups()).filter((g) => g.name.includes(suffix));
        expect(relisted).toEqual([a2, b2, c].map(summary));
      });

      it("keeps groups out of the topic list when the store also holds topics", async () => {
        const g = await created();
        const maybeTopics = store as Partial<{ listTopics(): Promise<{ name: string }[]> }>;
        if (typeof maybeTopics.listTopics !== "function") return;
        expect((await maybeTopics.listTopics()).map((t) => t.name)).not.toContain(g.name);
      });

      it("hands out copies that callers cannot use to change the store", async () => {
        const g = group();
        const stored = { ...g };
        expect(await store.putGroup(g, null)).toBe(true);
        g.doc = "mutated";
        const got = await store.getGroup(stored.name);
        got!.fence = 99;
        (await store.listGroups()).forEach((s) => (s.incarnation = "mutated"));
        expect(await store.getGroup(stored.name)).toEqual(stored);
        expect((await store.listGroups()).find((s) => s.name === stored.name)?.incarnation).toBe(
          stored.incarnation,
        );
      });
    });

    describe("writeOffsets and getOffsets", () => {
      it("writes all offsets and reads them back by topic, then partition", async () => {
        const g = await created();
        const t1 = `a-${unique()}`;
        const t2 = `b-${unique()}`;
        // Partitions 0-11 catch a sort on the partition as text (10 before 2).
        const values = [
          ...[11, 2, 10, 0, 1, 9].map((p) => offset(t2, p)),
          ...Array.from({ length: 12 }, (_, p) => offset(t1, 11 - p)),
        ];
        expect(await store.writeOffsets(g.name, fenceGuard(g), fresh(...values))).toEqual({
          ok: true,
        });
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual(sorted(values));
        expect(await store.getOffsets(g.name, g.incarnation, t2)).toEqual(
          sorted(values.filter((v) => v.topic === t2)),
        );
        expect(await store.getOffsets(g.name, g.incarnation, `c-${unique()}`)).toEqual([]);
        expect(await store.getOffsets(`missing-${unique()}`, g.incarnation)).toEqual([]);
      });

      it("round-trips every field of an offset exactly", async () => {
        const g = await created();
        const t = `exact-${unique()}`;
        const values = [
          offset(t, 0, { metadata: null, generation: null, memberId: null, offset: 0 }),
          offset(t, 1, { metadata: "", generation: 0, memberId: "m", committedAt: 1 }),
          offset(t, 2, {
            metadata: `{"k":"välue 💡","n":1}\n${"x".repeat(4000)}`,
            generation: 2 ** 31 + 5,
            memberId: "01J9ZK3M4N5P6Q7R8S9T0VWXYZ",
            offset: Number.MAX_SAFE_INTEGER,
            committedAt: 1_999_999_999_999,
            topicId: randomUUID(),
          }),
        ];
        expect(await store.writeOffsets(g.name, versionGuard(g), fresh(...values))).toEqual({
          ok: true,
        });
        expect(await store.getOffsets(g.name, g.incarnation, t)).toEqual(values);
      });

      it("replaces an offset whose expected value matches", async () => {
        const g = await created();
        const t = `t-${unique()}`;
        await store.writeOffsets(g.name, fenceGuard(g), fresh(offset(t, 0, { offset: 5 })));
        const moved = offset(t, 0, { offset: 9, metadata: "m", generation: 4, memberId: "b" });
        expect(
          await store.writeOffsets(g.name, fenceGuard(g), [{ value: moved, expected: 5 }]),
        ).toEqual({ ok: true });
        // Backwards too: direction is the caller's business.
        const rewound = offset(t, 0, { offset: 2, generation: null, memberId: null });
        expect(
          await store.writeOffsets(g.name, versionGuard(g), [{ value: rewound, expected: 9 }]),
        ).toEqual({ ok: true });
        expect(await store.getOffsets(g.name, g.incarnation, t)).toEqual([rewound]);
      });

      it("writes nothing when one expected value is wrong", async () => {
        const g = await created();
        const t = `t-${unique()}`;
        const before = [0, 1, 2].map((p) => offset(t, p, { offset: 100 + p }));
        await store.writeOffsets(g.name, fenceGuard(g), fresh(...before));

        const attempts: OffsetWrite[][] = [
          // One stale expected among good ones, and a new partition that would have been fine.
          [
            { value: offset(t, 0, { offset: 200 }), expected: 100 },
            { value: offset(t, 1, { offset: 201 }), expected: 99 },
            { value: offset(t, 2, { offset: 202 }), expected: 102 },
            { value: offset(t, 3, { offset: 203 }), expected: null },
          ],
          // null where an offset of this incarnation and topic id is stored.
          [
            { value: offset(t, 3, { offset: 203 }), expected: null },
            { value: offset(t, 0, { offset: 200 }), expected: null },
          ],
          // A number where nothing is stored.
          [
            { value: offset(t, 0, { offset: 200 }), expected: 100 },
            { value: offset(t, 4, { offset: 204 }), expected: 0 },
          ],
          // The right number, but stored under another topic id (the topic was re-created).
          [{ value: offset(t, 1, { offset: 201, topicId: randomUUID() }), expected: 101 }],
        ];
        for (const writes of attempts) {
          expect(await store.writeOffsets(g.name, fenceGuard(g), writes)).toEqual({
            ok: false,
            conflict: "offset",
          });
        }
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual(before);
      });

      it("guards on fence for members and on version otherwise", async () => {
        const g1 = await created({ fence: 4 });
        const t = `t-${unique()}`;
        // A renewal moves the version but not the fence: members' commits still pass.
        const g2 = await replaced(g1, { doc: '{"renewed":true}' });
        expect(
          await store.writeOffsets(g1.name, fenceGuard(g1), fresh(offset(t, 0, { offset: 1 }))),
        ).toEqual({ ok: true });
        // ...but a memberless write based on the old version does not.
        expect(
          await store.writeOffsets(g1.name, versionGuard(g1), fresh(offset(t, 1, { offset: 1 }))),
        ).toEqual({ ok: false, conflict: "group" });
        expect(
          await store.writeOffsets(g2.name, versionGuard(g2), fresh(offset(t, 1, { offset: 1 }))),
        ).toEqual({ ok: true });
        expect((await store.getOffsets(g1.name, g1.incarnation)).map((o) => o.partition)).toEqual([
          0, 1,
        ]);
      });

      it("writes nothing on a stale fence, a stale version or another incarnation", async () => {
        const g1 = await created({ fence: 2 });
        const t = `t-${unique()}`;
        const before = [offset(t, 0, { offset: 50 })];
        await store.writeOffsets(g1.name, fenceGuard(g1), fresh(...before));
        const g2 = await replaced(g1, { fence: 3 });

        const writes: OffsetWrite[] = [
          { value: offset(t, 0, { offset: 60 }), expected: 50 },
          { value: offset(t, 1, { offset: 61 }), expected: null },
        ];
        const guards: GroupGuard[] = [
          { incarnation: g2.incarnation, fence: 2 },
          { incarnation: g2.incarnation, fence: 4 },
          { incarnation: g2.incarnation, version: 1 },
          { incarnation: g2.incarnation, version: 3 },
          { incarnation: randomUUID(), fence: 3 },
          { incarnation: randomUUID(), version: 2 },
        ];
        for (const guard of guards) {
          expect(await store.writeOffsets(g2.name, guard, writes)).toEqual({
            ok: false,
            conflict: "group",
          });
        }
        expect(await store.getOffsets(g2.name, g2.incarnation)).toEqual(before);
        expect(await store.writeOffsets(g2.name, fenceGuard(g2), writes)).toEqual({ ok: true });
      });

      it("reports the group, not the offset, when both checks fail", async () => {
        const g = await created({ fence: 1 });
        const t = `t-${unique()}`;
        await store.writeOffsets(g.name, fenceGuard(g), fresh(offset(t, 0, { offset: 5 })));
        const writes = [{ value: offset(t, 0, { offset: 6 }), expected: 4 }];
        expect(
          await store.writeOffsets(g.name, { incarnation: g.incarnation, fence: 0 }, writes),
        ).toEqual({ ok: false, conflict: "group" });
      });

      it("refuses writes to a group that does not exist", async () => {
        const name = `missing-${unique()}`;
        const incarnation = randomUUID();
        const t = `t-${unique()}`;
        for (const guard of [
          { incarnation, fence: 0 },
          { incarnation, version: 1 },
        ]) {
          expect(await store.writeOffsets(name, guard, fresh(offset(t, 0)))).toEqual({
            ok: false,
            conflict: "group",
          });
        }
        expect(await store.getOffsets(name, incarnation)).toEqual([]);
      });

      it("checks only the guard when there is nothing to write", async () => {
        const g = await created({ fence: 1 });
        expect(await store.writeOffsets(g.name, fenceGuard(g), [])).toEqual({ ok: true });
        expect(
          await store.writeOffsets(g.name, { incarnation: g.incarnation, fence: 0 }, []),
        ).toEqual({ ok: false, conflict: "group" });
      });

      it("throws internal for two writes to one partition, writing nothing", async () => {
        const g = await created();
        const t = `t-${unique()}`;
        await expect(
          store.writeOffsets(g.name, fenceGuard(g), [
            ...fresh(offset(t, 1)),
            ...fresh(offset(t, 0, { offset: 1 })),
            ...fresh(offset(t, 0, { offset: 2 })),
          ]),
        ).rejects.toSatisfy((err) => isSluiceError(err, "internal"));
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual([]);
      });

      it("treats an offset of another incarnation or topic id as none", async () => {
        const t = `t-${unique()}`;
        const { old, current } = await recreated([0, 1, 2].map((p) => offset(t, p)));
        expect(await store.getOffsets(current.name, current.incarnation)).toEqual([]);

        // A number based on the old incarnation's offset is stale...
        expect(
          await store.writeOffsets(current.name, fenceGuard(current), [
            { value: offset(t, 0, { offset: 99 }), expected: offset(t, 0).offset },
          ]),
        ).toEqual({ ok: false, conflict: "offset" });
        // ...null accepts it, and the new incarnation's offset takes its place.
        const mine = offset(t, 0, { offset: 3, memberId: null, generation: null });
        expect(await store.writeOffsets(current.name, versionGuard(current), fresh(mine))).toEqual({
          ok: true,
        });
        expect(await store.getOffsets(current.name, current.incarnation)).toEqual([mine]);
        expect(await store.getOffsets(old.name, old.incarnation)).toEqual([
          offset(t, 1),
          offset(t, 2),
        ]);

        // The topic was deleted and re-created: its old offset counts as none.
        const reborn = offset(t, 0, { offset: 1, topicId: randomUUID() });
        expect(await store.writeOffsets(current.name, fenceGuard(current), fresh(reborn))).toEqual({
          ok: true,
        });
        expect(await store.getOffsets(current.name, current.incarnation)).toEqual([reborn]);
        // And null is refused now that a current one is stored.
        expect(
          await store.writeOffsets(current.name, fenceGuard(current), fresh({ ...reborn })),
        ).toEqual({ ok: false, conflict: "offset" });
      });

      it("keeps groups apart, even when one name is a prefix of another", async () => {
        const a = await created();
        const b = await created({ name: `${a.name}-b` });
        const t = `t-${unique()}`;
        const ofA = offset(t, 0, { offset: 1, memberId: "a" });
        const ofB = offset(t, 0, { offset: 2, memberId: "b" });
        await store.writeOffsets(a.name, fenceGuard(a), fresh(ofA));
        await store.writeOffsets(b.name, fenceGuard(b), fresh(ofB));
        expect(await store.getOffsets(a.name, a.incarnation)).toEqual([ofA]);
        expect(await store.getOffsets(b.name, b.incarnation)).toEqual([ofB]);
        expect(await store.getOffsets(a.name, b.incarnation)).toEqual([]);
      });

      it("filters by topic exactly, even when one topic name is a prefix of another", async () => {
        const g = await created();
        const t = `t-${unique()}`;
        const values = [offset(t, 0), offset(t, 1), offset(`${t}-x`, 0), offset(`${t}.y`, 0)];
        await store.writeOffsets(g.name, fenceGuard(g), fresh(...values));
        expect(await store.getOffsets(g.name, g.incarnation, t)).toEqual(values.slice(0, 2));
        expect(await store.getOffsets(g.name, g.incarnation, `${t}-x`)).toEqual([values[2]]);
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual(sorted(values));
      });

      it("lets exactly one of 16 concurrent writers on one expected value win", async () => {
        const g = await created();
        const t = `t-${unique()}`;
        await store.writeOffsets(g.name, fenceGuard(g), fresh(offset(t, 0, { offset: 5 })));

        const fromFive = Array.from({ length: 16 }, (_, i) => ({
          value: offset(t, 0, { offset: 10 + i, memberId: `m${i}` }),
          expected: 5,
        }));
        const results = await Promise.all(
          fromFive.map((w) => store.writeOffsets(g.name, fenceGuard(g), [w])),
        );
        const winners = results.filter((r) => r.ok);
        expect(winners).toHaveLength(1);
        expect(results.filter((r) => !r.ok)).toEqual(
          Array.from({ length: 15 }, () => ({ ok: false, conflict: "offset" })),
        );
        const winner = fromFive[results.findIndex((r) => r.ok)]!.value;
        expect(await store.getOffsets(g.name, g.incarnation, t)).toEqual([winner]);

        const firsts = Array.from({ length: 16 }, (_, i) =>
          fresh(offset(t, 1, { offset: i, memberId: `m${i}` })),
        );
        const firstResults = await Promise.all(
          firsts.map((w) => store.writeOffsets(g.name, versionGuard(g), w)),
        );
        expect(firstResults.filter((r) => r.ok)).toHaveLength(1);
        const first = firsts[firstResults.findIndex((r) => r.ok)]![0]!.value;
        expect(await store.getOffsets(g.name, g.incarnation, t)).toEqual([winner, first]);
      });

      it("writes exactly maxOffsetsPerWrite offsets all-or-nothing", async () => {
        const max = store.maxOffsetsPerWrite;
        expect(max).toBeGreaterThanOrEqual(1);
        const n = Number.isFinite(max) ? max : 99;
        const g = await created();
        const t1 = `a-${unique()}`;
        const t2 = `b-${unique()}`;
        const values = Array.from({ length: n }, (_, i) =>
          offset(i % 2 === 0 ? t1 : t2, i >> 1, { offset: i, metadata: `m${i}` }),
        );
        expect(await store.writeOffsets(g.name, fenceGuard(g), fresh(...values))).toEqual({
          ok: true,
        });
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual(sorted(values));

        // All n again, with only the last expected value wrong: nothing moves.
        const moved = values.map((v) => ({
          value: { ...v, offset: v.offset + 1000 },
          expected: v.offset,
        }));
        moved[n - 1]!.expected = -1;
        expect(await store.writeOffsets(g.name, fenceGuard(g), moved)).toEqual({
          ok: false,
          conflict: "offset",
        });
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual(sorted(values));

        moved[n - 1]!.expected = values[n - 1]!.offset;
        expect(await store.writeOffsets(g.name, fenceGuard(g), moved)).toEqual({ ok: true });
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual(
          sorted(moved.map((w) => w.value)),
        );
      });

      it("throws internal for more than maxOffsetsPerWrite offsets, writing nothing", async (ctx) => {
        const max = store.maxOffsetsPerWrite;
        if (!Number.isFinite(max)) ctx.skip();
        const g = await created();
        const t = `t-${unique()}`;
        const values = Array.from({ length: max + 1 }, (_, p) => offset(t, p));
        await expect(store.writeOffsets(g.name, fenceGuard(g), fresh(...values))).rejects.toSatisfy(
          (err) => isSluiceError(err, "internal"),
        );
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual([]);
      });

      it("hands out copies that callers cannot use to change the store", async () => {
        const g = await created();
        const t = `t-${unique()}`;
        const value = offset(t, 0, { metadata: "original" });
        const stored = { ...value };
        await store.writeOffsets(g.name, fenceGuard(g), fresh(value));
        value.metadata = "mutated";
        const [got] = await store.getOffsets(g.name, g.incarnation);
        got!.offset = 12345;
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual([stored]);
      });
    });

    describe("purgeOffsets", () => {
      it("removes only offsets of other incarnations and counts them", async () => {
        const t = `t-${unique()}`;
        const { old, current } = await recreated([0, 1, 2, 3].map((p) => offset(t, p)));
        // The new incarnation's offset on partition 0 replaces the old one there.
        const mine = [0, 4].map((p) => offset(t, p, { offset: 1000 + p }));
        await store.writeOffsets(current.name, fenceGuard(current), fresh(...mine));

        expect(await store.purgeOffsets(current.name, current.incarnation)).toBe(3);
        expect(await store.getOffsets(old.name, old.incarnation)).toEqual([]);
        expect(await store.getOffsets(current.name, current.incarnation)).toEqual(mine);
        expect(await store.purgeOffsets(current.name, current.incarnation)).toBe(0);
      });

      it("removes every offset of the group when nothing is kept", async () => {
        const t = `t-${unique()}`;
        const { old, current } = await recreated([0, 1].map((p) => offset(t, p)));
        await store.writeOffsets(current.name, fenceGuard(current), fresh(offset(t, 2)));
        const other = await created({ name: `${current.name}-other` });
        await store.writeOffsets(other.name, fenceGuard(other), fresh(offset(t, 0)));

        expect(await store.purgeOffsets(current.name)).toBe(3);
        expect(await store.getOffsets(old.name, old.incarnation)).toEqual([]);
        expect(await store.getOffsets(current.name, current.incarnation)).toEqual([]);
        // The group itself and other groups are untouched.
        expect(await store.getGroup(current.name)).toEqual(current);
        expect(await store.getOffsets(other.name, other.incarnation)).toEqual([offset(t, 0)]);
        expect(await store.purgeOffsets(current.name)).toBe(0);
        expect(await store.purgeOffsets(`missing-${unique()}`)).toBe(0);
      });

      it("keeps a deleted group's offsets until purged", async () => {
        const g = await created();
        const t = `t-${unique()}`;
        const values = [offset(t, 0), offset(t, 1)];
        await store.writeOffsets(g.name, fenceGuard(g), fresh(...values));
        expect(await store.deleteGroup(g.name, g.incarnation, g.version)).toBe(true);
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual(values);
        expect(await store.purgeOffsets(g.name)).toBe(2);
        expect(await store.getOffsets(g.name, g.incarnation)).toEqual([]);
      });
    });
  });
}
