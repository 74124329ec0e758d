import { ulid } from "ulid";
import { SluiceError } from "../errors.js";
import type { GroupDoc, PartitionRef, ResetPolicy } from "./doc.js";
import { newMember, release, removeMember, renew, renewalDue, subscribe } from "./membership.js";
import { reconcile } from "./reconcile.js";
import {
  differs,
  mutate,
  requireGroup,
  requireTopic,
  type Change,
  type GroupContext,
  type GroupState,
} from "./state.js";
import { memberView, type MemberView } from "./views.js";

/** Join, heartbeat and leave (docs/rfcs/0002-consumer-groups.md §3, §4). */

export interface JoinRequest {
  topics: string[];
  memberId?: string;
  clientId?: string | null;
  sessionTimeoutMs?: number;
  resetPolicy?: ResetPolicy;
}

export interface HeartbeatRequest {
  released?: PartitionRef[];
  topics?: string[];
}

export interface MemberAnswer {
  view: MemberView;
  /** The state the view was made from, `record` being what is stored after the request. */
  state: GroupState;
}

/** Joins, creating the group if needed. `created` is false for a retried join of a live member. */
export async function join(
  ctx: GroupContext,
  name: string,
  request: JoinRequest,
): Promise<{ created: boolean; view: MemberView }> {
  const sessionTimeoutMs = request.sessionTimeoutMs ?? ctx.config.sessionTimeoutMs;
  const { minSessionTimeoutMs: min, maxSessionTimeoutMs: max } = ctx.config;
  if (!Number.isInteger(sessionTimeoutMs) || sessionTimeoutMs < min || sessionTimeoutMs > max) {
    throw new SluiceError("invalid_request", `sessionTimeoutMs must be from ${min} to ${max}`, {
      details: { sessionTimeoutMs },
    });
  }
  const memberId = request.memberId ?? ulid();
  const { value } = await mutate(ctx, name, request.topics, (state) => {
    for (const topic of request.topics) requireTopic(state, topic);
    const { doc, now } = state;
    const existing = doc.members[memberId];
    if (existing && !existing.dead) {
      // The answer to an earlier join was lost: this is the same member, not a second one.
      const change = beat(ctx, state, memberId, { topics: request.topics });
      return { ...change, value: { created: false, view: memberView(change.doc, memberId, now) } };
    }
    if (existing) {
      // Its lapsed session still holds partitions; a fresh member under the same id would be
      // served them before the old session's deadline has surely passed on every clock.
      const retryAfterMs = existing.leaseExpiresAt + ctx.config.clockSkewMs - now + 1;
      throw new SluiceError("conflict", `member "${memberId}" lapsed and is being removed`, {
        details: { memberId, retryAfterMs },
      });
    }
    const members = Object.keys(doc.members).length;
    if (members >= ctx.config.maxMembers) {
      throw new SluiceError("group_full", `group "${name}" has the maximum of ${members} members`, {
        details: { group: name, maxMembers: ctx.config.maxMembers },
      });
    }
    if (request.resetPolicy !== undefined && request.resetPolicy !== doc.resetPolicy) {
      if (members > 0) {
        throw new SluiceError(
          "conflict",
          `group "${name}" has members and its reset policy is "${doc.resetPolicy}"`,
          { details: { group: name, resetPolicy: doc.resetPolicy } },
        );
      }
      doc.resetPolicy = request.resetPolicy;
    }
    doc.members[memberId] = newMember(
      { clientId: request.clientId ?? null, topics: request.topics, sessionTimeoutMs },
      now,
    );
    checkPartitionLimit(ctx, state);
    const next = reconcile(doc, now, state.topics, ctx.config.clockSkewMs, true);
    return {
      doc: next.doc,
      fenced: next.fenced,
      value: { created: true, view: memberView(next.doc, memberId, now) },
    };
  });
  return value;
}

/** Renews the lease, acknowledges releases and changes the subscription. */
export async function heartbeat(
  ctx: GroupContext,
  name: string,
  memberId: string,
  request: HeartbeatRequest,
): Promise<MemberAnswer> {
  const { value, record } = await mutate(ctx, name, request.topics ?? [], (state) => {
    requireLiveMember(state, name, memberId);
    const change = beat(ctx, state, memberId, request);
    return { ...change, value: { ...state, doc: change.doc, fenced: false } };
  });
  const state = { ...value, record };
  return { view: memberView(state.doc, memberId, state.now), state };
}

/** Leaves the group; leaving twice, or after the lease lapsed, is not an error. */
export async function leave(ctx: GroupContext, name: string, memberId: string): Promise<void> {
  await mutate(ctx, name, [], (state): Change<void> => {
    requireGroup(state, name);
    const { doc, now } = state;
    if (!doc.members[memberId]) return { value: undefined };
    const released = removeMember(doc, memberId);
    const next = reconcile(doc, now, state.topics, ctx.config.clockSkewMs, true);
    return { value: undefined, doc: next.doc, fenced: released || next.fenced };
  });
}

/** Only a live member may renew, fetch or commit; anyone else must join (again). */
export function requireLiveMember(state: GroupState, name: string, memberId: string): void {
  requireGroup(state, name);
  const member = state.doc.members[memberId];
  if (!member || member.dead) {
    throw new SluiceError(
      "unknown_member",
      `"${memberId}" is not a member of group "${name}"; join again`,
      { details: { group: name, memberId } },
    );
  }
}

/**
 * A live member's heartbeat applied to the reconciled state. Its lease is renewed when the
 * document is written anyway, or when the renewal is due; otherwise the answer needs no write.
 */
function beat(
  ctx: GroupContext,
  state: GroupState,
  memberId: string,
  request: HeartbeatRequest,
): { doc: GroupDoc; fenced: boolean } {
  const { doc, now } = state;
  const member = doc.members[memberId]!;
  let resubscribed = false;
  if (request.topics) {
    for (const topic of request.topics) requireTopic(state, topic);
    resubscribed = subscribe(member, request.topics);
    checkPartitionLimit(ctx, state);
  }
  const released = request.released ? release(member, request.released) : false;
  const next = reconcile(doc, now, state.topics, ctx.config.clockSkewMs, resubscribed);
  const fenced = released || next.fenced;
  const renewed = next.doc.members[memberId]!;
  if (differs(state, next.doc, fenced) || renewalDue(renewed, now)) renew(renewed, now);
  return { doc: next.doc, fenced };
}

/** All subscriptions together may cover at most maxPartitions, which bounds the document. */
function checkPartitionLimit(ctx: GroupContext, state: GroupState): void {
  const subscribed = new Set(Object.values(state.doc.members).flatMap((m) => m.topics));
  let partitions = 0;
  for (const topic of subscribed) partitions += state.topics.get(topic)?.partitions ?? 0;
  if (partitions > ctx.config.maxPartitions) {
    throw new SluiceError(
      "group_full",
      `the group's subscriptions would cover ${partitions} partitions, over ${ctx.config.maxPartitions}`,
      { details: { partitions, maxPartitions: ctx.config.maxPartitions } },
    );
  }
}
