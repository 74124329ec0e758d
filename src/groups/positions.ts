import { SluiceError, isSluiceError } from "../errors.js";
import { retryIdempotent } from "../log/retry.js";
import type { CommittedOffset, GroupGuard, OffsetWrite } from "../meta/group-store.js";
import type { PartitionHead, TopicMeta } from "../meta/meta-store.js";
import { partitionKey } from "./doc.js";
import { lookupTopic, type GroupContext, type GroupState } from "./state.js";

/** Committed offsets and partition heads, as commit, reset, fetch and describe read them. */

/**
 * This incarnation's committed offsets by partition key. One whose topic id is not the topic's
 * current id (deleted, or deleted and re-created) counts as none, so it can never point past a
 * new log's end. Topics it names are added to `state.topics`.
 */
export async function currentOffsets(
  ctx: GroupContext,
  state: GroupState,
): Promise<Map<string, CommittedOffset>> {
  const current = new Map<string, CommittedOffset>();
  const { record } = state;
  if (!record) return current;
  const stored = await retryIdempotent(() => ctx.meta.getOffsets(record.name, record.incarnation));
  await Promise.all(
    [...new Set(stored.map((o) => o.topic))].map(async (topic) => {
      if (state.topics.has(topic)) return;
      const meta = await lookupTopic(ctx.log, topic);
      if (meta) state.topics.set(topic, meta);
    }),
  );
  for (const o of stored) {
    if (state.topics.get(o.topic)?.id === o.topicId)
      current.set(partitionKey(o.topic, o.partition), o);
  }
  return current;
}

export function readHeads(
  ctx: GroupContext,
  partitions: readonly { topic: TopicMeta; partition: number }[],
): Promise<PartitionHead[]> {
  return Promise.all(
    partitions.map(({ topic, partition }) =>
      retryIdempotent(() => ctx.meta.getHead(topic.id, partition)),
    ),
  );
}

/**
 * Writes in chunks a single writeOffsets accepts, each under the same guard, reporting every
 * chunk that landed. False when a guard or an expected offset no longer held: nothing of that
 * chunk was written, and the caller re-validates from a fresh read.
 */
export async function writeInChunks(
  ctx: GroupContext,
  group: string,
  guard: GroupGuard,
  writes: readonly OffsetWrite[],
  landed: (chunk: OffsetWrite[]) => void,
): Promise<boolean> {
  const size = ctx.meta.maxOffsetsPerWrite;
  for (let i = 0; i < writes.length; i += size) {
    const chunk = writes.slice(i, i + size);
    const result = await ctx.meta.writeOffsets(group, guard, chunk);
    if (!result.ok) return false;
    landed(chunk);
  }
  return true;
}

export function checkPartition(topic: TopicMeta, partition: number): void {
  if (partition >= topic.partitions) {
    throw new SluiceError(
      "invalid_partition",
      `partition ${partition} does not exist; topic "${topic.name}" has ${topic.partitions}`,
      { details: { topic: topic.name, partition, partitions: topic.partitions } },
    );
  }
}

export function outOfRange(
  topic: string,
  partition: number,
  offset: number,
  head: PartitionHead,
): SluiceError {
  return new SluiceError(
    "offset_out_of_range",
    `offset ${offset} of ${topic}/${partition} is outside [${head.logStartOffset}, ${head.logEndOffset}]`,
    { details: { topic, partition, ...head } },
  );
}

/** Offsets are set without a member only when there is none, dead ones included. */
export function checkNoMembers(ctx: GroupContext, state: GroupState, name: string): void {
  const members = Object.values(state.doc.members);
  if (members.length === 0) return;
  const onlyDead = members.every((m) => m.dead);
  // Dead members leave by themselves once their hold window ends: say when.
  const retryAfterMs = onlyDead
    ? Math.max(...members.map((m) => m.leaseExpiresAt)) + ctx.config.clockSkewMs - state.now + 1
    : undefined;
  throw new SluiceError("group_not_empty", `group "${name}" has ${members.length} member(s)`, {
    details: { group: name, members: members.length, ...(onlyDead ? { retryAfterMs } : {}) },
  });
}

/**
 * A request whose chunks partly landed before a guard broke, and whose re-validation then
 * refused it: the error says which partitions did change.
 */
export function withApplied(err: unknown, applied: readonly unknown[]): unknown {
  if (applied.length === 0 || !isSluiceError(err)) return err;
  return new SluiceError(err.code, err.message, {
    details: { ...err.details, applied },
    cause: err,
  });
}
