/**
 * `npm run bench`: Sluice measured the way users weigh it, with its limits and its peers in the
 * same run. Phases: produce matrix (a `sluice serve` child, embedded and S3 + DynamoDB
 * stand-ins), the limits (raw PUT/GET at a flush's size, a trivial Hono handler), the peers
 * (Redis Streams, NATS JetStream), fetch (chunks, sealed, end-to-end), cost counters and the
 * Lambda shape. Writes bench/results/<name>.{json,md,svg}.
 *
 *   npm run bench                      full matrix → latest.*
 *   npm run bench -- --quick           reduced matrix, every phase → latest-quick.*
 *   npm run bench -- --filter produce/embedded,peers/redis
 *                                      only measurements whose id contains one of these
 *                                      (ids: produce/<backend>/<cell>, limits/store/<fs|s3>,
 *                                      limits/hono/<cell>, peers/<redis-always|redis-everysec|
 *                                      nats>/<cell>, fetch/<backend>, cost/<backend>, lambda;
 *                                      cells look like 1KiB/b100/c16) → latest-filtered.*
 *   npm run bench -- --profile [--quick]
 *                                      only a CPU profile of the server during the headline
 *                                      cell → bench/results/profile/, profile-summary.txt, and
 *                                      the Profile section of latest.{md,json}
 *   --verbose                          a line per step on stderr when it is not a terminal
 *   --out <name>                       results file name instead of the default
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, release, tmpdir, totalmem, type } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { FileSystemObjectStore } from "../src/storage/filesystem.js";
import { S3ObjectStore } from "../src/storage/s3.js";
import { fullPlan, headlineCell, prices, quickPlan, type RunPlan } from "./config.js";
import { runCost } from "./cost.js";
import { fetchSteps, runFetch } from "./fetch.js";
import { lambdaShape } from "./lambda.js";
import { honoLimits, storeLimits } from "./limits.js";
import { cellName, cellsOf } from "./measure.js";
import { ensurePeerBinaries, runNats, runRedis } from "./peers.js";
import { sluiceCell } from "./produce.js";
import { formatSummary, loadProfile, summarize } from "./profile-summary.js";
import { Progress } from "./progress.js";
import { markdown, PROFILE_END, PROFILE_START, profileSection, svgChart } from "./report.js";
import { startSluice, type BackendPlace } from "./sluice.js";
import { startStandins, type Standins } from "./standins.js";
import { sig } from "./stats.js";
import type { BackendName, BenchResults, Machine, Ratio, SluiceWriteResult } from "./types.js";

const resultsDir = fileURLToPath(new URL("./results/", import.meta.url));

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    filter: { type: "string" },
    profile: { type: "boolean", default: false },
    verbose: { type: "boolean", default: false },
    out: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  const source = await readFile(fileURLToPath(import.meta.url), "utf8");
  console.log(/\/\*\*([\s\S]*?)\*\//.exec(source)?.[1]?.replace(/^ \* ?/gm, ""));
  process.exit(0);
}

const plan: RunPlan = args.quick ? quickPlan : fullPlan;
const filters = (args.filter ?? "")
  .split(",")
  .map((f) => f.trim())
  .filter((f) => f !== "");
const wants = (id: string) => filters.length === 0 || filters.some((f) => id.includes(f));
const progress = new Progress(args.verbose);
// As the report quotes it: --verbose changes nothing measured.
const shown = process.argv.slice(2).filter((a) => a !== "--verbose");
const command = `npm run bench${shown.length > 0 ? ` -- ${shown.join(" ")}` : ""}`;

const temp: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temp.push(dir);
  return dir;
}

function machine(): Machine {
  return {
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${type()} ${release()}`,
    date: new Date().toISOString(),
  };
}

async function main(): Promise<void> {
  await mkdir(resultsDir, { recursive: true });
  if (args.profile) return profile();

  const started = performance.now();
  const notes: string[] = [];
  const cells = cellsOf(plan.matrix);
  const backends: BackendName[] = ["embedded", "s3+dynamodb"];
  const results: BenchResults = {
    machine: machine(),
    options: {
      quick: args.quick,
      filter: filters,
      repeats: plan.repeats,
      durationMs: plan.durationMs,
      warmupMs: plan.warmupMs,
      plan,
    },
    durationS: 0,
    prices,
    produce: [],
    fetch: [],
    endToEnd: [],
    cost: [],
    limits: { stores: [], hono: [] },
    peers: { info: [], results: [] },
    ratios: { limits: [], peers: [] },
    lambda: null,
    notes,
  };
  const failed = (what: string, err: unknown) => {
    const message = `${what} failed: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`;
    notes.push(message);
    progress.note(message);
  };

  const produceCells = backends.flatMap((backend) =>
    cells
      .filter((cell) => wants(`produce/${backend}/${cellName(cell)}`))
      .map((cell) => ({ backend, cell })),
  );
  const needStandins =
    produceCells.some((p) => p.backend === "s3+dynamodb") ||
    ["fetch/s3+dynamodb", "cost/s3+dynamodb", "limits/store/s3", "lambda"].some(wants);

  let standins: Standins | undefined;
  try {
    if (needStandins) {
      const phase = progress.phase("stand-ins", 1);
      phase.step("s3rver + DynamoDB Local");
      standins = await startStandins();
      phase.tick();
      phase.done();
    }
    const places = new Map<BackendName, BackendPlace>();
    const placeOf = async (backend: BackendName): Promise<BackendPlace> => {
      let place = places.get(backend);
      if (!place) {
        place = {
          backend,
          dataDir: await tempDir(`sluice-bench-${backend === "embedded" ? "emb" : "s3"}-`),
          prefix: `bench-${Date.now().toString(36)}/`,
          ...(standins ? { standins } : {}),
        };
        places.set(backend, place);
      }
      return place;
    };

    // Produce.
    if (produceCells.length > 0) {
      const phase = progress.phase("produce", produceCells.length);
      for (const backend of backends) {
        const mine = produceCells.filter((p) => p.backend === backend);
        if (mine.length === 0) continue;
        phase.step(`${backend}: starting sluice serve`);
        const sluice = await startSluice(await placeOf(backend));
        try {
          // The first requests of a fresh process pay for loading and compiling the code.
          phase.step(`${backend}: warming the server up`);
          await sluiceCell(sluice.client, backend, headlineCell, {
            durationMs: 1000,
            warmupMs: 0,
            repeats: 1,
          });
          for (const { cell } of mine) {
            phase.step(`${backend} ${cellName(cell)}`);
            try {
              const cellPlan = heavyPlan(
                cell,
                results.produce.filter((p) => p.backend === backend),
              );
              if (cellPlan !== plan) {
                notes.push(
                  `produce ${backend} ${cellName(cell)}: one round of ${cell.concurrency} requests ` +
                    `is ${sig((cell.concurrency * cell.batch * cell.recordBytes) / 1e6)} MB, so ` +
                    `${cellPlan.repeats} run(s) without a separate warm-up.`,
                );
              }
              const { result, run } = await sluiceCell(sluice.client, backend, cell, cellPlan);
              results.produce.push(result);
              if ((run.errors ?? 0) > 0) {
                notes.push(
                  `produce ${backend} ${cellName(cell)}: ${run.errors} failed requests (${run.firstError})`,
                );
              }
            } catch (err) {
              failed(`produce ${backend} ${cellName(cell)}`, err);
            }
            phase.tick();
          }
        } finally {
          await sluice.stop().catch((err: unknown) => failed(`sluice ${backend} stop`, err));
        }
      }
      phase.done();
    }

    // Limits: raw store at a flush's size, and Hono.
    const storeTargets = [
      { id: "fs", backend: "embedded" as const, name: "FileSystemObjectStore" },
      { id: "s3", backend: "s3+dynamodb" as const, name: "S3ObjectStore → s3rver" },
    ].filter((t) => wants(`limits/store/${t.id}`) && (t.id === "fs" || standins));
    const honoCells = cells.filter(
      (c) => plan.honoRecordBytes.includes(c.recordBytes) && wants(`limits/hono/${cellName(c)}`),
    );
    if (storeTargets.length > 0 || honoCells.length > 0) {
      const phase = progress.phase("limits", storeTargets.length * 4 + honoCells.length);
      for (const t of storeTargets) {
        const objectBytes = flushSize(results.produce, t.backend);
        const store =
          t.id === "fs"
            ? new FileSystemObjectStore({ root: join(await tempDir("sluice-bench-raw-"), "o") })
            : new S3ObjectStore({ bucket: standins!.bucket, prefix: "raw/" });
        try {
          const limits = await storeLimits(t.name, store, objectBytes, [1, 16], plan, (label) => {
            phase.step(label);
            phase.tick();
          });
          results.limits.stores.push(...limits);
        } catch (err) {
          failed(`raw ${t.name}`, err);
        } finally {
          await store.close();
        }
      }
      if (honoCells.length > 0) {
        try {
          results.limits.hono = await honoLimits(honoCells, plan, phase.step, phase.tick);
        } catch (err) {
          failed("hono", err);
        }
      }
      phase.done();
    }

    // Peers.
    const redisCells = cells.filter((c) => wants(`peers/redis-always/${cellName(c)}`));
    const everysecCells = cells.filter(
      (c) =>
        plan.everysecRecordBytes.includes(c.recordBytes) &&
        wants(`peers/redis-everysec/${cellName(c)}`),
    );
    const natsCells = cells.filter((c) => wants(`peers/nats/${cellName(c)}`));
    if (redisCells.length + everysecCells.length + natsCells.length > 0) {
      const have = ensurePeerBinaries((m) => progress.note(m));
      const phase = progress.phase(
        "peers",
        (have.redis ? redisCells.length + everysecCells.length : 0) +
          (have.nats ? natsCells.length : 0),
      );
      const hooks = { step: phase.step, tick: phase.tick, note: (m: string) => progress.note(m) };
      const peerPlan = { ...plan, durationMs: plan.peerDurationMs };
      if (!have.redis) notes.push("Redis skipped: redis-server is not installed (and not root).");
      else if (redisCells.length + everysecCells.length > 0) {
        try {
          const redis = await runRedis(redisCells, everysecCells, peerPlan, hooks);
          results.peers.info.push(...redis.info);
          results.peers.results.push(...redis.results);
        } catch (err) {
          failed("redis", err);
        }
      }
      if (!have.nats) notes.push("NATS skipped: nats-server is not installed (and not root).");
      else if (natsCells.length > 0) {
        try {
          const nats = await runNats(natsCells, peerPlan, hooks);
          results.peers.info.push(...nats.info);
          results.peers.results.push(...nats.results);
        } catch (err) {
          failed("nats", err);
        }
      }
      phase.done();
    }

    // Fetch.
    const fetchBackends = backends.filter(
      (b) => wants(`fetch/${b}`) && (b === "embedded" || standins),
    );
    if (fetchBackends.length > 0) {
      const phase = progress.phase("fetch", fetchBackends.length * fetchSteps(plan));
      for (const backend of fetchBackends) {
        try {
          const f = await runFetch(await placeOf(backend), plan, phase);
          results.fetch.push(...f.reads);
          results.endToEnd.push(f.e2e);
          notes.push(`fetch ${backend}: the roll replaced ${f.rolled} chunks.`);
        } catch (err) {
          failed(`fetch ${backend}`, err);
        }
      }
      phase.done();
    }

    // Cost counters.
    const costBackends = backends.filter(
      (b) => wants(`cost/${b}`) && (b === "embedded" || standins),
    );
    if (costBackends.length > 0) {
      const phase = progress.phase(
        "cost",
        costBackends.reduce((n, b) => n + (b === "embedded" ? 4 : 5), 0),
      );
      for (const backend of costBackends) {
        try {
          const place = await placeOf(backend);
          const own: BackendPlace = {
            ...place,
            dataDir: await tempDir("sluice-bench-cost-"),
            prefix: `cost-${Date.now().toString(36)}/`,
          };
          results.cost.push(
            ...(await runCost(own, plan, (label) => {
              phase.step(label);
              phase.tick();
            })),
          );
        } catch (err) {
          failed(`cost ${backend}`, err);
        }
      }
      phase.done();
    }

    // Lambda shape.
    if (wants("lambda")) {
      const phase = progress.phase("lambda", 1 + plan.lambdaColdStarts);
      try {
        results.lambda = await lambdaShape(standins?.env ?? {}, plan.lambdaColdStarts, (l) => {
          phase.step(l);
          phase.tick();
        });
      } catch (err) {
        failed("lambda shape", err);
      }
      phase.done();
    }
  } finally {
    await standins?.stop();
    await Promise.allSettled(temp.map((d) => rm(d, { recursive: true, force: true })));
  }

  results.ratios = ratios(results);
  notes.push(...standardNotes(results));
  results.durationS = (performance.now() - started) / 1000;
  const base =
    args.out ?? (filters.length > 0 ? "latest-filtered" : args.quick ? "latest-quick" : "latest");
  // A later --profile run fills the section in; keep one already there.
  results.profile = await existingProfile(base);
  const svg = svgChart(results);
  if (svg) await writeFile(join(resultsDir, `${base}.svg`), svg);
  await writeFile(join(resultsDir, `${base}.json`), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(
    join(resultsDir, `${base}.md`),
    markdown(results, command, svg ? `${base}.svg` : undefined),
  );
  console.log(headline(results, base));
}

/**
 * A cell whose every round (each producer's one request) takes far longer than a run would
 * stretch every repeat to a minute or more: such cells run once or twice, with no warm-up of
 * their own. The round's length is predicted from the best MB/s seen so far at that record size.
 */
function heavyPlan(
  cell: { recordBytes: number; batch: number; concurrency: number },
  done: SluiceWriteResult[],
): Pick<RunPlan, "durationMs" | "warmupMs" | "repeats"> {
  const sameSize = done.filter((p) => p.recordBytes === cell.recordBytes);
  const best = Math.max(
    0.5,
    ...(sameSize.length > 0 ? sameSize : done).map((p) => p.mbPerSec.median),
  );
  const roundMs = ((cell.concurrency * cell.batch * cell.recordBytes) / 1e6 / best) * 1000;
  if (roundMs > 6 * plan.durationMs)
    return { durationMs: plan.durationMs, warmupMs: 0, repeats: 1 };
  if (roundMs > 2 * plan.durationMs)
    return { durationMs: plan.durationMs, warmupMs: 0, repeats: 2 };
  return plan;
}

/** The headline cell's mean flush object for a backend, else the median over its cells. */
function flushSize(produce: SluiceWriteResult[], backend: BackendName): number {
  const mine = produce.filter((p) => p.backend === backend && p.meanFlushBytes > 0);
  const head = mine.find(
    (p) =>
      p.recordBytes === headlineCell.recordBytes &&
      p.batch === headlineCell.batch &&
      p.concurrency === headlineCell.concurrency,
  );
  if (head) return head.meanFlushBytes;
  const sizes = mine.map((p) => p.meanFlushBytes).sort((a, b) => a - b);
  return sizes[sizes.length >> 1] ?? 128 * 1024;
}

function ratios(r: BenchResults): BenchResults["ratios"] {
  const limits: Ratio[] = [];
  const peers: Ratio[] = [];
  const isHead = (p: { recordBytes: number; batch: number; concurrency: number }) =>
    p.recordBytes === headlineCell.recordBytes &&
    p.batch === headlineCell.batch &&
    p.concurrency === headlineCell.concurrency;
  for (const backend of ["embedded", "s3+dynamodb"] as const) {
    const mine = r.produce.filter((p) => p.backend === backend);
    for (const h of r.limits.hono) {
      const s = mine.find(
        (p) =>
          p.recordBytes === h.recordBytes && p.batch === h.batch && p.concurrency === h.concurrency,
      );
      if (!s) continue;
      limits.push({
        label: `${backend} ${cellName(s)} / Hono handler, requests/s`,
        sluice: s.requestsPerSec?.median ?? NaN,
        other: h.requestsPerSec?.median ?? NaN,
        ratio: (s.requestsPerSec?.median ?? NaN) / (h.requestsPerSec?.median ?? NaN),
        unit: "req/s",
      });
    }
    const storeName = backend === "embedded" ? "FileSystemObjectStore" : "S3ObjectStore → s3rver";
    const raw = (op: "put" | "get", c: number) =>
      r.limits.stores.find((s) => s.store === storeName && s.op === op && s.concurrency === c);
    const head = mine.find(isHead);
    const put1 = raw("put", 1);
    const put16 = raw("put", 16);
    if (head && put1) {
      limits.push({
        label: `${backend} ${cellName(head)} flushes / ${storeName} PUT loop c1, objects/s`,
        sluice: head.flushesPerSec,
        other: put1.opsPerSec.median,
        ratio: head.flushesPerSec / put1.opsPerSec.median,
        unit: "obj/s",
      });
      limits.push({
        label: `${backend} ${cellName(head)} / ${storeName} PUT c1, MB/s`,
        sluice: head.mbPerSec.median,
        other: put1.mbPerSec.median,
        ratio: head.mbPerSec.median / put1.mbPerSec.median,
        unit: "MB/s",
      });
    }
    const peak = [...mine].sort((a, b) => b.mbPerSec.median - a.mbPerSec.median)[0];
    if (peak && put16) {
      limits.push({
        label: `${backend} peak (${cellName(peak)}) / ${storeName} PUT c16, MB/s`,
        sluice: peak.mbPerSec.median,
        other: put16.mbPerSec.median,
        ratio: peak.mbPerSec.median / put16.mbPerSec.median,
        unit: "MB/s",
      });
    }
    const get1 = raw("get", 1);
    for (const f of r.fetch.filter((x) => x.backend === backend)) {
      if (!get1) continue;
      limits.push({
        label: `${backend} fetch from ${f.source} / ${storeName} GET c1, MB/s`,
        sluice: f.mbPerSec.median,
        other: get1.mbPerSec.median,
        ratio: f.mbPerSec.median / get1.mbPerSec.median,
        unit: "MB/s",
      });
    }
    for (const p of r.peers.results) {
      const s = mine.find(
        (x) =>
          x.recordBytes === p.recordBytes && x.batch === p.batch && x.concurrency === p.concurrency,
      );
      if (!s) continue;
      peers.push({
        label: `${backend} ${cellName(s)} / ${p.system}, records/s`,
        sluice: s.recordsPerSec.median,
        other: p.recordsPerSec.median,
        ratio: s.recordsPerSec.median / p.recordsPerSec.median,
        unit: "rec/s",
      });
    }
  }
  return { limits, peers };
}

function standardNotes(r: BenchResults): string[] {
  const notes = [
    "MB/s counts record payload (the JSON value's bytes), 10^6 bytes per MB; a request carries the JSON envelope too.",
    "The load generator is node:http with keep-alive (one socket per producer), closed loop: each producer sends its next request when the previous is acknowledged.",
    "Each Sluice produce cell writes a fresh topic of one partition: one flush in flight per partition, so concurrency is absorbed by the linger (5 ms) batching requests into one object.",
    "Requests of 1,000 × 10 KiB records (~10 MB) exceed a Lambda's 6 MB payload limit: the server here accepts 32 MiB bodies.",
    "FileSystemObjectStore GETs are served from the page cache; s3rver is a Node process and DynamoDB Local a JVM on the same two cores as Sluice and the load generator, so the S3 + DynamoDB figures measure the stand-ins as much as Sluice.",
  ];
  if (r.peers.results.length > 0) {
    notes.push(
      "Peers: Redis batches are pipelined XADDs (no MULTI), NATS batches are that many publishes awaited together; each producer has its own connection.",
    );
  }
  return notes;
}

async function existingProfile(base: string): Promise<unknown> {
  try {
    const previous = JSON.parse(await readFile(join(resultsDir, `${base}.json`), "utf8")) as {
      profile?: unknown;
    };
    return previous.profile;
  } catch {
    return undefined;
  }
}

function headline(r: BenchResults, base: string): string {
  const lines = [
    `wrote bench/results/${base}.{json,md${existsSync(join(resultsDir, `${base}.svg`)) ? ",svg" : ""}} in ${(r.durationS / 60).toFixed(1)} min`,
  ];
  for (const p of r.produce.filter(
    (x) =>
      x.recordBytes === headlineCell.recordBytes &&
      x.batch === headlineCell.batch &&
      x.concurrency === headlineCell.concurrency,
  )) {
    lines.push(
      `produce ${p.backend} ${cellName(p)}: ${sig(p.recordsPerSec.median)} records/s, ` +
        `${sig(p.mbPerSec.median)} MB/s, p99 ${sig(p.latencyMs.p99)} ms`,
    );
  }
  for (const x of [...r.ratios.limits, ...r.ratios.peers].filter(
    (x) => x.label.includes(cellName(headlineCell)) || x.label.includes("fetch"),
  )) {
    lines.push(`${x.label}: ${sig(x.ratio, 2)}`);
  }
  if (r.notes.some((n) => n.includes("failed"))) lines.push("some measurements failed: see Notes");
  return lines.join("\n");
}

/**
 * `--profile`: the headline cell against an embedded server under --cpu-prof. The server runs
 * from an esbuild bundle of src/cli/main.ts with a source map (not through tsx, whose
 * one-line transforms would leave every position at line 1), so the summary can name
 * src/<file>:<line>; packages stay external, loaded from node_modules as usual.
 */
async function profile(): Promise<void> {
  const dir = join(resultsDir, "profile");
  await mkdir(dir, { recursive: true });
  for (const f of await readdir(dir)) {
    if (/\.(cpuprofile|mjs|map)$/.test(f)) await rm(join(dir, f));
  }
  const phase = progress.phase("profile", 3);
  const place: BackendPlace = {
    backend: "embedded",
    dataDir: await tempDir("sluice-bench-prof-"),
    prefix: "",
  };
  let cell: SluiceWriteResult;
  let skipMs: number;
  try {
    phase.step("bundle src/cli/main.ts");
    const script = join(dir, "sluice-serve.mjs");
    await build({
      entryPoints: [fileURLToPath(new URL("../src/cli/main.ts", import.meta.url))],
      outfile: script,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      packages: "external",
      sourcemap: "linked",
      logLevel: "silent",
    });
    phase.tick();
    phase.step(`embedded ${cellName(headlineCell)} under --cpu-prof`);
    const spawned = performance.now();
    const sluice = await startSluice(
      place,
      {},
      { nodeArgs: ["--cpu-prof", "--cpu-prof-dir", dir, "--enable-source-maps"], script },
    );
    // Start-up (module loading, JIT warm-up of the first requests is kept) stays out of the
    // summary.
    skipMs = performance.now() - spawned;
    try {
      ({ result: cell } = await sluiceCell(sluice.client, "embedded", headlineCell, {
        durationMs: plan.profileMs,
        warmupMs: 500,
        repeats: 1,
      }));
    } finally {
      await sluice.stop();
    }
    phase.tick();
    phase.step("summary");
    const { file, profile } = await loadProfile(dir);
    const summary = summarize(profile, file, 15, skipMs);
    const text = formatSummary(summary);
    phase.tick();
    phase.done();
    const measured =
      `during \`${command}\`: embedded ` +
      `${cellName(headlineCell)} for ${plan.profileMs / 1000} s, ` +
      `${sig(cell.recordsPerSec.median)} records/s (${sig(cell.requestsPerSec?.median ?? NaN)} requests/s) ` +
      `under the profiler, p99 ${sig(cell.latencyMs.p99)} ms; the server ran from an esbuild ` +
      "bundle of src/cli/main.ts (not minified, source-mapped back to src)";
    await writeFile(join(resultsDir, "profile-summary.txt"), `${measured}\n\n${text}\n`);
    const markdownText = [
      `CPU profile of the \`sluice serve\` child (\`--cpu-prof\`) ${measured}; top functions by self time (bench/results/profile-summary.txt has the rest):`,
      "",
      "| self ms | % of busy | function | file:line |",
      "|---:|---:|---|---|",
      ...summary.functions
        .slice(0, 10)
        .map(
          (f) =>
            `| ${f.selfMs.toFixed(0)} | ${f.percent.toFixed(1)} | \`${f.name}\` | ${f.location || "–"} |`,
        ),
      "",
      `The server's main thread was busy ${((1 - summary.idleMs / summary.totalMs) * 100).toFixed(0)}% ` +
        "of the sampled time. Own code by inclusive time (self + callees): " +
        summary.ownInclusive
          .slice(0, 6)
          .map((f) => `\`${f.name}\` (${f.location}) ${f.percent.toFixed(1)}%`)
          .join(", ") +
        ".",
      "",
      "By file or package: " +
        summary.files
          .slice(0, 8)
          .map((f) => `${f.name} ${f.percent.toFixed(1)}%`)
          .join(", ") +
        ".",
    ].join("\n");
    // Into the full run's report, if there is one.
    const mdPath = join(resultsDir, "latest.md");
    if (existsSync(mdPath)) {
      const md = await readFile(mdPath, "utf8");
      const start = md.indexOf(PROFILE_START);
      const end = md.indexOf(PROFILE_END);
      if (start >= 0 && end > start) {
        await writeFile(
          mdPath,
          md.slice(0, start) +
            profileSection({ markdown: markdownText }) +
            md.slice(end + PROFILE_END.length),
        );
      }
    }
    const jsonPath = join(resultsDir, "latest.json");
    if (existsSync(jsonPath)) {
      const json = JSON.parse(await readFile(jsonPath, "utf8")) as BenchResults;
      json.profile = { markdown: markdownText, measured, summary, cell };
      await writeFile(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
    }
    console.log(`${measured}\n\n${text}`);
  } finally {
    await Promise.allSettled(temp.map((d) => rm(d, { recursive: true, force: true })));
  }
}

await main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
// Clients and servers of a failed phase may hold the event loop open.
setTimeout(() => process.exit(process.exitCode ?? 0), 2_000).unref();
