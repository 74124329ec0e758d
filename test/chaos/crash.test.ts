import { describe, expect, it } from "vitest";
import { formatCrashResult, runCrashScenario, type CrashBackend } from "./crash-harness.js";
import { chaosSeed, reproduce } from "./prng.js";

/**
 * The short profile of the crash harness (issue #8) for `npm test`: per backend, two server
 * processes on one store under a few producers and a two-member consumer group while the
 * nemesis SIGKILLs and SIGSTOPs them, then the checker over the whole history. Longer or wider
 * runs: CHAOS_CRASH_MS (load per scenario), CHAOS_CRASH_SERVERS, CHAOS_CRASH_PRODUCERS; a
 * failure names its seed (CHAOS_SEED) to run it again.
 */

const envInt = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new Error(`${name}=${raw} is not a positive integer`);
  return n;
};

const LOAD_MS = envInt("CHAOS_CRASH_MS", 15_000);
const SERVERS = envInt("CHAOS_CRASH_SERVERS", 2);
const PRODUCERS = envInt("CHAOS_CRASH_PRODUCERS", 4);
const seed = chaosSeed();

describe("crash harness: servers killed and paused under load", () => {
  const backends: CrashBackend[] = ["embedded", "s3+dynamodb"];
  for (const backend of backends) {
    it(
      `${backend}: no acknowledged record lost, moved, duplicated or invented; commits never go back`,
      async () => {
        const result = await runCrashScenario({
          seed,
          backend,
          servers: SERVERS,
          durationMs: LOAD_MS,
          producers: PRODUCERS,
          consumers: 2,
          // A slow machine restarts servers slowly: load goes on (up to 1.7x) until the
          // nemesis has done both kinds of fault at least once.
          minCrashes: 1,
          minPauses: 1,
          maxDurationMs: Math.round(LOAD_MS * 1.7),
          // Members also drop their sessions or leave now and then, so partitions move between
          // them while servers die.
          memberChurn: 0.02,
        });
        const summary = formatCrashResult(result);
        console.log(`${summary}\n  statuses ${JSON.stringify(result.statuses)}`);
        const context = [
          summary,
          ...result.violations.slice(0, 30).map((v) => `  ${v.kind}: ${v.detail}`),
          ...result.anomalies.slice(0, 20).map((a) => `  anomaly: ${a}`),
          reproduce(seed, { CHAOS_CRASH_MS: LOAD_MS }),
        ].join("\n");

        expect(result.violations, context).toEqual([]);
        expect(result.anomalies, context).toEqual([]);
        // The nemesis did its job, and there was real load through it.
        expect(result.crashes, context).toBeGreaterThanOrEqual(1);
        expect(result.pauses, context).toBeGreaterThanOrEqual(1);
        expect(result.ops.ok, context).toBeGreaterThan(50);
        expect(result.consumed, context).toBeGreaterThan(0);
        expect(result.commitObservations, context).toBeGreaterThan(0);
        expect(result.drained, context).toBe(true);
      },
      Math.round(LOAD_MS * 1.7) + 75_000,
    );
  }
});
