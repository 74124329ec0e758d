import { ulid } from "ulid";
import { z } from "zod";
import { MAX_PARTITIONS, TopicConfigSchema, type TopicConfigInput } from "../config.js";
import { SluiceError } from "../errors.js";
import type { MetaStore, PartitionHead, TopicMeta } from "../meta/meta-store.js";
import { assertValidName } from "./names.js";
import { indexEntries } from "./index-walk.js";
import { retryIdempotent } from "./retry.js";

export interface SegmentState {
  baseOffset: number;
  count: number;
  bytes: number;
  minTimestamp: number | null;
  maxTimestamp: number | null;
  /** Kafka's active segment is the chunks not rolled yet, shown as one; sealed ones are immutable. */
  state: "sealed" | "active";
  /** Active segment only: the flush objects it is made of. */
  chunks?: number;
}

export interface PartitionState extends PartitionHead {
  partition: number;
  /** Oldest first, the active segment last; absent when not asked for. */
  segments?: SegmentState[];
}

export interface TopicDescription {
  topic: TopicMeta;
  partitions: PartitionState[];
}

/**
 * Topic metadata with a short-lived cache: produce and fetch look a topic up on every request,
 * and a deleted topic only needs to stop being served within `topicCacheMs`.
 */
export class Topics {
  private readonly cache = new Map<string, { topic: TopicMeta; expires: number }>();

  constructor(
    private readonly meta: MetaStore,
    private readonly cacheMs: number,
  ) {}

  async create(
    name: string,
    partitions: number,
    config: TopicConfigInput = {},
  ): Promise<TopicMeta> {
    assertValidName("topic", name);
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
      throw new SluiceError(
        "invalid_request",
        `partitions must be an integer from 1 to ${MAX_PARTITIONS}`,
      );
    }
    const parsed = TopicConfigSchema.safeParse(config);
    if (!parsed.success) {
      throw new SluiceError("invalid_config", z.prettifyError(parsed.error), {
        details: { issues: parsed.error.issues },
      });
    }
    const topic: TopicMeta = {
      name,
      id: ulid(),
      partitions,
      config: parsed.data,
      createdAt: Date.now(),
    };
    await this.meta.createTopic(topic);
    this.cache.delete(name);
    return topic;
  }

  async get(name: string): Promise<TopicMeta> {
    assertValidName("topic", name);
    const cached = this.cache.get(name);
    if (cached && cached.expires > Date.now()) return cached.topic;
    const topic = await retryIdempotent(() => this.meta.getTopic(name));
    if (!topic) {
      this.cache.delete(name);
      throw new SluiceError("topic_not_found", `topic "${name}" does not exist`, {
        details: { topic: name },
      });
    }
    this.cache.set(name, { topic, expires: Date.now() + this.cacheMs });
    return topic;
  }

  list(): Promise<TopicMeta[]> {
    return retryIdempotent(() => this.meta.listTopics());
  }

  async describe(name: string, options: { segments?: boolean } = {}): Promise<TopicDescription> {
    this.cache.delete(name);
    const topic = await this.get(name);
    const partitions = await Promise.all(
      Array.from({ length: topic.partitions }, async (_, partition) => {
        const head = await retryIdempotent(() => this.meta.getHead(topic.id, partition));
        if (options.segments === false) return { partition, ...head };
        return { partition, ...head, segments: await this.segments(topic.id, partition, head) };
      }),
    );
    return { topic, partitions };
  }

  private async segments(
    topicId: string,
    partition: number,
    head: PartitionHead,
  ): Promise<SegmentState[]> {
    const segments: SegmentState[] = [];
    const active: SegmentState = {
      baseOffset: head.logEndOffset,
      count: 0,
      bytes: 0,
      minTimestamp: null,
      maxTimestamp: null,
      state: "active",
      chunks: 0,
    };
    const entries =
      head.logStartOffset < head.logEndOffset
        ? indexEntries(this.meta, topicId, partition, head.logStartOffset)
        : [];
    for await (const e of entries) {
      if (e.kind === "sealed") {
        const { baseOffset, count, bytes, minTimestamp, maxTimestamp } = e;
        segments.push({ baseOffset, count, bytes, minTimestamp, maxTimestamp, state: "sealed" });
        continue;
      }
      if (active.chunks === 0) active.baseOffset = e.baseOffset;
      active.count += e.count;
      active.bytes += e.bytes;
      active.minTimestamp = Math.min(active.minTimestamp ?? Infinity, e.minTimestamp);
      active.maxTimestamp = Math.max(active.maxTimestamp ?? -Infinity, e.maxTimestamp);
      active.chunks! += 1;
    }
    segments.push(active);
    return segments;
  }

  async delete(name: string): Promise<void> {
    this.cache.delete(name);
    const topic = await this.get(name);
    this.cache.delete(name);
    await this.meta.deleteTopic(name, topic.id);
  }
}
