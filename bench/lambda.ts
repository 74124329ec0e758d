/**
 * The HTTP function's shape: its bundle built with the options infra/sluice-stack.ts gives
 * NodejsFunction (esbuild, ESM, node22, minified, the AWS SDK bundled, better-sqlite3 external),
 * and its cold init: a fresh `node` importing the bundle with the stand-ins' environment, timed
 * until the module's top-level await (configuration, stores, app) has resolved.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { build, type BuildOptions } from "esbuild";
import { figure } from "./stats.js";
import type { LambdaShape } from "./types.js";

const repoRoot = resolve(fileURLToPath(new URL("..", import.meta.url)));

/** bundledFunctionProps(...).bundling in infra/sluice-stack.ts, as esbuild options. */
export const stackBundling = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  mainFields: ["module", "main"],
  banner: {
    js:
      "import { createRequire as __sluiceCreateRequire } from 'node:module'; " +
      "const require = __sluiceCreateRequire(import.meta.url);",
  },
  external: ["better-sqlite3"],
} satisfies BuildOptions;

export async function lambdaShape(
  env: Record<string, string>,
  coldStarts: number,
  step: (label: string) => void,
): Promise<LambdaShape> {
  const dir = await mkdtemp(join(tmpdir(), "sluice-bench-lambda-"));
  try {
    step("esbuild functions/http.ts");
    const outfile = join(dir, "index.mjs");
    await build({
      ...stackBundling,
      entryPoints: [join(repoRoot, "functions", "http.ts")],
      outfile,
      logLevel: "silent",
    });
    const bundle = await readFile(outfile);
    const sourceMapBytes = (await stat(`${outfile}.map`)).size;
    const init: number[] = [];
    const ready: number[] = [];
    for (let i = 0; i < coldStarts; i++) {
      step(`cold init ${i + 1}/${coldStarts}`);
      const t = await coldInit(outfile, env);
      init.push(t.importMs);
      ready.push(t.readyMs);
    }
    return {
      bundleBytes: bundle.byteLength,
      bundleGzipBytes: gzipSync(bundle, { level: 9 }).byteLength,
      sourceMapBytes,
      initMs: figure(init),
      processToReadyMs: figure(ready),
      esbuildOptions: { ...stackBundling },
      note:
        `node ${process.version} here (the function runs node 22 on arm64); the environment ` +
        "points at the stand-ins, and SLUICE_JWT_SECRET replaces the Secrets Manager ARN, so " +
        "init makes no network call (on AWS it reads the secret once, one round trip more)",
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One fresh node importing the bundle; the child reports its own clock. */
async function coldInit(
  bundle: string,
  env: Record<string, string>,
): Promise<{ importMs: number; readyMs: number }> {
  const script =
    "const t0 = performance.now();" +
    `await import(${JSON.stringify(pathToFileURL(bundle).href)});` +
    "const t1 = performance.now();" +
    "process.stdout.write(JSON.stringify({ importMs: t1 - t0, readyMs: t1 }) + '\\n');" +
    "process.exit(0);";
  const child = spawn(
    process.execPath,
    ["--enable-source-maps", "--input-type=module", "-e", script],
    {
      cwd: tmpdir(),
      env: {
        PATH: process.env.PATH ?? "",
        ...env,
        SLUICE_BUCKET: "sluice-bench-cold",
        SLUICE_TABLE: "sluice-bench-cold",
        SLUICE_JWT_SECRET: "bench-only-secret-bench-only-secret-0123456789",
        SLUICE_AUTH: "required",
        LOG_LEVEL: "warn",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "1024",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const code = await new Promise<number | null>((done) => child.once("exit", done));
  clearTimeout(timer);
  const line = out.split("\n").find((l) => l.startsWith("{"));
  if (code !== 0 || line === undefined) {
    throw new Error(`cold init failed (${code}): ${err.slice(-2000)}`);
  }
  return JSON.parse(line) as { importMs: number; readyMs: number };
}
