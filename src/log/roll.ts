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
  /** Another roller holds this base, or the index changed under us: try again next pass. */
  | { rolled: false };

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

  const segmentBytes = topic.config["segment.bytes"];
  if (now - firstUpload >= topic.config["segment.ms"]) return eligible;
  const activeBytes = active.reduce((sum, e) => sum + e.bytes, 0);
  if (activeBytes < segmentBytes) return [];
  let bytes = 0;
  const reaching = eligible.findIndex((e) => (bytes += e.bytes) >= segmentBytes);
  return reaching < 0 ? eligible : eligible.slice(0, reaching + 1);
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
  now: number,
): Promise<RollOutcome> {
  const { store, meta, logger } = deps;
  const base = chunks[0]!.baseOffset;
  const rollId = ulid(now);
  const sealedKey = segmentKey(topic.name, topic.id, partition, base, rollId);
  const begun = await retryIdempotent(() =>
    meta.beginIntent(topic, partition, {
      kind: "roll",
      baseOffset: base,
      id: rollId,
      objectKeys: chunks.map((c) => c.objectKey),
      sealedKey,
      createdAt: now,
      doneAt: null,
    }),
  );
  if (!begun) return { rolled: false };

  // Read past the object cache: a roll's chunks are cold, and would evict the hot tail.
  const sources = [];
  for (const chunk of chunks) {
    const body = await retryIdempotent(() => store.get(chunk.objectKey));
    sources.push({ baseOffset: chunk.baseOffset, count: chunk.count, body });
  }
  const built = buildSegment(base, sources);
  // The key is unique to this roll, so a repeated PUT writes the same bytes.
  await retryIdempotent(() => store.put(sealedKey, built.body));
  const sealed: IndexEntry = {
    baseOffset: base,
    count: built.recordCount,
    bytes: built.body.byteLength,
    objectKey: sealedKey,
    minTimestamp: built.minTimestamp,
    maxTimestamp: built.maxTimestamp,
    kind: "sealed",
    footer: built.footer,
  };
  // A replayed swap whose first answer was lost is recognised by the intent id: safe to retry.
  const swapped = await retryIdempotent(() =>
    meta.replaceEntries(topic.id, partition, rollId, chunks, sealed, now),
  );
  if (swapped) return { rolled: true, sealed, replaced: chunks.length };

  // After the abort no swap of this intent can apply, so its upload is garbage.
  if (await retryIdempotent(() => meta.abortIntent(topic.id, partition, "roll", base, rollId))) {
    await retryIdempotent(() => store.delete([sealedKey]));
  }
  logger.info({ topic: topic.name, partition, base }, "roll lost to a concurrent index change");
  return { rolled: false };
}
