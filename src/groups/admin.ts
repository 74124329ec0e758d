import { retryIdempotent } from "../log/retry.js";
import type { TopicMeta } from "../meta/meta-store.js";
import { heldBy, partitionKey, type ResetPolicy } from "./doc.js";
import { groupState, pendingOf, type GroupStatus } from "./membership.js";
import { checkNoMembers, currentOffsets, readHeads } from "./positions.js";
import {
  MAX_ATTEMPTS,
  backoff,
  contention,
  readGroup,
  requireGroup,
  type GroupContext,
} from "./state.js";
import { toTopicPartitions, type TopicPartition } from "./views.js";

/** Describe, list and delete (docs/rfcs/0002-consumer-groups.md §3, §6). */

export interface MemberDescription {
  memberId: string;
  clientId: string | null;
  topics: string[];
  /** Negative for a member whose lease lapsed and that still holds partitions. */
  leaseExpiresInMs: number;
  assignments: TopicPartition[];
  revoking: TopicPartition[];
  pending: TopicPartition[];
}

/** The columns of `kafka-consumer-groups --describe`, plus the log start offset. */
export interface PartitionDescription extends TopicPartition {
  /** Null when never committed (Kafka prints "-"). */
  currentOffset: number | null;
  logStartOffset: number;
  logEndOffset: number;
  lag: number;
  /** The member holding the partition. */
  memberId: string | null;
  metadata: string | null;
}

export interface GroupDescription {
  group: string;
  state: GroupStatus;
  generation: number;
  resetPolicy: ResetPolicy;
  members: MemberDescription[];
  partitions: PartitionDescription[];
  totalLag: number;
}

/** Read-only: leases are judged at the server's clock without writing anything. */
export async function describeGroup(ctx: GroupContext, name: string): Promise<GroupDescription> {
  const state = await readGroup(ctx, name);
  requireGroup(state, name);
  const { doc, now } = state;
  const current = await currentOffsets(ctx, state);

  const holders = new Map<string, string>();
  for (const [id, m] of Object.entries(doc.members)) {
    for (const [t, p] of heldBy(m)) holders.set(partitionKey(t, p), id);
  }
  const names = new Set([
    ...Object.values(doc.members).flatMap((m) => m.topics),
    ...Object.keys(doc.topics),
    ...[...current.values()].map((o) => o.topic),
  ]);
  const topics = [...names]
    .sort()
    .map((t) => state.topics.get(t))
    .filter((t): t is TopicMeta => t !== undefined);
  const rows = topics.flatMap((topic) =>
    Array.from({ length: topic.partitions }, (_, partition) => ({ topic, partition })),
  );
  const heads = await readHeads(ctx, rows);

  const partitions = rows.map(({ topic, partition }, i): PartitionDescription => {
    const head = heads[i]!;
    const key = partitionKey(topic.name, partition);
    const committed = current.get(key);
    // Without a commit the lag is what the group will read: everything retained under
    // "earliest", nothing under "latest".
    const from =
      committed?.offset ??
      (doc.resetPolicy === "earliest" ? head.logStartOffset : head.logEndOffset);
    return {
      topic: topic.name,
      partition,
      currentOffset: committed?.offset ?? null,
      logStartOffset: head.logStartOffset,
      logEndOffset: head.logEndOffset,
      lag: Math.max(0, head.logEndOffset - from),
      memberId: holders.get(key) ?? null,
      metadata: committed?.metadata ?? null,
    };
  });

  return {
    group: name,
    state: groupState(doc),
    generation: doc.generation,
    resetPolicy: doc.resetPolicy,
    members: Object.keys(doc.members)
      .sort()
      .map((memberId) => {
        const m = doc.members[memberId]!;
        return {
          memberId,
          clientId: m.clientId,
          topics: m.topics,
          leaseExpiresInMs: m.leaseExpiresAt - now,
          assignments: toTopicPartitions(m.assigned),
          revoking: toTopicPartitions(m.revoking),
          pending: toTopicPartitions(pendingOf(m)),
        };
      }),
    partitions,
    totalLag: partitions.reduce((sum, p) => sum + p.lag, 0),
  };
}

export async function listGroups(
  ctx: GroupContext,
): Promise<{ group: string; createdAt: number }[]> {
  const groups = await retryIdempotent(() => ctx.meta.listGroups());
  return groups.map((g) => ({ group: g.name, createdAt: g.createdAt }));
}

/** Deletes a group without members, then its offsets (best-effort). */
export async function deleteGroup(ctx: GroupContext, name: string): Promise<void> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    await backoff(attempt);
    const state = await readGroup(ctx, name);
    const record = requireGroup(state, name);
    checkNoMembers(ctx, state, name);
    if (await ctx.meta.deleteGroup(name, record.incarnation, record.version)) {
      await purgeOffsets(ctx, name);
      return;
    }
  }
  throw contention(name);
}

/**
 * Leftover offsets are harmless (no later incarnation sees them), so a failure here is only
 * logged. A group re-created in the meantime keeps its own.
 */
async function purgeOffsets(ctx: GroupContext, name: string): Promise<void> {
  try {
    const successor = await ctx.meta.getGroup(name);
    await ctx.meta.purgeOffsets(name, successor?.incarnation);
  } catch (err) {
    ctx.logger.warn({ err, group: name }, "purging a deleted group's offsets failed");
  }
}
