import { SluiceError } from "../errors.js";
import type { CommittedOffset, GroupGuard, OffsetWrite } from "../meta/group-store.js";
import { heldBy, partitionKey, type MemberDoc } from "./doc.js";
import { requireLiveMember } from "./members.js";
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
  readDurable,
  readGroup,
  requireTopic,
  type GroupContext,
  type GroupState,
} from "./state.js";
import type { TopicPartition } from "./views.js";

/** Committing offsets (docs/rfcs/0002-consumer-groups.md §7). */

export interface OffsetCommit extends TopicPartition {
  offset: number;
  metadata?: string | null;
}

export interface CommitRequest {
  offsets: OffsetCommit[];
  /** With generation: a member's commit. Without both: a memberless one (empty group only). */
  memberId?: string;
  generation?: number;
  /** Allow moving an offset backwards. */
  rewind?: boolean;
}

export interface CommittedPartition extends TopicPartition {
  /** The offset stored after the request: the one asked for, or the one kept. */
  offset: number;
  moved: boolean;
}

const MAX_METADATA_BYTES = 4096;

/**
 * Every check runs before any write; the write is guarded by the fence (a member's commit) or
 * the version (a memberless one), so no change of ownership slips between check and write. A
 * member's commit is checked against a stored state only (see readDurable), never against a
 * grant that exists only in this request's memory.
 */
export async function commitOffsets(
  ctx: GroupContext,
  name: string,
  request: CommitRequest,
): Promise<CommittedPartition[]> {
  checkRequest(request);
  const applied = new Map<string, CommittedPartition>();
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    await backoff(attempt);
    const topics = request.offsets.map((o) => o.topic);
    // A member's commit is fence-guarded, so the ownership it is checked against must be the
    // stored one: reconciling's changes are written first (moving the fence if anyone lost a
    // partition). A memberless commit is version-guarded, which any write breaks anyway.
    const state =
      request.memberId === undefined
        ? await readGroup(ctx, name, topics)
        : await readDurable(ctx, name, topics);
    let plan: Plan;
    try {
      plan = await validate(ctx, state, name, request);
    } catch (err) {
      // A guard broke after some chunks landed and the retry is refused: say what stayed.
      throw withApplied(err, [...applied.values()]);
    }
    if (!state.record) {
      await ensureGroup(ctx, state, name);
      continue;
    }
    const { incarnation, fence, version } = state.record;
    const guard: GroupGuard =
      request.memberId === undefined ? { incarnation, version } : { incarnation, fence };
    const landed = (chunk: OffsetWrite[]) => {
      for (const { value } of chunk) {
        const key = partitionKey(value.topic, value.partition);
        applied.set(key, plan.results.get(key)!);
      }
    };
    if (await writeInChunks(ctx, name, guard, plan.writes, landed)) {
      return request.offsets.map((o) => {
        const key = partitionKey(o.topic, o.partition);
        return applied.get(key) ?? plan.results.get(key)!;
      });
    }
  }
  throw contention(name);
}

interface Plan {
  writes: OffsetWrite[];
  results: Map<string, CommittedPartition>;
}

function checkRequest(request: CommitRequest): void {
  if ((request.memberId === undefined) !== (request.generation === undefined)) {
    throw new SluiceError("invalid_request", "memberId and generation go together", {
      details: { memberId: request.memberId ?? null, generation: request.generation ?? null },
    });
  }
  const seen = new Set<string>();
  for (const o of request.offsets) {
    const key = partitionKey(o.topic, o.partition);
    if (seen.has(key)) {
      throw new SluiceError("invalid_request", `${o.topic}/${o.partition} is listed twice`, {
        details: { topic: o.topic, partition: o.partition },
      });
    }
    seen.add(key);
    if (o.metadata && Buffer.byteLength(o.metadata) > MAX_METADATA_BYTES) {
      throw new SluiceError(
        "invalid_request",
        `metadata is limited to ${MAX_METADATA_BYTES} bytes`,
        {
          details: { topic: o.topic, partition: o.partition },
        },
      );
    }
  }
}

async function validate(
  ctx: GroupContext,
  state: GroupState,
  name: string,
  request: CommitRequest,
): Promise<Plan> {
  const topics = request.offsets.map((o) => {
    const topic = requireTopic(state, o.topic);
    checkPartition(topic, o.partition);
    return { topic, partition: o.partition };
  });
  if (request.memberId !== undefined) {
    requireLiveMember(state, name, request.memberId);
    checkFencing(state, request.memberId, request.generation!, request.offsets);
  } else {
    checkNoMembers(ctx, state, name);
  }
  const heads = await readHeads(ctx, topics);
  request.offsets.forEach((o, i) => {
    if (o.offset > heads[i]!.logEndOffset)
      throw outOfRange(o.topic, o.partition, o.offset, heads[i]!);
  });

  const current = await currentOffsets(ctx, state);
  const writes: OffsetWrite[] = [];
  const results = new Map<string, CommittedPartition>();
  request.offsets.forEach((o, i) => {
    const key = partitionKey(o.topic, o.partition);
    const stored: CommittedOffset | undefined = current.get(key);
    const metadata = o.metadata ?? null;
    const at = { topic: o.topic, partition: o.partition };
    // A retried or reordered commit must never rewind a partition unless asked to.
    if (stored && o.offset < stored.offset && !request.rewind) {
      results.set(key, { ...at, offset: stored.offset, moved: false });
      return;
    }
    results.set(key, { ...at, offset: o.offset, moved: o.offset !== stored?.offset });
    if (stored?.offset === o.offset && stored.metadata === metadata) return;
    writes.push({
      value: {
        ...at,
        topicId: topics[i]!.topic.id,
        offset: o.offset,
        metadata,
        generation: request.generation ?? null,
        memberId: request.memberId ?? null,
        committedAt: state.now,
      },
      expected: stored?.offset ?? null,
    });
  });
  return { writes, results };
}

/** KIP-1251's rule (§4.4): the member holds p now, and has since grant(p) ≤ g ≤ generation. */
function checkFencing(
  state: GroupState,
  memberId: string,
  generation: number,
  offsets: readonly TopicPartition[],
): void {
  const member: MemberDoc = state.doc.members[memberId]!;
  const held = new Map(heldBy(member).map(([t, p, grant]) => [partitionKey(t, p), grant]));
  const notHeld = offsets.filter((o) => !held.has(partitionKey(o.topic, o.partition)));
  const stale =
    generation > state.doc.generation
      ? offsets
      : offsets.filter((o) => (held.get(partitionKey(o.topic, o.partition)) ?? 0) > generation);
  const [reason, partitions] =
    notHeld.length > 0 ? ["not_held", notHeld] : ["stale_generation", stale];
  if (partitions.length === 0) return;
  throw new SluiceError(
    "fenced",
    reason === "not_held"
      ? `member "${memberId}" does not hold ${partitions.length} of these partitions`
      : `generation ${generation} is not a current tenure of these partitions`,
    {
      details: {
        generation: state.doc.generation,
        reason,
        partitions: partitions.map(({ topic, partition }) => ({ topic, partition })),
      },
    },
  );
}
