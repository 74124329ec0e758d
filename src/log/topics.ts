import { ulid } from "ulid";
import { z } from "zod";
import { MAX_PARTITIONS, TopicConfigSchema, type TopicConfigInput } from "../config.js";
import { SluiceError } from "../errors.js";
import type { MetaStore, PartitionHead, TopicMeta } from "../meta/meta-store.js";
import { assertValidName } from "./names.js";
import { retryIdempotent } from "./retry.js";

export interface PartitionState extends PartitionHead {
  partition: number;
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

  async describe(name: string): Promise<TopicDescription> {
    this.cache.delete(name);
    const topic = await this.get(name);
    const partitions = await Promise.all(
      Array.from({ length: topic.partitions }, async (_, partition) => ({
        partition,
        ...(await retryIdempotent(() => this.meta.getHead(topic.id, partition))),
      })),
    );
    return { topic, partitions };
  }

  async delete(name: string): Promise<void> {
    this.cache.delete(name);
    const topic = await this.get(name);
    this.cache.delete(name);
    await this.meta.deleteTopic(name, topic.id);
  }
}
