import { SluiceError } from "../../src/errors.js";
import type { GroupStore } from "../../src/meta/group-store.js";
import type { MetaStore } from "../../src/meta/meta-store.js";
import type { ByteRange, ObjectInfo, ObjectStore } from "../../src/storage/object-store.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";
import type { Prng } from "./prng.js";

/**
 * Fault-injecting adapters for the chaos simulation. They fail calls the way the real adapters
 * fail them after the SDK's own retries gave up: a `SluiceError("storage_unavailable")` for a
 * throttle (S3 SlowDown, DynamoDB ThrottlingException or a cancelled transaction), a dropped
 * connection before or after the request, or a timeout (src/storage/s3.ts and
 * src/meta/dynamodb.ts map all of these to storage_unavailable). They never change data and never
 * invent answers: a conditional write that does not hold is the store's real answer, not a fault.
 */

export interface FaultRates {
  /** The request never reached the store (connection refused or reset before sending). */
  pFailBefore: number;
  /** The call landed, but its answer was lost: the real call runs, then this throws. */
  pFailAfter: number;
  /** The store refused the request under load; nothing happened. */
  pThrottle: number;
  /**
   * No answer within `timeoutMs`: waits, then throws. For a write, half of them were sent and land
   * at some moment up to 2 × timeoutMs after the call began (before or after the throw).
   */
  pTimeout: number;
}

export interface MethodPlan extends Partial<FaultRates> {
  latencyMs?: number;
}

export interface FaultPlan extends FaultRates {
  /** Every call first waits a uniformly random time from 0 to this. */
  latencyMs: number;
  /** How long a timed-out call waits before it throws. */
  timeoutMs: number;
  /**
   * Overrides by method name or name prefix, the longest match winning: `{ "s3.put": {...},
   * "meta.": {...} }` (methods are `s3.put|get|list|delete` and `meta.<port method>`).
   */
  methods?: Record<string, MethodPlan>;
}

export const noFaults: FaultPlan = {
  latencyMs: 0,
  timeoutMs: 0,
  pFailBefore: 0,
  pFailAfter: 0,
  pThrottle: 0,
  pTimeout: 0,
};

/** About one call in 25 fails: enough to hit every recovery path in a short run. */
export const defaultFaultPlan: FaultPlan = {
  latencyMs: 2,
  timeoutMs: 4,
  pFailBefore: 0.01,
  pFailAfter: 0.01,
  pThrottle: 0.01,
  pTimeout: 0.01,
};

export type FaultKind = "failBefore" | "failAfter" | "throttle" | "timeout";

export interface FaultStats {
  /** Calls that went through an injector (with faults on or off). */
  calls: number;
  /** Faults injected, all kinds. */
  injected: number;
  failBefore: number;
  failAfter: number;
  throttle: number;
  timeout: number;
  /** Timed-out writes that were sent anyway and landed (or tried to) in the background. */
  lateLandings: number;
  /** Outage windows started (see FaultInjector.outage); their failures count by kind above. */
  outages: number;
  /** Injected faults by method ("s3.put", "meta.commitAppend", …). */
  byMethod: Record<string, number>;
}

export function emptyFaultStats(): FaultStats {
  return {
    calls: 0,
    injected: 0,
    failBefore: 0,
    failAfter: 0,
    throttle: 0,
    timeout: 0,
    lateLandings: 0,
    outages: 0,
    byMethod: {},
  };
}

/** Adds `b`'s counts into `a`. */
export function addFaultStats(a: FaultStats, b: FaultStats): FaultStats {
  a.calls += b.calls;
  a.injected += b.injected;
  a.failBefore += b.failBefore;
  a.failAfter += b.failAfter;
  a.throttle += b.throttle;
  a.timeout += b.timeout;
  a.lateLandings += b.lateLandings;
  a.outages += b.outages;
  for (const [m, n] of Object.entries(b.byMethod)) a.byMethod[m] = (a.byMethod[m] ?? 0) + n;
  return a;
}

/** Whether a call changes anything: only writes may land when their answer is lost. */
export type CallKind = "read" | "write";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The shared source of faults: one PRNG, one plan, one set of counters for every adapter it
 * wraps (several processes' adapters may share it). `quiet()` turns every fault and delay off.
 */
export class FaultInjector {
  readonly stats: FaultStats = emptyFaultStats();
  private on = true;
  /** Background landings of timed-out writes, so a run can wait for them before its final read. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Outage windows: methods matching `prefix` fail with `fault` until `until` (Date.now). */
  private outages: { prefix: string; fault: "throttle" | "failAfter"; until: number }[] = [];

  constructor(
    private readonly prng: Prng,
    readonly plan: FaultPlan = defaultFaultPlan,
  ) {}

  get enabled(): boolean {
    return this.on;
  }

  /** No more faults or delays (the final read of a run); calls already delayed go on as planned. */
  quiet(): void {
    this.on = false;
    this.outages = [];
  }

  loud(): void {
    this.on = true;
  }

  /**
   * For `ms`, every call of a method starting with `prefix` ("s3.put", "meta.", "" for all)
   * fails: `throttle`, nothing happens (a service refusing everything); `failAfter`, writes land
   * and every answer is lost (a network path dropping responses).
   */
  outage(prefix: string, ms: number, fault: "throttle" | "failAfter"): void {
    if (!this.on) return;
    this.stats.outages++;
    this.outages.push({ prefix, fault, until: Date.now() + ms });
  }

  /** Waits until every timed-out write sent in the background has landed or failed. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Runs a store call under the plan: latency, then perhaps a fault. */
  async run<T>(
    method: string,
    kind: CallKind,
    call: () => Promise<T>,
    failure: (fault: FaultKind) => SluiceError,
  ): Promise<T> {
    this.stats.calls++;
    if (!this.on) return call();
    const rates = this.rates(method);
    await this.delay(rates.latencyMs);
    // Quieted while this call waited: it goes through untouched.
    if (!this.on) return call();
    const outage = this.outageOf(method);
    if (outage === "throttle") throw this.count(method, "throttle", failure);
    if (outage === "failAfter") {
      await call().catch(() => undefined);
      throw this.count(method, "failAfter", failure);
    }
    const r = this.prng.next();
    let edge = rates.pThrottle;
    if (r < edge) throw this.count(method, "throttle", failure);
    edge += rates.pFailBefore;
    if (r < edge) throw this.count(method, "failBefore", failure);
    edge += rates.pTimeout;
    if (r < edge) {
      if (kind === "write" && this.prng.chance(0.5)) {
        const after = this.prng.next() * 2 * this.plan.timeoutMs;
        this.stats.lateLandings++;
        const landing = sleep(after)
          .then(call)
          .catch(() => undefined);
        this.inFlight.add(landing);
        void landing.finally(() => this.inFlight.delete(landing));
      }
      await sleep(this.plan.timeoutMs);
      throw this.count(method, "timeout", failure);
    }
    edge += rates.pFailAfter;
    if (r < edge) {
      // The request was applied (or refused for real); either way its answer never arrives.
      await call().catch(() => undefined);
      throw this.count(method, "failAfter", failure);
    }
    return call();
  }

  /** A request without a call of its own (the next page of a listing): latency and a fault. */
  async gate(method: string, failure: (fault: FaultKind) => SluiceError): Promise<void> {
    await this.run(method, "read", () => Promise.resolve(), failure);
  }

  private outageOf(method: string): "throttle" | "failAfter" | undefined {
    if (this.outages.length === 0) return undefined;
    const now = Date.now();
    this.outages = this.outages.filter((o) => o.until > now);
    return this.outages.find((o) => method.startsWith(o.prefix))?.fault;
  }

  private rates(method: string): FaultRates & { latencyMs: number } {
    let o: MethodPlan = {};
    let matched = -1;
    for (const [prefix, plan] of Object.entries(this.plan.methods ?? {})) {
      if (method.startsWith(prefix) && prefix.length > matched) {
        o = plan;
        matched = prefix.length;
      }
    }
    return {
      latencyMs: o.latencyMs ?? this.plan.latencyMs,
      pFailBefore: o.pFailBefore ?? this.plan.pFailBefore,
      pFailAfter: o.pFailAfter ?? this.plan.pFailAfter,
      pThrottle: o.pThrottle ?? this.plan.pThrottle,
      pTimeout: o.pTimeout ?? this.plan.pTimeout,
    };
  }

  private async delay(maxMs: number): Promise<void> {
    const ms = this.prng.next() * maxMs;
    // Below a millisecond a timer is no shorter than 1 ms: yield a turn of the loop instead, so
    // that other actors still interleave here.
    if (ms >= 1) await sleep(ms);
    else if (maxMs > 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  private count(
    method: string,
    fault: FaultKind,
    failure: (fault: FaultKind) => SluiceError,
  ): SluiceError {
    this.stats.injected++;
    this.stats[fault]++;
    this.stats.byMethod[method] = (this.stats.byMethod[method] ?? 0) + 1;
    return failure(fault);
  }
}

/** What the S3 adapter's error says (src/storage/s3.ts storageError), marked as injected. */
function s3Failure(what: string): (fault: FaultKind) => SluiceError {
  const cause: Record<FaultKind, string> = {
    throttle: "SlowDown (HTTP 503)",
    failBefore: "ECONNREFUSED",
    failAfter: "ECONNRESET",
    timeout: "TimeoutError",
  };
  return (fault) =>
    new SluiceError("storage_unavailable", `S3 ${what} failed: ${cause[fault]} [injected]`, {
      details: { injected: fault },
    });
}

/** What the DynamoDB adapter's error says (src/meta/dynamodb.ts storageError), marked as injected. */
function metaFailure(action: string): (fault: FaultKind) => SluiceError {
  const cause: Record<FaultKind, string> = {
    throttle: "ThrottlingException: Rate of requests exceeds the allowed throughput",
    failBefore: "Error: connect ECONNREFUSED",
    failAfter: "Error: socket hang up (ECONNRESET)",
    timeout: "TimeoutError: Request timed out",
  };
  return (fault) =>
    new SluiceError(
      "storage_unavailable",
      `metadata ${action} failed: ${cause[fault]} [injected]`,
      {
        details: { injected: fault },
      },
    );
}

/** Listings fail by page, as S3's ListObjectsV2 does: a page every this many objects. */
const LIST_PAGE = 8;

/** An ObjectStore whose calls the injector delays and fails. */
export class FaultyObjectStore implements ObjectStore {
  constructor(
    readonly inner: ObjectStore,
    readonly injector: FaultInjector,
  ) {}

  put(key: string, body: Uint8Array): Promise<void> {
    return this.injector.run(
      "s3.put",
      "write",
      () => this.inner.put(key, body),
      s3Failure(`put ${key}`),
    );
  }

  get(key: string, range?: ByteRange): Promise<Uint8Array> {
    return this.injector.run(
      "s3.get",
      "read",
      () => this.inner.get(key, range),
      s3Failure(`get ${key}`),
    );
  }

  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    const failure = s3Failure(`list ${prefix}`);
    await this.injector.gate("s3.list", failure);
    let n = 0;
    for await (const object of this.inner.list(prefix)) {
      if (++n % LIST_PAGE === 0) await this.injector.gate("s3.list", failure);
      yield object;
    }
  }

  delete(keys: readonly string[]): Promise<void> {
    return this.injector.run(
      "s3.delete",
      "write",
      () => this.inner.delete(keys),
      s3Failure(`delete of ${keys.length} keys`),
    );
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  quiet(): void {
    this.injector.quiet();
  }
}

type Methods<T> = {
  [K in keyof T]: T[K] extends (...args: never[]) => unknown ? K : never;
}[keyof T];

/**
 * Every method of both metadata ports, and whether it writes; the compiler keeps this list
 * complete, so a method added to a port cannot slip past the faults. `close` gets none.
 */
const metaMethods = {
  createTopic: "write",
  getTopic: "read",
  listTopics: "read",
  deleteTopic: "write",
  getHead: "read",
  commitAppend: "write",
  getProducers: "read",
  readIndex: "read",
  listEntries: "read",
  beginIntent: "write",
  replaceEntries: "write",
  advanceLogStart: "write",
  abortIntent: "write",
  listIntents: "read",
  dropIntent: "write",
  listDeletedTopics: "read",
  purgePartition: "write",
  forgetDeletedTopic: "write",
  close: "none",
  getGroup: "read",
  listGroups: "read",
  putGroup: "write",
  deleteGroup: "write",
  getOffsets: "read",
  writeOffsets: "write",
  purgeOffsets: "write",
} as const satisfies Record<Methods<MetaStore & GroupStore>, CallKind | "none">;

/** The metadata store with each call routed through the injector; the limits pass through. */
function faultyMeta(
  inner: MetaStore & GroupStore,
  injector: FaultInjector,
): MetaStore & GroupStore {
  const wrapped: Record<string, unknown> = {};
  for (const [name, kind] of Object.entries(metaMethods)) {
    const method = (inner as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[
      name
    ]!;
    wrapped[name] =
      kind === "none"
        ? (...args: unknown[]) => method.apply(inner, args)
        : (...args: unknown[]) =>
            injector.run(`meta.${name}`, kind, () => method.apply(inner, args), metaFailure(name));
  }
  for (const limit of ["maxReplacedPerRoll", "maxRemovedPerAdvance", "maxOffsetsPerWrite"]) {
    Object.defineProperty(wrapped, limit, {
      get: () => (inner as unknown as Record<string, number>)[limit],
    });
  }
  return wrapped as unknown as MetaStore & GroupStore;
}

/** Both metadata ports (topics and log, groups and offsets), every call subject to faults. */
export class FaultyMetaStore extends DelegatingMetaStore {
  constructor(
    readonly real: MetaStore & GroupStore,
    readonly injector: FaultInjector,
  ) {
    super(faultyMeta(real, injector));
  }

  quiet(): void {
    this.injector.quiet();
  }
}
