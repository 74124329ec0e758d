import {
  comparePartitions,
  heldBy,
  partitionKey,
  type GroupDoc,
  type MemberDoc,
  type PartitionRef,
} from "./doc.js";

/**
 * What a request does to a (reconciled) group document. These only remove from held sets or
 * add a member holding nothing; handing partitions out is left to reconcile's grant step, so
 * invariant H cannot be broken here.
 */

export interface MemberRequest {
  clientId: string | null;
  topics: string[];
  sessionTimeoutMs: number;
}

export function newMember(request: MemberRequest, now: number): MemberDoc {
  return {
    clientId: request.clientId,
    topics: [...new Set(request.topics)].sort(),
    sessionTimeoutMs: request.sessionTimeoutMs,
    joinedAt: now,
    leaseExpiresAt: now + request.sessionTimeoutMs,
    dead: false,
    target: [],
    assigned: [],
    revoking: [],
  };
}

/** Removes the member; true if it held anything (the fence must move). */
export function removeMember(doc: GroupDoc, memberId: string): boolean {
  const member = doc.members[memberId];
  if (!member) return false;
  delete doc.members[memberId];
  return heldBy(member).length > 0;
}

/**
 * Acknowledges revocations: listed partitions in the member's revoking set stop being held.
 * Anything else is ignored, so a retried heartbeat is harmless. True if something was released.
 */
export function release(member: MemberDoc, released: readonly PartitionRef[]): boolean {
  const gone = new Set(released.map(([t, p]) => partitionKey(t, p)));
  const before = member.revoking.length;
  member.revoking = member.revoking.filter(([t, p]) => !gone.has(partitionKey(t, p)));
  return member.revoking.length < before;
}

/** Sets a new subscription; true if it differs from the current one. */
export function subscribe(member: MemberDoc, topics: readonly string[]): boolean {
  const next = [...new Set(topics)].sort();
  if (next.join("\u0000") === member.topics.join("\u0000")) return false;
  member.topics = next;
  return true;
}

/**
 * A renewal needs writing only once less than half the session remains (§4.3), which keeps
 * renewals at one write per half session; a write for any other reason renews as well.
 */
export function renewalDue(member: MemberDoc, now: number): boolean {
  return member.leaseExpiresAt - now < member.sessionTimeoutMs / 2;
}

export function renew(member: MemberDoc, now: number): void {
  member.leaseExpiresAt = now + member.sessionTimeoutMs;
}

/** Targeted but held by another member: granted once that member lets go. */
export function pendingOf(member: MemberDoc): PartitionRef[] {
  const held = new Set(heldBy(member).map(([t, p]) => partitionKey(t, p)));
  return member.target.filter(([t, p]) => !held.has(partitionKey(t, p))).sort(comparePartitions);
}

export type GroupStatus = "empty" | "reconciling" | "stable";

/** §6: reconciling while any partition is on its way from one member to another. */
export function groupState(doc: GroupDoc): GroupStatus {
  const members = Object.values(doc.members);
  if (members.length === 0) return "empty";
  const moving = members.some((m) =>
    m.dead ? heldBy(m).length > 0 : m.revoking.length > 0 || pendingOf(m).length > 0,
  );
  return moving ? "reconciling" : "stable";
}
