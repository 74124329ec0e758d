/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and prints the functions with the most self time,
 * with file:line and their share of the busy samples, then the same by file (package for
 * node_modules). Positions in a script with a source map beside it (`x.mjs.map`, as esbuild
 * writes) are mapped back to the original file and line.
 *
 *   npx tsx bench/profile-summary.ts [file.cpuprofile | directory] [top] [skipMs]
 *
 * A directory means its main-thread profile (thread 0), the newest. `skipMs` leaves out the
 * first milliseconds (start-up) of the profile.
 */
import { existsSync, readFileSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { SourceMap, type SourceMapPayload } from "node:module";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileRow {
  name: string;
  location: string;
  selfMs: number;
  /** Share of all samples that were not idle. */
  percent: number;
}

export interface ProfileSummary {
  file: string;
  /** Start-up left out. */
  skippedMs: number;
  totalMs: number;
  idleMs: number;
  functions: ProfileRow[];
  files: ProfileRow[];
  /** The project's own functions (src/, functions/) by inclusive time: self plus callees. */
  ownInclusive: ProfileRow[];
}

const repoRoot = resolve(fileURLToPath(new URL("..", import.meta.url)));

function where(url: string): string {
  if (url === "") return "";
  const path = url.startsWith("file://") ? fileURLToPath(url) : url;
  return path.startsWith(repoRoot) ? relative(repoRoot, path) : path;
}

const maps = new Map<string, SourceMap | null>();

/** The script's source map when one lies beside it. */
function mapOf(url: string): SourceMap | null {
  if (!url.startsWith("file://")) return null;
  let map = maps.get(url);
  if (map === undefined) {
    const file = `${fileURLToPath(url)}.map`;
    map = existsSync(file)
      ? new SourceMap(JSON.parse(readFileSync(file, "utf8")) as SourceMapPayload)
      : null;
    maps.set(url, map);
  }
  return map;
}

/** file:line of a frame, through the source map where there is one. */
function position(frame: CallFrame): { path: string; line: number } {
  const map = mapOf(frame.url);
  if (map) {
    const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as {
      originalSource?: string;
      originalLine?: number;
    };
    if (entry.originalSource !== undefined && entry.originalLine !== undefined) {
      const src = entry.originalSource.startsWith("file://")
        ? fileURLToPath(entry.originalSource)
        : isAbsolute(entry.originalSource)
          ? entry.originalSource
          : resolve(dirname(fileURLToPath(frame.url)), entry.originalSource);
      return { path: where(src), line: entry.originalLine + 1 };
    }
  }
  return { path: where(frame.url), line: frame.lineNumber + 1 };
}

/** node_modules/<pkg>/… and node:internal/… collapse to their package or module. */
function fileGroup(location: string): string {
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(location);
  if (nm) return `node_modules/${nm[1]}`;
  if (location.startsWith("node:")) return location.replace(/^node:internal\/([^/]+).*/, "node:$1");
  return location === "" ? "(native / V8)" : location;
}

export function summarize(profile: CpuProfile, file: string, top = 15, skipMs = 0): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0) {
    // A sample's time is the delta before the next one.
    let at = 0;
    for (let i = 0; i < samples.length; i++) {
      at += (deltas[i] ?? 0) / 1000;
      if (at < skipMs) continue;
      const dt = (deltas[i + 1] ?? deltas[i] ?? 0) / 1000;
      self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + dt);
    }
  } else {
    const interval = (profile.endTime - profile.startTime) / 1000;
    const hits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1;
    for (const n of profile.nodes) self.set(n.id, ((n.hitCount ?? 0) / hits) * interval);
  }
  let totalMs = 0;
  let idleMs = 0;
  const fns = new Map<string, { name: string; location: string; ms: number }>();
  const files = new Map<string, number>();
  for (const [id, ms] of self) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    totalMs += ms;
    if (frame.functionName === "(idle)") {
      idleMs += ms;
      continue;
    }
    const { path, line } = position(frame);
    const location = path === "" ? "" : `${path}:${line}`;
    const name = frame.functionName || "(anonymous)";
    const key = `${name}@${location}`;
    const entry = fns.get(key) ?? { name, location, ms: 0 };
    entry.ms += ms;
    fns.set(key, entry);
    const group =
      frame.url === "" ? (name.startsWith("(") ? name : "(native / V8)") : fileGroup(path);
    files.set(group, (files.get(group) ?? 0) + ms);
  }
  const busy = totalMs - idleMs || 1;

  // Inclusive time of the project's own functions: each node's self time plus its subtree's,
  // counted once per stack even where a function recurses.
  const totals = new Map<number, number>();
  const totalOf = (id: number): number => {
    const known = totals.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    let sum = self.get(id) ?? 0;
    for (const child of node?.children ?? []) sum += totalOf(child);
    totals.set(id, sum);
    return sum;
  };
  const own = new Map<string, { name: string; location: string; ms: number }>();
  const onPath = new Map<string, number>();
  const walk = (id: number) => {
    const node = byId.get(id);
    if (!node) return;
    const { path, line } = position(node.callFrame);
    const name = node.callFrame.functionName || "(anonymous)";
    const key = `${name}@${path}:${line}`;
    const mine = /^(src|functions)\//.test(path);
    if (mine && !onPath.has(key)) {
      const entry = own.get(key) ?? { name, location: `${path}:${line}`, ms: 0 };
      entry.ms += totalOf(id);
      own.set(key, entry);
    }
    onPath.set(key, (onPath.get(key) ?? 0) + 1);
    for (const child of node.children ?? []) walk(child);
    const left = onPath.get(key)! - 1;
    if (left === 0) onPath.delete(key);
    else onPath.set(key, left);
  };
  const childIds = new Set(profile.nodes.flatMap((n) => n.children ?? []));
  for (const root of profile.nodes.filter((n) => !childIds.has(n.id))) walk(root.id);
  const rows = (entries: { name: string; location: string; ms: number }[]) =>
    entries
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((e) => ({
        name: e.name,
        location: e.location,
        selfMs: e.ms,
        percent: (e.ms / busy) * 100,
      }));
  return {
    file,
    skippedMs: skipMs,
    totalMs,
    idleMs,
    functions: rows([...fns.values()]),
    files: rows([...files].map(([name, ms]) => ({ name, location: "", ms }))),
    ownInclusive: rows([...own.values()]),
  };
}

export function formatSummary(s: ProfileSummary): string {
  const lines = [
    `profile ${where(s.file)}: ${(s.totalMs / 1000).toFixed(1)} s sampled` +
      (s.skippedMs > 0 ? ` after the first ${(s.skippedMs / 1000).toFixed(1)} s (start-up)` : "") +
      ", " +
      `${(s.idleMs / 1000).toFixed(1)} s idle; shares are of the ${((s.totalMs - s.idleMs) / 1000).toFixed(1)} s busy`,
    "",
    `top ${s.functions.length} functions by self time:`,
    "   self ms      %  function  (file:line)",
    ...s.functions.map(
      (r) =>
        `${r.selfMs.toFixed(0).padStart(10)} ${r.percent.toFixed(1).padStart(6)}  ${r.name}` +
        (r.location ? `  (${r.location})` : ""),
    ),
    "",
    "self time by file / package:",
    ...s.files.map(
      (r) => `${r.selfMs.toFixed(0).padStart(10)} ${r.percent.toFixed(1).padStart(6)}  ${r.name}`,
    ),
    "",
    "the project's functions by inclusive time (self + callees):",
    "  total ms      %  function  (file:line)",
    ...s.ownInclusive.map(
      (r) =>
        `${r.selfMs.toFixed(0).padStart(10)} ${r.percent.toFixed(1).padStart(6)}  ${r.name}  (${r.location})`,
    ),
  ];
  return lines.join("\n");
}

/** A .cpuprofile, or a directory's newest main-thread one (CPU.<date>.<time>.<pid>.0.<n>). */
export async function loadProfile(path: string): Promise<{ file: string; profile: CpuProfile }> {
  let file = resolve(path);
  if ((await stat(file)).isDirectory()) {
    const candidates = (await readdir(file)).filter((f) => f.endsWith(".cpuprofile"));
    const dated = await Promise.all(
      candidates.map(async (f) => ({
        f,
        main: /\.\d+\.0\.\d+\.cpuprofile$/.test(f),
        t: (await stat(join(file, f))).mtimeMs,
      })),
    );
    const newest = dated.sort((a, b) => Number(b.main) - Number(a.main) || b.t - a.t)[0];
    if (!newest) throw new Error(`no .cpuprofile in ${file}`);
    file = join(file, newest.f);
  }
  return { file, profile: JSON.parse(await readFile(file, "utf8")) as CpuProfile };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const target = process.argv[2] ?? join(repoRoot, "bench", "results", "profile");
  const top = Number(process.argv[3] ?? 15);
  const skipMs = Number(process.argv[4] ?? 0);
  const { file, profile } = await loadProfile(target);
  console.log(formatSummary(summarize(profile, file, top, skipMs)));
}
