import { ulid } from "ulid";
import type { LogConfig } from "../config.js";
import { SluiceError } from "../errors.js";
import type { Logger } from "../logger.js";
import {
  MAX_PRODUCERS_PER_COMMIT,
  MAX_PRODUCER_NUMBER,
  PRODUCER_RECENT_BATCHES,
  type IndexEntry,
  type MetaStore,
  type PartitionHead,
  type ProducerState,
  type ProducerWrite,
} from "../meta/meta-store.js";
import { encodeBatch } from "../record/codec.js";
import type { LogRecord } from "../record/record.js";
import type { ObjectStore } from "../storage/object-store.js";
import { chunkKey } from "./keys.js";
import { backoffDelay, isRetryable, retryIdempotent, sleep, storageRetryPolicy } from "./retry.js";

/** An idempotent request's identity (docs/rfcs/0004-idempotent-produce.md). */
export interface ProducerRef {
  id: string;
  epoch: number;
  seq: number;
}

export interface AppendResult {
  /** Offset of the first record. */
  baseOffset: number;
  /** A resend of a committed request: these are the original offsets, nothing was written. */
  duplicate: boolean;
}

interface PendingAppend {
  records: LogRecord[];
  bytes: number;
  producer: ProducerRef | undefined;
  resolve: (result: AppendResult) => void;
  reject: (err: unknown) => void;
}

export interface PartitionRef {
  topic: string;
  topicId: string;
  partition: number;
}

export interface WriterDeps {
  store: ObjectStore;
  meta: MetaStore;
  config: LogConfig;
  logger: Logger;
  /** Called after every successful commit, e.g. to wake long-polls and seed the read cache. */
  onCommit: (entry: IndexEntry, body: Uint8Array) => void;
  onConflict: () => void;
  onFailure: () => void;
}

/**
 * The active segment's write side for one partition in this process. Appends that arrive while
 * a flush is running wait in the buffer and leave together in the next flush (group commit):
 * one PUT and one conditional commit per flush, however many requests it carries.
 *
 * Idempotent appends (docs/rfcs/0004-idempotent-produce.md §4) are judged at flush time against
 * their producers' stored states, read fresh for every flush: resends of committed requests are
 * answered with their original offsets, out-of-order or fenced ones are refused, and the rest
 * are committed together with their producers' new states.
 */
export class PartitionWriter {
  private pending: PendingAppend[] = [];
  private pendingBytes = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** The head this process last saw; a stale value costs one failed condition, never safety. */
  private knownHead: PartitionHead | undefined;

  constructor(
    private readonly ref: PartitionRef,
    private readonly deps: WriterDeps,
  ) {}

  /**
   * Resolves with the offset of the first record once the records are durable and committed,
   * or, for a resend of a committed idempotent request, with the original one.
   */
  append(records: LogRecord[], bytes: number, producer?: ProducerRef): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ records, bytes, producer, resolve, reject });
      this.pendingBytes += bytes;
      this.schedule();
    });
  }

  /** Flushes whatever is buffered and waits for every flush in progress. */
  async drain(): Promise<void> {
    while (this.flushing || this.pending.length > 0) {
      if (!this.flushing) this.startFlush();
      await this.flushing;
    }
  }

  private schedule(): void {
    if (this.flushing) return;
    if (this.pendingBytes >= this.deps.config.flushBytes || this.deps.config.lingerMs === 0) {
      this.startFlush();
    } else {
      this.lingerTimer ??= setTimeout(() => this.startFlush(), this.deps.config.lingerMs);
    }
  }

  private startFlush(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (this.flushing || this.pending.length === 0) return;
    const batch = this.takeBatch();
    this.flushing = this.flush(batch).finally(() => {
      this.flushing = undefined;
      // Whatever arrived during the flush has already waited at least one flush: send it now.
      if (this.pending.length > 0) this.startFlush();
    });
  }

  /**
   * Takes buffered appends up to `flush.bytes` (at least one), oldest first, stopping before
   * one that would bring a producer beyond MAX_PRODUCERS_PER_COMMIT into the commit.
   */
  private takeBatch(): PendingAppend[] {
    let bytes = 0;
    let count = 0;
    const producers = new Set<string>();
    for (const append of this.pending) {
      if (count > 0 && bytes + append.bytes > this.deps.config.flushBytes) break;
      const id = append.producer?.id;
      if (id !== undefined && !producers.has(id)) {
        if (producers.size === MAX_PRODUCERS_PER_COMMIT) break;
        producers.add(id);
      }
      bytes += append.bytes;
      count++;
    }
    const batch = this.pending.splice(0, count);
    this.pendingBytes -= bytes;
    return batch;
  }

  private async flush(batch: PendingAppend[]): Promise<void> {
    // The appends not answered yet: a failure answers exactly these.
    let open = batch;
    try {
      const { topic, topicId, partition } = this.ref;
      let upload: Upload | undefined;
      for (let round = 0; ; round++) {
        if (round >= this.deps.config.maxCommitAttempts) {
          throw new SluiceError(
            "storage_unavailable",
            "producer states kept changing under the write; retry",
          );
        }
        const plan = await this.classify(open);
        for (const { append, baseOffset } of plan.resent) {
          append.resolve({ baseOffset, duplicate: true });
        }
        for (const { append, error } of plan.rejected) append.reject(error);
        open = [...plan.accepted, ...plan.resentInFlush.map((d) => d.append)];
        if (plan.accepted.length === 0) return;

        // The same appends in the same order make the same object: reuse the upload.
        if (!upload || !sameAppends(upload.appends, plan.accepted)) {
          const encoded = encodeObject(plan.accepted);
          const objectKey = chunkKey(topic, topicId, partition, ulid());
          const commitBy = Date.now() + this.deps.config.commitTimeoutMs;
          await retryIdempotent(() => this.deps.store.put(objectKey, encoded.body));
          upload = { appends: plan.accepted, objectKey, commitBy, ...encoded };
        }
        const { body, count, minTimestamp, maxTimestamp, deltas, objectKey } = upload;
        const entry = await this.commit(
          upload.commitBy,
          {
            baseOffset: 0,
            count,
            bytes: body.byteLength,
            objectKey,
            minTimestamp,
            maxTimestamp,
            kind: "chunk",
          },
          (base) => producerWrites(plan, base, deltas, Date.now()),
        );
        // Another process wrote one of the producers: judge the appends again.
        if (entry === undefined) continue;
        this.deps.onCommit(entry, body);
        const baseOf = new Map<PendingAppend, number>();
        plan.accepted.forEach((append, i) => {
          baseOf.set(append, entry.baseOffset + deltas[i]!);
          append.resolve({ baseOffset: entry.baseOffset + deltas[i]!, duplicate: false });
        });
        for (const { append, of } of plan.resentInFlush) {
          append.resolve({ baseOffset: baseOf.get(of)!, duplicate: true });
        }
        return;
      }
    } catch (err) {
      this.deps.onFailure();
      this.deps.logger.warn({ err, ...this.ref }, "flush failed");
      const failure = isRetryable(err)
        ? new SluiceError("storage_unavailable", "the write could not be committed; retry", {
            cause: err,
          })
        : err;
      for (const append of open) append.reject(failure);
    }
  }

  /**
   * Judges the appends against their producers' stored states (read now), in order, except that
   * each producer's appends are taken in sequence order among the places they hold, so that
   * pipelined requests chain whatever order they arrived in.
   */
  private async classify(appends: PendingAppend[]): Promise<Plan> {
    const ids = [...new Set(appends.flatMap((a) => (a.producer ? [a.producer.id] : [])))];
    const { topicId, partition } = this.ref;
    const stored =
      ids.length === 0
        ? new Map<string, ProducerState>()
        : await retryIdempotent(() => this.deps.meta.getProducers(topicId, partition, ids));
    const plan: Plan = { stored, accepted: [], resent: [], resentInFlush: [], rejected: [] };
    const local = new Map<string, LocalState>();
    for (const [id, state] of stored) {
      local.set(id, {
        epoch: state.epoch,
        lastSeq: state.lastSeq,
        recent: state.recent.map(({ seq, count, baseOffset }) => ({ seq, count, baseOffset })),
      });
    }
    for (const append of inSequenceOrder(appends, stored)) {
      const producer = append.producer;
      if (!producer) {
        plan.accepted.push(append);
        continue;
      }
      const state = local.get(producer.id);
      const verdict = judge(state, producer, append.records.length);
      if (verdict.kind === "reject") {
        plan.rejected.push({ append, error: verdict.error });
      } else if (verdict.kind === "resent") {
        if (verdict.batch.baseOffset !== undefined) {
          plan.resent.push({ append, baseOffset: verdict.batch.baseOffset });
        } else {
          plan.resentInFlush.push({ append, of: verdict.batch.append! });
        }
      } else {
        plan.accepted.push(append);
        const batch: LocalBatch = { seq: producer.seq, count: append.records.length, append };
        local.set(
          producer.id,
          state && state.epoch === producer.epoch
            ? {
                ...state,
                lastSeq: producer.seq,
                recent: [...state.recent, batch].slice(-PRODUCER_RECENT_BATCHES),
              }
            : { epoch: producer.epoch, lastSeq: producer.seq, recent: [batch] },
        );
      }
    }
    return plan;
  }

  /**
   * Places the uploaded object at the current log end with a conditional write, re-reading the
   * head after every lost race. The object itself never changes: its records carry offset
   * deltas, and the base lives only in the index entry. Producer writes are built for the base
   * of each attempt. Answers undefined when a producer's stored state was not the one read.
   */
  private async commit(
    commitBy: number,
    unplaced: IndexEntry,
    producersAt: (base: number) => ProducerWrite[],
  ): Promise<IndexEntry | undefined> {
    const { topicId, partition } = this.ref;
    const { meta, config } = this.deps;
    let head = this.knownHead ?? (await retryIdempotent(() => meta.getHead(topicId, partition)));
    let unsureBase: number | undefined;
    for (let attempt = 0; attempt < config.maxCommitAttempts; attempt++) {
      // Past this, maintenance may already count the object as an orphan: give up, unplaced.
      if (Date.now() > commitBy) break;
      const entry = { ...unplaced, baseOffset: head.logEndOffset };
      const producers = producersAt(entry.baseOffset);
      try {
        const result = await meta.commitAppend({
          topicId,
          partition,
          expectedLogEndOffset: entry.baseOffset,
          entry,
          ...(producers.length > 0 ? { producers } : {}),
        });
        if (result.committed) {
          this.knownHead = result.head;
          return entry;
        }
        head = result.head;
        this.knownHead = head;
        this.deps.onConflict();
        if (result.producerConflict) return undefined;
      } catch (err) {
        if (!isRetryable(err)) throw err;
        // The write may have landed even though its answer was lost.
        unsureBase = entry.baseOffset;
        await sleep(backoffDelay(storageRetryPolicy, Math.min(attempt, 6)));
        head = await retryIdempotent(() => meta.getHead(topicId, partition));
      }
      if (unsureBase !== undefined && head.logEndOffset > unsureBase) {
        const landed = await this.findLanded(unplaced.objectKey, unsureBase);
        if (landed) {
          this.knownHead = head;
          return landed;
        }
        unsureBase = undefined;
      }
    }
    throw new SluiceError(
      "storage_unavailable",
      "the write could not be committed in time; retry",
      {
        details: { attempts: config.maxCommitAttempts, commitTimeoutMs: config.commitTimeoutMs },
      },
    );
  }

  /** After an unanswered commit: did our object land at `base`? Object keys are unique. */
  private async findLanded(objectKey: string, base: number): Promise<IndexEntry | undefined> {
    const { topicId, partition } = this.ref;
    const [entry] = await retryIdempotent(() =>
      this.deps.meta.readIndex(topicId, partition, base, 1),
    );
    return entry && entry.baseOffset === base && entry.objectKey === objectKey ? entry : undefined;
  }
}

/** An uploaded object and the appends it holds, in order. */
interface Upload extends ReturnType<typeof encodeObject> {
  appends: PendingAppend[];
  objectKey: string;
  /** A commit must not land after this (commitTimeoutMs from the upload). */
  commitBy: number;
}

/** What a flush does with each of its appends. */
interface Plan {
  /** The producers' states as read; what the commit's conditions pin. */
  stored: Map<string, ProducerState>;
  /** To be written, in this order. */
  accepted: PendingAppend[];
  /** Resends of committed requests, with their original base offsets. */
  resent: { append: PendingAppend; baseOffset: number }[];
  /** Resends of a request accepted earlier in this flush: they get its offsets. */
  resentInFlush: { append: PendingAppend; of: PendingAppend }[];
  rejected: { append: PendingAppend; error: SluiceError }[];
}

/** A recent request as a flush sees it: committed (with its base) or accepted in this flush. */
interface LocalBatch {
  seq: number;
  count: number;
  baseOffset?: number;
  append?: PendingAppend;
}

interface LocalState {
  epoch: number;
  lastSeq: number;
  recent: LocalBatch[];
}

type Verdict =
  | { kind: "append" }
  | { kind: "resent"; batch: LocalBatch }
  | { kind: "reject"; error: SluiceError };

/** Kafka's sequence numbers wrap to 0 after the largest int32. */
const nextSeq = (seq: number) => (seq === MAX_PRODUCER_NUMBER ? 0 : seq + 1);

/** The rules of docs/rfcs/0004-idempotent-produce.md §1, for one request against one state. */
function judge(state: LocalState | undefined, producer: ProducerRef, count: number): Verdict {
  const { id, epoch, seq } = producer;
  const outOfOrder = (expectedSeq: number, why: string): Verdict => ({
    kind: "reject",
    error: new SluiceError(
      "out_of_order_sequence",
      `producer ${id} epoch ${epoch}: sequence ${seq} ${why}; expected ${expectedSeq}`,
      {
        details: {
          producerId: id,
          producerEpoch: state?.epoch ?? null,
          expectedSeq,
          receivedSeq: seq,
        },
      },
    ),
  });
  if (state === undefined) {
    return seq === 0 ? { kind: "append" } : outOfOrder(0, "is not the first of a new producer");
  }
  if (epoch < state.epoch) {
    return {
      kind: "reject",
      error: new SluiceError(
        "producer_fenced",
        `producer ${id}: epoch ${epoch} is older than the current epoch ${state.epoch}`,
        { details: { producerId: id, producerEpoch: state.epoch, receivedEpoch: epoch } },
      ),
    };
  }
  if (epoch > state.epoch) {
    return seq === 0 ? { kind: "append" } : outOfOrder(0, "does not start the new epoch");
  }
  if (seq === nextSeq(state.lastSeq)) return { kind: "append" };
  const batch = state.recent.find((b) => b.seq === seq);
  if (batch === undefined) return outOfOrder(nextSeq(state.lastSeq), "is out of order");
  if (batch.count !== count) {
    return outOfOrder(
      nextSeq(state.lastSeq),
      `was used for a request of ${batch.count} records, this one has ${count}`,
    );
  }
  return { kind: "resent", batch };
}

/**
 * The appends in arrival order, except that each producer's appends are sorted among the places
 * they hold: resends of stored requests first, then by epoch and by distance from the next
 * expected sequence number (so a wrap past the largest int32 sorts after its predecessors).
 */
function inSequenceOrder(
  appends: PendingAppend[],
  stored: Map<string, ProducerState>,
): PendingAppend[] {
  const byProducer = new Map<string, PendingAppend[]>();
  for (const append of appends) {
    if (append.producer) {
      const list = byProducer.get(append.producer.id) ?? [];
      list.push(append);
      byProducer.set(append.producer.id, list);
    }
  }
  const sortKey = (append: PendingAppend): [number, number, number] => {
    const { id, epoch, seq } = append.producer!;
    const state = stored.get(id);
    if (state === undefined || epoch !== state.epoch) return [1, epoch, seq];
    if (state.recent.some((b) => b.seq === seq)) return [0, epoch, seq];
    const distance =
      (seq - nextSeq(state.lastSeq) + MAX_PRODUCER_NUMBER + 1) % (MAX_PRODUCER_NUMBER + 1);
    return [1, epoch, distance];
  };
  for (const list of byProducer.values()) {
    const keyed = list.map((append) => ({ append, key: sortKey(append) }));
    keyed.sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.key[2] - b.key[2]);
    list.splice(0, list.length, ...keyed.map((k) => k.append));
  }
  const cursor = new Map<string, number>();
  return appends.map((append) => {
    if (!append.producer) return append;
    const { id } = append.producer;
    const at = cursor.get(id) ?? 0;
    cursor.set(id, at + 1);
    return byProducer.get(id)![at]!;
  });
}

/** The producer states a commit of `plan.accepted` at `base` writes, one per producer. */
function producerWrites(plan: Plan, base: number, deltas: number[], now: number): ProducerWrite[] {
  const states = new Map<string, Pick<ProducerState, "epoch" | "lastSeq" | "recent">>();
  plan.accepted.forEach((append, i) => {
    const producer = append.producer;
    if (!producer) return;
    const batch = {
      seq: producer.seq,
      baseOffset: base + deltas[i]!,
      count: append.records.length,
    };
    const previous = states.get(producer.id) ?? plan.stored.get(producer.id);
    states.set(
      producer.id,
      previous && previous.epoch === producer.epoch
        ? {
            epoch: producer.epoch,
            lastSeq: producer.seq,
            recent: [...previous.recent, batch].slice(-PRODUCER_RECENT_BATCHES),
          }
        : { epoch: producer.epoch, lastSeq: producer.seq, recent: [batch] },
    );
  });
  return [...states].map(([producerId, state]) => {
    const expected = plan.stored.get(producerId)?.version ?? null;
    return {
      producerId,
      expected,
      state: {
        ...state,
        recent: state.recent.map((b) => ({ ...b })),
        updatedAt: now,
        version: (expected ?? 0) + 1,
      },
    };
  });
}

function sameAppends(a: PendingAppend[], b: PendingAppend[]): boolean {
  return a.length === b.length && a.every((append, i) => append === b[i]);
}

function encodeObject(batch: PendingAppend[]) {
  const parts: Uint8Array[] = [];
  const deltas: number[] = [];
  let count = 0;
  let minTimestamp = Number.MAX_SAFE_INTEGER;
  let maxTimestamp = 0;
  for (const append of batch) {
    deltas.push(count);
    parts.push(encodeBatch({ firstOffsetDelta: count, records: append.records }));
    count += append.records.length;
    for (const record of append.records) {
      minTimestamp = Math.min(minTimestamp, record.timestamp);
      maxTimestamp = Math.max(maxTimestamp, record.timestamp);
    }
  }
  const body = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    body.set(part, at);
    at += part.byteLength;
  }
  return { body, count, minTimestamp, maxTimestamp, deltas };
}
