/**
 * The long profile of the reliability suite (issue #8), outside vitest:
 *
 *   npm run test:chaos -- --minutes 30 [--seed N]
 *
 * Splits the time between the seeded in-process simulations with injected storage faults
 * (40 %), the HTTP bad-input fuzzer with and without authentication (20 %) and the crash
 * harness on real server processes over both backends (40 %), then prints one summary table.
 * Exits 1 if anything found a violation, after printing the seeds that reproduce it.
 */
import { parseArgs } from "node:util";
import { runCrashLoop } from "./crash-harness.js";
import { runFuzz } from "./fuzz.js";
import { chaosSeed, reproduce } from "./prng.js";
import { describeFailure, runSimulations } from "./simulation.js";

const { values } = parseArgs({
  options: { minutes: { type: "string", default: "10" }, seed: { type: "string" } },
});
const minutes = Number(values.minutes);
if (!(minutes > 0)) throw new Error("--minutes must be a positive number");
const seed = values.seed === undefined ? chaosSeed() : chaosSeed({ CHAOS_SEED: values.seed });
const log = (line: string) => console.error(line);
log(`chaos: ${minutes} min from seed ${seed}`);

const simulations = await runSimulations({
  minutes: minutes * 0.4,
  seed,
  onResult: (r) => {
    if (r.violations.length > 0 || r.errors.length > 0) log(describeFailure(r));
  },
});
log(`simulations: ${simulations.runs} runs, ${simulations.failures.length} failing`);

const fuzzDeadline = Date.now() + minutes * 0.2 * 60_000;
const fuzz = {
  rounds: 0,
  cases: 0,
  statuses: {} as Record<number, number>,
  failures: [] as string[],
};
for (let round = 0; Date.now() < fuzzDeadline; round++) {
  const fuzzSeed = (seed + round) >>> 0;
  try {
    const stats = await runFuzz({ seed: fuzzSeed, numRuns: 1000, auth: round % 2 === 1 });
    fuzz.cases += stats.cases;
    for (const [status, n] of Object.entries(stats.statuses)) {
      fuzz.statuses[Number(status)] = (fuzz.statuses[Number(status)] ?? 0) + n;
    }
  } catch (err) {
    fuzz.failures.push(`${(err as Error).message.split("\n").slice(0, 6).join("\n")}`);
  }
  fuzz.rounds++;
}
log(`fuzz: ${fuzz.cases} requests in ${fuzz.rounds} rounds, ${fuzz.failures.length} failing`);

const crash = await runCrashLoop({ minutes: minutes * 0.4, seed, log });

const rows: [string, string, string][] = [
  [
    "simulation",
    `${simulations.runs} runs, ${simulations.ops.produceRequests} produce requests, ` +
      `${simulations.ops.commits} commits, ${simulations.ops.segmentsRolled} rolls`,
    `${simulations.faults.injected} faults (${simulations.faults.outages} outages); ` +
      `${simulations.failures.length} failing runs`,
  ],
  [
    "fuzz",
    `${fuzz.cases} requests; statuses ${JSON.stringify(fuzz.statuses)}`,
    `${fuzz.failures.length} failing rounds`,
  ],
  [
    "crash",
    `${crash.scenarios} scenarios, records ok ${crash.ops.ok} / unknown ${crash.ops.unknown} / ` +
      `failed ${crash.ops.failed}, ${crash.consumed} consumed`,
    `${crash.crashes} SIGKILLs, ${crash.pauses} SIGSTOPs survived; ${crash.violations} violations`,
  ],
];
console.log("\n| part | work | faults and result |\n| --- | --- | --- |");
for (const row of rows) console.log(`| ${row.join(" | ")} |`);

for (const f of simulations.failures) console.log(describeFailure(f));
for (const f of fuzz.failures) console.log(`FUZZ FAILED\n${f}`);
for (const f of crash.failedSeeds)
  console.log(`CRASH FAILED ${f.backend}: ${f.why}\n  ${reproduce(f.seed)}`);
const failed = simulations.failures.length + fuzz.failures.length + crash.failedSeeds.length;
process.exit(failed > 0 ? 1 : 0);
