import { SluiceError } from "../errors.js";
import type { OffsetWrite } from "../meta/group-store.js";
import type { TopicMeta } from "../meta/meta-store.js";
import { comparePartitions, partitionKey } from "./doc.js";
import {
  checkNoMembers,
  checkPartition,
  currentOffsets,
  outOfRange,
  readHeads,
  withApplied,
  writeInChunks,
} from "./positions.js";
import {
  MAX_ATTEMPTS,
  backoff,
  contention,
  ensureGroup,
  readGroup,
  requireTopic,
  type GroupContext,
  type GroupState,
} from "./state.js";
import type { TopicPartition } from "./views.js";

/** Resetting offsets of a group without members (docs/rfcs/0002-consumer-groups.md §3). */

export interface ResetRequest {
  to: "earliest" | "latest" | "timestamp" | "offset";
  /** For `to: "timestamp"`: the first offset whose record timestamp is at least this. */
  timestamp?: number;
  /** For `to: "offset"`: used as given; it must lie within [LSO, LEO]. */
  offset?: number;
  /** Scope: this topic (optionally some partitions), else every topic with offsets. */
  topic?: string;
  partitions?: number[];
  /** Compute and report, write nothing (Kafka's default without --execute). */
  dryRun?: boolean;
}

export interface ResetPartition extends TopicPartition {
  previousOffset: number | null;
  offset: number;
}

export async function resetOffsets(
  ctx: GroupContext,
  name: string,
  request: ResetRequest,
): Promise<{ dryRun: boolean; offsets: ResetPartition[] }> {
  checkRequest(request);
  const dryRun = request.dryRun ?? false;
  const applied: ResetPartition[] = [];
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    await backoff(attempt);
    const state = await readGroup(ctx, name, request.topic === undefined ? [] : [request.topic]);
    let rows: ResetPartition[];
    try {
      rows = await plan(ctx, state, name, request);
    } catch (err) {
      throw withApplied(err, applied);
    }
    if (dryRun) return { dryRun, offsets: rows };
    if (!state.record) {
      await ensureGroup(ctx, state, name);
      continue;
    }
    // Guarded by the version: a join racing with the reset lands first (409) or sees it.
    const { incarnation, version } = state.record;
    const writes: OffsetWrite[] = rows
      .filter((r) => r.offset !== r.previousOffset)
      .map((r) => ({
        value: {
          topic: r.topic,
          partition: r.partition,
          topicId: state.topics.get(r.topic)!.id,
          offset: r.offset,
          metadata: null,
          generation: null,
          memberId: null,
          committedAt: state.now,
        },
        expected: r.previousOffset,
      }));
    const landed = (chunk: OffsetWrite[]) =>
      applied.push(
        ...chunk.map(({ value, expected }) => ({
          topic: value.topic,
          partition: value.partition,
          previousOffset: expected,
          offset: value.offset,
        })),
      );
    if (await writeInChunks(ctx, name, { incarnation, version }, writes, landed)) {
      return { dryRun, offsets: rows };
    }
  }
  throw contention(name);
}

function checkRequest(request: ResetRequest): void {
  const problem =
    (request.to === "timestamp") !== (request.timestamp !== undefined)
      ? 'timestamp is required with, and only with, to: "timestamp"'
      : (request.to === "offset") !== (request.offset !== undefined)
        ? 'offset is required with, and only with, to: "offset"'
        : request.partitions !== undefined && request.topic === undefined
          ? "partitions need a topic"
          : undefined;
  if (problem) throw new SluiceError("invalid_request", problem);
}

/** Each partition in scope with the offset it would get; 416 if an explicit one is outside. */
async function plan(
  ctx: GroupContext,
  state: GroupState,
  name: string,
  request: ResetRequest,
): Promise<ResetPartition[]> {
  if (!state.record && request.topic === undefined) {
    throw new SluiceError("group_not_found", `group "${name}" does not exist`, {
      details: { group: name },
    });
  }
  const scopeTopic = request.topic === undefined ? undefined : requireTopic(state, request.topic);
  if (scopeTopic) for (const p of request.partitions ?? []) checkPartition(scopeTopic, p);
  checkNoMembers(ctx, state, name);

  const current = await currentOffsets(ctx, state);
  const scope: { topic: TopicMeta; partition: number }[] = scopeTopic
    ? [
        ...new Set(
          request.partitions ?? Array.from({ length: scopeTopic.partitions }, (_, p) => p),
        ),
      ].map((partition) => ({ topic: scopeTopic, partition }))
    : [...current.values()].map((o) => ({
        topic: state.topics.get(o.topic)!,
        partition: o.partition,
      }));
  scope.sort((a, b) => comparePartitions([a.topic.name, a.partition], [b.topic.name, b.partition]));

  const heads = await readHeads(ctx, scope);
  return Promise.all(
    scope.map(async ({ topic, partition }, i): Promise<ResetPartition> => {
      const head = heads[i]!;
      const previous = current.get(partitionKey(topic.name, partition));
      let offset: number;
      switch (request.to) {
        case "earliest":
          offset = head.logStartOffset;
          break;
        case "latest":
          offset = head.logEndOffset;
          break;
        case "timestamp":
          offset = await ctx.log.offsetForTimestamp(topic, partition, request.timestamp!);
          break;
        case "offset":
          offset = request.offset!;
          // No silent clamping: an offset outside the log is an error.
          if (offset < head.logStartOffset || offset > head.logEndOffset) {
            throw outOfRange(topic.name, partition, offset, head);
          }
      }
      return {
        topic: topic.name,
        partition,
        previousOffset: previous?.offset ?? null,
        offset,
      };
    }),
  );
}
