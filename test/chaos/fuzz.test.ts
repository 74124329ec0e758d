import { describe, expect, it } from "vitest";
import { SluiceError } from "../../src/errors.js";
import { checkResponse, formatStats, runFuzz, type FuzzStats } from "./fuzz.js";

/**
 * Bad-input fuzzing of the HTTP API (issue #8), the short profile `npm test` runs. Replay or
 * lengthen a run with CHAOS_SEED and CHAOS_FUZZ_RUNS; CHAOS_VERBOSE=1 prints what each
 * run saw (statuses, error codes, requests per second).
 */

const seed =
  process.env.CHAOS_SEED !== undefined
    ? Number(process.env.CHAOS_SEED)
    : Math.floor(Math.random() * 2 ** 31);
const numRuns = Number(process.env.CHAOS_FUZZ_RUNS ?? 1000);
const timeout = Math.max(60_000, numRuns * 100);

async function fuzz(auth: boolean): Promise<FuzzStats> {
  try {
    const stats = await runFuzz({ seed, numRuns, auth });
    if (process.env.CHAOS_VERBOSE) console.info(formatStats(stats));
    return stats;
  } catch (err) {
    // The seed leads the message, so a failure in CI can be replayed as it is.
    throw new Error(
      `CHAOS_SEED=${seed} CHAOS_FUZZ_RUNS=${numRuns}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}

const count = (stats: FuzzStats, from: number, to: number) =>
  Object.entries(stats.statuses)
    .filter(([status]) => Number(status) >= from && Number(status) < to)
    .reduce((sum, [, n]) => sum + n, 0);

describe("HTTP fuzzing", () => {
  it(
    "never answers a 5xx, a wrong error or a state change to bad input (authentication off)",
    async () => {
      const stats = await fuzz(false);
      expect(stats.cases).toBeGreaterThan(numRuns * 0.9);
      // Near-valid input must get through: a fuzzer that only ever hears 4xx tests the router.
      if (numRuns >= 200) {
        expect(count(stats, 200, 300)).toBeGreaterThan(numRuns * 0.1);
        expect(count(stats, 400, 500)).toBeGreaterThan(numRuns * 0.3);
        expect(Object.keys(stats.codes).length).toBeGreaterThanOrEqual(8);
      }
    },
    timeout,
  );

  it(
    "never answers a 5xx, a wrong error, a state change or an echoed credential (authentication on)",
    async () => {
      const stats = await fuzz(true);
      expect(stats.cases).toBeGreaterThan(numRuns * 0.9);
      if (numRuns >= 200) {
        expect(count(stats, 200, 300)).toBeGreaterThan(numRuns * 0.1);
        expect(stats.codes.unauthorized).toBeGreaterThan(0);
        expect(stats.codes.forbidden).toBeGreaterThan(0);
      }
    },
    timeout,
  );
});

describe("the fuzzer's property", () => {
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) => ({
    status,
    headers: new Headers({ "content-type": "application/json", ...headers }),
    body: JSON.stringify(body),
  });

  it("accepts 2xx answers and errors whose code matches their status", () => {
    expect(checkResponse("GET", json(200, { topics: [] }))).toEqual([]);
    expect(
      checkResponse("GET", json(404, { error: { code: "topic_not_found", message: "no" } })),
    ).toEqual([]);
    expect(
      checkResponse("POST", json(413, { error: { code: "payload_too_large", message: "big" } })),
    ).toEqual([]);
    expect(checkResponse("HEAD", { status: 404, headers: new Headers(), body: "" })).toEqual([]);
  });

  it("flags a 500, even one with a well-formed internal error", () => {
    const problems = checkResponse(
      "GET",
      json(500, { error: { code: "internal", message: "internal error" } }),
    );
    expect(problems.join("; ")).toMatch(/5xx/);
  });

  it("flags an unknown code, a code of another status and a body that is no error", () => {
    expect(
      checkResponse("POST", json(400, { error: { code: "bad_vibes", message: "x" } })).join(),
    ).toMatch(/not one of errorCodes/);
    expect(
      checkResponse("GET", json(404, { error: { code: "invalid_name", message: "x" } })).join(),
    ).toMatch(/invalid_name is 400, but the status is 404/);
    expect(checkResponse("GET", json(400, { message: "x" })).join()).toMatch(/no `error` object/);
    expect(
      checkResponse("GET", { status: 400, headers: new Headers(), body: "Bad Request" }).join(),
    ).toMatch(/not JSON/);
    expect(
      checkResponse("GET", {
        status: 200,
        headers: new Headers({ "content-type": "application/json" }),
        body: '{"records":[',
      }).join(),
    ).toMatch(/does not parse/);
  });

  it("flags an answer that echoes the request's credential", () => {
    const key = "slk_01ARZ3NDEKTSV4RRFFQ69G5FAV_secretsecretsecretsecretsecretsecret123";
    const echoed = json(401, { error: { code: "unauthorized", message: `bad key ${key}` } });
    expect(checkResponse("GET", echoed, [key]).join()).toMatch(/echoes a credential/);
    const inHeader = json(200, {}, { "x-debug": key });
    expect(checkResponse("GET", inHeader, [key]).join()).toMatch(/x-debug header echoes/);
  });

  it("fails a run when a route answers 500, with the seed and the request", async () => {
    const run = runFuzz({
      seed: 42,
      numRuns: 300,
      auth: false,
      plant: (log) => {
        log.listOffset = () => Promise.reject(new Error("planted"));
      },
    });
    await expect(run).rejects.toThrow(/seed 42[\s\S]*5xx[\s\S]*\/offsets/);
  });

  it("fails a run when a rejected request changes the state", async () => {
    const run = runFuzz({
      seed: 42,
      numRuns: 300,
      auth: false,
      plant: (log) => {
        const listOffset = log.listOffset.bind(log);
        // Answers 400 after appending a record: a refusal with a side effect.
        log.listOffset = async (topic, partition, spec) => {
          await listOffset(topic, partition, spec);
          await log.produce(topic, [
            {
              key: null,
              keyEncoding: "utf8",
              value: new Uint8Array(1),
              valueEncoding: "binary",
              headers: {},
            },
          ]);
          throw new SluiceError("invalid_request", "planted");
        };
      },
    });
    await expect(run).rejects.toThrow(/a rejected request changed the state/);
  });
});
