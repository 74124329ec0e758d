import type { IndexEntry } from "../meta/meta-store.js";
import { decodeBatches } from "../record/codec.js";
import type { DecodedBatch } from "../record/record.js";
import {
  blockForOffset,
  decodeFooter,
  segmentBlocks,
  startForTimestamp,
  type SegmentBlock,
  type SegmentFooter,
} from "../record/segment.js";
import type { ObjectCache } from "./object-cache.js";
import { retryIdempotent } from "./retry.js";

/** A decoded batch and the absolute offset of its first record. */
export interface PlacedBatch {
  baseOffset: number;
  batch: DecodedBatch;
}

interface ParsedFooter {
  footer: SegmentFooter;
  blocks: SegmentBlock[];
}

/** Parsed footers kept per process; a 64 MiB segment's is about 24 KiB. */
const FOOTER_CACHE_ENTRIES = 512;

/**
 * Reads the objects index entries name: a chunk whole, a sealed segment through its footer and
 * then only the blocks a reader needs. Block boundaries depend only on the footer, so every reader
 * asks for the same ranges and shares the cache.
 */
export class SegmentFiles {
  private readonly footers = new Map<string, Promise<ParsedFooter>>();
  /** Cached buffers whose CRCs were checked once: re-reading one skips only that check. */
  private readonly verified = new WeakSet<Uint8Array>();

  constructor(
    private readonly cache: ObjectCache,
    private readonly blockBytes: number,
  ) {}

  /** The entry's batches, starting with the one that holds `from` (or the first), in order. */
  async *batches(entry: IndexEntry, from: number): AsyncGenerator<PlacedBatch> {
    if (entry.kind === "chunk" || !entry.footer) {
      const body = await retryIdempotent(() => this.cache.get(entry.objectKey));
      for (const batch of this.decode(body)) {
        if (entry.baseOffset + batch.firstOffsetDelta + batch.records.length <= from) continue;
        yield { baseOffset: entry.baseOffset + batch.firstOffsetDelta, batch };
      }
      return;
    }
    const { blocks } = await this.footer(entry);
    const relative = Math.min(Math.max(0, from - entry.baseOffset), entry.count - 1);
    for (let i = blockForOffset(blocks, relative); i < blocks.length; i++) {
      const { start, end } = blocks[i]!;
      const bytes = await retryIdempotent(() =>
        this.cache.getRange(entry.objectKey, { start, end }),
      );
      for (const batch of this.decode(bytes)) {
        if (entry.baseOffset + batch.firstOffsetDelta + batch.records.length <= from) continue;
        yield { baseOffset: entry.baseOffset + batch.firstOffsetDelta, batch };
      }
    }
  }

  /**
   * The offset to start scanning the entry from for the first record with a timestamp ≥ `t`:
   * no record of the entry before it has one.
   */
  async scanStartForTimestamp(entry: IndexEntry, t: number): Promise<number> {
    if (entry.kind === "chunk" || !entry.footer) return entry.baseOffset;
    const { footer } = await this.footer(entry);
    return entry.baseOffset + startForTimestamp(footer, t);
  }

  private decode(bytes: Uint8Array): DecodedBatch[] {
    const batches = decodeBatches(bytes, { verifyCrc: !this.verified.has(bytes) });
    this.verified.add(bytes);
    return batches;
  }

  private footer(entry: IndexEntry): Promise<ParsedFooter> {
    const cached = this.footers.get(entry.objectKey);
    if (cached) {
      this.footers.delete(entry.objectKey);
      this.footers.set(entry.objectKey, cached);
      return cached;
    }
    const { position, length } = entry.footer!;
    const parsed = retryIdempotent(() =>
      this.cache.getRange(entry.objectKey, { start: position, end: position + length }),
    ).then((bytes) => {
      const footer = decodeFooter(bytes, { position, count: entry.count });
      return { footer, blocks: segmentBlocks(footer, this.blockBytes) };
    });
    // A failed read must not stay cached: the next reader tries again.
    parsed.catch(() => this.footers.delete(entry.objectKey));
    this.footers.set(entry.objectKey, parsed);
    for (const key of this.footers.keys()) {
      if (this.footers.size <= FOOTER_CACHE_ENTRIES) break;
      this.footers.delete(key);
    }
    return parsed;
  }
}
