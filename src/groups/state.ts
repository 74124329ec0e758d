import { ulid } from "ulid";
import { SluiceError, isSluiceError } from "../errors.js";
import type { GroupConfig } from "../config.js";
import type { SluiceLog } from "../log/log.js";
import type { Logger } from "../logger.js";
import { assertValidName } from "../log/names.js";
import { retryIdempotent, sleep } from "../log/retry.js";
import type { GroupRecord, GroupStore } from "../meta/group-store.js";
import type { MetaStore, TopicMeta } from "../meta/meta-store.js";
import { emptyGroupDoc, heldBy, parseGroupDoc, serializeGroupDoc, type GroupDoc } from "./doc.js";
import { reconcile } from "./reconcile.js";

/**
 * Reading a group and changing it (docs/rfcs/0002-consumer-groups.md §2): one strongly
 * consistent read, reconcile in memory, and at most one conditional write, retried from the
 * read when another instance wrote first.
 */

export interface GroupContext {
  log: SluiceLog;
  meta: MetaStore & GroupStore;
  /** The clock leases are stamped and judged by. */
  now: () => number;
  config: GroupConfig;
  logger: Logger;
}

export interface GroupState {
  /** What is stored; undefined when the group does not exist. */
  record: GroupRecord | undefined;
  /** The stored document reconciled at `now` (an empty one for a missing group). */
  doc: GroupDoc;
  /** Reconciling took partitions from a holder: writing `doc` must move the fence. */
  fenced: boolean;
  /** Current metadata of every subscribed, held or requested topic that exists. */
  topics: Map<string, TopicMeta>;
  now: number;
}

/** Reads the group and reconciles it without writing; `extraTopics` are loaded as well. */
export async function readGroup(
  ctx: GroupContext,
  name: string,
  extraTopics: readonly string[] = [],
): Promise<GroupState> {
  assertValidName("group", name);
  const record = await retryIdempotent(() => ctx.meta.getGroup(name));
  const stored = record ? parseGroupDoc(record.doc) : emptyGroupDoc("latest");
  const names = new Set([
    ...extraTopics,
    ...Object.keys(stored.topics),
    ...Object.values(stored.members).flatMap((m) => [...m.topics, ...heldBy(m).map((h) => h[0])]),
  ]);
  const topics = new Map<string, TopicMeta>();
  await Promise.all(
    [...names].map(async (topic) => {
      const meta = await lookupTopic(ctx.log, topic);
      if (meta) topics.set(topic, meta);
    }),
  );
  const now = ctx.now();
  const { doc, fenced } = reconcile(stored, now, topics, ctx.config.clockSkewMs);
  return { record, doc, fenced, topics, now };
}

/** The topic, or undefined when it does not exist. */
export async function lookupTopic(log: SluiceLog, name: string): Promise<TopicMeta | undefined> {
  try {
    return await log.topics.get(name);
  } catch (err) {
    if (isSluiceError(err, "topic_not_found")) return undefined;
    throw err;
  }
}

/** The topic, or 404 for a request that names one that does not exist. */
export function requireTopic(state: GroupState, topic: string): TopicMeta {
  const meta = state.topics.get(topic);
  if (!meta) {
    throw new SluiceError("topic_not_found", `topic "${topic}" does not exist`, {
      details: { topic },
    });
  }
  return meta;
}

export function requireGroup(state: GroupState, name: string): GroupRecord {
  if (!state.record) {
    throw new SluiceError("group_not_found", `group "${name}" does not exist`, {
      details: { group: name },
    });
  }
  return state.record;
}

export interface Change<T> {
  value: T;
  /** The document to store; omitted (or unchanged) means nothing is written. */
  doc?: GroupDoc;
  /** Some member stopped holding a partition in this change. */
  fenced?: boolean;
}

/** Whether storing `doc` would change what is stored. */
export function differs(state: GroupState, doc: GroupDoc, fenced: boolean): boolean {
  return fenced || state.fenced || !state.record || serializeGroupDoc(doc) !== state.record.doc;
}

/** Attempts of a read-modify-write before the request gives up with a retryable 503. */
export const MAX_ATTEMPTS = 8;

/** Jittered pause before re-reading after a lost race, so the racers spread out. */
export function backoff(attempt: number): Promise<void> {
  return attempt > 0 ? sleep(5 + Math.random() * 45) : Promise.resolve();
}

/**
 * read → reconcile → apply → conditional put, retried from the read on a lost race. A change
 * that alters nothing writes nothing. Returns the change's value and what is stored after it.
 */
export async function mutate<T>(
  ctx: GroupContext,
  name: string,
  extraTopics: readonly string[],
  apply: (state: GroupState) => Change<T>,
): Promise<{ value: T; record: GroupRecord | undefined }> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    await backoff(attempt);
    const state = await readGroup(ctx, name, extraTopics);
    const change = apply(state);
    const fenced = change.fenced ?? false;
    if (!change.doc || !differs(state, change.doc, fenced)) {
      return { value: change.value, record: state.record };
    }
    const next = nextRecord(name, state, change.doc, fenced || state.fenced);
    if (await ctx.meta.putGroup(next, state.record?.version ?? null)) {
      return { value: change.value, record: next };
    }
  }
  throw contention(name);
}

/**
 * Reads the group for a request that acts on what members hold (a fetch serving partitions, a
 * member's commit): when reconciling changed the stored document (a lapse, a removal, a new
 * target, a grant), that change is written first, so the request acts only on a durable
 * ownership, guarded by the fence of the state that grants it. Otherwise two instances could
 * reconcile the same stored state differently and, under the one unmoved fence, each serve and
 * commit the same partition for another member. Nothing is written when nothing changed, and a
 * missing group is left missing.
 */
export async function readDurable(
  ctx: GroupContext,
  name: string,
  extraTopics: readonly string[] = [],
): Promise<GroupState> {
  const { value, record } = await mutate(ctx, name, extraTopics, (state) => ({
    value: state,
    doc: state.record ? state.doc : undefined,
  }));
  return { ...value, record, fenced: false };
}

/** Creates the group if it does not exist (a memberless commit or reset may do that). */
export async function ensureGroup(
  ctx: GroupContext,
  state: GroupState,
  name: string,
): Promise<void> {
  if (state.record) return;
  await ctx.meta.putGroup(nextRecord(name, state, state.doc, false), null);
}

function nextRecord(name: string, state: GroupState, doc: GroupDoc, fenced: boolean): GroupRecord {
  const text = serializeGroupDoc(doc);
  if (!state.record) {
    // A new incarnation: offsets another incarnation of this name left behind are invisible.
    return { name, incarnation: ulid(), createdAt: state.now, version: 1, fence: 0, doc: text };
  }
  const { record } = state;
  return {
    ...record,
    version: record.version + 1,
    fence: record.fence + (fenced ? 1 : 0),
    doc: text,
  };
}

export function contention(name: string): SluiceError {
  return new SluiceError("storage_unavailable", `group "${name}" kept changing; retry`, {
    details: { group: name },
  });
}
