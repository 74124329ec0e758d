import type { LogConfig } from "../config.js";
import { SluiceError } from "../errors.js";
import { logger as defaultLogger, type Logger } from "../logger.js";
import {
  MAX_PRODUCER_NUMBER,
  PRODUCER_ID_PATTERN,
  type MetaStore,
  type PartitionHead,
  type TopicMeta,
} from "../meta/meta-store.js";
import { encodedRecordSize } from "../record/codec.js";
import type { LogRecord } from "../record/record.js";
import type { ObjectStore } from "../storage/object-store.js";
import { runMaintenance, type MaintenanceReport } from "./maintenance.js";
import { Metrics } from "./metrics.js";
import { partitionForKey } from "./murmur2.js";
import { AppendNotifier } from "./notifier.js";
import { ObjectCache } from "./object-cache.js";
import { offsetForTimestamp } from "./offsets.js";
import { PartitionWriter, type ProducerRef } from "./partition-writer.js";
import { readPartition, type ReadLimits, type ReadResult } from "./reader.js";
import { retryIdempotent } from "./retry.js";
import { SegmentFiles } from "./segment-files.js";
import { Topics } from "./topics.js";

export interface ProduceRecord extends Omit<LogRecord, "timestamp"> {
  partition?: number;
  timestamp?: number;
}

export type { ProducerRef } from "./partition-writer.js";

export interface ProduceOptions {
  /**
   * Makes the request idempotent (docs/rfcs/0004-idempotent-produce.md): its records must go to
   * one partition, and a resend of a committed request gets the original offsets.
   */
  producer?: ProducerRef;
}

export interface ProducedOffset {
  partition: number;
  offset: number;
}

export interface FetchOptions extends ReadLimits {
  waitMs: number;
  signal?: AbortSignal;
}

export interface LogDeps {
  store: ObjectStore;
  meta: MetaStore;
  config: LogConfig;
  logger?: Logger;
}

/**
 * The partitioned commit log: what the HTTP API, the Lambda functions and the CLI all drive.
 * It knows the storage and metadata ports, never a concrete adapter.
 */
export class SluiceLog {
  readonly topics: Topics;
  readonly metrics = new Metrics();
  private readonly writers = new Map<string, PartitionWriter>();
  private readonly notifier = new AppendNotifier();
  private readonly cache: ObjectCache;
  private readonly files: SegmentFiles;
  private maintenance: Promise<unknown> = Promise.resolve();
  private readonly logger: Logger;

  constructor(private readonly deps: LogDeps) {
    this.logger = deps.logger ?? defaultLogger;
    this.topics = new Topics(deps.meta, deps.config.topicCacheMs);
    this.cache = new ObjectCache(deps.store, deps.config.objectCacheBytes);
    this.files = new SegmentFiles(this.cache, deps.config.segmentBlockBytes);
  }

  /**
   * Appends the records and resolves with their offsets, in request order, once every one of
   * them is durable and committed. The whole request is checked before anything is written.
   */
  async produce(
    topicName: string,
    inputs: ProduceRecord[],
    options: ProduceOptions = {},
  ): Promise<ProducedOffset[]> {
    const { producer } = options;
    if (producer !== undefined) checkProducer(producer);
    const topic = await this.topics.get(topicName);
    const now = Date.now();
    const maxBytes = topic.config["max.message.bytes"];
    // Keyless records of one request share a partition (Kafka's sticky partitioner), so that
    // they travel in one batch instead of one flush per partition. An idempotent request's
    // resend must reach the same partition, so its choice is not random (see below).
    const sticky =
      producer === undefined
        ? Math.floor(Math.random() * topic.partitions)
        : idempotentPartition(topic, inputs, producer.id);
    const groups = new Map<number, { records: LogRecord[]; indices: number[]; bytes: number }>();
    inputs.forEach((input, index) => {
      const partition = choosePartition(topic, input, sticky, index);
      const { partition: _, ...fields } = input;
      const record: LogRecord = { ...fields, timestamp: input.timestamp ?? now };
      const size = encodedRecordSize(record);
      if (size > maxBytes) {
        throw new SluiceError(
          "record_too_large",
          `record ${index} is ${size} bytes, over the topic's max.message.bytes (${maxBytes})`,
          { details: { index, size, "max.message.bytes": maxBytes } },
        );
      }
      let group = groups.get(partition);
      if (!group) {
        group = { records: [], indices: [], bytes: 0 };
        groups.set(partition, group);
      }
      group.records.push(record);
      group.indices.push(index);
      group.bytes += size;
    });

    if (producer !== undefined && groups.size > 1) {
      const partitions = [...groups.keys()].sort((a, b) => a - b);
      throw new SluiceError(
        "invalid_request",
        `an idempotent request must go to one partition; its records go to partitions ${partitions.join(", ")}`,
        { details: { partitions } },
      );
    }

    const offsets: ProducedOffset[] = new Array<ProducedOffset>(inputs.length);
    const results = await Promise.allSettled(
      [...groups].map(async ([partition, group]) => {
        const { baseOffset, duplicate } = await this.writer(topic, partition).append(
          group.records,
          group.bytes,
          producer,
        );
        group.indices.forEach(
          (index, i) => (offsets[index] = { partition, offset: baseOffset + i }),
        );
        if (duplicate) return;
        this.metrics.add(topic.name, "recordsIn", group.records.length);
        this.metrics.add(topic.name, "bytesIn", group.bytes);
      }),
    );
    this.metrics.add(topic.name, "produceRequests");
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    return offsets;
  }

  /**
   * Reads from `offset`; when nothing is there yet, waits up to `waitMs` for a commit. Local
   * commits wake the wait at once; other processes' commits are seen by re-reading the head
   * every `pollIntervalMs`.
   */
  async fetch(
    topicName: string,
    partition: number,
    offset: number,
    options: FetchOptions,
  ): Promise<ReadResult> {
    const topic = await this.topics.get(topicName);
    assertPartition(topic, partition);
    const { config, meta } = this.deps;
    const deadline = Date.now() + Math.min(options.waitMs, config.maxWaitMs);
    const limits = { ...options, maxBytes: Math.min(options.maxBytes, config.maxFetchBytes) };
    this.metrics.add(topic.name, "fetchRequests");
    for (;;) {
      const result = await readPartition(meta, this.files, topic.id, partition, offset, limits);
      const remaining = deadline - Date.now();
      if (result.records.length > 0 || remaining <= 0 || options.signal?.aborted) {
        this.metrics.add(topic.name, "recordsOut", result.records.length);
        return result;
      }
      await this.notifier.waitForNotify(
        partitionKey(topic.id, partition),
        Math.min(config.pollIntervalMs, remaining),
        options.signal,
      );
    }
  }

  /** The metadata table, for services that keep their own items in it beside the log's. */
  get meta(): MetaStore {
    return this.deps.meta;
  }

  /** Upper bound of a fetch's wait, which callers waiting on several partitions share. */
  get maxWaitMs(): number {
    return this.deps.config.maxWaitMs;
  }

  /** The first offset whose record timestamp is ≥ `timestamp`, else the log-end offset. */
  offsetForTimestamp(topic: TopicMeta, partition: number, timestamp: number): Promise<number> {
    assertPartition(topic, partition);
    return offsetForTimestamp(this.deps.meta, this.files, topic.id, partition, timestamp);
  }

  /**
   * Kafka's ListOffsets: `earliest` is the log start offset, `latest` the log-end offset, and a
   * timestamp gives the first offset whose record timestamp is ≥ it, or null when none is.
   */
  async listOffset(
    topicName: string,
    partition: number,
    spec: "earliest" | "latest" | number,
  ): Promise<{ offset: number | null; head: PartitionHead }> {
    const topic = await this.topics.get(topicName);
    assertPartition(topic, partition);
    const { meta } = this.deps;
    const head = await retryIdempotent(() => meta.getHead(topic.id, partition));
    if (spec === "earliest") return { offset: head.logStartOffset, head };
    if (spec === "latest") return { offset: head.logEndOffset, head };
    const found = await offsetForTimestamp(meta, this.files, topic.id, partition, spec);
    // offsetForTimestamp answers the log end for "none"; any record it finds lies below it.
    return { offset: found < head.logEndOffset ? found : null, head };
  }

  /**
   * One maintenance pass (see maintenance.ts): rolls, retention and cleanup; safe to run from
   * several places at once. `now` is injectable so that tests can move time.
   */
  async runMaintenance(
    options: { topic?: string; now?: () => number; rollUntil?: number } = {},
  ): Promise<MaintenanceReport> {
    // An unknown topic is an error, not an empty pass.
    if (options.topic !== undefined) await this.topics.get(options.topic);
    // One pass at a time in a process: a timer pass that overran its interval, or admin
    // requests, must not hold several rolls in memory at once.
    const pass = this.maintenance.then(() =>
      runMaintenance({
        store: this.deps.store,
        meta: this.deps.meta,
        logger: this.logger,
        graceMs: this.deps.config.orphanGraceMs,
        commitTimeoutMs: this.deps.config.commitTimeoutMs,
        config: this.deps.config,
        ...options,
      }),
    );
    this.maintenance = pass.catch(() => undefined);
    return pass;
  }

  /** Flushes every buffered append; call before the process exits. */
  async close(): Promise<void> {
    await Promise.all([...this.writers.values()].map((w) => w.drain()));
  }

  private writer(topic: TopicMeta, partition: number): PartitionWriter {
    const key = partitionKey(topic.id, partition);
    let writer = this.writers.get(key);
    if (!writer) {
      const name = topic.name;
      writer = new PartitionWriter(
        { topic: name, topicId: topic.id, partition },
        {
          store: this.deps.store,
          meta: this.deps.meta,
          config: this.deps.config,
          logger: this.logger,
          onCommit: (entry, body) => {
            this.cache.remember(entry.objectKey, body);
            this.notifier.notify(key);
            this.metrics.add(name, "flushes");
          },
          onConflict: () => this.metrics.add(name, "commitConflicts"),
          onFailure: () => this.metrics.add(name, "flushFailures"),
        },
      );
      this.writers.set(key, writer);
    }
    return writer;
  }
}

function partitionKey(topicId: string, partition: number): string {
  return `${topicId}/${partition}`;
}

function assertPartition(topic: TopicMeta, partition: number, index?: number): void {
  if (!Number.isInteger(partition) || partition < 0 || partition >= topic.partitions) {
    throw new SluiceError(
      "invalid_partition",
      `partition ${partition} does not exist; topic "${topic.name}" has ${topic.partitions}`,
      {
        details: {
          partition,
          partitions: topic.partitions,
          ...(index === undefined ? {} : { index }),
        },
      },
    );
  }
}

/** Validates an idempotent request's identity (the HTTP layer checks it first, too). */
function checkProducer({ id, epoch, seq }: ProducerRef): void {
  const inRange = (n: number) => Number.isInteger(n) && n >= 0 && n <= MAX_PRODUCER_NUMBER;
  if (!PRODUCER_ID_PATTERN.test(id) || !inRange(epoch) || !inRange(seq)) {
    throw new SluiceError(
      "invalid_request",
      `a producer id is 1-64 of [A-Za-z0-9._-], its epoch and sequence integers 0..${MAX_PRODUCER_NUMBER}`,
      { details: { producerId: id, producerEpoch: epoch, producerSeq: seq } },
    );
  }
}

/**
 * Where an idempotent request's keyless records go: to the partition its first keyed or
 * explicitly placed record goes to, or, if all are keyless, to murmur2(producer id). Either way
 * a resend of the same request reaches the same partition, where its sequence is known.
 */
function idempotentPartition(topic: TopicMeta, inputs: ProduceRecord[], producerId: string) {
  const placed = inputs.findIndex((input) => input.partition !== undefined || input.key !== null);
  if (placed >= 0) return choosePartition(topic, inputs[placed]!, 0, placed);
  return partitionForKey(new TextEncoder().encode(producerId), topic.partitions);
}

function choosePartition(
  topic: TopicMeta,
  input: ProduceRecord,
  sticky: number,
  index: number,
): number {
  if (input.partition !== undefined) {
    assertPartition(topic, input.partition, index);
    return input.partition;
  }
  if (input.key !== null) return partitionForKey(input.key, topic.partitions);
  return sticky;
}
