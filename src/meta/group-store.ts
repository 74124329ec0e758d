import { SluiceError } from "../errors.js";

/**
 * The consumer-group half of the metadata table (docs/rfcs/0002-consumer-groups.md §8). A
 * group's membership lives in one state document replaced under optimistic concurrency; its
 * committed offsets are items of their own, written all-or-nothing under a guard on that
 * state, so no commit slips past a change of ownership.
 *
 * Adapters implement it beside MetaStore, on the same table, with the same atomicity.
 */
export interface GroupRecord {
  name: string;
  /** New on every creation of the group; offsets of another incarnation are invisible. */
  incarnation: string;
  createdAt: number;
  /** +1 on every write of the state: the optimistic-concurrency token. */
  version: number;
  /** +1 whenever any member stops holding a partition; members' commits are guarded by it. */
  fence: number;
  /** The group document (membership, leases, assignment) as JSON; opaque to adapters. */
  doc: string;
}

export interface GroupSummary {
  name: string;
  incarnation: string;
  createdAt: number;
}

export interface CommittedOffset {
  topic: string;
  partition: number;
  /** The topic's id when committed: an offset of a deleted and re-created topic is ignored. */
  topicId: string;
  /** The next offset to read (Kafka's CURRENT-OFFSET). */
  offset: number;
  metadata: string | null;
  /** Null for a commit made without a member (empty group, reset). */
  generation: number | null;
  memberId: string | null;
  committedAt: number;
}

/** What the state item must still show: members' commits pin `fence`, others `version`. */
export type GroupGuard = { incarnation: string } & ({ fence: number } | { version: number });

export interface OffsetWrite {
  value: CommittedOffset;
  /**
   * The stored offset the caller based this write on; null means none stored (or one of
   * another incarnation or topic id, which counts as none).
   */
  expected: number | null;
}

export type OffsetWriteResult = { ok: true } | { ok: false; conflict: "group" | "offset" };

export interface GroupStore {
  /** Strongly consistent. */
  getGroup(name: string): Promise<GroupRecord | undefined>;
  /** Every group, by name. */
  listGroups(): Promise<GroupSummary[]>;
  /**
   * expectedVersion null: create the group, false if it exists. Otherwise replace it only if
   * its incarnation is record.incarnation and its version is still expectedVersion
   * (record.version must be expectedVersion + 1); false on a lost race, with nothing written.
   * Pinning the incarnation keeps a stale writer from resurrecting a deleted group whose
   * successor happens to have reached the same version.
   */
  putGroup(record: GroupRecord, expectedVersion: number | null): Promise<boolean>;
  /** Deletes the group only if incarnation and version still match. */
  deleteGroup(name: string, incarnation: string, expectedVersion: number): Promise<boolean>;
  /** This incarnation's offsets (optionally of one topic), by topic then partition. */
  getOffsets(group: string, incarnation: string, topic?: string): Promise<CommittedOffset[]>;
  /**
   * Atomically: if the guard holds and every write's `expected` matches what is stored, write
   * them all; otherwise write nothing and say which check failed.
   */
  writeOffsets(group: string, guard: GroupGuard, writes: OffsetWrite[]): Promise<OffsetWriteResult>;
  /** Best-effort removal of offsets of incarnations other than `keep` (all when undefined). */
  purgeOffsets(group: string, keep?: string): Promise<number>;
  /** Largest number of writes one writeOffsets call accepts (DynamoDB: its transaction limit). */
  readonly maxOffsetsPerWrite: number;
}

/** Adapters call this first: a replace must write exactly the next version. */
export function checkGroupPut(record: GroupRecord, expectedVersion: number | null): void {
  if (expectedVersion !== null && record.version !== expectedVersion + 1) {
    throw new SluiceError(
      "internal",
      `malformed group write: version ${record.version} replacing version ${expectedVersion}`,
    );
  }
}

/** Adapters call this first: at most `max` writes, and at most one per partition. */
export function checkOffsetWrites(writes: OffsetWrite[], max: number): void {
  if (writes.length > max) {
    throw new SluiceError(
      "internal",
      `malformed offset write: ${writes.length} offsets, at most ${max} allowed`,
    );
  }
  const seen = new Set<string>();
  for (const { value } of writes) {
    const key = `${value.topic}/${value.partition}`;
    if (seen.has(key)) {
      throw new SluiceError(
        "internal",
        `malformed offset write: ${value.topic}/${value.partition} written twice`,
      );
    }
    seen.add(key);
  }
}

/** Whether the group's state still shows what the guard pins. */
export function guardHolds(
  group: Pick<GroupRecord, "incarnation" | "version" | "fence"> | undefined,
  guard: GroupGuard,
): boolean {
  if (group?.incarnation !== guard.incarnation) return false;
  return "fence" in guard ? group.fence === guard.fence : group.version === guard.version;
}

/**
 * The offset a write's `expected` is compared with: the stored one if it belongs to this
 * incarnation and topic id, null otherwise (none, or left by a previous group or topic).
 */
export function currentOffset(
  stored: { incarnation: string; topicId: string; offset: number } | undefined,
  incarnation: string,
  topicId: string,
): number | null {
  return stored && stored.incarnation === incarnation && stored.topicId === topicId
    ? stored.offset
    : null;
}
