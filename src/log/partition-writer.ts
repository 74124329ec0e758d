import { ulid } from "ulid";
import type { LogConfig } from "../config.js";
import { SluiceError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { IndexEntry, MetaStore, PartitionHead } from "../meta/meta-store.js";
import { encodeBatch } from "../record/codec.js";
import type { LogRecord } from "../record/record.js";
import type { ObjectStore } from "../storage/object-store.js";
import { chunkKey } from "./keys.js";
import { backoffDelay, isRetryable, retryIdempotent, sleep, storageRetryPolicy } from "./retry.js";

interface PendingAppend {
  records: LogRecord[];
  bytes: number;
  resolve: (baseOffset: number) => void;
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

  /** Resolves with the offset of the first record once the records are durable and committed. */
  append(records: LogRecord[], bytes: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.pending.push({ records, bytes, resolve, reject });
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

  /** Takes buffered appends up to `flush.bytes` (at least one), oldest first. */
  private takeBatch(): PendingAppend[] {
    let bytes = 0;
    let count = 0;
    for (const append of this.pending) {
      if (count > 0 && bytes + append.bytes > this.deps.config.flushBytes) break;
      bytes += append.bytes;
      count++;
    }
    const batch = this.pending.splice(0, count);
    this.pendingBytes -= bytes;
    return batch;
  }

  private async flush(batch: PendingAppend[]): Promise<void> {
    try {
      const { body, count, minTimestamp, maxTimestamp, deltas } = encodeObject(batch);
      const { topic, topicId, partition } = this.ref;
      const objectKey = chunkKey(topic, topicId, partition, ulid());
      const commitBy = Date.now() + this.deps.config.commitTimeoutMs;
      await retryIdempotent(() => this.deps.store.put(objectKey, body));
      const entry = await this.commit(commitBy, {
        baseOffset: 0,
        count,
        bytes: body.byteLength,
        objectKey,
        minTimestamp,
        maxTimestamp,
        kind: "chunk",
      });
      this.deps.onCommit(entry, body);
      batch.forEach((append, i) => append.resolve(entry.baseOffset + deltas[i]!));
    } catch (err) {
      this.deps.onFailure();
      this.deps.logger.warn({ err, ...this.ref }, "flush failed");
      const failure = isRetryable(err)
        ? new SluiceError("storage_unavailable", "the write could not be committed; retry", {
            cause: err,
          })
        : err;
      for (const append of batch) append.reject(failure);
    }
  }

  /**
   * Places the uploaded object at the current log end with a conditional write, re-reading the
   * head after every lost race. The object itself never changes: its records carry offset
   * deltas, and the base lives only in the index entry.
   */
  private async commit(commitBy: number, unplaced: IndexEntry): Promise<IndexEntry> {
    const { topicId, partition } = this.ref;
    const { meta, config } = this.deps;
    let head = this.knownHead ?? (await retryIdempotent(() => meta.getHead(topicId, partition)));
    let unsureBase: number | undefined;
    for (let attempt = 0; attempt < config.maxCommitAttempts; attempt++) {
      // Past this, maintenance may already count the object as an orphan: give up, unplaced.
      if (Date.now() > commitBy) break;
      const entry = { ...unplaced, baseOffset: head.logEndOffset };
      try {
        const result = await meta.commitAppend({
          topicId,
          partition,
          expectedLogEndOffset: entry.baseOffset,
          entry,
        });
        if (result.committed) {
          this.knownHead = result.head;
          return entry;
        }
        head = result.head;
        this.deps.onConflict();
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
