import { SluiceError } from "../errors.js";
import type { IndexEntry, MetaStore, PartitionHead } from "../meta/meta-store.js";
import { retryIdempotent, sleep } from "./retry.js";

/** Index entries per listing round trip. */
const ENTRY_PAGE = 1000;

/** Every index entry with a base offset ≥ `from`, ascending, a page of listEntries at a time. */
export async function* indexEntries(
  meta: MetaStore,
  topicId: string,
  partition: number,
  from: number,
): AsyncGenerator<IndexEntry> {
  for (let next = from; ;) {
    const page = await retryIdempotent(() =>
      meta.listEntries(topicId, partition, next, ENTRY_PAGE),
    );
    yield* page;
    const last = page.at(-1);
    if (page.length < ENTRY_PAGE || !last) return;
    next = last.baseOffset + 1;
  }
}

/**
 * Pauses before each re-read of an index that showed a gap. A roll's swap or a retention step
 * finishes in milliseconds, so a gap that outlives these is a broken invariant, not a race.
 */
const GAP_REREAD_PAUSES_MS = [0, 50, 250];

/**
 * The gaps one scan of a partition's index met (docs/rfcs/0003-segments.md §4): a torn view
 * heals by re-reading, a gap that does not is `internal`.
 */
export class IndexGaps {
  private seen = 0;

  constructor(
    private readonly meta: MetaStore,
    private readonly topicId: string,
    private readonly partition: number,
  ) {}

  /**
   * Waits before the next re-read of an index that showed a gap at `offset` and answers the
   * head as it is then (retention may have moved the log start past the gap); throws
   * `internal` once the gap has outlived every pause.
   */
  async pause(offset: number): Promise<PartitionHead> {
    const { meta, topicId, partition } = this;
    const pause = GAP_REREAD_PAUSES_MS[this.seen++];
    if (pause === undefined) {
      throw new SluiceError("internal", `no index entry holds offset ${offset}`, {
        details: { topicId, partition, offset },
      });
    }
    await sleep(pause);
    return retryIdempotent(() => meta.getHead(topicId, partition));
  }
}
