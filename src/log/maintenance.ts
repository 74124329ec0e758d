import type { Logger } from "../logger.js";
import type { MetaStore, TopicMeta } from "../meta/meta-store.js";
import type { ObjectInfo, ObjectStore } from "../storage/object-store.js";
import { retryIdempotent } from "./retry.js";

export interface MaintenanceOptions {
  store: ObjectStore;
  meta: MetaStore;
  logger: Logger;
  /**
   * Objects younger than this are never touched: a writer may have uploaded one and still be
   * committing it, and a reader may still hold an index entry that pointed to it.
   */
  graceMs: number;
  now?: () => number;
}

export interface MaintenanceReport {
  partitions: number;
  objectsScanned: number;
  /** Uploaded, never committed (the writer failed or gave up): no reader can reach them. */
  orphansDeleted: number;
  /** Objects of topics that were deleted or re-created under a new id. */
  deletedTopicObjectsDeleted: number;
}

/** `{topic}/{topicId}/{partition}/…`, the layout of log/keys.ts. */
const PARTITION_KEY = /^([^/]+)\/([^/]+)\/(\d+)\//;

/**
 * One garbage-collection pass over the object store. Safe to run from several places at
 * once: it only deletes objects that nothing references and that are older than the grace
 * period, and deleting an object twice is harmless.
 */
export async function collectGarbage(options: MaintenanceOptions): Promise<MaintenanceReport> {
  const { store, meta, graceMs } = options;
  const now = options.now ?? Date.now;
  const topics = new Map(
    (await retryIdempotent(() => meta.listTopics())).map((t): [string, TopicMeta] => [t.name, t]),
  );
  const report: MaintenanceReport = {
    partitions: 0,
    objectsScanned: 0,
    orphansDeleted: 0,
    deletedTopicObjectsDeleted: 0,
  };

  // Listings are in key order, so each partition's objects arrive together.
  let group: { prefix: string; objects: ObjectInfo[] } | undefined;
  const finish = async () => {
    if (!group) return;
    const cutoff = now() - graceMs;
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
  options.logger.info({ ...report }, "maintenance pass done");
  return report;
}

/**
 * Every object key the partition's index points to, from the log start to the log end;
 * undefined if the index does not reach the log end.
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
  return keys;
}
