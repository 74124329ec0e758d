import { z } from "zod";
import { SluiceError } from "../errors.js";

/**
 * The group document (docs/rfcs/0002-consumer-groups.md §2): membership, leases, the target
 * assignment and what each member holds, stored as one JSON string in the group's state item.
 */

export type ResetPolicy = "earliest" | "latest";

/** A partition of a topic, as the assignor and the member views name it. */
export type PartitionRef = [topic: string, partition: number];

/** A held partition and the generation it was granted at (its tenure's start, §4.4). */
export type HeldPartition = [topic: string, partition: number, grant: number];

export interface TopicSnapshot {
  id: string;
  partitions: number;
}

export interface MemberDoc {
  clientId: string | null;
  /** The subscription: topic names. */
  topics: string[];
  sessionTimeoutMs: number;
  joinedAt: number;
  /** Stamped by the clock of the instance that last renewed it. */
  leaseExpiresAt: number;
  /** The lease lapsed: the member is never renewed again and is removed after the hold window. */
  dead: boolean;
  /** What the assignor wants it to own. */
  target: PartitionRef[];
  /** Held and served by fetch. */
  assigned: HeldPartition[];
  /** Held, not served, awaiting the member's release. */
  revoking: HeldPartition[];
}

export interface GroupDoc {
  /** The group epoch; moves exactly when the target is recomputed (§4.4). */
  generation: number;
  resetPolicy: ResetPolicy;
  /** The subscribed topics' metadata the target was computed from. */
  topics: Record<string, TopicSnapshot>;
  members: Record<string, MemberDoc>;
}

const count = z.number().int().nonnegative();
const ref = z.tuple([z.string(), count]);
const held = z.tuple([z.string(), count, count]);

const GroupDocSchema = z.object({
  generation: count,
  resetPolicy: z.enum(["earliest", "latest"]),
  topics: z.record(z.string(), z.object({ id: z.string(), partitions: z.number().int().min(1) })),
  members: z.record(
    z.string(),
    z.object({
      clientId: z.string().nullable(),
      topics: z.array(z.string()),
      sessionTimeoutMs: z.number().int().positive(),
      joinedAt: z.number(),
      leaseExpiresAt: z.number(),
      dead: z.boolean(),
      target: z.array(ref),
      assigned: z.array(held),
      revoking: z.array(held),
    }),
  ),
});

/**
 * A map keyed by names that come from callers (topics, member ids): without a prototype, so
 * `__proto__`, `constructor` or `toString` are keys like any other, never Object's members.
 */
export function dict<T>(entries: Iterable<readonly [string, T]> = []): Record<string, T> {
  const map = Object.create(null) as Record<string, T>;
  for (const [key, value] of entries) map[key] = value;
  return map;
}

export function emptyGroupDoc(resetPolicy: ResetPolicy): GroupDoc {
  return { generation: 0, resetPolicy, topics: dict(), members: dict() };
}

/**
 * Parses a stored document. It was written by this code, so a mismatch means the table holds
 * something else (a hand edit, a newer format): refuse it rather than act on a guess.
 */
export function parseGroupDoc(json: string): GroupDoc {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new SluiceError("corrupt_data", "group document is not JSON", { cause: err });
  }
  const parsed = GroupDocSchema.safeParse(value);
  if (!parsed.success) {
    throw new SluiceError("corrupt_data", `group document is malformed: ${parsed.error.message}`);
  }
  // Built from JSON.parse's own properties, not zod's copy, which would lose a `__proto__` key.
  const raw = value as GroupDoc;
  return {
    ...parsed.data,
    topics: dict(Object.entries(raw.topics)),
    members: dict(Object.entries(raw.members)),
  };
}

/** A deep copy that keeps the maps prototype-free (structuredClone would give them Object's). */
export function cloneGroupDoc(doc: GroupDoc): GroupDoc {
  return {
    generation: doc.generation,
    resetPolicy: doc.resetPolicy,
    topics: dict(Object.entries(doc.topics).map(([t, s]) => [t, { ...s }] as const)),
    members: dict(Object.entries(doc.members).map(([id, m]) => [id, structuredClone(m)] as const)),
  };
}

export function serializeGroupDoc(doc: GroupDoc): string {
  return JSON.stringify(doc);
}

/** Everything the member holds: assigned ∪ revoking. */
export function heldBy(member: MemberDoc): HeldPartition[] {
  return [...member.assigned, ...member.revoking];
}

export const partitionKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** Topic, then partition numerically. */
export function comparePartitions(
  a: readonly [string, number, ...unknown[]],
  b: readonly [string, number, ...unknown[]],
): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
}
