/**
 * A Jepsen-style crash harness (issue #8): several real `sluice serve` processes on one store,
 * producers and a consumer group driving load through random servers, and a nemesis that
 * SIGKILLs (then restarts) and SIGSTOPs (then SIGCONTs) servers. Every operation is recorded in
 * the shared history (history.ts) as ok, failed or unknown, the log and the group are read back
 * once everything has settled, and the checker judges the whole history.
 *
 * Reproducibility: the seed fixes every random choice (the nemesis schedule, what each producer
 * sends where, batch sizes, pauses). Each actor draws from its own stream derived from the seed,
 * so one actor's choices do not depend on how many draws another made. Real processes and
 * sockets still interleave as the OS schedules them, so a seed replays the same plan of faults
 * and load, not the same interleaving.
 *
 * Loopback only: the servers listen on 127.0.0.1, the cloud stand-ins too.
 */
import { DeleteTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { ensureTable } from "../../src/meta/dynamodb.js";
import startStandins from "../global-setup.js";
import { makeDataDir, startServer, type ServerProcess } from "../support/server-process.js";
import { s3Endpoint } from "../support/standins/s3.js";
import { check } from "./checker.js";
import type {
  CommitObservation,
  ConsumeOp,
  FinalGroup,
  FinalPartition,
  FinalState,
  Op,
  Outcome,
  ProduceOp,
  Violation,
} from "./history.js";
import { Prng, chaosSeed } from "./prng.js";

export type CrashBackend = "embedded" | "s3+dynamodb";

export interface CrashScenarioOptions {
  seed: number;
  backend: CrashBackend;
  /** Server processes sharing the store (at least 2, so one can always be disrupted). */
  servers: number;
  /** How long load and nemesis run; settling, draining and checking come on top. */
  durationMs: number;
  /** Producer loops; the even-numbered ones are idempotent, the others plain. */
  producers: number;
  /** Members of the one consumer group. */
  consumers: number;
  /**
   * Load goes on past `durationMs` until the nemesis has killed and paused servers at least
   * this often (slow machines restart servers slowly), but never past `maxDurationMs`.
   */
  minCrashes?: number;
  minPauses?: number;
  /** Default 2 × durationMs. */
  maxDurationMs?: number;
  /**
   * Per member and loop turn, the odds that the member "crashes" (drops its session without a
   * word, so its lease must lapse before its partitions move) or leaves cleanly; each then
   * rejoins under a new id. Only until 8 s before the load ends. Default 0.004.
   */
  memberChurn?: number;
  /**
   * Lets maintenance roll segments under the nemesis: chunks may roll once 3 minutes old (the
   * least SLUICE_ROLL_MIN_AGE_MS allows), so this only matters for scenarios of 4+ minutes.
   */
  rolls?: boolean;
  /** Progress lines (server restarts, phases); silent when absent. */
  log?: (line: string) => void;
}

export interface OutcomeCounts {
  ok: number;
  failed: number;
  unknown: number;
}

export interface CrashResult {
  seed: number;
  backend: CrashBackend;
  servers: number;
  /** Load and nemesis time asked for. */
  durationMs: number;
  /** Load and nemesis time it took to reach minCrashes and minPauses. */
  loadMs: number;
  /** Wall time of the whole scenario: start-up, load, settle, drain, read-back and check. */
  elapsedMs: number;
  /** Produced records (one ProduceOp each) by outcome. */
  ops: OutcomeCounts;
  /** Produce requests by outcome (a request carries 1-3 records). */
  requests: OutcomeCounts;
  /** Extra sends of idempotent requests whose first answer was lost. */
  resends: number;
  /** Records handed to group members (a record handed out twice counts twice). */
  consumed: number;
  /** Commit observations given to the checker (commit answers and describes). */
  commitObservations: number;
  /** HTTP answers by call kind and status ("lost" for no answer). */
  statuses: Record<string, Record<string, number>>;
  crashes: number;
  pauses: number;
  restarts: number;
  /** Group members that dropped their session without leaving, or left, and rejoined. */
  memberCrashes: number;
  memberLeaves: number;
  /** The group had committed every partition's log end before the read-back. */
  drained: boolean;
  /** Records in the log after the run. */
  finalRecords: number;
  /** Sealed segments after the run (rolled by maintenance; only with `rolls`). */
  sealedSegments: number;
  violations: Violation[];
  /** Answers the protocol says should not happen, failed restarts, and the like. */
  anomalies: string[];
}

const TOPIC = "chaos";
const GROUP = "chaos-group";
/** The shortest session a member may ask for (RFC 0002 §3). */
const SESSION_MS = 6_000;
const PRODUCE_TIMEOUT_MS = 3_000;
const GROUP_CALL_TIMEOUT_MS = 3_000;
/** The harness's own reads: a page may span a hundred small sealed segments, read cold. */
const READ_TIMEOUT_MS = 30_000;
const READ_PAGE_RECORDS = 250;
/** After the load stops: idempotent producers resend what is still unanswered this long. */
const SETTLE_MS = 20_000;
/** How long the group may take to commit every log end once the producers are done. */
const DRAIN_MS = 30_000;
/**
 * From the end of the load: every loop is told to give up, and restarts to stop trying, by
 * then; the read-back retries a failed read until then (or at least 20 s).
 */
const WIND_DOWN_MS = 75_000;

/* ------------------------------------------------------------------------------------------ */
/* Randomness                                                                                   */
/* ------------------------------------------------------------------------------------------ */

type Rng = Prng;

/** An independent stream for one actor, derived from the scenario's seed and a label. */
function stream(seed: number, label: string): Rng {
  // FNV-1a over the label, mixed with the seed: a stable 32-bit sub-seed.
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  return new Prng(h >>> 0);
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP                                                                                         */
/* ------------------------------------------------------------------------------------------ */

type Answer = { answered: true; status: number; body: any } | { answered: false; why: string };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits for `promise`, but no longer than `ms` (and leaves no timer behind). */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms)))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One call with a hard time limit covering the body too. Anything short of a complete, parsable
 * answer (refused, reset, timed out, cut mid-body) is `answered: false`.
 */
async function call(
  base: string,
  method: string,
  path: string,
  body: unknown,
  timeoutMs: number,
  headers: Record<string, string> = {},
): Promise<Answer> {
  try {
    const res = await fetch(base + path, {
      method,
      signal: AbortSignal.timeout(timeoutMs),
      headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // A body cut short by a dying server is no answer.
      return { answered: false, why: `unparsable ${res.status} body (${text.length} bytes)` };
    }
    return { answered: true, status: res.status, body: parsed };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    return { answered: false, why: cause ?? (err as Error).name ?? String(err) };
  }
}

const errorCode = (a: Answer): string | undefined =>
  a.answered ? (a.body?.error?.code as string | undefined) : undefined;

const describeStatus = (a: Answer): string => (a.answered ? String(a.status) : a.why);

const describeAnswer = (a: Answer): string =>
  a.answered ? `${a.status} ${JSON.stringify(a.body).slice(0, 300)}` : `no answer (${a.why})`;

/* ------------------------------------------------------------------------------------------ */
/* The servers                                                                                  */
/* ------------------------------------------------------------------------------------------ */

interface Slot {
  index: number;
  /** A (re)start is under way. */
  starting: boolean;
  /** The running process; undefined while killed or restarting. */
  server: ServerProcess | undefined;
  paused: boolean;
}

class Cluster {
  readonly slots: Slot[];
  /** Every process ever started, so that the finally can kill each one. */
  readonly started = new Set<ServerProcess>();
  restarts = 0;
  /** Set by killAll(): nothing may start any more. */
  closing = false;
  /** No new start attempt after this (Date.now() clock); set when the load ends. */
  startsUntil = Infinity;

  constructor(
    private readonly dataDir: string,
    private readonly env: Record<string, string>,
    count: number,
    private readonly note: (line: string) => void,
    private readonly anomaly: (line: string) => void,
  ) {
    this.slots = Array.from({ length: count }, (_, index) => ({
      index,
      server: undefined,
      paused: false,
      starting: false,
    }));
  }

  async start(slot: Slot): Promise<void> {
    if (this.closing) throw new Error("the scenario is over");
    const server = await startServer({
      dataDir: this.dataDir,
      env: this.env,
      // Generous: a loaded 2-core machine takes its time to load the server through tsx.
      startTimeoutMs: 60_000,
    });
    this.started.add(server);
    if (this.closing) {
      // Came up after killAll() looked: never leave it running.
      server.kill("SIGKILL");
      throw new Error("the scenario is over");
    }
    slot.server = server;
    slot.paused = false;
    // A server that dies on its own (not by the nemesis) is a finding.
    void server.exited.then((exit) => {
      if (exit.signal === "SIGKILL" || exit.signal === "SIGTERM") return;
      const { stderr } = server.output();
      this.anomaly(
        `server ${slot.index} (pid ${server.pid}) exited by itself: ${JSON.stringify(exit)} ${stderr.slice(-1500)}`,
      );
      if (slot.server === server) slot.server = undefined;
    });
  }

  /** Restarts a slot, retrying a failed start a few times. */
  /**
   * (Re)starts a slot, trying again after a failed start until the scenario ends or its
   * `startsUntil` passes (one attempt takes at most the start timeout).
   */
  async restart(slot: Slot, first = false): Promise<void> {
    const what = first ? "start" : "restart";
    slot.starting = true;
    try {
      await this.#startAgain(slot, first, what);
    } finally {
      slot.starting = false;
    }
  }

  async #startAgain(slot: Slot, first: boolean, what: string): Promise<void> {
    for (let attempt = 1; !this.closing && Date.now() < this.startsUntil; attempt++) {
      try {
        await this.start(slot);
        if (!first) this.restarts++;
        this.note(`server ${slot.index} ${what}ed at ${slot.server!.url}`);
        return;
      } catch (err) {
        if (this.closing) return;
        this.anomaly(
          `${what} of server ${slot.index}, attempt ${attempt}: ${String(err).slice(0, 3000)}`,
        );
        await sleep(1_000);
      }
    }
  }

  /** A random server whose process is alive (running or paused: clients cannot tell). */
  pick(rng: Rng): string | undefined {
    const alive = this.slots.filter((s) => s.server !== undefined);
    return alive.length === 0 ? undefined : rng.pick(alive).server!.url;
  }

  /** A random server that is running and not paused, for the harness's own reads. */
  pickRunning(rng: Rng): string | undefined {
    const running = this.slots.filter((s) => s.server !== undefined && !s.paused);
    return running.length === 0 ? undefined : rng.pick(running).server!.url;
  }

  resumeAll(): void {
    for (const slot of this.slots) {
      if (slot.server && slot.paused) {
        slot.server.kill("SIGCONT");
        slot.paused = false;
      }
    }
  }

  /** SIGCONTs paused servers and restarts missing ones not being restarted already. */
  async healAll(): Promise<void> {
    this.resumeAll();
    await Promise.all(
      this.slots.filter((s) => !s.server && !s.starting).map((s) => this.restart(s)),
    );
  }

  async killAll(): Promise<void> {
    this.closing = true;
    const all = [...this.started];
    for (const server of all) {
      server.kill("SIGCONT");
      server.kill("SIGKILL");
    }
    await Promise.all(all.map((s) => within(s.exited, 10_000)));
  }
}

/* ------------------------------------------------------------------------------------------ */
/* The run                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/** Shared by every actor of one scenario. */
class Run {
  readonly produceOps: ProduceOp[] = [];
  readonly consumeOps: ConsumeOp[] = [];
  readonly observations: CommitObservation[] = [];
  readonly anomalies: string[] = [];
  readonly statuses: Record<string, Record<string, number>> = {};
  readonly requests: OutcomeCounts = { ok: 0, failed: 0, unknown: 0 };
  resends = 0;
  /** The nemesis's pending restarts and SIGCONTs. */
  readonly recoveries: Promise<void>[] = [];
  crashes = 0;
  pauses = 0;
  memberCrashes = 0;
  memberLeaves = 0;
  /** Members churn until then (Date.now() clock). */
  churnUntil = 0;
  /**
   * One clock for observations: read when a request is sent (`invokedSeq`) and when its answer
   * arrives (`seq`), so the checker orders two observations only when one was answered before
   * the other was sent.
   */
  observationSeq = 0;

  /** Producers start no new request once this is set. */
  stopProducing = false;
  /** Idempotent resends and every other loop give up once this is set. */
  giveUp = false;
  /** The nemesis stops once this is set. */
  stopNemesis = false;
  /** Group members stop once this is set. */
  stopConsumers = false;

  constructor(
    readonly cluster: Cluster,
    readonly partitions: number,
    readonly memberChurn: number,
    /** Progress lines (the scenario's `log`). */
    readonly note: (line: string) => void,
  ) {}

  count(kind: string, a: Answer): void {
    const key = a.answered ? String(a.status) : "lost";
    const byStatus = (this.statuses[kind] ??= {});
    byStatus[key] = (byStatus[key] ?? 0) + 1;
  }

  anomaly(line: string): void {
    if (this.anomalies.length < 200) this.anomalies.push(line);
  }

  /** The URL of a random live server, waiting briefly while none is. */
  async server(rng: Rng): Promise<string | undefined> {
    for (let i = 0; i < 200 && !this.giveUp; i++) {
      const url = this.cluster.pick(rng);
      if (url !== undefined) return url;
      await sleep(25);
    }
    return undefined;
  }
}

/** Sleeps, but wakes early once `stop()` is true. */
async function nap(ms: number, stop: () => boolean): Promise<void> {
  const until = Date.now() + ms;
  while (!stop() && Date.now() < until) await sleep(Math.min(50, until - Date.now()));
}

/* ------------------------------------------------------------------------------------------ */
/* Producers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

function classify(a: Answer): Outcome {
  if (!a.answered) return "unknown";
  if (a.status === 200) return "ok";
  if (a.status >= 400 && a.status < 500) return "failed";
  return "unknown";
}

/**
 * One producer: requests of 1-3 records, each record's value and `id` header carrying a unique
 * id. An idempotent producer (Producer-Id/Epoch/Seq, one request in flight, an explicit
 * partition per request) resends a request without an answer, unchanged, to any live server
 * until it is answered; a plain one never sends an id twice.
 */
async function producer(run: Run, seed: number, n: number, idempotent: boolean): Promise<void> {
  const rng = stream(seed, `producer-${n}`);
  const jitter = stream(seed, `producer-${n}-jitter`);
  const producerId = `chaos-${seed}-p${n}`;
  let epoch = 0;
  const seqs = new Map<number, number>();
  let serial = 0;

  while (!run.stopProducing && !run.giveUp) {
    const count = rng.range(1, 3);
    const padding = rng.range(0, 120);
    const ops: ProduceOp[] = [];
    const records = Array.from({ length: count }, () => {
      const id = `p${n}-${serial++}`;
      ops.push({
        kind: "produce",
        id,
        topic: TOPIC,
        idempotent,
        attempts: 0,
        outcome: "unknown",
      });
      return { value: { id, pad: "x".repeat(padding) }, headers: { id, pad: String(padding) } };
    });
    run.produceOps.push(...ops);

    let body: { records: Record<string, unknown>[] };
    let headers: Record<string, string> = {};
    let partition: number | undefined;
    let seq = 0;
    if (idempotent) {
      partition = rng.range(0, run.partitions - 1);
      seq = seqs.get(partition) ?? 0;
      body = { records: records.map((r) => ({ ...r, partition })) };
      headers = {
        "Producer-Id": producerId,
        "Producer-Epoch": String(epoch),
        "Producer-Seq": String(seq),
      };
    } else {
      const mode = rng.range(0, 2);
      if (mode === 0) {
        const p = rng.range(0, run.partitions - 1);
        body = { records: records.map((r) => ({ ...r, partition: p })) };
      } else if (mode === 1) {
        const key = `k${rng.range(0, 15)}`;
        body = { records: records.map((r) => ({ ...r, key })) };
      } else {
        body = { records };
      }
    }

    let answer: Answer | undefined;
    for (;;) {
      const url = await run.server(jitter);
      if (url === undefined) break;
      for (const op of ops) op.attempts++;
      if (ops[0]!.attempts > 1) run.resends++;
      answer = await call(
        url,
        "POST",
        `/v1/topics/${TOPIC}/records`,
        body,
        PRODUCE_TIMEOUT_MS,
        headers,
      );
      run.count(idempotent ? "produce-idempotent" : "produce-plain", answer);
      // Only an idempotent request may be sent again, and only while it has no answer.
      if (!idempotent || classify(answer) !== "unknown" || run.giveUp) break;
      await sleep(jitter.range(20, 200));
    }

    // Never sent at all (no server came up before the harness gave up): nothing was applied.
    const outcome: Outcome =
      answer === undefined ? (ops[0]!.attempts === 0 ? "failed" : "unknown") : classify(answer);
    run.requests[outcome]++;
    for (const op of ops) op.outcome = outcome;
    if (outcome === "ok") {
      const offsets = (answer as { body: any }).body?.offsets as
        { partition: number; offset: number }[] | undefined;
      if (!Array.isArray(offsets) || offsets.length !== ops.length) {
        run.anomaly(`produce answered 200 with ${JSON.stringify(offsets)} for ${ops.length}`);
      }
      ops.forEach((op, i) => {
        const ack = offsets?.[i];
        if (ack) op.ack = { partition: ack.partition, offset: ack.offset };
        else op.outcome = "unknown";
      });
      if (idempotent) {
        if (offsets?.some((o) => o.partition !== partition)) {
          run.anomaly(`idempotent request for partition ${partition} acknowledged elsewhere`);
        }
        seqs.set(partition!, seq + 1);
        // Now and then a "restarted" producer fences its predecessor with a new epoch.
        if (rng.chance(0.02)) {
          epoch++;
          seqs.clear();
        }
      }
    } else if (outcome === "failed" && answer !== undefined) {
      // No 4xx is expected from a well-formed request; an idempotent one after a lost answer
      // would even contradict the resend rule (RFC 0004 §1).
      run.anomaly(
        `${idempotent ? `idempotent (epoch ${epoch} seq ${seq}, attempt ${ops[0]!.attempts})` : "plain"} produce of ${ops.map((o) => o.id).join(",")}: ${describeAnswer(answer)}`,
      );
      if (idempotent) {
        // Start over in a new epoch rather than guess where the sequence stands.
        epoch++;
        seqs.clear();
      }
    } else if (idempotent) {
      // Gave up without an answer: the sequence cannot continue after a hole.
      epoch++;
      seqs.clear();
    }
    await sleep(rng.range(0, 15));
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Consumer group                                                                               */
/* ------------------------------------------------------------------------------------------ */

interface View {
  memberId: string;
  generation: number;
  assignments: { topic: string; partition: number }[];
  revoking: { topic: string; partition: number }[];
}

/**
 * One group member following RFC 0002 §4.4: fetch, process, commit the next offsets with the
 * fetch's generation, heartbeat releasing revoked partitions once their position is committed;
 * rejoin under a fresh id on unknown_member. Every call goes to a random live server. Commit
 * answers are observations of the committed offset.
 */
async function member(run: Run, seed: number, j: number): Promise<void> {
  const rng = stream(seed, `member-${j}`);
  const stop = () => run.stopConsumers || run.giveUp;
  let incarnation = 0;
  let view: View | undefined;
  /** Processed positions not yet known to be committed: partition → {offset, generation}. */
  const pending = new Map<number, { offset: number; generation: number }>();
  let lastBeat = 0;

  const send = async (kind: string, method: string, path: string, body?: unknown) => {
    const url = await run.server(rng);
    if (url === undefined) return { answered: false as const, why: "no server" };
    const a = await call(url, method, path, body, GROUP_CALL_TIMEOUT_MS);
    run.count(`group-${kind}`, a);
    return a;
  };
  const rejoin = () => {
    view = undefined;
    pending.clear();
  };

  while (!stop()) {
    if (view === undefined) {
      const memberId = `m${j}-${incarnation++}`;
      // A join whose answer was lost is retried under the same id (RFC 0002 §3).
      for (let attempt = 1; !stop(); attempt++) {
        const a = await send("join", "POST", `/v1/groups/${GROUP}/members`, {
          topics: [TOPIC],
          memberId,
          sessionTimeoutMs: SESSION_MS,
          resetPolicy: "earliest",
        });
        if (a.answered && (a.status === 200 || a.status === 201)) {
          view = a.body as View;
          lastBeat = Date.now();
          break;
        }
        if (a.answered && a.status < 500) {
          // A lost join that did land made a member which, never hearing from us, lapsed
          // before this retry: the id is refused until removed (src/groups/members.ts).
          const lapsed = errorCode(a) === "conflict" && attempt > 1;
          if (!lapsed) run.anomaly(`join as ${memberId}: ${describeAnswer(a)}`);
          break; // a fresh id next time
        }
        await sleep(rng.range(50, 200));
      }
      if (view === undefined) {
        await nap(rng.range(50, 200), stop);
        continue;
      }
    }
    const memberId = view.memberId;

    if (Date.now() < run.churnUntil && rng.chance(run.memberChurn)) {
      if (rng.chance(0.5)) {
        // Gone without a word: the lease lapses, then the partitions move (RFC 0002 §4.3).
        run.memberCrashes++;
      } else {
        run.memberLeaves++;
        await send("leave", "DELETE", `/v1/groups/${GROUP}/members/${memberId}`);
      }
      // Whatever was processed and not committed is handed out again to the next holder.
      rejoin();
      continue;
    }

    // Fetch and "process".
    const fetched = await send("fetch", "POST", `/v1/groups/${GROUP}/members/${memberId}/fetch`, {
      maxRecords: rng.range(10, 120),
      waitMs: 200,
    });
    if (fetched.answered && fetched.status === 200) {
      const body = fetched.body as View & {
        partitions: {
          topic: string;
          partition: number;
          records: { offset: number; value?: any; headers?: Record<string, string> }[];
          nextOffset: number;
        }[];
      };
      view = body;
      lastBeat = Date.now();
      for (const p of body.partitions) {
        if (p.records.length === 0) continue;
        run.consumeOps.push({
          kind: "consume",
          group: GROUP,
          topic: p.topic,
          partition: p.partition,
          records: p.records.map((r) => ({ offset: r.offset, id: recordId(r) })),
        });
        pending.set(p.partition, { offset: p.nextOffset, generation: body.generation });
      }
      await sleep(rng.range(0, 10));
    } else if (
      errorCode(fetched) === "unknown_member" ||
      errorCode(fetched) === "group_not_found"
    ) {
      rejoin();
      continue;
    } else if (fetched.answered && fetched.status < 500) {
      run.anomaly(`fetch by ${memberId}: ${describeAnswer(fetched)}`);
    }

    // Commit what was processed, one request per generation it was fetched in.
    const generations = new Set([...pending.values()].map((v) => v.generation));
    for (const generation of generations) {
      if (view === undefined || stop()) break;
      const offsets = [...pending]
        .filter(([, v]) => v.generation === generation)
        .map(([partition, v]) => ({ topic: TOPIC, partition, offset: v.offset }));
      const invokedSeq = run.observationSeq++;
      const a = await send("commit", "POST", `/v1/groups/${GROUP}/offsets`, {
        memberId,
        generation,
        offsets,
      });
      const seq = run.observationSeq++;
      if (a.answered && a.status === 200) {
        // The answer shows each partition's stored offset after the commit (the one kept when
        // it did not move).
        for (const o of a.body.offsets as { partition: number; offset: number }[]) {
          run.observations.push({
            kind: "committed",
            group: GROUP,
            topic: TOPIC,
            partition: o.partition,
            offset: o.offset,
            rewind: false,
            seq,
            invokedSeq,
          });
          if (pending.get(o.partition)?.generation === generation) pending.delete(o.partition);
        }
      } else if (errorCode(a) === "fenced") {
        // Not ours any more (or not at that generation): someone else goes on from the commit.
        const lost = (a as { body: any }).body?.error?.details?.partitions as
          { partition: number }[] | undefined;
        for (const o of offsets) {
          if (!lost || lost.some((l) => l.partition === o.partition)) pending.delete(o.partition);
        }
      } else if (errorCode(a) === "unknown_member" || errorCode(a) === "group_not_found") {
        rejoin();
        break;
      } else if (a.answered && a.status < 500) {
        run.anomaly(`commit by ${memberId} of ${JSON.stringify(offsets)}: ${describeAnswer(a)}`);
        for (const o of offsets) pending.delete(o.partition);
      }
      // No answer: keep the positions and commit them again next time (commits are idempotent).
    }
    if (view === undefined) continue;

    // Release revoked partitions whose position is committed; renew the lease now and then.
    const released = view.revoking.filter((r) => r.topic === TOPIC && !pending.has(r.partition));
    if (released.length > 0 || Date.now() - lastBeat > 1_500) {
      const a = await send(
        "heartbeat",
        "POST",
        `/v1/groups/${GROUP}/members/${memberId}/heartbeat`,
        released.length > 0 ? { released } : {},
      );
      if (a.answered && a.status === 200) {
        view = a.body as View;
        lastBeat = Date.now();
      } else if (errorCode(a) === "unknown_member" || errorCode(a) === "group_not_found") {
        rejoin();
      } else if (a.answered && a.status < 500) {
        run.anomaly(`heartbeat by ${memberId}: ${describeAnswer(a)}`);
      }
    }
  }
}

/**
 * The id a record carries: in its value and its `id` header, which must agree, with the value's
 * padding as long as its `pad` header says.
 */
function recordId(r: { offset: number; value?: any; headers?: Record<string, string> }): string {
  const fromValue = typeof r.value?.id === "string" ? (r.value.id as string) : undefined;
  const fromHeader = r.headers?.id;
  const intact = r.value?.pad === "x".repeat(Number(r.headers?.pad));
  if (fromValue !== undefined && fromValue === fromHeader && intact) return fromValue;
  // Matches no produce operation: the checker reports it as a phantom (and the id as lost).
  return `corrupt@${r.offset}:${JSON.stringify(r).slice(0, 200)}`;
}

/** Describes the group every now and then; each committed offset shown is an observation. */
async function describer(run: Run, seed: number): Promise<void> {
  const rng = stream(seed, "describer");
  const stop = () => run.stopConsumers || run.giveUp;
  while (!stop()) {
    await nap(rng.range(200, 700), stop);
    const url = await run.server(rng);
    if (url === undefined || stop()) continue;
    const invokedSeq = run.observationSeq++;
    const a = await call(url, "GET", `/v1/groups/${GROUP}`, undefined, GROUP_CALL_TIMEOUT_MS);
    const seq = run.observationSeq++;
    run.count("group-describe", a);
    if (!a.answered || a.status !== 200) continue;
    for (const row of a.body.partitions as {
      topic: string;
      partition: number;
      currentOffset: number | null;
    }[]) {
      if (row.topic !== TOPIC || row.currentOffset === null) continue;
      run.observations.push({
        kind: "committed",
        group: GROUP,
        topic: TOPIC,
        partition: row.partition,
        offset: row.currentOffset,
        rewind: false,
        seq,
        invokedSeq,
      });
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Nemesis                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/**
 * Every 0.5-2 s: SIGKILL a running server and restart it on the same store 0.2-1 s after it
 * died, or SIGSTOP one for 0.3-1.5 s and then SIGCONT it. At least one server is always running
 * (not killed, not paused). The odds lean towards whichever fault is behind (1/2 when even,
 * 1/4 or 3/4 one apart, certain two apart), so that even a short run does both. Returns when
 * told to stop; restarts and SIGCONTs still pending are left in `run.recoveries`.
 */
async function nemesis(run: Run, seed: number, note: (line: string) => void): Promise<void> {
  const rng = stream(seed, "nemesis");
  const stop = () => run.stopNemesis || run.giveUp;
  while (!stop()) {
    await nap(rng.range(500, 2_000), stop);
    if (stop()) break;
    const running = run.cluster.slots.filter((s) => s.server !== undefined && !s.paused);
    if (running.length < 2) continue;
    const slot = rng.pick(running);
    const server = slot.server!;
    const killOdds = Math.min(1, Math.max(0, 0.5 - 0.25 * (run.crashes - run.pauses)));
    if (rng.chance(killOdds) || killOdds === 1) {
      const delay = rng.range(200, 1_000);
      run.crashes++;
      slot.server = undefined;
      server.kill("SIGKILL");
      note(`nemesis: SIGKILL server ${slot.index} (pid ${server.pid})`);
      run.recoveries.push(
        (async () => {
          await within(server.exited, 10_000);
          await sleep(delay);
          await run.cluster.restart(slot);
        })(),
      );
    } else {
      const duration = rng.range(300, 1_500);
      run.pauses++;
      slot.paused = true;
      server.kill("SIGSTOP");
      note(`nemesis: SIGSTOP server ${slot.index} (pid ${server.pid}) for ${duration} ms`);
      run.recoveries.push(
        (async () => {
          // The wind-down SIGCONTs everything at once.
          await nap(duration, stop);
          server.kill("SIGCONT");
          if (slot.server === server) slot.paused = false;
        })(),
      );
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Read-back                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/** A read the harness itself needs: retried on other running servers until the deadline. */
async function readCall(
  run: Run,
  rng: Rng,
  path: string,
  deadline: number,
): Promise<{ status: number; body: any }> {
  let last = "";
  while (Date.now() < deadline) {
    const url = run.cluster.pickRunning(rng);
    if (url !== undefined) {
      const sent = Date.now();
      const a = await call(url, "GET", path, undefined, READ_TIMEOUT_MS);
      if (Date.now() - sent > 5_000) {
        run.note(`slow read-back: GET ${path} took ${Date.now() - sent} ms (${describeStatus(a)})`);
      }
      if (a.answered && a.status === 200) return a;
      last = describeAnswer(a);
      if (a.answered && a.status < 500) break;
    }
    await sleep(100);
  }
  throw new Error(`read-back GET ${path} failed: ${last || "no server"}`);
}

async function readFinalState(
  run: Run,
  seed: number,
  deadline: number,
): Promise<{ final: FinalState; sealedSegments: number }> {
  const rng = stream(seed, "read-back");
  const topic = await readCall(run, rng, `/v1/topics/${TOPIC}`, deadline);
  const sealedSegments = (topic.body.partitions as { segments?: { state: string }[] }[])
    .flatMap((p) => p.segments ?? [])
    .filter((segment) => segment.state === "sealed").length;
  const partitions: FinalPartition[] = [];
  for (const p of topic.body.partitions as { partition: number; logStartOffset: number }[]) {
    const records: FinalPartition["records"] = [];
    let offset = p.logStartOffset;
    let logEndOffset: number | undefined;
    for (let page = 0; logEndOffset === undefined; page++) {
      if (page > 100_000) throw new Error(`read-back of ${p.partition} made too many pages`);
      const res = await readCall(
        run,
        rng,
        `/v1/topics/${TOPIC}/partitions/${p.partition}/records?offset=${offset}&maxRecords=${READ_PAGE_RECORDS}`,
        deadline,
      );
      for (const r of res.body.records) records.push({ offset: r.offset, id: recordId(r) });
      const end = res.body.logEndOffset as number;
      const next = res.body.nextOffset as number;
      if (next >= end) {
        logEndOffset = end;
      } else if (next <= offset) {
        // Unreadable below the log end: the checker reports the missing offsets as a gap.
        run.anomaly(
          `read-back of ${TOPIC}/${p.partition} made no progress at ${offset} (log end ${end})`,
        );
        logEndOffset = end;
      } else {
        offset = next;
      }
    }
    partitions.push({
      topic: TOPIC,
      partition: p.partition,
      logStartOffset: p.logStartOffset,
      logEndOffset,
      records,
    });
  }
  const group = await readCall(run, rng, `/v1/groups/${GROUP}`, deadline);
  const groups: FinalGroup[] = partitions.map(({ partition }) => {
    const row = (group.body.partitions as any[]).find(
      (r) => r.topic === TOPIC && r.partition === partition,
    );
    return {
      group: GROUP,
      topic: TOPIC,
      partition,
      committed: (row?.currentOffset as number | null | undefined) ?? null,
    };
  });
  return { final: { partitions, groups }, sealedSegments };
}

/** True once the group's committed offset is the log end on every partition. */
async function drained(run: Run, rng: Rng): Promise<boolean> {
  const url = run.cluster.pickRunning(rng);
  if (url === undefined) return false;
  const a = await call(url, "GET", `/v1/groups/${GROUP}`, undefined, GROUP_CALL_TIMEOUT_MS);
  if (!a.answered || a.status !== 200) return false;
  const rows = (a.body.partitions as any[]).filter((r) => r.topic === TOPIC);
  return (
    rows.length === run.partitions &&
    rows.every((r) => r.currentOffset !== null && r.currentOffset === r.logEndOffset)
  );
}

/* ------------------------------------------------------------------------------------------ */
/* Stores                                                                                       */
/* ------------------------------------------------------------------------------------------ */

interface Store {
  env: Record<string, string>;
  dataDir: string;
  describe: string;
  cleanup: () => Promise<void>;
}

/** The least SLUICE_ROLL_MIN_AGE_MS allows (3 × the commit timeout). */
const ROLL_MIN_AGE_MS = 180_000;

const baseEnv = {
  SLUICE_LINGER_MS: "3",
  SLUICE_POLL_INTERVAL_MS: "25",
  SLUICE_TOPIC_CACHE_MS: "500",
  // Maintenance passes run under the nemesis too. Without `rolls` they only look (chunks roll
  // once 10 minutes old), still reading every partition's index while servers die around them.
  SLUICE_MAINTENANCE_INTERVAL_MS: "3000",
  SLUICE_AUTH: "off",
};

async function openStore(backend: CrashBackend, seed: number, rolls: boolean): Promise<Store> {
  const data = await makeDataDir(`sluice-chaos-${backend === "embedded" ? "emb" : "cloud"}-`);
  const env: Record<string, string> = rolls
    ? { ...baseEnv, SLUICE_ROLL_MIN_AGE_MS: String(ROLL_MIN_AGE_MS) }
    : { ...baseEnv };
  if (backend === "embedded") {
    return { env, dataDir: data.dir, describe: data.dir, cleanup: data.cleanup };
  }
  if (!process.env.AWS_ENDPOINT_URL_S3 || !process.env.AWS_ENDPOINT_URL_DYNAMODB) {
    throw new Error(
      "s3+dynamodb needs AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL_DYNAMODB (vitest's global setup, or withStandins())",
    );
  }
  const s3 = await s3Endpoint();
  const dynamo = new DynamoDBClient({});
  const table = `sluice-chaos-${seed}-${Date.now()}`;
  await ensureTable(dynamo, table);
  return {
    env: {
      ...env,
      SLUICE_BUCKET: s3.bucket,
      SLUICE_PREFIX: `chaos-${seed}`,
      SLUICE_TABLE: table,
    },
    dataDir: data.dir,
    describe: `s3://${s3.bucket}/chaos-${seed} + dynamodb:${table}`,
    cleanup: async () => {
      await within(
        Promise.allSettled([
          dynamo.send(new DeleteTableCommand({ TableName: table })),
          s3.stop(),
          data.cleanup(),
        ]),
        15_000,
      );
      dynamo.destroy();
    },
  };
}

/**
 * Starts s3rver and DynamoDB Local (as vitest's global setup does) unless the environment
 * already points at S3 and DynamoDB endpoints; returns the teardown.
 */
export async function withStandins(): Promise<() => Promise<void>> {
  if (process.env.AWS_ENDPOINT_URL_S3 && process.env.AWS_ENDPOINT_URL_DYNAMODB) {
    return () => Promise.resolve();
  }
  return startStandins();
}

/* ------------------------------------------------------------------------------------------ */
/* One scenario                                                                                 */
/* ------------------------------------------------------------------------------------------ */

export async function runCrashScenario(options: CrashScenarioOptions): Promise<CrashResult> {
  const { seed, backend } = options;
  if (options.servers < 2) throw new Error("a crash scenario needs at least 2 servers");
  const log = options.log ?? (() => {});
  const started = Date.now();
  const plan = stream(seed, "plan");
  const partitions = plan.range(2, 3);
  log(
    `crash scenario seed=${seed} backend=${backend} servers=${options.servers} partitions=${partitions} ` +
      `producers=${options.producers} consumers=${options.consumers} load=${options.durationMs} ms`,
  );

  const store = await openStore(backend, seed, options.rolls ?? false);
  const anomalies: string[] = [];
  const cluster = new Cluster(store.dataDir, store.env, options.servers, log, (line) =>
    anomalies.push(line),
  );
  const run = new Run(cluster, partitions, options.memberChurn ?? 0.004, log);
  const loops: Promise<void>[] = [];
  try {
    // The first start creates the SQLite file and runs its migrations, and the topic: the
    // load starts on it while the others come up (the nemesis waits for a second one).
    const [head, ...rest] = cluster.slots;
    await cluster.start(head!);
    const created = await call(
      head!.server!.url,
      "POST",
      "/v1/topics",
      {
        name: TOPIC,
        partitions,
        // Small segments, rolled by time or size as soon as their chunks are old enough.
        ...(options.rolls ? { config: { "segment.ms": 10_000, "segment.bytes": 64 * 1024 } } : {}),
      },
      READ_TIMEOUT_MS,
    );
    if (!created.answered || created.status !== 201) {
      throw new Error(`create topic: ${describeAnswer(created)}`);
    }
    for (const slot of rest) run.recoveries.push(cluster.restart(slot, true));
    log(`first server up and topic created after ${Date.now() - started} ms`);

    for (let n = 0; n < options.producers; n++) loops.push(producer(run, seed, n, n % 2 === 0));
    const members = Array.from({ length: options.consumers }, (_, j) => member(run, seed, j));
    const describes = describer(run, seed);
    loops.push(...members, describes);
    const chaos = nemesis(run, seed, log);
    loops.push(chaos);

    const loadStarted = Date.now();
    run.churnUntil = loadStarted + options.durationMs - 8_000;
    const maxLoadMs = options.maxDurationMs ?? 2 * options.durationMs;
    await sleep(options.durationMs);
    while (
      (run.crashes < (options.minCrashes ?? 0) || run.pauses < (options.minPauses ?? 0)) &&
      Date.now() - loadStarted < maxLoadMs
    ) {
      await sleep(100);
    }
    const loadMs = Date.now() - loadStarted;

    // Wind down: faults off, then let answers and the group catch up, then read back.
    const windDown = Date.now() + WIND_DOWN_MS;
    const giveUpTimer = setTimeout(() => (run.giveUp = true), WIND_DOWN_MS);
    try {
      run.stopNemesis = true;
      run.stopProducing = true;
      await chaos;
      // Paused servers go on at once; a killed one may still be starting: the others serve
      // the settling and the drain meanwhile, and the read-back waits for it.
      cluster.resumeAll();
      log(`load stopped after ${Date.now() - started} ms; settling, draining`);
      const settleBy = setTimeout(() => (run.giveUp = true), SETTLE_MS);
      const producersDone = Promise.all(loops.slice(0, options.producers));
      await producersDone;
      clearTimeout(settleBy);
      log(`producers settled after ${Date.now() - started} ms`);

      const rng = stream(seed, "drain");
      let isDrained = false;
      const drainBy = Math.min(Date.now() + DRAIN_MS, windDown);
      while (!run.giveUp && Date.now() < drainBy) {
        if (await drained(run, rng)) {
          isDrained = true;
          break;
        }
        await sleep(250);
      }
      run.stopConsumers = true;
      await Promise.all(loops);
      log(`drained=${isDrained} after ${Date.now() - started} ms`);

      // The history is complete; read what the store holds, with every server back (or as
      // many as came back: a server that cannot start is an anomaly, not a hang).
      cluster.startsUntil = windDown;
      await within(
        Promise.all(run.recoveries).then(() => cluster.healAll()),
        windDown - Date.now(),
      );
      const down = cluster.slots.filter((s) => !s.server).map((s) => s.index);
      if (down.length > 0) anomalies.push(`servers ${down.join(", ")} not up for the read-back`);
      log(`servers up after ${Date.now() - started} ms`);
      const { final, sealedSegments } = await readFinalState(
        run,
        seed,
        Math.max(windDown, Date.now() + 20_000),
      );
      log(`read back after ${Date.now() - started} ms`);
      const ops: Op[] = [...run.produceOps, ...run.consumeOps, ...run.observations];
      const violations = check(ops, final);
      const count = (outcome: Outcome) =>
        run.produceOps.filter((o) => o.outcome === outcome).length;
      const result: CrashResult = {
        seed,
        backend,
        servers: options.servers,
        durationMs: options.durationMs,
        loadMs,
        elapsedMs: Date.now() - started,
        ops: { ok: count("ok"), failed: count("failed"), unknown: count("unknown") },
        requests: run.requests,
        resends: run.resends,
        consumed: run.consumeOps.reduce((sum, c) => sum + c.records.length, 0),
        commitObservations: ops.filter((o) => o.kind === "committed").length,
        statuses: run.statuses,
        crashes: run.crashes,
        pauses: run.pauses,
        restarts: cluster.restarts,
        memberCrashes: run.memberCrashes,
        memberLeaves: run.memberLeaves,
        drained: isDrained,
        finalRecords: final.partitions.reduce((sum, p) => sum + p.records.length, 0),
        sealedSegments,
        violations,
        anomalies: [...anomalies, ...run.anomalies],
      };
      log(formatCrashResult(result));
      return result;
    } finally {
      clearTimeout(giveUpTimer);
    }
  } finally {
    run.giveUp = true;
    run.stopNemesis = run.stopProducing = run.stopConsumers = true;
    // Loops end within one call timeout once told to; never wait on them forever.
    await within(Promise.allSettled([...loops, ...run.recoveries]), 15_000);
    await cluster.killAll();
    await store.cleanup();
  }
}

/** One line: what ran, what the nemesis did, what the history holds, what the checker found. */
export function formatCrashResult(r: CrashResult): string {
  return (
    `seed=${r.seed} ${r.backend} servers=${r.servers} load=${r.loadMs}ms elapsed=${r.elapsedMs}ms | ` +
    `records ok=${r.ops.ok} failed=${r.ops.failed} unknown=${r.ops.unknown} ` +
    `(requests ok=${r.requests.ok} failed=${r.requests.failed} unknown=${r.requests.unknown}, resends=${r.resends}) | ` +
    `consumed=${r.consumed} commitObs=${r.commitObservations} drained=${r.drained} final=${r.finalRecords} sealed=${r.sealedSegments} | ` +
    `crashes=${r.crashes} pauses=${r.pauses} restarts=${r.restarts} ` +
    `memberCrashes=${r.memberCrashes} memberLeaves=${r.memberLeaves} | ` +
    `violations=${r.violations.length} anomalies=${r.anomalies.length}`
  );
}

/* ------------------------------------------------------------------------------------------ */
/* The long-running loop                                                                        */
/* ------------------------------------------------------------------------------------------ */

export interface CrashLoopOptions {
  minutes: number;
  /** The first scenario's seed; later ones are derived from it. Default CHAOS_SEED or random. */
  seed?: number;
  backends?: CrashBackend[];
  servers?: number;
  /** Load per scenario; default 60 s. */
  scenarioMs?: number;
  producers?: number;
  consumers?: number;
  memberChurn?: number;
  log?: (line: string) => void;
}

export interface CrashLoopSummary {
  scenarios: number;
  elapsedMs: number;
  ops: OutcomeCounts;
  requests: OutcomeCounts;
  consumed: number;
  crashes: number;
  pauses: number;
  violations: number;
  /** Seeds whose scenario found violations, or threw. */
  failedSeeds: { seed: number; backend: CrashBackend; why: string }[];
  results: CrashResult[];
}

/**
 * Repeats scenarios with fresh seeds, alternating backends, until `minutes` have passed (the
 * last scenario runs to its end), and adds up what they did. Starts the cloud stand-ins itself
 * when the environment does not name them.
 */
export async function runCrashLoop(options: CrashLoopOptions): Promise<CrashLoopSummary> {
  const log = options.log ?? ((line: string) => console.log(line));
  const backends = options.backends ?? ["embedded", "s3+dynamodb"];
  const first = options.seed ?? chaosSeed();
  const started = Date.now();
  const summary: CrashLoopSummary = {
    scenarios: 0,
    elapsedMs: 0,
    ops: { ok: 0, failed: 0, unknown: 0 },
    requests: { ok: 0, failed: 0, unknown: 0 },
    consumed: 0,
    crashes: 0,
    pauses: 0,
    violations: 0,
    failedSeeds: [],
    results: [],
  };
  const teardown = backends.includes("s3+dynamodb") ? await withStandins() : async () => {};
  try {
    for (let i = 0; i === 0 || Date.now() - started < options.minutes * 60_000; i++) {
      const seed = (first + Math.imul(i, 0x9e3779b1)) >>> 0;
      const backend = backends[i % backends.length]!;
      summary.scenarios++;
      try {
        const r = await runCrashScenario({
          seed,
          backend,
          servers: options.servers ?? 3,
          durationMs: options.scenarioMs ?? 60_000,
          producers: options.producers ?? 6,
          consumers: options.consumers ?? 2,
          memberChurn: options.memberChurn,
          rolls: (options.scenarioMs ?? 60_000) >= 4 * 60_000,
          log,
        });
        summary.results.push(r);
        for (const k of ["ok", "failed", "unknown"] as const) {
          summary.ops[k] += r.ops[k];
          summary.requests[k] += r.requests[k];
        }
        summary.consumed += r.consumed;
        summary.crashes += r.crashes;
        summary.pauses += r.pauses;
        summary.violations += r.violations.length;
        if (r.violations.length > 0) {
          summary.failedSeeds.push({
            seed,
            backend,
            why: r.violations
              .slice(0, 5)
              .map((v) => `${v.kind}: ${v.detail}`)
              .join("; "),
          });
          log(`VIOLATIONS (reproduce with CHAOS_SEED=${seed}, ${backend}):`);
          for (const v of r.violations.slice(0, 50)) log(`  ${v.kind}: ${v.detail}`);
        }
        for (const a of r.anomalies.slice(0, 20)) log(`  anomaly: ${a}`);
        log(`  statuses ${JSON.stringify(r.statuses)}`);
      } catch (err) {
        summary.failedSeeds.push({ seed, backend, why: String(err) });
        log(`scenario seed=${seed} ${backend} threw: ${String(err)}`);
      }
    }
  } finally {
    await teardown();
  }
  summary.elapsedMs = Date.now() - started;
  return summary;
}
