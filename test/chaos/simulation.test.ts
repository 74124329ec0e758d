import { describe, expect, it } from "vitest";
import type { GroupGuard, OffsetWrite, OffsetWriteResult } from "../../src/meta/group-store.js";
import type { CommitRequest, CommitResult } from "../../src/meta/meta-store.js";
import type { ByteRange, ObjectInfo, ObjectStore } from "../../src/storage/object-store.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";
import { chaosSeed } from "./prng.js";
import {
  describeFailure,
  runSimulation,
  runSimulations,
  type SimOptions,
  type SimResult,
  type Stores,
} from "./simulation.js";

/**
 * The short chaos profile for `npm test`: CHAOS_RUNS seeded runs (default 100: 15–40 s on a 2-core machine)
 * from CHAOS_SEED (default random). A failing run prints its seed; `CHAOS_SEED=<seed>
 * CHAOS_RUNS=1` runs it alone. Longer soaks: `npm run test:chaos -- --minutes N`.
 */
const RUNS = Number(process.env.CHAOS_RUNS ?? 100);
const EMBEDDED_RUNS = Number(process.env.CHAOS_EMBEDDED_RUNS ?? 2);
const SEED = chaosSeed();

const explain = (failures: SimResult[], rerun?: Record<string, number>) =>
  failures
    .slice(0, 5)
    .map((f) => describeFailure(f, rerun))
    .join("\n");
const EMBEDDED_RERUN = { CHAOS_RUNS: 0, CHAOS_EMBEDDED_RUNS: 1 };

describe("chaos simulation", () => {
  it.skipIf(RUNS === 0)(
    `keeps every invariant over ${RUNS} seeded runs from seed ${SEED} (memory stores)`,
    async () => {
      const summary = await runSimulations({ runs: RUNS, seed: SEED, concurrency: 4 });
      const { ops, faults } = summary;
      console.log(
        `chaos: ${summary.runs} runs from seed ${SEED} in ${(summary.elapsedMs / 1000).toFixed(1)} s ` +
          `(${summary.runsPerSecond.toFixed(1)} runs/s): ${faults.injected} faults in ${faults.calls} ` +
          `store calls (${(faults.injected / summary.runs).toFixed(0)} per run, ${faults.outages} outages), ` +
          `${ops.records} records (${ops.ok} ok, ${ops.unknown} unknown), ${ops.idempotentResends} ` +
          `idempotent resends, ${ops.recordsConsumed} consumed, ${ops.segmentsRolled} rolls, ` +
          `${ops.segmentsRetired} retired, ${ops.orphansDeleted} orphans deleted`,
      );
      if (summary.failures.length > 0) console.error(explain(summary.failures));
      expect(
        summary.failures.map((f) => f.seed),
        explain(summary.failures),
      ).toEqual([]);
      expect(summary.runs).toBe(RUNS);
      if (RUNS >= 50) {
        // A harness that stopped reaching these paths would pass without proving anything.
        expect(faults.injected).toBeGreaterThan(RUNS * 10);
        expect(faults.failAfter).toBeGreaterThan(0);
        expect(faults.outages).toBeGreaterThan(0);
        expect(ops.unknown).toBeGreaterThan(0);
        expect(ops.idempotentResends).toBeGreaterThan(0);
        expect(ops.segmentsRolled).toBeGreaterThan(0);
        expect(ops.segmentsRetired).toBeGreaterThan(0);
        expect(ops.trimmedOffsets).toBeGreaterThan(0);
        expect(ops.crashes).toBeGreaterThan(0);
        expect(ops.commitObservations).toBeGreaterThan(RUNS * 10);
        expect(ops.recordsConsumed).toBeGreaterThan(ops.ok / 2);
      }
    },
    180_000,
  );

  it.skipIf(EMBEDDED_RUNS === 0)(
    `keeps every invariant over ${EMBEDDED_RUNS} runs on the embedded stores (files + SQLite)`,
    async () => {
      const summary = await runSimulations({
        runs: EMBEDDED_RUNS,
        seed: SEED,
        concurrency: 3,
        options: { stores: "embedded" },
      });
      const message = explain(summary.failures, EMBEDDED_RERUN);
      if (summary.failures.length > 0) console.error(message);
      expect(
        summary.failures.map((f) => f.seed),
        message,
      ).toEqual([]);
      expect(summary.ops.ok).toBeGreaterThan(0);
    },
    120_000,
  );
});

// ---- the harness can fail: deliberately broken adapters must be caught ----------------------

/** Loses every 10th chunk right after acknowledging its PUT (an object store dropping data). */
class LosingObjectStore implements ObjectStore {
  private puts = 0;
  constructor(private readonly inner: ObjectStore) {}
  async put(key: string, body: Uint8Array): Promise<void> {
    await this.inner.put(key, body);
    if (key.includes("/chunks/") && ++this.puts % 10 === 0) await this.inner.delete([key]);
  }
  get(key: string, range?: ByteRange): Promise<Uint8Array> {
    return this.inner.get(key, range);
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }
  delete(keys: readonly string[]): Promise<void> {
    return this.inner.delete(keys);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Answers every 20th log commit "committed" without applying it. */
class DroppingCommitMeta extends DelegatingMetaStore {
  private commits = 0;
  override async commitAppend(request: CommitRequest): Promise<CommitResult> {
    if (++this.commits % 20 === 0) {
      const head = await this.inner.getHead(request.topicId, request.partition);
      if (head.logEndOffset === request.expectedLogEndOffset) {
        return {
          committed: true,
          head: { ...head, logEndOffset: head.logEndOffset + request.entry.count },
        };
      }
    }
    return this.inner.commitAppend(request);
  }
}

/** Answers every 5th group-offset write "ok" without applying it. */
class DroppingOffsetsMeta extends DelegatingMetaStore {
  private writes = 0;
  override writeOffsets(
    group: string,
    guard: GroupGuard,
    writes: OffsetWrite[],
  ): Promise<OffsetWriteResult> {
    if (++this.writes % 5 === 0) return Promise.resolve({ ok: true });
    return this.inner.writeOffsets(group, guard, writes);
  }
}

/**
 * Commits producer states without their version condition: a resend racing the request it
 * repeats (two processes, one sequence number) then appends its records a second time.
 */
class UnconditionalProducersMeta extends DelegatingMetaStore {
  override async commitAppend(request: CommitRequest): Promise<CommitResult> {
    const writes = request.producers ?? [];
    if (writes.length === 0) return this.inner.commitAppend(request);
    const stored = await this.inner.getProducers(
      request.topicId,
      request.partition,
      writes.map((w) => w.producerId),
    );
    const producers = writes.map((w) => {
      const expected = stored.get(w.producerId)?.version ?? null;
      return { ...w, expected, state: { ...w.state, version: (expected ?? 0) + 1 } };
    });
    return this.inner.commitAppend({ ...request, producers });
  }
}

interface Broken {
  wrap: (s: Stores) => Stores;
  expect: string[];
  /** A workload that reaches the broken path often. */
  options?: SimOptions;
  /** Seeds tried before giving up (each run is caught with some probability). */
  seeds?: number;
}

const broken: Record<string, Broken> = {
  "an object store that loses acknowledged objects": {
    wrap: (s) => ({ store: new LosingObjectStore(s.store), meta: s.meta }),
    expect: ["lost", "gap"],
  },
  "a metadata store that acknowledges commits it drops": {
    wrap: (s) => ({ store: s.store, meta: new DroppingCommitMeta(s.meta) }),
    expect: ["lost", "wrong_offset"],
  },
  "a metadata store that acknowledges group offsets it drops": {
    wrap: (s) => ({ store: s.store, meta: new DroppingOffsetsMeta(s.meta) }),
    expect: ["commit_backwards"],
  },
  "a metadata store that ignores producer versions (idempotence lost under a race)": {
    wrap: (s) => ({ store: s.store, meta: new UnconditionalProducersMeta(s.meta) }),
    expect: ["duplicate"],
    // Client timeouts make resends race the requests they repeat: about half the runs hit it.
    options: { clientTimeouts: 0.5, idempotentProducers: 3, plainProducers: 1 },
    seeds: 16,
  },
};

describe("the chaos harness can fail", () => {
  for (const [name, { wrap, expect: kinds, options, seeds = 5 }] of Object.entries(broken)) {
    it(`catches ${name}`, async () => {
      // A few seeds: one quiet run may happen not to reach the broken call, and another may
      // only trip over the broken store's side effects (an unexplained error, not a violation).
      const violated = (r: SimResult) => r.violations.length > 0;
      const results: SimResult[] = [];
      for (let i = 0; i < seeds && !results.some(violated); i++) {
        results.push(await runSimulation((SEED + i) >>> 0, { ...options, wrap }));
      }
      const caught = results.find(violated);
      expect(caught, `no violation in ${results.length} runs from seed ${SEED}`).toBeDefined();
      const found = caught!.violations.map((v) => v.kind);
      expect(
        found.some((k) => kinds.includes(k)),
        `expected one of ${kinds.join(", ")}; got ${[...new Set(found)].join(", ")}`,
      ).toBe(true);
    }, 60_000);
  }
});
