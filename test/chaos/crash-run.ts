/**
 * Runs crash scenarios back to back for a while, outside vitest:
 *
 *   npx tsx test/chaos/crash-run.ts --minutes 10 [--seed N] [--backend embedded|s3+dynamodb]
 *     [--servers 3] [--scenario-ms 60000] [--producers 6] [--consumers 2] [--member-churn 0.004]
 *
 * Scenarios of 4 minutes or more also roll segments under the nemesis.
 *
 * Starts s3rver and DynamoDB Local itself unless AWS_ENDPOINT_URL_S3/_DYNAMODB are set. Exits 1
 * if any scenario found a violation or failed, after printing the seeds to run again.
 */
import { parseArgs } from "node:util";
import { runCrashLoop, type CrashBackend } from "./crash-harness.js";
import { chaosSeed, reproduce } from "./prng.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "5" },
    seed: { type: "string" },
    backend: { type: "string", multiple: true },
    servers: { type: "string", default: "3" },
    "scenario-ms": { type: "string", default: "60000" },
    producers: { type: "string", default: "6" },
    consumers: { type: "string", default: "2" },
    "member-churn": { type: "string", default: "0.004" },
  },
});

const backends = (values.backend ?? ["embedded", "s3+dynamodb"]) as CrashBackend[];
for (const b of backends) {
  if (b !== "embedded" && b !== "s3+dynamodb") throw new Error(`unknown backend ${String(b)}`);
}
const seed = values.seed === undefined ? chaosSeed() : chaosSeed({ CHAOS_SEED: values.seed });

const summary = await runCrashLoop({
  minutes: Number(values.minutes),
  seed,
  backends,
  servers: Number(values.servers),
  scenarioMs: Number(values["scenario-ms"]),
  producers: Number(values.producers),
  consumers: Number(values.consumers),
  memberChurn: Number(values["member-churn"]),
});

console.log(
  `\n${summary.scenarios} scenarios in ${Math.round(summary.elapsedMs / 1000)} s: ` +
    `records ok=${summary.ops.ok} failed=${summary.ops.failed} unknown=${summary.ops.unknown}, ` +
    `consumed=${summary.consumed}, crashes=${summary.crashes}, pauses=${summary.pauses}, ` +
    `violations=${summary.violations}`,
);
for (const f of summary.failedSeeds) {
  console.log(`FAILED ${f.backend}: ${f.why}\n  ${reproduce(f.seed)}`);
}
process.exit(summary.failedSeeds.length > 0 ? 1 : 0);
