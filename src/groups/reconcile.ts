import { assign } from "./assign.js";
import {
  cloneGroupDoc,
  comparePartitions,
  dict,
  heldBy,
  partitionKey,
  type GroupDoc,
  type HeldPartition,
  type TopicSnapshot,
} from "./doc.js";

/**
 * The one rule set every read and every write applies to a group document
 * (docs/rfcs/0002-consumer-groups.md §4.1). It is pure: time and topic metadata come in as
 * arguments, so any instance evaluates leases the same way and tests can drive the clock.
 *
 * Invariant H: the held sets (assigned ∪ revoking) of all members are pairwise disjoint. Only
 * the grant step adds to a held set, and only a partition nobody holds.
 */

export interface Reconciled {
  doc: GroupDoc;
  /** Some member stopped holding a partition: the state's `fence` must move. */
  fenced: boolean;
}

/**
 * @param topics current metadata of every topic that is subscribed or held (a missing entry
 *   means the topic does not exist)
 * @param retarget the caller changed membership or subscriptions: recompute the target
 */
export function reconcile(
  input: GroupDoc,
  now: number,
  topics: ReadonlyMap<string, TopicSnapshot>,
  skewMs: number,
  retarget = false,
): Reconciled {
  const doc = cloneGroupDoc(input);
  let fenced = false;

  for (const [id, m] of Object.entries(doc.members)) {
    if (!m.dead && now > m.leaseExpiresAt) {
      m.dead = true;
      retarget = true;
    }
    // A dead member keeps what it holds until its own deadline has surely passed on every
    // instance's clock; only then can another member be granted it.
    if (m.dead && now > m.leaseExpiresAt + skewMs) {
      if (heldBy(m).length > 0) fenced = true;
      delete doc.members[id];
    }
  }

  const refreshed = refreshTopics(doc, topics);
  fenced ||= refreshed.fenced;
  retarget ||= refreshed.retarget;

  if (retarget) computeTarget(doc);
  grant(doc);
  return { doc, fenced };
}

/**
 * Replaces the topic snapshot with current metadata. Partitions of a deleted or re-created
 * topic are dropped from every held set: they name a log that no longer exists.
 */
function refreshTopics(
  doc: GroupDoc,
  topics: ReadonlyMap<string, TopicSnapshot>,
): { fenced: boolean; retarget: boolean } {
  const members = Object.values(doc.members);
  const subscribed = new Set(members.flatMap((m) => m.topics));
  let fenced = false;

  const changed = (t: string) => {
    const before = doc.topics[t];
    const after = topics.get(t);
    return before?.id !== after?.id || before?.partitions !== after?.partitions;
  };
  const replaced = (t: string) =>
    doc.topics[t] !== undefined && doc.topics[t].id !== topics.get(t)?.id;
  for (const m of members) {
    const keep = (h: HeldPartition) => !replaced(h[0]);
    const assigned = m.assigned.filter(keep);
    const revoking = m.revoking.filter(keep);
    if (assigned.length + revoking.length < heldBy(m).length) fenced = true;
    m.assigned = assigned;
    m.revoking = revoking;
  }
  const retarget = [...subscribed].some(changed);

  // Held topics stay in the snapshot even when nobody subscribes to them any more, so that a
  // re-creation is still recognised while a partition of the old one is being released.
  const wanted = new Set([...subscribed, ...members.flatMap((m) => heldBy(m).map((h) => h[0]))]);
  const snapshot = dict<TopicSnapshot>();
  for (const t of [...wanted].sort()) {
    const meta = topics.get(t);
    if (meta) snapshot[t] = { id: meta.id, partitions: meta.partitions };
  }
  doc.topics = snapshot;
  return { fenced, retarget };
}

/**
 * A new generation: the assignor's target for live members. Partitions a member holds but is
 * no longer targeted move to its revoking set; a dead member is targeted nothing.
 */
function computeTarget(doc: GroupDoc): void {
  doc.generation++;
  const live = Object.entries(doc.members).filter(([, m]) => !m.dead);
  const holders = new Map<string, string>();
  for (const [id, m] of live) for (const [t, p] of heldBy(m)) holders.set(partitionKey(t, p), id);
  const partitions = dict(Object.entries(doc.topics).map(([t, s]) => [t, s.partitions] as const));
  const target = assign(
    live.map(([memberId, m]) => ({ memberId, topics: m.topics })),
    partitions,
    holders,
  );
  for (const [id, m] of Object.entries(doc.members)) {
    m.target = target.get(id) ?? [];
    const wanted = new Set(m.target.map(([t, p]) => partitionKey(t, p)));
    const stays = (h: HeldPartition) => wanted.has(partitionKey(h[0], h[1]));
    m.revoking = [...m.revoking, ...m.assigned.filter((h) => !stays(h))].sort(comparePartitions);
    m.assigned = m.assigned.filter(stays);
  }
}

/**
 * Grants each live member the targeted partitions that nobody holds, and takes back ones it is
 * still releasing (its tenure never broke, so the grant generation stays).
 */
function grant(doc: GroupDoc): void {
  const held = new Set(
    Object.values(doc.members).flatMap((m) => heldBy(m).map(([t, p]) => partitionKey(t, p))),
  );
  const ids = Object.keys(doc.members).sort();
  for (const id of ids) {
    const m = doc.members[id]!;
    if (m.dead) continue;
    const assigned = new Set(m.assigned.map(([t, p]) => partitionKey(t, p)));
    for (const [t, p] of m.target) {
      const key = partitionKey(t, p);
      if (assigned.has(key)) continue;
      const i = m.revoking.findIndex((h) => h[0] === t && h[1] === p);
      if (i >= 0) {
        m.assigned.push(m.revoking[i]!);
        m.revoking.splice(i, 1);
      } else if (!held.has(key)) {
        m.assigned.push([t, p, doc.generation]);
        held.add(key);
      } else {
        continue;
      }
      assigned.add(key);
    }
    m.assigned.sort(comparePartitions);
  }
}
