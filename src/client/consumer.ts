import { SluiceApiError, isSluiceApiError } from "./errors.js";
import { isAbortError, seg, sleep, type Transport } from "./http.js";
import { randomId } from "./ids.js";
import { toConsumedRecord } from "./records.js";
import type {
  CommitAnswer,
  CommitRequest,
  ConsumedRecord,
  GroupFetchAnswer,
  GroupFetchRequest,
  HeartbeatRequest,
  JoinRequest,
  MemberView,
  TopicPartition,
} from "./types.js";

export interface ConsumerOptions {
  group: string;
  topics: string[];
  clientId?: string;
  /** The member's lease (server default 30000; 6000–300000). Heartbeats go every third of it. */
  sessionTimeoutMs?: number;
  /** Where a partition without a committed offset starts (server default "latest"). */
  resetPolicy?: "earliest" | "latest";
  /** Per fetch (server default 500). */
  maxRecords?: number;
  /** Per fetch (server default 1 MiB). */
  maxBytes?: number;
  /** How long a fetch waits for records (5000; the server caps it at a quarter of the session). */
  waitMs?: number;
}

export interface EachBatchPayload {
  topic: string;
  partition: number;
  records: ConsumedRecord[];
}

export type EachRecordPayload = ConsumedRecord & TopicPartition;

export interface RunHandlers {
  eachBatch?: (batch: EachBatchPayload) => Promise<void>;
  eachRecord?: (record: EachRecordPayload) => Promise<void>;
  /**
   * true: commit a partition's position as soon as its handler succeeded (after each batch; with
   * eachRecord, after the partition's records of one fetch). false: positions are committed
   * together before the next fetch, before a revoked partition is released, and on stop().
   * Either way nothing is fetched past what is committed, since a member's position is its
   * committed offset.
   */
  autoCommit?: boolean;
}

export interface Consumer {
  /**
   * Joins the group and feeds the handlers until stop(); resolves after stop(). A handler that
   * throws ends the run: what was processed is committed, the member leaves, and run() rejects
   * with the handler's error. Do not await stop() inside a handler: stop() waits for it.
   */
  run(handlers: RunHandlers): Promise<void>;
  /** Commits what was processed, leaves the group, and waits for run() to end. */
  stop(): Promise<void>;
  readonly memberId: string | undefined;
  readonly assignments: TopicPartition[];
}

interface Membership {
  id: string;
  generation: number;
  assignments: TopicPartition[];
  revoking: TopicPartition[];
  heartbeatIntervalMs: number;
  /** Send time of the latest answer + its leaseExpiresInMs (RFC 0002 §3): process nothing after. */
  leaseDeadline: number;
  /** Which request the view came from, so a late answer never overwrites a newer one. */
  stamp: number;
  /** The heartbeat found the member gone: the main loop rejoins. */
  lost: boolean;
}

interface Position extends TopicPartition {
  offset: number;
  /** The generation of the fetch that delivered the records (RFC 0002 §4.4). */
  generation: number;
}

const key = (topic: string, partition: number) => `${partition}:${topic}`;
const MAX_OFFSETS_PER_COMMIT = 500;

/**
 * A group member (RFC 0002 §3 and §4.4's client rules): join → heartbeat every
 * heartbeatIntervalMs → fetch (which renews the lease) → handlers → commit with memberId and
 * generation. Revoking partitions are committed, then released by a heartbeat, never while a
 * fetch is in flight; `unknown_member` means rejoin, `fenced` means refresh and drop.
 */
export class GroupConsumer implements Consumer {
  private member: Membership | undefined;
  /** The id of a join that may have reached the server, so that stop() can leave it too. */
  private joining: string | undefined;
  private stamps = 0;
  /** Processed, not yet committed. */
  private readonly positions = new Map<string, Position>();
  private running = false;
  private stopping = false;
  private stopController: AbortController | undefined;
  private fetchController: AbortController | undefined;
  private done: Promise<void> = Promise.resolve();
  private readonly group: string;

  constructor(
    private readonly http: Transport,
    private readonly options: ConsumerOptions,
  ) {
    if (!options.group) throw new TypeError("ConsumerOptions.group is required");
    if (!options.topics?.length) throw new TypeError("ConsumerOptions.topics must not be empty");
    this.group = seg(options.group);
  }

  get memberId(): string | undefined {
    return this.member?.id;
  }

  get assignments(): TopicPartition[] {
    return (this.member?.assignments ?? []).map(({ topic, partition }) => ({ topic, partition }));
  }

  async run(handlers: RunHandlers): Promise<void> {
    if (this.running) throw new Error("the consumer is already running");
    if (!handlers.eachBatch === !handlers.eachRecord) {
      throw new TypeError("run() needs exactly one of eachBatch and eachRecord");
    }
    this.running = true;
    this.stopping = false;
    const stop = new AbortController();
    this.stopController = stop;
    let finished!: () => void;
    this.done = new Promise((resolve) => (finished = resolve));
    let failure: { error: unknown } | undefined;
    const heartbeats = this.heartbeatLoop(stop.signal);
    try {
      await this.loop(handlers, handlers.autoCommit ?? true, stop.signal);
    } catch (error) {
      if (!(this.stopping && isAbortError(error))) failure = { error };
    } finally {
      stop.abort();
      await heartbeats;
      await this.shutdown();
      this.running = false;
      finished();
    }
    if (failure) throw failure.error;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.stopController?.abort();
    await this.done;
  }

  private async loop(handlers: RunHandlers, autoCommit: boolean, stop: AbortSignal) {
    while (!this.stopping) {
      try {
        if (this.member?.lost) this.drop();
        if (!this.member) {
          await this.join(stop);
          continue;
        }
        // Nothing is fetched past an uncommitted position: the server would serve it again.
        if (this.positions.size > 0) await this.commit();
        if (this.member?.revoking.length) await this.release();
        if (!this.member || this.member.lost || this.stopping) continue;
        const answer = await this.fetchRecords(stop);
        if (answer) await this.process(answer, handlers, autoCommit);
      } catch (err) {
        if (this.stopping && isAbortError(err)) return;
        if (isSluiceApiError(err, "unknown_member") || isSluiceApiError(err, "group_not_found")) {
          this.drop();
        } else if (isSluiceApiError(err, "fenced")) {
          // A fresh view drops what is no longer ours; if even that fails, the next round retries.
          await this.refresh().catch(() => undefined);
        } else if (err instanceof SluiceApiError && err.retryable) {
          // The transport gave up for now; a consumer carries on until it is stopped.
          await sleep(this.http.maxBackoffMs, stop).catch(() => undefined);
        } else {
          throw err;
        }
      }
    }
  }

  private async join(stop: AbortSignal): Promise<void> {
    const memberId = randomId();
    this.joining = memberId;
    const body: JoinRequest = { topics: this.options.topics, memberId };
    if (this.options.clientId !== undefined) body.clientId = this.options.clientId;
    if (this.options.sessionTimeoutMs !== undefined) {
      body.sessionTimeoutMs = this.options.sessionTimeoutMs;
    }
    if (this.options.resetPolicy !== undefined) body.resetPolicy = this.options.resetPolicy;
    const sentAt = Date.now();
    const stamp = ++this.stamps;
    const { body: view } = await this.http.request<MemberView>({
      method: "POST",
      path: `/v1/groups/${this.group}/members`,
      body,
      signal: stop,
    });
    this.positions.clear();
    this.member = {
      id: view.memberId,
      generation: view.generation,
      assignments: view.assignments,
      revoking: view.revoking,
      heartbeatIntervalMs: view.heartbeatIntervalMs,
      leaseDeadline: sentAt + view.leaseExpiresInMs,
      stamp,
      lost: false,
    };
    this.joining = undefined;
  }

  /** Forgets the membership (the server no longer knows it); processed positions go with it. */
  private drop(): void {
    this.member = undefined;
    this.positions.clear();
  }

  private apply(view: MemberView, sentAt: number, stamp: number): void {
    const member = this.member;
    if (!member || member.id !== view.memberId || stamp < member.stamp) return;
    member.stamp = stamp;
    member.generation = view.generation;
    member.assignments = view.assignments;
    member.revoking = view.revoking;
    member.heartbeatIntervalMs = view.heartbeatIntervalMs;
    member.leaseDeadline = sentAt + view.leaseExpiresInMs;
  }

  private async heartbeat(member: Membership, body: HeartbeatRequest, signal?: AbortSignal) {
    const sentAt = Date.now();
    const stamp = ++this.stamps;
    const { body: view } = await this.http.request<MemberView>({
      method: "POST",
      path: `/v1/groups/${this.group}/members/${seg(member.id)}/heartbeat`,
      body,
      ...(signal ? { signal } : {}),
    });
    this.apply(view, sentAt, stamp);
    return view;
  }

  /** A fresh view after `fenced`: the partitions no longer held drop out of it. */
  private async refresh(): Promise<void> {
    const member = this.member;
    if (!member) return;
    try {
      await this.heartbeat(member, {});
    } catch (err) {
      if (isSluiceApiError(err, "unknown_member") || isSluiceApiError(err, "group_not_found")) {
        if (this.member === member) this.drop();
      } else {
        throw err;
      }
    }
  }

  /** §4.4 rule 2: commit what was processed of the revoking partitions, then release them. */
  private async release(): Promise<void> {
    await this.commit();
    const member = this.member;
    if (!member || member.lost || member.revoking.length === 0) return;
    const released = member.revoking.map(({ topic, partition }) => ({ topic, partition }));
    await this.heartbeat(member, { released });
  }

  private async fetchRecords(stop: AbortSignal): Promise<GroupFetchAnswer | undefined> {
    const member = this.member!;
    const controller = new AbortController();
    const onStop = () => controller.abort(stop.reason);
    stop.addEventListener("abort", onStop, { once: true });
    this.fetchController = controller;
    const body: GroupFetchRequest = { waitMs: this.options.waitMs ?? 5000, autoCommit: false };
    if (this.options.maxRecords !== undefined) body.maxRecords = this.options.maxRecords;
    if (this.options.maxBytes !== undefined) body.maxBytes = this.options.maxBytes;
    const sentAt = Date.now();
    const stamp = ++this.stamps;
    try {
      const { body: answer } = await this.http.request<GroupFetchAnswer>({
        method: "POST",
        path: `/v1/groups/${this.group}/members/${seg(member.id)}/fetch`,
        body,
        signal: controller.signal,
      });
      this.apply(answer, sentAt, stamp);
      return answer;
    } catch (err) {
      // Cut short by stop(), or by a heartbeat that saw a revocation or a lost membership.
      if (controller.signal.aborted) return undefined;
      throw err;
    } finally {
      stop.removeEventListener("abort", onStop);
      if (this.fetchController === controller) this.fetchController = undefined;
    }
  }

  private async process(
    answer: GroupFetchAnswer,
    handlers: RunHandlers,
    autoCommit: boolean,
  ): Promise<void> {
    for (const part of answer.partitions) {
      const member = this.member;
      if (this.stopping || !member || member.lost) return;
      if (part.records.length === 0) continue;
      // Revoked meanwhile: left to its next owner from the committed offset (§4.4 rule 2).
      if (
        !member.assignments.some((a) => a.topic === part.topic && a.partition === part.partition)
      ) {
        continue;
      }
      // §4.4 rule 1: past the lease deadline the partitions may be someone else's already.
      if (Date.now() > member.leaseDeadline) return;
      const { topic, partition } = part;
      const records = part.records.map(toConsumedRecord);
      const track = (offset: number) =>
        this.positions.set(key(topic, partition), {
          topic,
          partition,
          offset,
          generation: answer.generation,
        });
      if (handlers.eachBatch) {
        await handlers.eachBatch({ topic, partition, records });
        track(part.nextOffset);
      } else {
        for (const record of records) {
          await handlers.eachRecord!({ ...record, topic, partition });
          track(record.offset + 1);
          if (this.stopping) break;
        }
      }
      if (autoCommit) await this.commit();
    }
  }

  /** Commits the processed positions, per generation; fenced partitions are dropped (§3). */
  private async commit(): Promise<void> {
    for (let attempt = 0; this.positions.size > 0 && attempt < 10; attempt++) {
      const member = this.member;
      if (!member || member.lost) return;
      const byGeneration = new Map<number, Position[]>();
      for (const p of this.positions.values()) {
        byGeneration.set(p.generation, [...(byGeneration.get(p.generation) ?? []), p]);
      }
      try {
        for (const [generation, all] of byGeneration) {
          for (let i = 0; i < all.length; i += MAX_OFFSETS_PER_COMMIT) {
            const chunk = all.slice(i, i + MAX_OFFSETS_PER_COMMIT);
            const body: CommitRequest = {
              offsets: chunk.map(({ topic, partition, offset }) => ({ topic, partition, offset })),
              memberId: member.id,
              generation,
            };
            await this.http.request<CommitAnswer>({
              method: "POST",
              path: `/v1/groups/${this.group}/offsets`,
              body,
            });
            for (const p of chunk) {
              if (this.positions.get(key(p.topic, p.partition)) === p) {
                this.positions.delete(key(p.topic, p.partition));
              }
            }
          }
        }
      } catch (err) {
        if (!isSluiceApiError(err, "fenced")) throw err;
        // Not ours any more (released, or a newer tenure): its records are the next owner's.
        const lost = fencedPartitions(err);
        for (const p of lost ?? [...this.positions.values()]) {
          this.positions.delete(key(p.topic, p.partition));
        }
        await this.refresh();
      }
    }
  }

  /** Heartbeats every heartbeatIntervalMs while run() lasts; never releases anything itself. */
  private async heartbeatLoop(stop: AbortSignal): Promise<void> {
    while (!stop.aborted) {
      try {
        await sleep(this.member?.heartbeatIntervalMs ?? 1000, stop);
      } catch {
        return;
      }
      const member = this.member;
      if (!member || member.lost) continue;
      try {
        await this.heartbeat(member, {}, stop);
        // A revocation is handled between fetches: end a waiting fetch so it is released soon.
        if (this.member === member && member.revoking.length > 0) this.fetchController?.abort();
      } catch (err) {
        if (stop.aborted) return;
        if (isSluiceApiError(err, "unknown_member") || isSluiceApiError(err, "group_not_found")) {
          if (this.member === member) {
            member.lost = true;
            this.fetchController?.abort();
          }
        }
        // Anything else: the next beat (or the next fetch, which renews the lease) tries again.
      }
    }
  }

  /** After the loop: commit what was processed, then leave (best effort: the lease lapses anyway). */
  private async shutdown(): Promise<void> {
    const member = this.member;
    if (member && !member.lost) {
      await this.commit().catch(() => undefined);
    }
    const ids = [member?.id, this.joining].filter((id): id is string => id !== undefined);
    for (const id of new Set(ids)) {
      await this.http
        .request({ method: "DELETE", path: `/v1/groups/${this.group}/members/${seg(id)}` })
        .catch(() => undefined);
    }
    this.member = undefined;
    this.joining = undefined;
    this.positions.clear();
  }
}

function fencedPartitions(err: SluiceApiError): TopicPartition[] | undefined {
  const partitions = (err.details as { partitions?: unknown } | undefined)?.partitions;
  if (!Array.isArray(partitions)) return undefined;
  return partitions.filter(
    (p): p is TopicPartition =>
      typeof p === "object" &&
      p !== null &&
      typeof (p as TopicPartition).topic === "string" &&
      typeof (p as TopicPartition).partition === "number",
  );
}
