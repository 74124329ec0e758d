import type {
  CommitObservation,
  FinalPartition,
  FinalState,
  Op,
  ProduceOp,
  Violation,
  ViolationKind,
} from "./history.js";

/**
 * Checks a chaos run's history against the invariants of DESIGN.md. Pure: it reads the
 * operations and the final state, nothing else, and runs in O(n) (plus a sort per committed
 * partition). Every violation's detail names the ids, partitions and offsets involved. A
 * malformed history (one id on two produce operations, a partition read twice) throws.
 *
 * - lost: an acknowledged record is absent from the final read, unless retention removed its
 *   acknowledged offset (ack offset < the partition's logStartOffset).
 * - wrong_offset: an acknowledged record is present, but not at its acknowledged place.
 * - duplicate: an id at more places than allowed: 1, or `attempts` for a plain (non-idempotent)
 *   producer's resends.
 * - gap: a final partition's offsets are not exactly logStartOffset … logEndOffset − 1.
 * - phantom: a read id (in the final read, or handed to a consumer) that no operation wrote, or
 *   that a definitely failed operation wrote; or a consumer handed a record at or beyond the
 *   final log end (a dirty read), or where the final log holds another record (a rewritten
 *   offset; reported here unless the record was acknowledged there, which lost and wrong_offset
 *   already cover; a hole is the gap check's).
 * - commit_backwards: a group's committed offset observed lower than an earlier observation
 *   (earlier in real time: see CommitObservation.invokedSeq) with no rewind in between.
 * - not_consumed: a record below a group's final committed offset (and at or above the log
 *   start) that no ConsumeOp of the group handed out.
 */
export function check(ops: readonly Op[], final: FinalState): Violation[] {
  const violations: Violation[] = [];
  const flag = (kind: ViolationKind, detail: string) => violations.push({ kind, detail });

  const produces = new Map<string, ProduceOp>();
  /** groupKey → "offset id" pairs handed out. */
  const consumed = new Map<string, Set<string>>();
  /** groupKey → observations. */
  const observations = new Map<string, CommitObservation[]>();
  for (const op of ops) {
    switch (op.kind) {
      case "produce":
        if (produces.has(op.id)) {
          throw new Error(`malformed history: two produce operations carry id ${op.id}`);
        }
        produces.set(op.id, op);
        break;
      case "consume": {
        const key = groupKey(op.group, op.topic, op.partition);
        let seen = consumed.get(key);
        if (!seen) consumed.set(key, (seen = new Set()));
        for (const r of op.records) seen.add(handed(r.offset, r.id));
        break;
      }
      case "committed": {
        const key = groupKey(op.group, op.topic, op.partition);
        const list = observations.get(key);
        if (list) list.push(op);
        else observations.set(key, [op]);
        break;
      }
    }
  }

  const partitions = new Map<string, FinalPartition>();
  /** id → where it was read: "topic/partition@offset" places. */
  const places = new Map<string, Place[]>();
  for (const fp of final.partitions) {
    const name = partitionName(fp.topic, fp.partition);
    if (partitions.has(name)) {
      throw new Error(`malformed final state: partition ${name} appears twice`);
    }
    partitions.set(name, fp);
    checkContiguous(fp, flag);
    for (const r of fp.records) {
      const place = { topic: fp.topic, partition: fp.partition, offset: r.offset };
      const list = places.get(r.id);
      if (list) list.push(place);
      else places.set(r.id, [place]);
    }
  }

  for (const [id, where] of places) {
    const op = produces.get(id);
    const at = where.map(placeName).join(", ");
    if (op === undefined) {
      flag("phantom", `record ${id} at ${at} was never produced`);
      continue;
    }
    if (op.outcome === "failed") {
      flag(
        "phantom",
        `record ${id} of a produce that definitely failed (attempts ${op.attempts}) is visible at ${at}`,
      );
    }
    const allowed = op.idempotent ? 1 : Math.max(1, op.attempts);
    if (where.length > allowed) {
      flag(
        "duplicate",
        `record ${id} (${op.idempotent ? "idempotent" : "plain"}, ${op.attempts} attempt(s), ` +
          `outcome ${op.outcome}) is at ${where.length} places, at most ${allowed} allowed: ${at}`,
      );
    }
  }

  for (const op of produces.values()) {
    if (op.outcome !== "ok") continue;
    const where = places.get(op.id);
    if (op.ack === undefined) {
      // Nothing says where it should be; it must at least be somewhere.
      if (where === undefined)
        flag("lost", `record ${op.id} was acknowledged (no offset) but is not in the log`);
      continue;
    }
    const { partition, offset } = op.ack;
    const acked = `${partitionName(op.topic, partition)}@${offset}`;
    const fp = partitions.get(partitionName(op.topic, partition));
    if (fp === undefined) {
      flag(
        "lost",
        `record ${op.id} was acknowledged at ${acked}, a partition the final read lacks`,
      );
      continue;
    }
    // Retention may have removed it: its acknowledged offset is below the log start.
    if (offset < fp.logStartOffset) continue;
    if (where === undefined) {
      flag(
        "lost",
        `record ${op.id} was acknowledged at ${acked} but is not in the log ` +
          `(log ${fp.logStartOffset}..${fp.logEndOffset})`,
      );
    } else if (
      !where.some((w) => w.topic === op.topic && w.partition === partition && w.offset === offset)
    ) {
      flag(
        "wrong_offset",
        `record ${op.id} was acknowledged at ${acked} but is at ${where.map(placeName).join(", ")}`,
      );
    }
  }

  // What consumers were handed must be what the log holds: no dirty or rewritten reads.
  const reported = new Set<string>();
  for (const op of ops) {
    if (op.kind !== "consume") continue;
    const name = partitionName(op.topic, op.partition);
    const fp = partitions.get(name);
    const who = op.group === null ? "a plain fetch" : `group ${op.group}`;
    for (const r of op.records) {
      const key = `${who}\u0000${name}\u0000${r.offset}\u0000${r.id}`;
      if (reported.has(key)) continue;
      const writer = produces.get(r.id);
      let problem: string | undefined;
      if (writer === undefined) {
        problem = "which was never produced";
      } else if (writer.outcome === "failed") {
        problem = "whose produce definitely failed";
      } else if (fp !== undefined && r.offset >= fp.logStartOffset) {
        const there = idAt(fp, r.offset);
        const log = `(log ${fp.logStartOffset}..${fp.logEndOffset})`;
        if (r.offset >= fp.logEndOffset) {
          problem = `but the log has nothing there ${log}`;
        } else if (
          there !== undefined &&
          there !== r.id &&
          !acknowledgedAt(writer, name, r.offset)
        ) {
          // A hole is the gap check's, and an acknowledged record moved is lost/wrong_offset's.
          problem = `but the log has ${there} there ${log}`;
        }
      }
      if (problem === undefined) continue;
      reported.add(key);
      flag("phantom", `${who} was handed record ${r.id} at ${name}@${r.offset}, ${problem}`);
    }
  }

  for (const [key, list] of observations) checkCommits(key, list, flag);

  for (const g of final.groups) {
    if (g.committed === null) continue;
    const fp = partitions.get(partitionName(g.topic, g.partition));
    if (fp === undefined) continue;
    const seen = consumed.get(groupKey(g.group, g.topic, g.partition));
    let missed: { offset: number; id: string }[] = [];
    const report = () => {
      if (missed.length === 0) return;
      const first = missed[0]!.offset;
      const last = missed.at(-1)!.offset;
      const ids = missed.slice(0, 5).map((r) => r.id);
      flag(
        "not_consumed",
        `group ${g.group} committed ${partitionName(g.topic, g.partition)} up to ${g.committed}, ` +
          `but the record(s) at ${first === last ? first : `${first}..${last}`} ` +
          `(${ids.join(", ")}${missed.length > ids.length ? `, … ${missed.length} in all` : ""}) ` +
          `were never handed to the group`,
      );
      missed = [];
    };
    for (const r of fp.records) {
      if (r.offset < fp.logStartOffset) continue;
      if (r.offset >= g.committed) continue;
      if (seen?.has(handed(r.offset, r.id))) {
        report();
      } else {
        if (missed.length > 0 && missed.at(-1)!.offset + 1 !== r.offset) report();
        missed.push(r);
      }
    }
    report();
  }

  return violations;
}

interface Place {
  topic: string;
  partition: number;
  offset: number;
}

const partitionName = (topic: string, partition: number) => `${topic}/${partition}`;
const placeName = (p: Place) => `${partitionName(p.topic, p.partition)}@${p.offset}`;
const groupKey = (group: string | null, topic: string, partition: number) =>
  `${group ?? ""}\u0000${topic}\u0000${partition}`;
const handed = (offset: number, id: string) => `${offset} ${id}`;

/** Whether the operation was acknowledged at exactly this partition ("topic/p") and offset. */
function acknowledgedAt(op: ProduceOp, name: string, offset: number): boolean {
  return (
    op.outcome === "ok" &&
    op.ack !== undefined &&
    op.ack.offset === offset &&
    partitionName(op.topic, op.ack.partition) === name
  );
}

const offsetMaps = new WeakMap<FinalPartition, Map<number, string>>();

/** The id the final read found at `offset`: by position when contiguous, else by a map. */
function idAt(fp: FinalPartition, offset: number): string | undefined {
  const guess = fp.records[offset - fp.logStartOffset];
  if (guess?.offset === offset) return guess.id;
  let byOffset = offsetMaps.get(fp);
  if (!byOffset) {
    byOffset = new Map();
    for (const r of fp.records) if (!byOffset.has(r.offset)) byOffset.set(r.offset, r.id);
    offsetMaps.set(fp, byOffset);
  }
  return byOffset.get(offset);
}

/** Offsets exactly logStartOffset … logEndOffset − 1, increasing; one violation per hole or repeat. */
function checkContiguous(
  fp: FinalPartition,
  flag: (kind: ViolationKind, detail: string) => void,
): void {
  const name = partitionName(fp.topic, fp.partition);
  let expected = fp.logStartOffset;
  for (const r of fp.records) {
    if (r.offset === expected) {
      expected++;
    } else if (r.offset > expected) {
      flag(
        "gap",
        `${name}: offsets ${expected}..${r.offset - 1} are missing (next record ${r.id} is at ${r.offset}; ` +
          `log ${fp.logStartOffset}..${fp.logEndOffset})`,
      );
      expected = r.offset + 1;
    } else {
      flag(
        "gap",
        r.offset < fp.logStartOffset
          ? `${name}: record ${r.id} at ${r.offset} is below the log start ${fp.logStartOffset}`
          : `${name}: record ${r.id} at ${r.offset} repeats or goes back (expected ${expected})`,
      );
    }
  }
  if (expected < fp.logEndOffset) {
    flag(
      "gap",
      `${name}: offsets ${expected}..${fp.logEndOffset - 1} are missing at the end (log end ${fp.logEndOffset})`,
    );
  } else if (expected > fp.logEndOffset) {
    flag(
      "gap",
      `${name}: records reach offset ${expected - 1}, beyond the log end ${fp.logEndOffset}`,
    );
  }
}

/**
 * A committed offset never decreases without a rewind. Each observation held at some moment in
 * [start, seq] (start = invokedSeq ?? seq): observation `b` must be at least every observation
 * that completed before `b` started, counting only those known to come after the last rewind
 * that completed before `b` started; `b` is not judged when a rewind overlaps it.
 */
function checkCommits(
  key: string,
  list: CommitObservation[],
  flag: (kind: ViolationKind, detail: string) => void,
): void {
  const startOf = (o: CommitObservation) => Math.min(o.invokedSeq ?? o.seq, o.seq);
  const byEnd = [...list].sort((a, b) => a.seq - b.seq);
  const byStart = [...list].sort((a, b) => startOf(a) - startOf(b));
  const rewindStarts = list
    .filter((o) => o.rewind)
    .map(startOf)
    .sort((a, b) => a - b);
  const rewindEnds = list
    .filter((o) => o.rewind)
    .map((o) => o.seq)
    .sort((a, b) => a - b);
  const [group, topic, partition] = key.split("\u0000");
  const name = `group ${group} ${topic}/${partition}`;

  let next = 0;
  let floor: CommitObservation | undefined;
  let lastRewindEnd = -Infinity;
  for (const b of byStart) {
    const start = startOf(b);
    for (; next < byEnd.length && byEnd[next]!.seq < start; next++) {
      const a = byEnd[next]!;
      if (a.rewind) {
        // Everything that completed before the rewind may have preceded it.
        floor = a;
        lastRewindEnd = a.seq;
      } else if (startOf(a) > lastRewindEnd && (floor === undefined || a.offset > floor.offset)) {
        floor = a;
      }
    }
    if (b.rewind || floor === undefined || b.offset >= floor.offset) continue;
    // A rewind overlapping b's interval may legitimately have moved it back.
    const overlapping = countBelow(rewindStarts, b.seq) - countBelow(rewindEnds, start);
    if (overlapping > 0) continue;
    flag(
      "commit_backwards",
      `${name}: committed offset ${b.offset} (seq ${seqText(b)}) is below ${floor.offset} ` +
        `observed earlier (seq ${seqText(floor)}), with no rewind in between`,
    );
  }
}

const seqText = (o: CommitObservation) =>
  o.invokedSeq === undefined || o.invokedSeq === o.seq ? `${o.seq}` : `${o.invokedSeq}..${o.seq}`;

/** How many of the sorted values are strictly below `x`. */
function countBelow(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
