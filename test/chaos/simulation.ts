import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { logConfigDefaults, type LogConfig } from "../../src/config.js";
import { isSluiceError, type ErrorCode } from "../../src/errors.js";
import type { CommittedPartition } from "../../src/groups/commit.js";
import type { GroupFetchResult } from "../../src/groups/fetch.js";
import { GroupService } from "../../src/groups/service.js";
import { SluiceLog, type ProducedOffset, type ProduceRecord } from "../../src/log/log.js";
import type { GroupStore } from "../../src/meta/group-store.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import type { MetaStore } from "../../src/meta/meta-store.js";
import { SqliteMetaStore } from "../../src/meta/sqlite.js";
import { FileSystemObjectStore } from "../../src/storage/filesystem.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";
import type { ObjectStore } from "../../src/storage/object-store.js";
import { check } from "./checker.js";
import {
  FaultInjector,
  FaultyMetaStore,
  FaultyObjectStore,
  addFaultStats,
  defaultFaultPlan,
  emptyFaultStats,
  type FaultPlan,
  type FaultStats,
} from "./faulty-stores.js";
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
import { Prng, reproduce } from "./prng.js";

/**
 * One seeded, in-process chaos run (issue #8): two "processes" (SluiceLog + GroupService each)
 * share one object store and one metadata table, both wrapped in fault injectors (random
 * failures, lost answers, timeouts that may land late, and short outages). Plain and idempotent
 * producers write concurrently, sometimes giving up on a request that goes on in the server and
 * resending it elsewhere; a consumer group of 2–3 members fetches, processes and commits
 * (joining, leaving and crashing as it goes); a describer watches the committed offsets; and
 * maintenance rolls, retires and collects garbage on both processes; all interleaved by the
 * seed's PRNG. Afterwards the faults go quiet, every partition is read from its log start to its
 * log end by a fresh process, and the history goes through the checker.
 *
 * Timing is real (timers and the event loop). A seed fixes the topology, the thresholds, the
 * fault rates and every record each producer sends; where faults land and how actors interleave
 * still depend on timing, so the same seed often, not always, repeats a failure.
 */

export type Stores = { store: ObjectStore; meta: MetaStore & GroupStore };

export interface SimOptions {
  /** `memory` (default), or `embedded`: FileSystem + SQLite, one connection per process. */
  stores?: "memory" | "embedded";
  /** Processes sharing the stores (default 2). */
  nodes?: number;
  /** Partitions of the topic (default 2–3). */
  partitions?: number;
  plainProducers?: number;
  idempotentProducers?: number;
  /** Produce requests per producer (default 4–10). */
  requests?: number;
  /** Group members (default 2–3). */
  consumers?: number;
  /**
   * Merged over defaultFaultPlan (whose rates the seed scales by 0.5–4); `noFaults` with
   * `outages: 0` and `clientTimeouts: 0` makes a calm run.
   */
  faults?: Partial<FaultPlan>;
  /**
   * Chance, every 10–60 ms while producers run, that an outage starts: 5–40 ms in which one kind
   * of call (or all) fails, refused or with its answer lost (default 0, 0.3 or 0.6 by the seed).
   */
  outages?: number;
  /**
   * Chance that a producer stops waiting for an answer after 3–25 ms and resends while the first
   * request goes on (default 0, 0.1 or 0.3 by the seed).
   */
  clientTimeouts?: number;
  /** The topic's retention.bytes (default: -1 or a few KiB, by the seed). */
  retentionBytes?: number;
  /** Log timing; see SIM_TIMING for the defaults and why they are safe. */
  timing?: Partial<SimTiming>;
  /**
   * Wraps the real stores (before the faults): a deliberately broken adapter proves the harness
   * can fail. With embedded stores it is called once per process.
   */
  wrap?: (stores: Stores) => Stores;
  /** How long consumers may take to catch up once producers are done (default 2 sessions + 60 ms). */
  settleMs?: number;
}

export interface SimTiming {
  commitTimeoutMs: number;
  rollMinAgeMs: number;
  orphanGraceMs: number;
  intentTimeoutMs: number;
  sessionTimeoutMs: number;
}

/**
 * Scaled down from the defaults, keeping their ordering: a writer stops trying to commit
 * commitTimeoutMs after its upload, so a chunk old enough to roll (rollMinAgeMs) or an object
 * old enough to collect (orphanGraceMs) can no longer be in a writer's hands.
 */
export const SIM_TIMING: SimTiming = {
  commitTimeoutMs: 30,
  rollMinAgeMs: 80,
  orphanGraceMs: 150,
  intentTimeoutMs: 120,
  sessionTimeoutMs: 120,
};

/** A file put and a SQLite commit each fsync (about 5 ms here): the same ordering, 5 × slower. */
export const EMBEDDED_TIMING: SimTiming = {
  commitTimeoutMs: 150,
  rollMinAgeMs: 400,
  orphanGraceMs: 750,
  intentTimeoutMs: 600,
  sessionTimeoutMs: 600,
};

/**
 * The memory profile stands in for S3 and DynamoDB, which fail in every way the injector knows.
 * The embedded adapters fail in fewer: SQLite refuses a busy database (nothing written) but never
 * loses an answer, and the filesystem store can fail after its rename (a directory sync), which
 * the object-store faults cover.
 */
const EMBEDDED_META_FAULTS: FaultPlan["methods"] = { "meta.": { pFailAfter: 0, pTimeout: 0 } };

export interface SimCounts {
  produceRequests: number;
  produceAttempts: number;
  records: number;
  ok: number;
  failed: number;
  unknown: number;
  /** Idempotent requests that needed a resend and still got one answer. */
  idempotentResends: number;
  /** Produce requests whose client stopped waiting while they went on. */
  clientTimeouts: number;
  epochBumps: number;
  fetches: number;
  consumeOps: number;
  recordsConsumed: number;
  commits: number;
  commitObservations: number;
  joins: number;
  leaves: number;
  crashes: number;
  maintenancePasses: number;
  segmentsRolled: number;
  segmentsRetired: number;
  orphansDeleted: number;
  garbageObjectsDeleted: number;
  intentsAborted: number;
  finalRecords: number;
  trimmedOffsets: number;
  durationMs: number;
}

export interface SimResult {
  seed: number;
  ops: SimCounts;
  faults: FaultStats;
  violations: Violation[];
  /** Errors no fault explains (an `internal`, a 409 for an idempotent resend, a TypeError…). */
  errors: string[];
  /** What the seed chose: fault intensity, topology, thresholds (for reading a failure). */
  profile: Record<string, number | string>;
}

const TOPIC = "chaos";
const GROUP = "chaos-group";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const silent = pino({ level: "silent" });

/** A client that stopped waiting: the request may still land, like a 503's. */
class ClientTimeout extends Error {
  constructor() {
    super("the client stopped waiting for an answer");
  }
}
const CLIENT_TIMEOUT = Symbol("client timeout");
const noAnswer = (err: unknown) =>
  err instanceof ClientTimeout || isSluiceError(err, "storage_unavailable");

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A random small await: sometimes a turn of the event loop, sometimes a few milliseconds. */
function pause(prng: Prng, maxMs: number): Promise<void> {
  const ms = prng.int(maxMs + 1);
  return ms === 0 ? new Promise((resolve) => setImmediate(resolve)) : sleep(ms);
}

function describeError(err: unknown): string {
  if (isSluiceError(err)) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}\n${err.stack ?? ""}`;
  return String(err);
}

function zeroCounts(): SimCounts {
  return {
    produceRequests: 0,
    produceAttempts: 0,
    records: 0,
    ok: 0,
    failed: 0,
    unknown: 0,
    idempotentResends: 0,
    clientTimeouts: 0,
    epochBumps: 0,
    fetches: 0,
    consumeOps: 0,
    recordsConsumed: 0,
    commits: 0,
    commitObservations: 0,
    joins: 0,
    leaves: 0,
    crashes: 0,
    maintenancePasses: 0,
    segmentsRolled: 0,
    segmentsRetired: 0,
    orphansDeleted: 0,
    garbageObjectsDeleted: 0,
    intentsAborted: 0,
    finalRecords: 0,
    trimmedOffsets: 0,
    durationMs: 0,
  };
}

interface Node {
  log: SluiceLog;
  groups: GroupService;
}

interface Backend {
  /** Per process: the stores as the run sees them (faults over the wrapped real stores). */
  nodes: Stores[];
  /** The wrapped real stores, without faults: what the final read goes through. */
  base: Stores;
  cleanup: () => Promise<void>;
}

async function openBackend(
  kind: "memory" | "embedded",
  count: number,
  injector: FaultInjector,
  wrap: (s: Stores) => Stores,
): Promise<Backend> {
  const faulty = (s: Stores): Stores => ({
    store: new FaultyObjectStore(s.store, injector),
    meta: new FaultyMetaStore(s.meta, injector),
  });
  if (kind === "memory") {
    const base = wrap({ store: new MemoryObjectStore(), meta: new MemoryMetaStore() });
    return {
      nodes: Array.from({ length: count }, () => faulty(base)),
      base,
      cleanup: () => Promise.resolve(),
    };
  }
  const dir = await mkdtemp(join(tmpdir(), "sluice-chaos-"));
  const open = (): Stores => ({
    store: new FileSystemObjectStore({ root: join(dir, "objects") }),
    meta: SqliteMetaStore.open(join(dir, "meta.sqlite")),
  });
  const bases = Array.from({ length: count + 1 }, () => wrap(open()));
  return {
    nodes: bases.slice(1).map(faulty),
    base: bases[0]!,
    cleanup: async () => {
      for (const b of bases) {
        await b.meta.close();
        await b.store.close();
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function logConfig(prng: Prng, timing: SimTiming): LogConfig {
  return {
    ...logConfigDefaults,
    lingerMs: prng.range(0, 3),
    flushBytes: prng.pick([200, 1024, 64 * 1024]),
    maxWaitMs: 20,
    pollIntervalMs: 5,
    topicCacheMs: 1_000,
    objectCacheBytes: prng.pick([0, 8 * 1024, 1024 * 1024]),
    maxCommitAttempts: 100,
    commitTimeoutMs: timing.commitTimeoutMs,
    orphanGraceMs: timing.orphanGraceMs,
    maintenanceIntervalMs: 0,
    rollMinAgeMs: timing.rollMinAgeMs,
    intentTimeoutMs: timing.intentTimeoutMs,
    segmentBlockBytes: prng.pick([256, 4096, 1024 * 1024]),
  };
}

export async function runSimulation(seed: number, options: SimOptions = {}): Promise<SimResult> {
  const started = Date.now();
  const prng = new Prng(seed);
  const kind = options.stores ?? "memory";
  const timing = { ...(kind === "memory" ? SIM_TIMING : EMBEDDED_TIMING), ...options.timing };
  // Some runs are calm, some stormy: the rates of defaultFaultPlan times 0.5 to 4.
  const intensity = prng.pick([0.5, 1, 2, 4]);
  const plan: FaultPlan = {
    ...defaultFaultPlan,
    ...(kind === "embedded" ? { methods: EMBEDDED_META_FAULTS } : {}),
    pFailBefore: defaultFaultPlan.pFailBefore * intensity,
    pFailAfter: defaultFaultPlan.pFailAfter * intensity,
    pThrottle: defaultFaultPlan.pThrottle * intensity,
    pTimeout: defaultFaultPlan.pTimeout * intensity,
    ...options.faults,
  };
  const outageChance = options.outages ?? prng.pick([0, 0.3, 0.6]);
  const clientTimeoutChance = options.clientTimeouts ?? prng.pick([0, 0.1, 0.3]);
  const injector = new FaultInjector(prng.fork(), plan);
  const nodeCount = options.nodes ?? 2;
  const backend = await openBackend(kind, nodeCount, injector, options.wrap ?? ((s) => s));
  const counts = zeroCounts();
  const profile: Record<string, number | string> = {};
  const errors: string[] = [];
  const ops: Op[] = [];
  let seq = 0;
  const tick = () => ++seq;
  const unexpected = (where: string, err: unknown) =>
    errors.push(`${where}: ${describeError(err)}`);

  try {
    const partitions = options.partitions ?? prng.range(2, 3);
    const config = logConfig(prng, timing);
    const groupConfig = {
      sessionTimeoutMs: timing.sessionTimeoutMs,
      minSessionTimeoutMs: 10,
      clockSkewMs: 5,
    };
    const nodes: Node[] = backend.nodes.map((s) => {
      const log = new SluiceLog({ store: s.store, meta: s.meta, config, logger: silent });
      return {
        log,
        groups: new GroupService({ log, meta: s.meta, config: groupConfig, logger: silent }),
      };
    });
    // The control process sees the real stores: it sets up, watches and reads back.
    const control = new SluiceLog({
      store: backend.base.store,
      meta: backend.base.meta,
      config: { ...config, objectCacheBytes: 0 },
      logger: silent,
    });
    const controlGroups = new GroupService({
      log: control,
      meta: backend.base.meta,
      config: groupConfig,
      logger: silent,
    });
    const retentionBytes =
      options.retentionBytes ?? (prng.chance(0.5) ? -1 : prng.pick([300, 1000, 3000]));
    await control.topics.create(TOPIC, partitions, {
      "segment.bytes": 1024,
      "segment.ms": prng.pick([1, 60_000]),
      "retention.bytes": retentionBytes,
    });

    let producing = true;
    let consuming = true;
    const inFlight = new Set<Promise<void>>();
    const node = (p: Prng) => p.pick(nodes);

    // ---- producers -------------------------------------------------------------------------
    const requests = options.requests ?? prng.range(4, 10);
    const recordsOf = (p: Prng, ids: string[], partition?: number): ProduceRecord[] =>
      ids.map((id): ProduceRecord => {
        const keyed = partition === undefined && p.chance(0.3);
        // Padding, so that a few flushes fill a segment and retention has bytes to count.
        const headers: Record<string, string> = {};
        if (p.chance(0.5)) headers.pad = "x".repeat(p.int(120));
        const placed = partition ?? (!keyed && p.chance(0.2) ? p.int(partitions) : undefined);
        return {
          key: keyed ? encoder.encode(`k${p.int(6)}`) : null,
          keyEncoding: "utf8",
          value: encoder.encode(JSON.stringify(id)),
          valueEncoding: "json",
          headers,
          ...(placed === undefined ? {} : { partition: placed }),
        };
      });
    const recordOps = (
      ids: string[],
      idempotent: boolean,
      attempts: number,
      outcome: Outcome,
      offsets: ProducedOffset[] | undefined,
    ) => {
      counts.records += ids.length;
      counts[outcome] += ids.length;
      ids.forEach((id, i) => {
        const op: ProduceOp = { kind: "produce", id, topic: TOPIC, idempotent, attempts, outcome };
        const at = offsets?.[i];
        if (outcome === "ok" && at) op.ack = { partition: at.partition, offset: at.offset };
        ops.push(op);
      });
    };

    /**
     * Sends a produce request. Sometimes the client stops waiting (its HTTP timeout) while the
     * request goes on in the server: the client resends, perhaps to another process, and the
     * two race. Abandoned requests are awaited before the final read.
     */
    const send = async (p: Prng, request: () => Promise<ProducedOffset[]>) => {
      if (!p.chance(clientTimeoutChance)) return request();
      const sent = request();
      const timeout = sleep(p.range(3, 25)).then((): typeof CLIENT_TIMEOUT => CLIENT_TIMEOUT);
      const first = await Promise.race([sent, timeout]);
      if (first !== CLIENT_TIMEOUT) return first;
      counts.clientTimeouts++;
      const abandoned = sent.then(
        () => undefined,
        (err: unknown) => {
          // Nobody hears this answer; only an error no request may get is worth a word.
          const expected: ErrorCode[] = [
            "storage_unavailable",
            "producer_fenced",
            "out_of_order_sequence",
          ];
          if (!expected.some((code) => isSluiceError(err, code))) {
            unexpected("abandoned produce", err);
          }
        },
      );
      inFlight.add(abandoned);
      void abandoned.finally(() => inFlight.delete(abandoned));
      throw new ClientTimeout();
    };

    // Each producer draws what it sends from `w` and its timing from `p`, so that a seed always
    // sends the same records, however the run's timing turns out.
    const plainProducer = async (index: number, w: Prng, p: Prng) => {
      for (let r = 0; r < requests; r++) {
        await pause(p, 4);
        const ids = Array.from({ length: w.range(1, 4) }, (_, i) => `p${index}.${r}.${i}`);
        const records = recordsOf(w, ids);
        // A plain client retries a few times on 503; every resend may add a copy.
        const maxAttempts = w.range(1, 4);
        counts.produceRequests++;
        let attempts = 0;
        let outcome: Outcome = "unknown";
        let offsets: ProducedOffset[] | undefined;
        while (attempts < maxAttempts) {
          attempts++;
          counts.produceAttempts++;
          try {
            offsets = await send(p, () => node(p).log.produce(TOPIC, records));
            outcome = "ok";
            break;
          } catch (err) {
            if (noAnswer(err)) {
              // Not definitely failed: the writer may have committed before it lost track.
              outcome = "unknown";
              await pause(p, 3);
              continue;
            }
            unexpected(`plain produce ${ids.join(",")}`, err);
            outcome = isSluiceError(err) && err.status < 500 ? "failed" : "unknown";
            break;
          }
        }
        recordOps(ids, false, attempts, outcome, offsets);
      }
    };

    const idempotentProducer = async (index: number, w: Prng, p: Prng) => {
      const id = `idem-${index}`;
      const partition = w.int(partitions);
      let epoch = w.int(3);
      let nextSeq = 0;
      for (let r = 0; r < requests; r++) {
        await pause(p, 4);
        if (r > 0 && w.chance(0.05)) {
          // A restarted client fences its predecessor with a new epoch and starts over at 0.
          epoch++;
          nextSeq = 0;
          counts.epochBumps++;
        }
        const ids = Array.from({ length: w.range(1, 4) }, (_, i) => `i${index}.${r}.${i}`);
        const records = recordsOf(w, ids, partition);
        const producer = { id, epoch, seq: nextSeq };
        counts.produceRequests++;
        let attempts = 0;
        let outcome: Outcome;
        let offsets: ProducedOffset[] | undefined;
        // Resend the same sequence number until there is an answer, as a real client does.
        for (;;) {
          attempts++;
          counts.produceAttempts++;
          try {
            offsets = await send(p, () => node(p).log.produce(TOPIC, records, { producer }));
            outcome = "ok";
            break;
          } catch (err) {
            if (noAnswer(err)) {
              outcome = "unknown";
              // A client gives up at some point, and starts a new epoch (below).
              if (attempts >= 50) break;
              await pause(p, 3);
              continue;
            }
            unexpected(`idempotent produce ${id} epoch ${epoch} seq ${nextSeq}`, err);
            outcome = isSluiceError(err) && err.status < 500 ? "failed" : "unknown";
            break;
          }
        }
        if (outcome === "ok" && attempts > 1) counts.idempotentResends++;
        recordOps(ids, true, attempts, outcome, offsets);
        if (outcome === "ok") {
          nextSeq++;
        } else {
          // No answer: a real client would re-initialise with a new epoch.
          epoch++;
          nextSeq = 0;
          counts.epochBumps++;
        }
      }
    };

    // ---- consumers -------------------------------------------------------------------------
    const observe = (answers: CommittedPartition[], invokedSeq: number) => {
      const at = tick();
      for (const a of answers) {
        const obs: CommitObservation = {
          kind: "committed",
          group: GROUP,
          topic: a.topic,
          partition: a.partition,
          offset: a.offset,
          rewind: false,
          seq: at,
          invokedSeq,
        };
        ops.push(obs);
        counts.commitObservations++;
      }
    };

    const member = async (index: number, p: Prng) => {
      let incarnation = 0;
      const join = async (): Promise<string | undefined> => {
        for (;;) {
          const memberId = `m${index}-${incarnation++}`;
          for (let attempt = 0; attempt < 20 && consuming; attempt++) {
            try {
              await node(p).groups.join(GROUP, {
                topics: [TOPIC],
                memberId,
                resetPolicy: "earliest",
                sessionTimeoutMs: timing.sessionTimeoutMs,
              });
              counts.joins++;
              return memberId;
            } catch (err) {
              if (isSluiceError(err, "storage_unavailable")) {
                // Retry under the same id: a join whose answer was lost made us a member already.
                await pause(p, 5);
                continue;
              }
              if (isSluiceError(err, "conflict")) break; // this id lapsed: take a new one
              unexpected(`join ${memberId}`, err);
              return undefined;
            }
          }
          if (!consuming) return undefined;
        }
      };

      let memberId = await join();
      while (consuming && memberId !== undefined) {
        await pause(p, 4);
        if (p.chance(0.02)) {
          // A crash: the member just stops; its lease lapses and its partitions move on.
          counts.crashes++;
          memberId = await join();
          continue;
        }
        if (p.chance(0.02)) {
          try {
            await node(p).groups.leave(GROUP, memberId);
            counts.leaves++;
          } catch (err) {
            if (!isSluiceError(err, "storage_unavailable")) unexpected(`leave ${memberId}`, err);
          }
          memberId = await join();
          continue;
        }
        let fetched: GroupFetchResult;
        try {
          counts.fetches++;
          fetched = await node(p).groups.fetch(GROUP, memberId, {
            maxRecords: p.range(1, 25),
            maxBytes: 1024 * 1024,
            waitMs: p.range(0, 10),
            autoCommit: false,
          });
        } catch (err) {
          if (isSluiceError(err, "unknown_member")) {
            memberId = await join();
          } else if (!isSluiceError(err, "storage_unavailable")) {
            unexpected(`fetch ${memberId}`, err);
          }
          continue;
        }
        const offsets = [];
        for (const part of fetched.partitions) {
          if (part.records.length === 0) continue;
          const consumed: ConsumeOp = {
            kind: "consume",
            group: GROUP,
            topic: part.topic,
            partition: part.partition,
            records: part.records.map((r) => ({
              offset: r.offset,
              id: JSON.parse(decoder.decode(r.value)) as string,
            })),
          };
          ops.push(consumed);
          counts.consumeOps++;
          counts.recordsConsumed += part.records.length;
          offsets.push({ topic: part.topic, partition: part.partition, offset: part.nextOffset });
        }
        // Processing, then the commit (at-least-once).
        await pause(p, 3);
        if (offsets.length > 0) {
          const invoked = tick();
          try {
            const answers = await node(p).groups.commit(GROUP, {
              offsets,
              memberId,
              generation: fetched.view.generation,
            });
            counts.commits++;
            observe(answers, invoked);
          } catch (err) {
            if (isSluiceError(err, "unknown_member")) {
              memberId = await join();
              continue;
            }
            if (!isSluiceError(err, "storage_unavailable") && !isSluiceError(err, "fenced")) {
              unexpected(`commit ${memberId}`, err);
            }
          }
        }
        if (fetched.view.revoking.length > 0) {
          try {
            await node(p).groups.heartbeat(GROUP, memberId, {
              released: fetched.view.revoking.map((r) => [r.topic, r.partition]),
            });
          } catch (err) {
            if (isSluiceError(err, "unknown_member")) {
              memberId = await join();
            } else if (!isSluiceError(err, "storage_unavailable")) {
              unexpected(`release ${memberId}`, err);
            }
          }
        }
      }
    };

    const describer = async (p: Prng) => {
      while (consuming) {
        await pause(p, 15);
        const invoked = tick();
        try {
          const d = await node(p).groups.describe(GROUP);
          const at = tick();
          for (const part of d.partitions) {
            if (part.currentOffset === null) continue;
            ops.push({
              kind: "committed",
              group: GROUP,
              topic: part.topic,
              partition: part.partition,
              offset: part.currentOffset,
              rewind: false,
              seq: at,
              invokedSeq: invoked,
            });
            counts.commitObservations++;
          }
        } catch (err) {
          if (
            !isSluiceError(err, "storage_unavailable") &&
            !isSluiceError(err, "group_not_found")
          ) {
            unexpected("describe", err);
          }
        }
      }
    };

    // ---- maintenance -----------------------------------------------------------------------
    const maintainer = async (n: Node, p: Prng) => {
      while (consuming) {
        await pause(p, 30);
        try {
          const report = await n.log.runMaintenance();
          counts.maintenancePasses++;
          counts.segmentsRolled += report.segmentsRolled;
          counts.segmentsRetired += report.segmentsRetired;
          counts.orphansDeleted += report.orphansDeleted;
          counts.garbageObjectsDeleted += report.garbageObjectsDeleted;
          counts.intentsAborted += report.intentsAborted;
        } catch (err) {
          if (!isSluiceError(err, "storage_unavailable")) unexpected("maintenance", err);
        }
      }
    };

    // ---- outages: short windows where one kind of call always fails --------------------------
    const outages = async (p: Prng) => {
      const targets = [
        "s3.put",
        "s3.get",
        "s3.",
        "meta.commitAppend",
        "meta.getHead",
        "meta.getProducers",
        "meta.writeOffsets",
        "meta.putGroup",
        "meta.",
        "",
      ];
      while (producing) {
        await sleep(p.range(10, 60));
        if (!producing || !p.chance(outageChance)) continue;
        const target = p.pick(targets);
        // SQLite loses no answers: only a busy database (refused, nothing written).
        const answersLost = kind === "memory" || target.startsWith("s3.");
        const fault = answersLost && p.chance(0.5) ? "failAfter" : "throttle";
        injector.outage(target, p.range(5, 40), fault);
      }
    };

    // ---- the run ---------------------------------------------------------------------------
    const guard = (what: string, task: Promise<void>) =>
      task.catch((err: unknown) => unexpected(what, err));
    const plainCount = options.plainProducers ?? prng.range(2, 3);
    const idemCount = options.idempotentProducers ?? prng.range(1, 3);
    const memberCount = options.consumers ?? prng.range(2, 3);
    Object.assign(profile, {
      stores: kind,
      nodes: nodeCount,
      partitions,
      plainProducers: plainCount,
      idempotentProducers: idemCount,
      members: memberCount,
      requests,
      intensity,
      outageChance,
      clientTimeoutChance,
      retentionBytes,
      lingerMs: config.lingerMs,
      flushBytes: config.flushBytes,
      objectCacheBytes: config.objectCacheBytes,
      segmentBlockBytes: config.segmentBlockBytes,
    });
    const producers = [
      ...Array.from({ length: plainCount }, (_, i) =>
        guard(`plain producer ${i}`, plainProducer(i, prng.fork(), prng.fork())),
      ),
      ...Array.from({ length: idemCount }, (_, i) =>
        guard(`idempotent producer ${i}`, idempotentProducer(i, prng.fork(), prng.fork())),
      ),
    ];
    const background = [
      ...Array.from({ length: memberCount }, (_, i) =>
        guard(`member ${i}`, member(i, prng.fork())),
      ),
      guard("describer", describer(prng.fork())),
      guard("outages", outages(prng.fork())),
      ...nodes.map((n, i) => guard(`maintenance ${i}`, maintainer(n, prng.fork()))),
    ];

    await Promise.all(producers);
    producing = false;
    // Let the group catch up (lag 0 everywhere), within a bound.
    const settleBy = Date.now() + (options.settleMs ?? 2 * timing.sessionTimeoutMs + 60);
    while (Date.now() < settleBy) {
      await sleep(10);
      try {
        const d = await controlGroups.describe(GROUP);
        if (d.totalLag === 0 && d.partitions.every((x) => x.currentOffset !== null)) break;
      } catch {
        // The group may not exist yet.
      }
    }
    consuming = false;
    await Promise.all(background);

    // ---- the final read, without faults ----------------------------------------------------
    while (inFlight.size > 0) await Promise.all([...inFlight]);
    injector.quiet();
    await injector.settled();
    for (const n of nodes) await n.log.close();
    const final = await readFinal(control, controlGroups, partitions, unexpected);
    for (const g of final.groups) {
      if (g.committed === null) continue;
      // The final committed offset is one more observation, after all the others.
      ops.push({
        kind: "committed",
        group: g.group,
        topic: g.topic,
        partition: g.partition,
        offset: g.committed,
        rewind: false,
        seq: tick(),
      });
    }
    counts.finalRecords = final.partitions.reduce((n, fp) => n + fp.records.length, 0);
    counts.trimmedOffsets = final.partitions.reduce((n, fp) => n + fp.logStartOffset, 0);
    const violations = check(ops, final);
    counts.durationMs = Date.now() - started;
    return { seed, ops: counts, faults: injector.stats, violations, errors, profile };
  } finally {
    injector.quiet();
    await injector.settled();
    await backend.cleanup();
  }
}

/** Every partition from its log start to its log end, and the group's committed offsets. */
async function readFinal(
  log: SluiceLog,
  groups: GroupService,
  partitions: number,
  unexpected: (where: string, err: unknown) => void,
): Promise<FinalState> {
  const finalPartitions: FinalPartition[] = [];
  for (let partition = 0; partition < partitions; partition++) {
    const { head } = await log.listOffset(TOPIC, partition, "earliest");
    const fp: FinalPartition = {
      topic: TOPIC,
      partition,
      logStartOffset: head.logStartOffset,
      logEndOffset: head.logEndOffset,
      records: [],
    };
    let next = head.logStartOffset;
    try {
      while (next < head.logEndOffset) {
        const page = await log.fetch(TOPIC, partition, next, {
          maxRecords: 10_000,
          maxBytes: 64 * 1024 * 1024,
          waitMs: 0,
        });
        if (page.records.length === 0) break;
        for (const r of page.records) {
          fp.records.push({ offset: r.offset, id: JSON.parse(decoder.decode(r.value)) as string });
        }
        next = page.nextOffset;
      }
    } catch (err) {
      // What could not be read stays out: the checker reports it as lost and as a gap.
      unexpected(`final read of ${TOPIC}/${partition} at offset ${next}`, err);
    }
    finalPartitions.push(fp);
  }
  const finalGroups: FinalGroup[] = [];
  try {
    const d = await groups.describe(GROUP);
    for (const p of d.partitions) {
      finalGroups.push({
        group: GROUP,
        topic: p.topic,
        partition: p.partition,
        committed: p.currentOffset,
      });
    }
  } catch (err) {
    if (!isSluiceError(err, "group_not_found")) unexpected("final describe", err);
  }
  return { partitions: finalPartitions, groups: finalGroups };
}

export interface RunManyOptions {
  /** Stop after this many runs… */
  runs?: number;
  /** …or after this many minutes (whichever comes first; one of them is required). */
  minutes?: number;
  /** The first run's seed; run i uses seed + i. */
  seed: number;
  /** Runs at a time (default 4): a run mostly waits on timers. */
  concurrency?: number;
  options?: SimOptions;
  /** Called after each run, e.g. to print progress. */
  onResult?: (result: SimResult) => void;
  /** Stop at the first failing run. */
  stopOnFailure?: boolean;
}

export interface RunManySummary {
  runs: number;
  firstSeed: number;
  /** Runs with violations or unexplained errors. */
  failures: SimResult[];
  ops: SimCounts;
  faults: FaultStats;
  elapsedMs: number;
  runsPerSecond: number;
}

export const failed = (r: SimResult) => r.violations.length > 0 || r.errors.length > 0;

/** A failing run in a few lines: its seed, its first violations and errors, how to rerun it. */
export function describeFailure(
  r: SimResult,
  rerun: Record<string, string | number> = { CHAOS_RUNS: 1 },
  limit = 10,
): string {
  const lines = [
    ...r.violations.slice(0, limit).map((v) => `  ${v.kind}: ${v.detail}`),
    ...r.errors.slice(0, limit).map((e) => `  error: ${e.split("\n")[0]}`),
  ];
  return (
    `seed ${r.seed}: ${r.violations.length} violation(s), ${r.errors.length} unexplained error(s)\n` +
    `  profile ${JSON.stringify(r.profile)}\n` +
    `${lines.join("\n")}\n  ${reproduce(r.seed, rerun)}`
  );
}

/** Many seeded runs, for CI (`runs`) or a long soak (`minutes`); counts are summed over runs. */
export async function runSimulations(options: RunManyOptions): Promise<RunManySummary> {
  if (options.runs === undefined && options.minutes === undefined) {
    throw new Error("runSimulations needs runs or minutes");
  }
  const started = Date.now();
  const deadline = options.minutes === undefined ? Infinity : started + options.minutes * 60_000;
  const limit = options.runs ?? Infinity;
  const ops = zeroCounts();
  const faults = emptyFaultStats();
  const failures: SimResult[] = [];
  let next = 0;
  let done = 0;
  let stop = false;
  const worker = async () => {
    while (!stop && next < limit && Date.now() < deadline) {
      const seed = (options.seed + next++) >>> 0;
      const result = await runSimulation(seed, options.options).catch(
        (err: unknown): SimResult => ({
          seed,
          ops: zeroCounts(),
          faults: emptyFaultStats(),
          violations: [],
          errors: [`the run itself failed: ${describeError(err)}`],
          profile: {},
        }),
      );
      done++;
      for (const k of Object.keys(ops) as (keyof SimCounts)[]) ops[k] += result.ops[k];
      addFaultStats(faults, result.faults);
      if (failed(result)) {
        failures.push(result);
        if (options.stopOnFailure) stop = true;
      }
      options.onResult?.(result);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  const elapsedMs = Date.now() - started;
  return {
    runs: done,
    firstSeed: options.seed,
    failures,
    ops,
    faults,
    elapsedMs,
    runsPerSecond: done / Math.max(elapsedMs / 1000, 0.001),
  };
}
