import { partitionKey, type PartitionRef } from "./doc.js";

/**
 * The server-side assignor (docs/rfcs/0002-consumer-groups.md §5): balanced, sticky and
 * deterministic, after Kafka's uniform homogeneous assignor. Each topic is split on its own:
 * every subscriber gets a minimum quota and the remainder goes out as +1s to the members with
 * the lightest load so far, so identical subscriptions stay within 1 in total.
 */

export interface AssignMember {
  memberId: string;
  topics: readonly string[];
}

/**
 * @param members live members only
 * @param partitions partition count per existing topic; subscriptions to others are ignored
 * @param holders partition key (see partitionKey) → the live member holding it
 * @returns the target of every member, ascending by topic then partition
 */
export function assign(
  members: readonly AssignMember[],
  partitions: Readonly<Record<string, number>>,
  holders: ReadonlyMap<string, string>,
): Map<string, PartitionRef[]> {
  const byId = [...members].sort((a, b) => compareIds(a.memberId, b.memberId));
  const load = new Map(byId.map((m) => [m.memberId, 0]));
  const target = new Map<string, PartitionRef[]>(byId.map((m) => [m.memberId, []]));

  for (const topic of Object.keys(partitions).sort(compareIds)) {
    const subscribers = byId.filter((m) => m.topics.includes(topic));
    if (subscribers.length === 0) continue;
    const total = partitions[topic]!;
    const quota = Math.floor(total / subscribers.length);
    const remainder = total % subscribers.length;

    const owned = new Map<string, number[]>(subscribers.map((m) => [m.memberId, []]));
    const pool: number[] = [];
    for (let p = 0; p < total; p++) {
      const holder = holders.get(partitionKey(topic, p));
      const list = holder === undefined ? undefined : owned.get(holder);
      if (list) list.push(p);
      else pool.push(p);
    }

    // The +1s go to the lightest members first, then to those owning the most, which
    // keeps the most partitions where they are.
    const ranked = [...subscribers].sort(
      (a, b) =>
        load.get(a.memberId)! - load.get(b.memberId)! ||
        owned.get(b.memberId)!.length - owned.get(a.memberId)!.length ||
        compareIds(a.memberId, b.memberId),
    );
    const quotas = new Map(ranked.map((m, i) => [m.memberId, quota + (i < remainder ? 1 : 0)]));

    const kept = new Map<string, number[]>();
    for (const m of subscribers) {
      const list = owned.get(m.memberId)!;
      const q = quotas.get(m.memberId)!;
      kept.set(m.memberId, list.slice(0, q));
      pool.push(...list.slice(q));
    }
    pool.sort((a, b) => a - b);
    for (const m of subscribers) {
      const mine = kept.get(m.memberId)!;
      while (mine.length < quotas.get(m.memberId)!) mine.push(pool.shift()!);
      mine.sort((a, b) => a - b);
      target.get(m.memberId)!.push(...mine.map((p): PartitionRef => [topic, p]));
      load.set(m.memberId, load.get(m.memberId)! + mine.length);
    }
  }
  return target;
}

/** Code-unit order, independent of the locale. */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
