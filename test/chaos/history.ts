/**
 * What a chaos run observed, operation by operation (Jepsen-style): the checker reads nothing
 * else. Every value written carries a unique id, so a read-back record is matched to the
 * operation that wrote it wherever it landed.
 */

/**
 * `ok`: acknowledged. `failed`: definitely not applied (a 4xx, or an error the API documents as
 * leaving nothing behind). `unknown`: no answer or an ambiguous one (timeout, connection reset,
 * 5xx): it may or may not have been applied, but at most once.
 */
export type Outcome = "ok" | "failed" | "unknown";

export interface ProduceOp {
  kind: "produce";
  /** The record's unique id (carried in its value or a header). */
  id: string;
  topic: string;
  /** Idempotent producers (Producer-Id/Epoch/Seq): a resend may never add a second copy. */
  idempotent: boolean;
  /** How many times this same id was sent (a plain producer's resend may duplicate it). */
  attempts: number;
  outcome: Outcome;
  /** Where the acknowledgement said it is (outcome ok only). */
  ack?: { partition: number; offset: number };
}

/** An observation of a group's committed offset (from a commit's answer or a describe). */
export interface CommitObservation {
  kind: "committed";
  group: string;
  topic: string;
  partition: number;
  offset: number;
  /** A deliberate rewind (`rewind: true` / an offsets reset) may move it back; nothing else. */
  rewind: boolean;
  /** Order of observation (a counter or a timestamp from one clock). */
  seq: number;
  /**
   * Optional, on the same clock as `seq`: when the observing request was sent. The stored offset
   * was `offset` at some moment in [invokedSeq, seq], so two observations are ordered only when
   * one's `seq` is below the other's `invokedSeq`. Without it the observation is a point at `seq`.
   */
  invokedSeq?: number;
}

/** Records a consumer was handed (group fetch or plain fetch). */
export interface ConsumeOp {
  kind: "consume";
  group: string | null;
  topic: string;
  partition: number;
  records: { offset: number; id: string }[];
}

export type Op = ProduceOp | CommitObservation | ConsumeOp;

/** One partition read from its log start to its log end after the run. */
export interface FinalPartition {
  topic: string;
  partition: number;
  logStartOffset: number;
  logEndOffset: number;
  records: { offset: number; id: string }[];
}

/** A group's committed offsets after the run. */
export interface FinalGroup {
  group: string;
  topic: string;
  partition: number;
  committed: number | null;
}

export interface FinalState {
  partitions: FinalPartition[];
  groups: FinalGroup[];
}

export type ViolationKind =
  | "lost" // an acknowledged record is not in the log
  | "wrong_offset" // an acknowledged record is elsewhere than its acknowledgement said
  | "duplicate" // one id at two offsets where that is not allowed
  | "gap" // offsets of a partition are not contiguous from log start to log end
  | "phantom" // a record no operation wrote, or a definitely failed one, is visible
  | "commit_backwards" // a committed offset moved back without a rewind
  | "not_consumed"; // a record below a group's final committed offset was never handed out

export interface Violation {
  kind: ViolationKind;
  detail: string;
}
