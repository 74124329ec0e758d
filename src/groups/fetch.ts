import { isSluiceError } from "../errors.js";
import { recordSize, type ReadRecord } from "../log/reader.js";
import { sleep } from "../log/retry.js";
import type { OffsetWrite } from "../meta/group-store.js";
import type { PartitionHead, TopicMeta } from "../meta/meta-store.js";
import { commitOffsets } from "./commit.js";
import { partitionKey } from "./doc.js";
import { heartbeat, requireLiveMember } from "./members.js";
import { currentOffsets, readHeads, writeInChunks } from "./positions.js";
import {
  MAX_ATTEMPTS,
  backoff,
  contention,
  readDurable,
  type GroupContext,
  type GroupState,
} from "./state.js";
import { memberView, type MemberView, type TopicPartition } from "./views.js";

/** A member's fetch (docs/rfcs/0002-consumer-groups.md §3): its assigned partitions only. */

export interface GroupFetchRequest {
  maxRecords: number;
  maxBytes: number;
  waitMs: number;
  /** Commit every returned partition's nextOffset before answering (at-most-once). */
  autoCommit: boolean;
  signal?: AbortSignal;
  /** Refuses (throws) when the caller may not read these topics: the member's subscription. */
  authorize?: (topics: readonly string[]) => void;
}

export interface FetchedPartition extends TopicPartition {
  records: ReadRecord[];
  nextOffset: number;
  logEndOffset: number;
  /** The reset policy set this partition's position during this fetch. */
  reset?: { from: number | null; to: number };
}

export interface GroupFetchResult {
  view: MemberView;
  partitions: FetchedPartition[];
}

/** How often a waiting fetch re-reads the group, to see grants and revocations. */
const STATE_RECHECK_MS = 500;

interface Position {
  topic: TopicMeta;
  partition: number;
  offset: number;
  head: PartitionHead;
}

export async function fetchForMember(
  ctx: GroupContext,
  name: string,
  memberId: string,
  request: GroupFetchRequest,
): Promise<GroupFetchResult> {
  let { state } = await heartbeat(ctx, name, memberId, {});
  const member = state.doc.members[memberId]!;
  // A member id is no credential: whoever fetches must be allowed the topics themselves.
  request.authorize?.(member.topics);
  const session = member.sessionTimeoutMs;
  // The lease must outlive the wait, so the wait is a fraction of the session.
  const deadline = Date.now() + Math.min(request.waitMs, ctx.log.maxWaitMs, session / 4);
  const resets = new Map<string, { from: number | null; to: number }>();
  let conflicts = 0;
  for (;;) {
    // The subscription may change during a wait: check it on every round.
    const current = state.doc.members[memberId];
    if (current) request.authorize?.(current.topics);
    const positions = await position(ctx, name, memberId, state, resets);
    if (!positions) {
      if (++conflicts >= MAX_ATTEMPTS) throw contention(name);
      await backoff(conflicts);
    } else {
      const partitions = await readAssigned(ctx, positions, request);
      const found = partitions.some((p) => p.records.length > 0);
      if (found || Date.now() >= deadline || request.signal?.aborted) {
        for (const p of partitions) {
          const reset = resets.get(partitionKey(p.topic, p.partition));
          if (reset) p.reset = reset;
        }
        if (request.autoCommit && found) await autoCommit(ctx, name, memberId, state, partitions);
        return { view: memberView(state.doc, memberId, ctx.now()), partitions };
      }
      await waitForRecords(ctx, positions, deadline, request.signal);
    }
    // Grants and revocations may have happened meanwhile: serve what is assigned now, and
    // only once it is stored (a grant seen only in memory is nobody's yet).
    state = await readDurable(ctx, name);
    requireLiveMember(state, name, memberId);
  }
}

/**
 * Where each assigned partition is read from: its committed offset. Where there is none, or
 * it fell behind retention, the reset policy decides, and the result is written down
 * (fence-guarded) so that `latest` does not drift and nothing restarts at 0 by accident.
 * Undefined when that write lost a race.
 */
async function position(
  ctx: GroupContext,
  name: string,
  memberId: string,
  state: GroupState,
  resets: Map<string, { from: number | null; to: number }>,
): Promise<Position[] | undefined> {
  const { doc, record } = state;
  const assigned = doc.members[memberId]!.assigned.map(([t, partition]) => ({
    topic: state.topics.get(t)!,
    partition,
  }));
  const [current, heads] = await Promise.all([
    currentOffsets(ctx, state),
    readHeads(ctx, assigned),
  ]);
  const writes: OffsetWrite[] = [];
  const positions = assigned.map(({ topic, partition }, i): Position => {
    const head = heads[i]!;
    const stored = current.get(partitionKey(topic.name, partition));
    if (stored && stored.offset >= head.logStartOffset) {
      return { topic, partition, offset: stored.offset, head };
    }
    const to = doc.resetPolicy === "earliest" ? head.logStartOffset : head.logEndOffset;
    writes.push({
      value: {
        topic: topic.name,
        partition,
        topicId: topic.id,
        offset: to,
        metadata: stored?.metadata ?? null,
        generation: doc.generation,
        memberId,
        committedAt: state.now,
      },
      expected: stored?.offset ?? null,
    });
    return { topic, partition, offset: to, head };
  });
  if (writes.length > 0) {
    const guard = { incarnation: record!.incarnation, fence: record!.fence };
    if (!(await writeInChunks(ctx, name, guard, writes, () => {}))) return undefined;
    for (const { value, expected } of writes) {
      resets.set(partitionKey(value.topic, value.partition), { from: expected, to: value.offset });
    }
  }
  return positions;
}

/** Reads round-robin from a random first partition until maxRecords or maxBytes is reached. */
async function readAssigned(
  ctx: GroupContext,
  positions: readonly Position[],
  request: GroupFetchRequest,
): Promise<FetchedPartition[]> {
  let records = request.maxRecords;
  let bytes = request.maxBytes;
  const start = Math.floor(Math.random() * positions.length);
  const read = new Map<Position, FetchedPartition>();
  for (let i = 0; i < positions.length; i++) {
    const pos = positions[(start + i) % positions.length]!;
    const fetched: FetchedPartition = {
      topic: pos.topic.name,
      partition: pos.partition,
      records: [],
      nextOffset: pos.offset,
      logEndOffset: pos.head.logEndOffset,
    };
    read.set(pos, fetched);
    if (records <= 0 || bytes <= 0) continue;
    try {
      const result = await ctx.log.fetch(pos.topic.name, pos.partition, pos.offset, {
        maxRecords: records,
        maxBytes: bytes,
        waitMs: 0,
      });
      fetched.records = result.records;
      fetched.nextOffset = result.nextOffset;
      fetched.logEndOffset = result.head.logEndOffset;
      records -= result.records.length;
      for (const r of result.records) bytes -= recordSize(r);
    } catch (err) {
      // Retention or a deletion overtook the position just read; the next fetch resolves it.
      if (!isSluiceError(err, "offset_out_of_range") && !isSluiceError(err, "topic_not_found")) {
        throw err;
      }
    }
  }
  return positions.map((pos) => read.get(pos)!);
}

/**
 * Waits until one of the partitions gets records, the deadline passes, or it is time to look
 * at the group again. The partitions' own long-polls do the waiting; the first to return
 * cancels the others.
 */
async function waitForRecords(
  ctx: GroupContext,
  positions: readonly Position[],
  deadline: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const slice = Math.min(deadline - Date.now(), STATE_RECHECK_MS);
  if (slice <= 0) return;
  if (positions.length === 0) return sleep(slice);
  const done = new AbortController();
  const stop = signal ? AbortSignal.any([signal, done.signal]) : done.signal;
  try {
    await Promise.race(
      positions.map((pos) =>
        ctx.log
          .fetch(pos.topic.name, pos.partition, pos.offset, {
            maxRecords: 1,
            maxBytes: 1,
            waitMs: slice,
            signal: stop,
          })
          // A failing partition must not end the wait early; the next round sees why.
          .catch(() => sleep(slice)),
      ),
    );
  } finally {
    done.abort();
  }
}

async function autoCommit(
  ctx: GroupContext,
  name: string,
  memberId: string,
  state: GroupState,
  partitions: readonly FetchedPartition[],
): Promise<void> {
  const offsets = partitions
    .filter((p) => p.records.length > 0)
    .map((p) => ({ topic: p.topic, partition: p.partition, offset: p.nextOffset }));
  await commitOffsets(ctx, name, { offsets, memberId, generation: state.doc.generation });
}
