import { ulid } from "ulid";
import type { LogConfig } from "../config.js";
import type { Logger } from "../logger.js";
import type { IndexEntry, MetaStore, TopicMeta } from "../meta/meta-store.js";
import { buildSegment } from "../record/segment.js";
import type { ObjectStore } from "../storage/object-store.js";
import { chunkUploadedAt, segmentKey } from "./keys.js";
import { retryIdempotent } from "./retry.js";

export interface RollDeps {
  store: ObjectStore;
  meta: MetaStore;
  logger: Logger;
  config: Pick<LogConfig, "rollMinAgeMs" | "rollMaxBytes">;
}

export type RollOutcome =
  | { rolled: true; sealed: IndexEntry; replaced: number }
  /**
   * Another roller holds this base or the index changed under us (`failed` false), or reading
   * or writing failed (`failed` true, intent aborted): try again next pass.
   */
  | { rolled: false; failed: boolean };

/**
 * The chunks the next roll should seal, or none (docs/rfcs/0003-segments.md §5). `entries` is
 * the partition's index from its log start. Rolls seal a prefix of the active segment (the chunks
 * after the last sealed segment), and only chunks old enough that no writer is still resolving
 * a lost commit answer for them.
 */
export function chooseRoll(
  entries: IndexEntry[],
  topic: TopicMeta,
  deps: Pick<RollDeps, "config" | "meta">,
  now: number,
): IndexEntry[] {
  const lastSealed = entries.findLastIndex((e) => e.kind === "sealed");
  const active = entries.slice(lastSealed + 1);
  const firstUpload = active[0] && chunkUploadedAt(active[0].objectKey);
  if (firstUpload === undefined) return [];

  const eligible: IndexEntry[] = [];
  let eligibleBytes = 0;
  for (const entry of active) {
    const uploaded = chunkUploadedAt(entry.objectKey);
    if (entry.kind !== "chunk" || uploaded === undefined) break;
    if (now - uploaded < deps.config.rollMinAgeMs) break;
    if (eligible.length >= deps.meta.maxReplacedPerRoll) break;
    if (eligible.length > 0 && eligibleBytes + entry.bytes > deps.config.rollMaxBytes) break;
    eligible.push(entry);
    eligibleBytes += entry.bytes;
  }
  if (eligible.length === 0) return [];

  // Either trigger seals at most the shortest prefix reaching segment.bytes; by size, only once
  // the chunks old enough to roll reach it, so that young chunks never force a small segment.
  const segmentBytes = topic.config["segment.bytes"];
  let bytes = 0;
  const reaching = eligible.findIndex((e) => (bytes += e.bytes) >= segmentBytes);
  if (reaching >= 0) return eligible.slice(0, reaching + 1);
  return now - firstUpload >= topic.config["segment.ms"] ? eligible : [];
}

/**
 * Seals `chunks` into one segment object and swaps it into the index. The intent item makes
 * this safe to run from several places at once: only one roller per base gets it, and the swap
 * applies only while the intent is pending, so an aborted roll can never land afterwards.
 */
export async function roll(
  deps: RollDeps,
  topic: TopicMeta,
  partition: number,
  chunks: IndexEntry[],
  now: () => number,
): Promise<RollOutcome> {
  const { store, meta, logger } = deps;
  const base = chunks[0]!.baseOffset;
  const rollId = ulid();
  const sealedKey = segmentKey(topic.name, topic.id, partition, base, rollId);
  const begun = await retryIdempotent(() =>
    meta.beginIntent(topic, partition, {
      kind: "roll",
      baseOffset: base,
      id: rollId,
      objectKeys: chunks.map((c) => c.objectKey),
      sealedKey,
      createdAt: now(),
      doneAt: null,
    }),
  );
  if (!begun) return { rolled: false, failed: false };

  let sealed: IndexEntry;
  try {
    sealed = await sealChunks(store, sealedKey, base, chunks);
  } catch (err) {
    // Nothing was swapped: give the base back now instead of after the intent timeout.
    logger.error({ err, topic: topic.name, partition, base }, "roll failed");
    await abandon();
    return { rolled: false, failed: true };
  }
  // A replayed swap whose first answer was lost is recognised by the intent id: safe to retry.
  // A swap whose outcome stays unknown is left to the intent: done, or aborted on timeout.
  const swapped = await retryIdempotent(() =>
    meta.replaceEntries(topic.id, partition, rollId, chunks, sealed, now()),
  );
  if (swapped) return { rolled: true, sealed, replaced: chunks.length };
  logger.info({ topic: topic.name, partition, base }, "roll lost to a concurrent index change");
  await abandon();
  return { rolled: false, failed: false };

  /** After the abort no swap of this intent can apply, so its upload is garbage. */
  async function abandon(): Promise<void> {
    if (await retryIdempotent(() => meta.abortIntent(topic.id, partition, "roll", base, rollId))) {
      await retryIdempotent(() => store.delete([sealedKey]));
    }
  }
}

/** Chunks read concurrently per roll: the roll's latency is mostly these GETs. */
const CHUNK_READ_CONCURRENCY = 8;

async function sealChunks(
  store: ObjectStore,
  sealedKey: string,
  base: number,
  chunks: IndexEntry[],
): Promise<IndexEntry> {
  // Read past the object cache: a roll's chunks are cold, and would evict the hot tail.
  const bodies = new Array<Uint8Array>(chunks.length);
  let next = 0;
  const reader = async () => {
    for (let i = next++; i < chunks.length; i = next++) {
      const key = chunks[i]!.objectKey;
      bodies[i] = await retryIdempotent(() => store.get(key));
    }
  };
  await Promise.all(Array.from({ length: CHUNK_READ_CONCURRENCY }, reader));
  const built = buildSegment(
    base,
    chunks.map((c, i) => ({ baseOffset: c.baseOffset, count: c.count, body: bodies[i]! })),
  );
  // The key is unique to this roll, so a repeated PUT writes the same bytes.
  await retryIdempotent(() => store.put(sealedKey, built.body));
  return {
    baseOffset: base,
    count: built.recordCount,
    bytes: built.body.byteLength,
    objectKey: sealedKey,
    minTimestamp: built.minTimestamp,
    maxTimestamp: built.maxTimestamp,
    kind: "sealed",
    footer: built.footer,
  };
}
