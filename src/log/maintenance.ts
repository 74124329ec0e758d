import type { LogConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { IndexEntry, MetaStore, TopicMeta } from "../meta/meta-store.js";
import type { ObjectInfo, ObjectStore } from "../storage/object-store.js";
import { indexEntries } from "./index-walk.js";
import { retryIdempotent } from "./retry.js";
import { chooseRetired, retire } from "./retention.js";
import { chooseRoll, roll } from "./roll.js";

export interface MaintenanceOptions {
  store: ObjectStore;
  meta: MetaStore;
  logger: Logger;
  /**
   * Objects younger than this are never touched: a writer may have uploaded one and still be
   * committing it. Objects a roll or retention replaced are kept this long after the change, so
   * a reader that still holds an index entry naming one can finish.
   */
  graceMs: number;
  /**
   * A writer gives up committing its upload this long after it (LogConfig.commitTimeoutMs).
   * Until then an unreferenced object may still become referenced, whatever graceMs says.
   */
  commitTimeoutMs: number;
  now?: () => number;
}

export interface PassOptions extends MaintenanceOptions {
  config: Pick<LogConfig, "rollMinAgeMs" | "rollMaxBytes" | "intentTimeoutMs">;
  /** Only this topic's partitions get rolls and retention (the object listing still runs). */
  topic?: string;
  /**
   * Wall-clock time (Date.now) after which no new roll starts, so that a pass bounded by a
   * function timeout still reaches the deleted topics and the object listing.
   */
  rollUntil?: number;
}

export interface GarbageReport {
  partitions: number;
  objectsScanned: number;
  /** Uploaded, never committed (the writer failed or gave up): no reader can reach them. */
  orphansDeleted: number;
  /** Objects of topics that were deleted or re-created under a new id. */
  deletedTopicObjectsDeleted: number;
}

export interface MaintenanceReport extends GarbageReport {
  segmentsRolled: number;
  chunksReplaced: number;
  segmentsRetired: number;
  /** Rolls or retention steps cut short (a crashed or timed-out pass) and undone. */
  intentsAborted: number;
  /** Objects a roll or retention replaced, deleted once past the grace period. */
  garbageObjectsDeleted: number;
  /** Table items (heads, index entries, intents, tombstones) of deleted topics. */
  deletedTopicItemsDeleted: number;
  /** Rolls that failed after taking their intent (unreadable chunks, storage errors). */
  rollsFailed: number;
}

/** Partitions worked on at once. */
const PARTITION_CONCURRENCY = 8;
/**
 * Rolls per partition per pass while a trigger still holds: 64 × 99 chunks, so that a partition
 * flushing several times a second still keeps up with a pass every 15 minutes.
 */
const MAX_ROLLS_PER_PASS = 64;
/** Items per purge round trip of a deleted topic's partition. */
const PURGE_PAGE = 1000;

/**
 * One maintenance pass (docs/rfcs/0003-segments.md §7): per live partition, delete what earlier
 * rolls and retention replaced, apply retention, roll the active segment; then remove deleted
 * topics' items; then list the object store for orphans. Any number of passes may run at once:
 * every step that changes the index is decided by a conditional write, and a lost step is
 * skipped until the next pass.
 */
export async function runMaintenance(options: PassOptions): Promise<MaintenanceReport> {
  const { meta, logger } = options;
  const report: MaintenanceReport = {
    partitions: 0,
    objectsScanned: 0,
    orphansDeleted: 0,
    deletedTopicObjectsDeleted: 0,
    segmentsRolled: 0,
    chunksReplaced: 0,
    segmentsRetired: 0,
    intentsAborted: 0,
    garbageObjectsDeleted: 0,
    deletedTopicItemsDeleted: 0,
    rollsFailed: 0,
  };
  const topics = (await retryIdempotent(() => meta.listTopics())).filter(
    (t) => options.topic === undefined || t.name === options.topic,
  );
  const all = topics.flatMap((topic) =>
    Array.from({ length: topic.partitions }, (_, partition) => ({ topic, partition })),
  );
  // A pass cut short by its time budget must not starve the same partitions every time.
  const start = Math.floor(Math.random() * all.length);
  const work = [...all.slice(start), ...all.slice(0, start)];
  // A roll holds its chunks and the sealed copy in memory (up to twice rollMaxBytes): one at
  // a time, so a pass's memory does not grow with the partitions it works on at once.
  let rolling: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(task: () => Promise<T>): Promise<T> => {
    const run = rolling.then(task, task);
    rolling = run.catch(() => undefined);
    return run;
  };
  await inParallel(work, PARTITION_CONCURRENCY, async ({ topic, partition }) => {
    try {
      await maintainPartition(options, topic, partition, report, oneAtATime);
    } catch (err) {
      // One partition's trouble must not stop the others; the next pass tries again.
      logger.warn({ err, topic: topic.name, partition }, "partition maintenance failed");
    }
  });
  await purgeDeletedTopics(options, report);
  Object.assign(report, await collectGarbage(options));
  logger.info({ ...report }, "maintenance pass done");
  return report;
}

async function maintainPartition(
  options: PassOptions,
  topic: TopicMeta,
  partition: number,
  report: MaintenanceReport,
  oneAtATime: <T>(task: () => Promise<T>) => Promise<T>,
): Promise<void> {
  const { store, meta, config, graceMs } = options;
  // Read the clock at each step: a step that waited (for the roll before it) must not record
  // an earlier time than it happened, or its garbage would outlive the grace period less.
  const clock = options.now ?? Date.now;
  const now = clock();
  for (const intent of await retryIdempotent(() => meta.listIntents(topic.id, partition))) {
    if (intent.doneAt !== null && intent.doneAt < now - graceMs) {
      // Objects first, then the item: a crash in between only repeats idempotent deletes.
      await retryIdempotent(() => store.delete(intent.objectKeys));
      await retryIdempotent(() =>
        meta.dropIntent(topic.id, partition, intent.kind, intent.baseOffset),
      );
      report.garbageObjectsDeleted += intent.objectKeys.length;
    } else if (intent.doneAt === null && intent.createdAt < now - config.intentTimeoutMs) {
      const aborted = await retryIdempotent(() =>
        meta.abortIntent(topic.id, partition, intent.kind, intent.baseOffset, intent.id),
      );
      if (aborted) {
        report.intentsAborted++;
        if (intent.sealedKey !== null) {
          const sealedKey = intent.sealedKey;
          await retryIdempotent(() => store.delete([sealedKey]));
        }
      }
    }
  }

  const head = await retryIdempotent(() => meta.getHead(topic.id, partition));
  let entries = await listAllEntries(meta, topic.id, partition, head.logStartOffset);
  const retired = chooseRetired(entries, topic, clock());
  if (retired.length > 0) {
    const removed = await retire(meta, topic, partition, head, retired, clock);
    report.segmentsRetired += removed;
    entries = entries.slice(removed);
  }

  for (let rolls = 0; rolls < MAX_ROLLS_PER_PASS; rolls++) {
    if (options.rollUntil !== undefined && Date.now() > options.rollUntil) break;
    const chunks = chooseRoll(entries, topic, options, clock());
    if (chunks.length === 0) break;
    const outcome = await oneAtATime(() => roll(options, topic, partition, chunks, clock));
    if (!outcome.rolled) {
      if (outcome.failed) report.rollsFailed++;
      break;
    }
    report.segmentsRolled++;
    report.chunksReplaced += outcome.replaced;
    const at = entries.indexOf(chunks[0]!);
    entries.splice(at, chunks.length, outcome.sealed);
  }
}

/**
 * Deleted topics: their table items go now (a writer that still had the topic cached may add a
 * few more for a short while, so each pass purges again), their tombstone once it is older than
 * the grace period, and their objects with the object listing below.
 */
async function purgeDeletedTopics(
  options: MaintenanceOptions,
  report: MaintenanceReport,
): Promise<void> {
  const { meta, logger } = options;
  const now = options.now ?? Date.now;
  for (const dead of await retryIdempotent(() => meta.listDeletedTopics())) {
    try {
      for (let partition = 0; partition < dead.partitions; partition++) {
        for (;;) {
          const purged = await retryIdempotent(() =>
            meta.purgePartition(dead.id, partition, PURGE_PAGE),
          );
          report.deletedTopicItemsDeleted += purged;
          if (purged === 0) break;
        }
      }
      if (dead.deletedAt < now() - options.graceMs) {
        await retryIdempotent(() => meta.forgetDeletedTopic(dead.id));
        report.deletedTopicItemsDeleted++;
      }
    } catch (err) {
      // The next pass purges again; the object listing below must still run.
      logger.warn({ err, topic: dead.name, id: dead.id }, "purging a deleted topic failed");
    }
  }
}

/**
 * The partition's index from `from`, as a contiguous run. A DynamoDB Query may show half of a
 * concurrent roll (docs/rfcs/0003-segments.md §4): entries overlapping what came before are
 * dropped, and the run stops at a gap. Sizes and triggers computed from it are then never
 * inflated by double-counted chunks, only possibly short until the next pass.
 */
async function listAllEntries(
  meta: MetaStore,
  topicId: string,
  partition: number,
  from: number,
): Promise<IndexEntry[]> {
  const entries: IndexEntry[] = [];
  let end = from;
  for await (const entry of indexEntries(meta, topicId, partition, from)) {
    if (entry.baseOffset + entry.count <= end) continue;
    if (entry.baseOffset !== end) break;
    entries.push(entry);
    end = entry.baseOffset + entry.count;
  }
  return entries;
}

async function inParallel<T>(
  items: T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** `{topic}/{topicId}/{partition}/…`, the layout of log/keys.ts. */
const PARTITION_KEY = /^([^/]+)\/([^/]+)\/(\d+)\//;

/**
 * One garbage-collection pass over the object store. Safe to run from several places at
 * once: it only deletes objects that nothing references and that are older than the grace
 * period, and deleting an object twice is harmless.
 */
export async function collectGarbage(options: MaintenanceOptions): Promise<GarbageReport> {
  const { store, meta, graceMs } = options;
  const now = options.now ?? Date.now;
  const topics = new Map(
    (await retryIdempotent(() => meta.listTopics())).map((t): [string, TopicMeta] => [t.name, t]),
  );
  const report: GarbageReport = {
    partitions: 0,
    objectsScanned: 0,
    orphansDeleted: 0,
    deletedTopicObjectsDeleted: 0,
  };

  // Listings are in key order, so each partition's objects arrive together.
  let group: { prefix: string; objects: ObjectInfo[] } | undefined;
  const finish = async () => {
    if (!group) return;
    const cutoff = now() - Math.max(graceMs, options.commitTimeoutMs);
    const old = group.objects.filter((o) => o.lastModified.getTime() < cutoff);
    const [, name, topicId, partition] = PARTITION_KEY.exec(group.prefix)!;
    const topic = topics.get(name!);
    const live =
      topic !== undefined && topic.id === topicId && Number(partition) < topic.partitions;
    report.partitions++;
    if (old.length === 0) return;
    if (live) {
      const referenced = await referencedKeys(meta, topicId, Number(partition));
      if (!referenced) {
        // Deleting by an incomplete index would delete committed data: skip, and say so.
        options.logger.error({ prefix: group.prefix }, "index ends before the log end; skipped");
        return;
      }
      const orphans = old.filter((o) => !referenced.has(o.key)).map((o) => o.key);
      await retryIdempotent(() => store.delete(orphans));
      report.orphansDeleted += orphans.length;
    } else {
      await retryIdempotent(() => store.delete(old.map((o) => o.key)));
      report.deletedTopicObjectsDeleted += old.length;
    }
  };

  for await (const object of store.list("")) {
    const prefix = PARTITION_KEY.exec(object.key)?.[0];
    if (prefix === undefined) continue;
    report.objectsScanned++;
    if (group?.prefix !== prefix) {
      await finish();
      group = { prefix, objects: [] };
    }
    group.objects.push(object);
  }
  await finish();
  options.logger.debug({ ...report }, "object listing done");
  return report;
}

/**
 * Every object key the partition's index points to, from the log start to the log end, then
 * every key its intents name (objects a roll or retention replaced and not yet deleted, and
 * uploads of rolls in progress); undefined if the index does not reach the log end. The intents
 * are read after the index: a change that removed an entry from the index had written its
 * intent before, and an intent is dropped only after its objects are gone.
 */
async function referencedKeys(
  meta: MetaStore,
  topicId: string,
  partition: number,
): Promise<Set<string> | undefined> {
  const head = await retryIdempotent(() => meta.getHead(topicId, partition));
  const keys = new Set<string>();
  let next = head.logStartOffset;
  while (next < head.logEndOffset) {
    const entries = await retryIdempotent(() => meta.readIndex(topicId, partition, next, 1000));
    const last = entries.at(-1);
    if (!last || last.baseOffset + last.count <= next) return undefined;
    for (const entry of entries) keys.add(entry.objectKey);
    next = last.baseOffset + last.count;
  }
  for (const intent of await retryIdempotent(() => meta.listIntents(topicId, partition))) {
    for (const key of intent.objectKeys) keys.add(key);
    if (intent.sealedKey !== null) keys.add(intent.sealedKey);
  }
  return keys;
}
