import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { check } from "./checker.js";
import type {
  CommitObservation,
  ConsumeOp,
  FinalGroup,
  FinalPartition,
  FinalState,
  Op,
  ProduceOp,
  Violation,
  ViolationKind,
} from "./history.js";

const T = "t";

function produce(
  id: string,
  ack?: [partition: number, offset: number],
  extra: Partial<ProduceOp> = {},
): ProduceOp {
  return {
    kind: "produce",
    id,
    topic: T,
    idempotent: false,
    attempts: 1,
    outcome: ack ? "ok" : "unknown",
    ...(ack ? { ack: { partition: ack[0], offset: ack[1] } } : {}),
    ...extra,
  };
}

function part(
  partition: number,
  ids: string[],
  start = 0,
  end = start + ids.length,
): FinalPartition {
  return {
    topic: T,
    partition,
    logStartOffset: start,
    logEndOffset: end,
    records: ids.map((id, i) => ({ offset: start + i, id })),
  };
}

function consume(partition: number, from: number, ids: string[], group = "g"): ConsumeOp {
  return {
    kind: "consume",
    group,
    topic: T,
    partition,
    records: ids.map((id, i) => ({ offset: from + i, id })),
  };
}

function committed(
  partition: number,
  offset: number,
  seq: number,
  extra: Partial<CommitObservation> = {},
): CommitObservation {
  return {
    kind: "committed",
    group: "g",
    topic: T,
    partition,
    offset,
    rewind: false,
    seq,
    ...extra,
  };
}

const group = (partition: number, c: number | null): FinalGroup => ({
  group: "g",
  topic: T,
  partition,
  committed: c,
});

const kinds = (vs: Violation[]) => vs.map((v) => v.kind).sort();
const only = (vs: Violation[], kind: ViolationKind) => vs.filter((v) => v.kind === kind);

/** Two partitions, all acknowledged, consumed and committed: nothing to report. */
function cleanHistory(): { ops: Op[]; final: FinalState } {
  const p0 = ["a0", "a1", "a2", "a3"];
  const p1 = ["b0", "b1"];
  const ops: Op[] = [
    ...p0.map((id, i) => produce(id, [0, i], { idempotent: i % 2 === 0 })),
    ...p1.map((id, i) => produce(id, [1, i])),
    produce("never-landed"), // unknown outcome, absent: fine
    produce("refused", undefined, { outcome: "failed" }),
    consume(0, 0, ["a0", "a1"]),
    committed(0, 2, 1),
    consume(0, 2, ["a2", "a3"]),
    committed(0, 4, 3, { invokedSeq: 2 }),
    consume(1, 0, ["b0", "b1"]),
    committed(1, 2, 4),
  ];
  return {
    ops,
    final: { partitions: [part(0, p0), part(1, p1)], groups: [group(0, 4), group(1, 2)] },
  };
}

describe("check", () => {
  it("passes a clean history", () => {
    const { ops, final } = cleanHistory();
    expect(check(ops, final)).toEqual([]);
  });

  it("flags an acknowledged record that is not in the log", () => {
    const { ops, final } = cleanHistory();
    // Acknowledged at 0@2, where a2 is: its write never made it.
    ops.push(produce("gone", [0, 2]));
    const vs = check(ops, final);
    expect(kinds(vs)).toEqual(["lost"]);
    expect(vs[0]!.detail).toContain("gone");
    expect(vs[0]!.detail).toContain("t/0@2");
  });

  it("flags a planted lost write (the record and its offset gone)", () => {
    const { ops, final } = cleanHistory();
    final.partitions[1] = part(1, ["b0"], 0, 2);
    const vs = check(ops, final);
    expect(kinds(vs)).toEqual(["gap", "lost"]);
    expect(only(vs, "lost")[0]!.detail).toMatch(/b1.*t\/1@1/);
    expect(only(vs, "gap")[0]!.detail).toContain("offsets 1..1 are missing at the end");
  });

  it("does not flag an acknowledged record that retention removed", () => {
    const { ops, final } = cleanHistory();
    final.partitions[0] = part(0, ["a2", "a3"], 2, 4);
    expect(check(ops, final)).toEqual([]);
  });

  it("still flags a record missing above the log start", () => {
    const { ops, final } = cleanHistory();
    final.partitions[0] = { ...part(0, ["a2"], 2, 4) };
    expect(kinds(check(ops, final))).toEqual(["gap", "lost"]);
  });

  it("flags an idempotent record written twice", () => {
    const { ops, final } = cleanHistory();
    const a0 = ops[0] as ProduceOp;
    a0.attempts = 3;
    final.partitions[0] = part(0, ["a0", "a1", "a2", "a3", "a0"]);
    const vs = check(ops, final);
    expect(kinds(vs)).toEqual(["duplicate"]);
    expect(vs[0]!.detail).toContain("a0");
    expect(vs[0]!.detail).toContain("idempotent");
    expect(vs[0]!.detail).toContain("t/0@0, t/0@4");
  });

  it("allows a plain producer's resends to add copies, one per attempt at most", () => {
    const { ops, final } = cleanHistory();
    const a1 = ops[1] as ProduceOp;
    expect(a1.idempotent).toBe(false);
    a1.attempts = 2;
    final.partitions[0] = part(0, ["a0", "a1", "a2", "a3", "a1"]);
    expect(check(ops, final)).toEqual([]);
    // Three copies from two sends is one too many.
    final.partitions[0] = part(0, ["a0", "a1", "a2", "a3", "a1", "a1"]);
    expect(kinds(check(ops, final))).toEqual(["duplicate"]);
    // A single send never makes two copies.
    a1.attempts = 1;
    final.partitions[0] = part(0, ["a0", "a1", "a2", "a3", "a1"]);
    expect(kinds(check(ops, final))).toEqual(["duplicate"]);
  });

  it("flags a hole in the offsets", () => {
    const { ops, final } = cleanHistory();
    const p0 = part(0, ["a0", "a1", "a2", "a3"]);
    p0.records[3]!.offset = 5;
    p0.records[2]!.offset = 4;
    p0.logEndOffset = 6;
    ops[2] = produce("a2", [0, 4]);
    ops[3] = produce("a3", [0, 5]);
    final.partitions[0] = p0;
    final.groups[0]!.committed = 2;
    const vs = check(ops, final);
    expect(kinds(vs)).toEqual(["gap"]);
    expect(vs[0]!.detail).toContain("t/0: offsets 2..3 are missing");
  });

  it("flags a repeated offset and records beyond the log end", () => {
    const { ops, final } = cleanHistory();
    final.partitions[1] = {
      ...part(1, ["b0", "b1"]),
      records: [
        { offset: 0, id: "b0" },
        { offset: 0, id: "b1" },
      ],
    };
    expect(only(check(ops, final), "gap")[0]!.detail).toContain("repeats");
    final.partitions[1] = part(1, ["b0", "b1"], 0, 1);
    expect(only(check(ops, final), "gap")[0]!.detail).toContain("beyond the log end 1");
  });

  it("flags an acknowledged record found at another offset", () => {
    const { ops, final } = cleanHistory();
    final.partitions[0] = part(0, ["a0", "a2", "a1", "a3"]);
    final.groups[0]!.committed = 1;
    const vs = check(ops, final);
    expect(kinds(vs)).toEqual(["wrong_offset", "wrong_offset"]);
    expect(vs.map((v) => v.detail).join("\n")).toContain(
      "record a1 was acknowledged at t/0@1 but is at t/0@2",
    );
  });

  it("flags a record nobody wrote, and one whose produce definitely failed", () => {
    const { ops, final } = cleanHistory();
    final.partitions[1] = part(1, ["b0", "b1", "stranger", "refused"]);
    const vs = check(ops, final);
    expect(kinds(vs)).toEqual(["phantom", "phantom"]);
    expect(vs[0]!.detail).toContain("stranger at t/1@2 was never produced");
    expect(vs[1]!.detail).toContain("refused");
    expect(vs[1]!.detail).toContain("t/1@3");
  });

  it("flags a consumer handed a record the log does not hold there", () => {
    const { ops, final } = cleanHistory();
    // Handed an uncommitted write (a dirty read), twice: reported once.
    const dirty = consume(1, 2, ["in-flight"]);
    ops.push(produce("in-flight"), dirty, dirty);
    let vs = check(ops, final);
    expect(kinds(vs)).toEqual(["phantom"]);
    expect(vs[0]!.detail).toBe(
      "group g was handed record in-flight at t/1@2, but the log has nothing there (log 0..2)",
    );
    // Handed another record than the log holds at that offset.
    ops.push({ ...consume(0, 1, ["a2"]), group: null });
    vs = check(ops, final);
    expect(vs.map((v) => v.detail)).toContain(
      "a plain fetch was handed record a2 at t/0@1, but the log has a1 there (log 0..4)",
    );
    // Handed a record nobody produced, or a refused one.
    vs = check(
      [...cleanHistory().ops, consume(1, 0, ["b0", "ghost"]), consume(1, 1, ["refused"])],
      final,
    );
    expect(vs.map((v) => v.detail)).toEqual([
      "group g was handed record ghost at t/1@1, which was never produced",
      "group g was handed record refused at t/1@1, whose produce definitely failed",
    ]);
  });

  it("does not judge what consumers read below the final log start", () => {
    const { ops, final } = cleanHistory();
    final.partitions[0] = part(0, ["a2", "a3"], 2, 4);
    expect(check([...ops, consume(0, 0, ["a1"])], final)).toEqual([]);
  });

  it("flags a committed offset moving backwards, but not by a rewind", () => {
    const { ops, final } = cleanHistory();
    const back = [...ops, committed(0, 3, 10)];
    const vs = check(back, final);
    expect(kinds(vs)).toEqual(["commit_backwards"]);
    expect(vs[0]!.detail).toContain("group g t/0: committed offset 3 (seq 10) is below 4");
    expect(check([...ops, committed(0, 3, 10, { rewind: true })], final)).toEqual([]);
    // After a rewind, the rewound value is the new floor.
    const afterRewind = [...ops, committed(0, 1, 10, { rewind: true }), committed(0, 2, 11)];
    expect(check(afterRewind, final)).toEqual([]);
    expect(kinds(check([...afterRewind, committed(0, 0, 12)], final))).toEqual([
      "commit_backwards",
    ]);
  });

  it("judges observations with a duration only against those that finished before them", () => {
    const { ops, final } = cleanHistory();
    // A describe sent at 10 that saw 2 may have read before the commit that answered 4 at 12.
    const overlapping = [
      committed(0, 4, 12, { invokedSeq: 11 }),
      committed(0, 2, 13, { invokedSeq: 10 }),
    ];
    expect(check([...ops.filter((o) => o.kind !== "committed"), ...overlapping], final)).toEqual(
      [],
    );
    // Sent after that commit's answer, it may not.
    const later = [
      committed(0, 4, 12, { invokedSeq: 11 }),
      committed(0, 2, 15, { invokedSeq: 14 }),
    ];
    expect(kinds(check([...ops.filter((o) => o.kind !== "committed"), ...later], final))).toEqual([
      "commit_backwards",
    ]);
    // A rewind overlapping the lower observation explains it.
    const rewound = [...later, committed(0, 2, 16, { invokedSeq: 13, rewind: true })];
    expect(check([...ops.filter((o) => o.kind !== "committed"), ...rewound], final)).toEqual([]);
  });

  it("flags a record below the committed offset that the group never got", () => {
    const { ops, final } = cleanHistory();
    const withoutA2 = ops.map((o) =>
      o.kind === "consume" && o.partition === 0 && o.records[0]!.offset === 2
        ? consume(0, 3, ["a3"])
        : o,
    );
    const vs = check(withoutA2, final);
    expect(kinds(vs)).toEqual(["not_consumed"]);
    expect(vs[0]!.detail).toContain("group g committed t/0 up to 4");
    expect(vs[0]!.detail).toContain("at 2 (a2)");
    // Records at or above the committed offset need not have been handed out yet.
    final.groups[0]!.committed = 2;
    expect(check(withoutA2, final)).toEqual([]);
    // Another group's deliveries do not count.
    const otherGroup = withoutA2.map((o) =>
      o.kind === "consume" && o.partition === 1 ? { ...o, group: "h" } : o,
    );
    expect(kinds(check(otherGroup, final))).toEqual(["not_consumed"]);
  });

  it("does not ask for records that retention removed before the group read them", () => {
    const { ops, final } = cleanHistory();
    final.partitions[0] = part(0, ["a2", "a3"], 2, 4);
    const noEarly = ops.filter(
      (o) => !(o.kind === "consume" && o.partition === 0 && o.records[0]!.offset === 0),
    );
    expect(check(noEarly, final)).toEqual([]);
  });

  it("throws on a malformed history", () => {
    const { ops, final } = cleanHistory();
    expect(() => check([...ops, produce("a0")], final)).toThrow(
      /two produce operations carry id a0/,
    );
  });
});

/** A random clean history: what a correct system could have answered, with allowed oddities. */
const cleanHistories = fc
  .record({
    partitions: fc.array(
      fc.record({
        // Per record: acknowledged (idempotent or not), or unknown but landed.
        records: fc.array(
          fc.record({
            ok: fc.boolean(),
            idempotent: fc.boolean(),
            attempts: fc.integer({ min: 1, max: 3 }),
            copy: fc.boolean(), // a plain resend landed a second copy
          }),
          { maxLength: 12 },
        ),
        trim: fc.nat(),
        committed: fc.option(fc.nat(), { nil: null }),
        chunk: fc.integer({ min: 1, max: 4 }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
    lostInFlight: fc.nat({ max: 3 }),
    failed: fc.nat({ max: 3 }),
  })
  .map(({ partitions, lostInFlight, failed }) => {
    const ops: Op[] = [];
    const final: FinalState = { partitions: [], groups: [] };
    let seq = 0;
    partitions.forEach((spec, p) => {
      const ids: string[] = [];
      spec.records.forEach((r, i) => {
        const id = `p${p}r${i}`;
        ids.push(id);
        const idempotent = r.idempotent && !r.copy;
        const attempts = r.copy ? Math.max(2, r.attempts) : r.attempts;
        ops.push(produce(id, r.ok ? [p, ids.length - 1] : undefined, { idempotent, attempts }));
        if (r.copy) ids.push(id);
      });
      const start = ids.length === 0 ? 0 : spec.trim % (ids.length + 1);
      const fp: FinalPartition = {
        topic: T,
        partition: p,
        logStartOffset: start,
        logEndOffset: ids.length,
        records: ids.slice(start).map((id, i) => ({ offset: start + i, id })),
      };
      final.partitions.push(fp);
      const committedAt =
        spec.committed === null ? null : start + (spec.committed % (ids.length - start + 1));
      final.groups.push(group(p, committedAt));
      if (committedAt !== null) {
        // Delivered from the log start in chunks, each committed after it was processed.
        for (let from = start; from < committedAt; from += spec.chunk) {
          const to = Math.min(committedAt, from + spec.chunk);
          ops.push(consume(p, from, ids.slice(from, to)));
          ops.push(committed(p, to, ++seq + 1, { invokedSeq: seq++ }));
        }
      }
    });
    for (let i = 0; i < lostInFlight; i++) ops.push(produce(`unknown${i}`));
    for (let i = 0; i < failed; i++)
      ops.push(produce(`failed${i}`, undefined, { outcome: "failed" }));
    return { ops, final };
  });

describe("check on random clean histories", () => {
  it("finds nothing in a clean history", () => {
    fc.assert(
      fc.property(cleanHistories, ({ ops, final }) => {
        expect(check(ops, final)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("finds exactly one lost record (and the hole it leaves) when one acknowledged record is removed", () => {
    const withVictim = cleanHistories.chain((h) => {
      const count = new Map<string, number>();
      for (const fp of h.final.partitions)
        for (const r of fp.records) count.set(r.id, (count.get(r.id) ?? 0) + 1);
      const acked = h.final.partitions.flatMap((fp, pi) =>
        fp.records.flatMap((r, ri) => {
          const op = h.ops.find((o): o is ProduceOp => o.kind === "produce" && o.id === r.id)!;
          return op.outcome === "ok" && count.get(r.id) === 1 && op.ack?.offset === r.offset
            ? [[pi, ri] as const]
            : [];
        }),
      );
      return acked.length === 0
        ? fc.constant(undefined)
        : fc.constantFrom(...acked).map(([pi, ri]) => ({ ...h, pi, ri }));
    });
    fc.assert(
      fc.property(withVictim, (h) => {
        if (h === undefined) return;
        const fp = h.final.partitions[h.pi]!;
        const victim = fp.records[h.ri]!;
        const partitions = h.final.partitions.map((x, i) =>
          i === h.pi ? { ...x, records: x.records.filter((_, j) => j !== h.ri) } : x,
        );
        const vs = check(h.ops, { ...h.final, partitions });
        const lost = only(vs, "lost");
        expect(lost).toHaveLength(1);
        expect(lost[0]!.detail).toContain(
          `record ${victim.id} was acknowledged at t/${h.pi}@${victim.offset}`,
        );
        const gaps = only(vs, "gap");
        expect(gaps).toHaveLength(1);
        expect(gaps[0]!.detail).toContain(`${victim.offset}..${victim.offset}`);
        expect(vs).toHaveLength(2);
      }),
      { numRuns: 300 },
    );
  });
});
