import type { GroupDoc } from "./doc.js";
import { groupState, pendingOf, type GroupStatus } from "./membership.js";

/** What a member is told on every answer (docs/rfcs/0002-consumer-groups.md §3). */

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface MemberView {
  memberId: string;
  generation: number;
  /** The group's state (§6), so a member sees whether partitions are still moving. */
  state: GroupStatus;
  /** Held and served: the only partitions the member may process. */
  assignments: TopicPartition[];
  /** Held but not served: commit what was processed, then release them. */
  revoking: TopicPartition[];
  /** Targeted, granted once their current holder lets go. */
  pending: TopicPartition[];
  heartbeatIntervalMs: number;
  /** Relative, so client and server clocks are never compared. */
  leaseExpiresInMs: number;
}

export const toTopicPartitions = (refs: readonly (readonly [string, number, ...unknown[]])[]) =>
  refs.map(([topic, partition]): TopicPartition => ({ topic, partition }));

export function memberView(doc: GroupDoc, memberId: string, now: number): MemberView {
  const m = doc.members[memberId]!;
  return {
    memberId,
    generation: doc.generation,
    state: groupState(doc),
    assignments: toTopicPartitions(m.assigned),
    revoking: toTopicPartitions(m.revoking),
    pending: toTopicPartitions(pendingOf(m)),
    heartbeatIntervalMs: Math.floor(m.sessionTimeoutMs / 3),
    leaseExpiresInMs: m.leaseExpiresAt - now,
  };
}
