/** The Markdown table a README can include, and an SVG of produce throughput by concurrency. */
import { storagePerGiBMonth } from "./cost.js";
import { cellName } from "./measure.js";
import { bytesLabel, compact, sig, spread } from "./stats.js";
import type { BenchResults, SluiceWriteResult, WriteResult } from "./types.js";

const ms = (n: number) => (Number.isFinite(n) ? sig(n) : "–");
const usd = (n: number) => (n === 0 ? "0" : n < 0.0001 ? n.toExponential(1) : `${sig(n, 2)}`);

export function markdown(r: BenchResults, command: string, svgName?: string): string {
  const m = r.machine;
  const o = r.options as {
    repeats: number;
    durationMs: number;
    warmupMs: number;
    quick: boolean;
    plan?: { peerDurationMs?: number };
  };
  const peerS = (o.plan?.peerDurationMs ?? o.durationMs) / 1000;
  const out: string[] = [];
  out.push(`# Sluice benchmark (${m.date.slice(0, 10)})`, "");
  out.push(
    `\`${command}\` on ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}, ` +
      `node ${m.node}; ${o.quick ? "quick (reduced) matrix" : "full matrix"}, each figure the ` +
      `median of ${o.repeats} runs of ${o.durationMs / 1000} s (peers ${peerS} s; after ${o.warmupMs} ms of ` +
      `warm-up) with the spread (min–max) in brackets; latency percentiles over every request ` +
      `of a cell. Everything on 127.0.0.1: the load generator, \`sluice serve\` and the ` +
      `stand-ins share the machine's cores. Took ${(r.durationS / 60).toFixed(1)} min.`,
    "",
  );

  if (r.produce.length > 0) {
    out.push("## Produce", "");
    out.push(
      "Records/s (p99 ack latency, ms) by record size × records per request (rows) and " +
        "concurrent producers (columns); one topic of one partition per cell, JSON values, " +
        "acks after the flush is durable and committed.",
      "",
    );
    for (const backend of ["embedded", "s3+dynamodb"] as const) {
      const rows = r.produce.filter((p) => p.backend === backend);
      if (rows.length === 0) continue;
      out.push(
        backend === "embedded"
          ? "**Embedded** (FileSystem objects + SQLite):"
          : "**S3 + DynamoDB** (s3rver + DynamoDB Local stand-ins):",
        "",
      );
      out.push(
        ...matrixTable(rows, (p) => `${compact(p.recordsPerSec.median)} (${ms(p.latencyMs.p99)})`),
      );
      const best = [...rows].sort((a, b) => b.mbPerSec.median - a.mbPerSec.median)[0]!;
      out.push(
        "",
        `Peak ${sig(best.mbPerSec.median)} MB/s of payload at ${cellName(best)}; ` +
          `objects written: ${flushSummary(rows)}.`,
        "",
      );
    }
  }

  if (r.fetch.length > 0 || r.endToEnd.length > 0) {
    out.push("## Fetch", "");
    if (r.fetch.length > 0) {
      const f0 = r.fetch[0]!;
      out.push(
        `One consumer reading ${bytesLabel(f0.totalBytes)} of ${f0.recordBytes} B records back ` +
          `in ${bytesLabel(f0.fetchBytes)} fetches, each run from a freshly started server ` +
          "(cold object cache); `sealed` after a maintenance pass rolled the chunks.",
        "",
        "| backend | read from | MB/s | records/s | fetch p50 / p99 ms |",
        "|---|---|---:|---:|---:|",
        ...r.fetch.map(
          (f) =>
            `| ${f.backend} | ${f.source} | ${spread(f.mbPerSec, sig)} | ${spread(f.recordsPerSec)} | ` +
            `${ms(f.latencyMs.p50)} / ${ms(f.latencyMs.p99)} |`,
        ),
        "",
      );
    }
    if (r.endToEnd.length > 0) {
      out.push(
        "End-to-end latency, produce sent → record in the hands of a consumer waiting in a " +
          "long-poll fetch (same server):",
        "",
        "| backend | p50 ms | p99 ms | samples |",
        "|---|---:|---:|---:|",
        ...r.endToEnd.map(
          (e) =>
            `| ${e.backend} | ${ms(e.latencyMs.p50)} | ${ms(e.latencyMs.p99)} | ${e.samples} |`,
        ),
        "",
      );
    }
  }

  if (r.cost.length > 0) {
    const p = r.prices as { region: string; asOf: string };
    out.push("## Cost per GiB", "");
    out.push(
      "Requests that reached the stores per GiB of record payload (counting wrappers around " +
        "the stores, Sluice in-process); RRU/WRU as DynamoDB Local reported them " +
        "(`ReturnConsumedCapacity`). Dollars at AWS on-demand prices, " +
        `${p.region}, ${p.asOf} (bench/config.ts), for S3 + DynamoDB only.`,
      "",
      "| backend | shape | step | PUT | GET | LIST | KV reads | KV writes | RRU | WRU | $ / GiB |",
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    );
    for (const c of r.cost) {
      const shape = c.shape.split(":")[0]!;
      for (const s of c.steps) {
        const g = s.perGiB;
        out.push(
          `| ${c.backend} | ${shape} | ${s.step} | ${compact(g.puts)} | ${compact(g.gets)} | ` +
            `${compact(g.lists)} | ${compact(g.kvReads)} | ${compact(g.kvWrites)} | ` +
            `${compact(g.readUnits)} | ${compact(g.writeUnits)} | ` +
            `${s.dollarsPerGiB ? usd(s.dollarsPerGiB.total) : "–"} |`,
        );
      }
    }
    out.push(
      "",
      `Storage: $${sig(storagePerGiBMonth)} per GiB-month (S3 Standard). Shapes: ` +
        r.cost
          .filter((c, i, all) => all.findIndex((d) => d.shape === c.shape) === i)
          .map((c) => c.shape)
          .join("; ") +
        ".",
      "",
    );
  }

  if (r.ratios.limits.length > 0 || r.limits.stores.length > 0) {
    out.push("## Limits and ratios (same run)", "");
    if (r.limits.stores.length > 0) {
      out.push(
        "Raw store throughput at the size of a Sluice flush (the headline cell's mean object):",
        "",
        "| store | op | object | concurrency | ops/s | MB/s | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
        ...r.limits.stores.map(
          (s) =>
            `| ${s.store} | ${s.op} | ${bytesLabel(Math.round(s.objectBytes))} | ${s.concurrency} | ` +
            `${spread(s.opsPerSec)} | ${spread(s.mbPerSec, sig)} | ${ms(s.latencyMs.p99)} |`,
        ),
        "",
      );
    }
    if (r.ratios.limits.length > 0) {
      out.push(
        "| Sluice against | Sluice | limit | ratio |",
        "|---|---:|---:|---:|",
        ...r.ratios.limits.map(
          (x) =>
            `| ${x.label} | ${compact(x.sluice)} ${x.unit} | ${compact(x.other)} ${x.unit} | ${sig(x.ratio, 2)} |`,
        ),
        "",
      );
    }
  }

  if (r.peers.results.length > 0) {
    out.push("## Peers (same run, same records)", "");
    out.push(
      ...r.peers.info.map((i) => `- **${i.name}** ${i.version}: ${i.durability}.`),
      "",
      ...peerTable(r),
      "",
    );
  }

  if (r.lambda) {
    const l = r.lambda;
    out.push(
      "## Lambda shape",
      "",
      "| bundle (minified ESM) | gzip | source map | cold init (import → top-level await done) | process start → ready |",
      "|---:|---:|---:|---:|---:|",
      `| ${kib(l.bundleBytes)} | ${kib(l.bundleGzipBytes)} | ${kib(l.sourceMapBytes)} | ` +
        `${spread(l.initMs, ms)} ms | ${spread(l.processToReadyMs, ms)} ms |`,
      "",
      `${l.note}.`,
      "",
    );
  }

  if (svgName) out.push(`![produce throughput by concurrency](${svgName})`, "");
  out.push("## Profile", "", profileSection(r.profile), "");
  if (r.notes.length > 0) out.push("## Notes", "", ...r.notes.map((n) => `- ${n}`), "");
  return out.join("\n");
}

export const PROFILE_START = "<!-- profile:start -->";
export const PROFILE_END = "<!-- profile:end -->";

export function profileSection(profile: unknown): string {
  const text =
    typeof profile === "object" && profile !== null && "markdown" in profile
      ? String((profile as { markdown: string }).markdown)
      : "No profile in this run: `npm run bench -- --profile` adds one here.";
  return `${PROFILE_START}\n${text}\n${PROFILE_END}`;
}

const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;

function flushSummary(rows: SluiceWriteResult[]): string {
  const per = rows.filter((p) => p.requestsPerFlush > 0);
  if (per.length === 0) return "–";
  const max = per.reduce((a, b) => (b.requestsPerFlush > a.requestsPerFlush ? b : a));
  return `up to ${sig(max.requestsPerFlush)} requests per object (${cellName(max)}, mean object ${bytesLabel(Math.round(max.meanFlushBytes))})`;
}

function matrixTable<T extends WriteResult>(rows: T[], cell: (r: T) => string): string[] {
  const conc = [...new Set(rows.map((r) => r.concurrency))].sort((a, b) => a - b);
  const keys = [...new Set(rows.map((r) => `${r.recordBytes}|${r.batch}`))];
  const lines = [
    `| record × batch | ${conc.map((c) => `${c} producer${c === 1 ? "" : "s"}`).join(" | ")} |`,
    `|---|${conc.map(() => "---:").join("|")}|`,
  ];
  for (const key of keys) {
    const [bytes, batch] = key.split("|").map(Number) as [number, number];
    const cells = conc.map((c) => {
      const r = rows.find(
        (x) => x.recordBytes === bytes && x.batch === batch && x.concurrency === c,
      );
      return r ? cell(r) : "–";
    });
    lines.push(`| ${bytesLabel(bytes)} × ${batch} | ${cells.join(" | ")} |`);
  }
  return lines;
}

const sameCell = (a: WriteResult, b: WriteResult) =>
  a.recordBytes === b.recordBytes && a.batch === b.batch && a.concurrency === b.concurrency;

function geomean(values: number[]): number {
  const ok = values.filter((v) => v > 0 && Number.isFinite(v));
  if (ok.length === 0) return NaN;
  return Math.exp(ok.reduce((s, v) => s + Math.log(v), 0) / ok.length);
}

function peerTable(r: BenchResults): string[] {
  const systems = [...new Set(r.peers.results.map((p) => p.system))];
  const embedded = r.produce.filter((p) => p.backend === "embedded");
  const cells = embedded.length > 0 ? embedded : r.peers.results;
  const shown = cells.length <= 9 ? cells : cells.filter((c) => c.recordBytes === 1024);
  const lines = [
    `| cell | Sluice embedded | ${systems.join(" | ")} | ${systems.map((s) => `Sluice / ${s.split(" (")[0]}${s.includes("(") ? ` (${s.split("(")[1]}` : ""}`).join(" | ")} |`,
    `|---|---:|${systems.map(() => "---:").join("|")}|${systems.map(() => "---:").join("|")}|`,
  ];
  const fmt = (w: WriteResult | undefined) =>
    w ? `${compact(w.recordsPerSec.median)} (${ms(w.latencyMs.p99)})` : "–";
  for (const c of shown) {
    const sluice = embedded.find((e) => sameCell(e, c));
    const peers = systems.map((s) => r.peers.results.find((p) => p.system === s && sameCell(p, c)));
    const ratios = peers.map((p) =>
      p && sluice ? sig(sluice.recordsPerSec.median / p.recordsPerSec.median, 2) : "–",
    );
    lines.push(
      `| ${cellName(c)} | ${fmt(sluice)} | ${peers.map(fmt).join(" | ")} | ${ratios.join(" | ")} |`,
    );
  }
  const means = systems.map((s) => {
    const pairs = embedded
      .map((e) => [e, r.peers.results.find((p) => p.system === s && sameCell(p, e))] as const)
      .filter(([, p]) => p !== undefined);
    return {
      n: pairs.length,
      ratio: geomean(pairs.map(([e, p]) => e.recordsPerSec.median / p!.recordsPerSec.median)),
    };
  });
  lines.push(
    `| geometric mean over ${means.map((m) => m.n).join("/")} cells | | ${systems.map(() => "").join(" | ")} | ${means.map((m) => sig(m.ratio, 2)).join(" | ")} |`,
  );
  return [
    "Records/s (p99 ms) per cell (record size / records per request / producers) and Sluice " +
      "(embedded) as a ratio of each peer's records/s" +
      (shown.length < cells.length ? "; 1 KiB rows shown, the mean covers every cell:" : ":"),
    "",
    ...lines,
  ];
}

/** Produce throughput vs concurrency for 1 KiB records (log scale), both backends and peers. */
export function svgChart(r: BenchResults): string | undefined {
  const size = 1024;
  const series: { label: string; points: [number, number][]; dash: boolean }[] = [];
  const add = (label: string, rows: WriteResult[], dash: boolean) => {
    const points = rows
      .filter((x) => x.recordBytes === size)
      .sort((a, b) => a.concurrency - b.concurrency)
      .map((x) => [x.concurrency, x.recordsPerSec.median] as [number, number]);
    if (points.length >= 2) series.push({ label, points, dash });
  };
  const batches = [...new Set(r.produce.map((p) => p.batch))].sort((a, b) => a - b);
  for (const backend of ["embedded", "s3+dynamodb"] as const) {
    for (const b of batches) {
      add(
        `sluice ${backend} ×${b}`,
        r.produce.filter((p) => p.backend === backend && p.batch === b),
        false,
      );
    }
  }
  const peerBatch = batches.includes(100) ? 100 : batches[0];
  for (const s of new Set(r.peers.results.map((p) => p.system))) {
    add(
      `${s} ×${peerBatch}`,
      r.peers.results.filter((p) => p.system === s && p.batch === peerBatch),
      true,
    );
  }
  if (series.length === 0) return undefined;
  const W = 760;
  const H = 420;
  const left = 70;
  const right = 250;
  const top = 30;
  const bottom = 50;
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => y > 0);
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...ys)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...ys)));
  const x = (c: number) =>
    left + (xs.length === 1 ? 0 : (xs.indexOf(c) / (xs.length - 1)) * (W - left - right));
  const y = (v: number) =>
    top +
    (1 - (Math.log10(Math.max(v, yMin)) - Math.log10(yMin)) / Math.log10(yMax / yMin)) *
      (H - top - bottom);
  const colors = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
  ];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14">Produce records/s vs concurrent producers, ${size} B records (log scale)</text>`,
  ];
  for (let v = yMin; v <= yMax; v *= 10) {
    parts.push(
      `<line x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${axis(v)}</text>`,
    );
  }
  for (const c of xs) {
    parts.push(
      `<line x1="${x(c)}" x2="${x(c)}" y1="${top}" y2="${H - bottom}" stroke="#eee"/>`,
      `<text x="${x(c)}" y="${H - bottom + 16}" text-anchor="middle">${c}</text>`,
    );
  }
  parts.push(
    `<text x="${(left + W - right) / 2}" y="${H - 12}" text-anchor="middle">concurrent producers</text>`,
  );
  series.forEach((s, i) => {
    const color = colors[i % colors.length]!;
    const d = s.points
      .map(([c, v], j) => `${j === 0 ? "M" : "L"}${x(c).toFixed(1)},${y(v).toFixed(1)}`)
      .join(" ");
    parts.push(
      `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5,4"' : ""}/>`,
      ...s.points.map(
        ([c, v]) =>
          `<circle cx="${x(c).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${color}"/>`,
      ),
      `<line x1="${W - right + 15}" x2="${W - right + 40}" y1="${top + 10 + i * 18}" y2="${top + 10 + i * 18}" stroke="${color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5,4"' : ""}/>`,
      `<text x="${W - right + 46}" y="${top + 14 + i * 18}">${escape(s.label)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}

const axis = (v: number) => (v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : `${v}`);

function escape(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}
