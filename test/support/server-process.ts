import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const mainScript = join(repoRoot, "src", "cli", "main.ts");

export interface ServerProcessOptions {
  dataDir: string;
  /** Extra environment, e.g. `{ SLUICE_LINGER_MS: "2" }`; merged over the test's own. */
  env?: Record<string, string>;
  /** How long to wait for the "sluice listening" line. */
  startTimeoutMs?: number;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A Sluice server running as a real child process on 127.0.0.1 and a port it picked. */
export interface ServerProcess {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  /** Everything the process wrote so far, for failure messages. */
  output(): { stdout: string; stderr: string };
  /** Sends a signal unless the process has already exited. */
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then waits for the exit; SIGKILL if it has not exited after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<Exit>;
}

/** Every child started here, so that a failing test cannot leak one. */
const running = new Set<ServerProcess>();
// Last resort if the test worker itself goes away without running its hooks.
process.once("exit", () => {
  for (const server of running) server.kill("SIGKILL");
});

/**
 * Spawns `node --import tsx src/cli/main.ts serve` (node itself, not the tsx wrapper, so that a
 * signal reaches the server and not a parent shim) and waits for its listening line.
 */
export async function startServer(options: ServerProcessOptions): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      mainScript,
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--data-dir",
      options.dataDir,
    ],
    {
      cwd: repoRoot,
      env: { ...process.env, LOG_LEVEL: "info", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => (stderr += chunk));

  let exitInfo: Exit | undefined;
  const exited = new Promise<Exit>((resolveExit) => {
    child.once("exit", (code, signal) => {
      exitInfo = { code, signal };
      resolveExit(exitInfo);
    });
    child.once("error", (err) => {
      stderr += `\nspawn error: ${String(err)}`;
      exitInfo ??= { code: null, signal: null };
      resolveExit(exitInfo);
    });
  });

  const timeoutMs = options.startTimeoutMs ?? 20_000;
  const port = await new Promise<number>((resolvePort, rejectPort) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (exitInfo === undefined) child.kill("SIGKILL");
      rejectPort(
        new Error(
          `sluice server (pid ${child.pid}) ${why}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`,
        ),
      );
    };
    const timer = setTimeout(() => fail(`did not listen within ${timeoutMs} ms`), timeoutMs);
    let pending = "";
    child.stdout.on("data", (chunk: string) => {
      stdout += chunk;
      if (settled) return;
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (!line.includes('"msg":"sluice listening"')) continue;
        const parsed = JSON.parse(line) as { port?: unknown };
        if (typeof parsed.port === "number") {
          settled = true;
          clearTimeout(timer);
          resolvePort(parsed.port);
          return;
        }
      }
    });
    void exited.then((e) => fail(`exited before listening (code ${e.code}, signal ${e.signal})`));
  });

  const server: ServerProcess = {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    child,
    exited,
    output: () => ({ stdout, stderr }),
    kill(signal) {
      if (exitInfo === undefined) child.kill(signal);
    },
    async stop(timeoutMs = 10_000) {
      server.kill("SIGTERM");
      const timer = setTimeout(() => server.kill("SIGKILL"), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  running.add(server);
  void exited.then(() => running.delete(server));
  return server;
}

/** SIGKILLs every server this module started that is still running, and waits for them. */
export async function killAllServers(): Promise<void> {
  const servers = [...running];
  for (const server of servers) server.kill("SIGKILL");
  await Promise.all(servers.map((s) => s.exited));
}

/** A fresh data directory under the OS temp dir, and its removal. */
export async function makeDataDir(
  prefix = "sluice-proc-",
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface JsonResponse<T = any> {
  status: number;
  body: T;
}

/** One HTTP JSON call with a hard time limit; network failures reject. */
export async function callJson<T = any>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 15_000,
): Promise<JsonResponse<T>> {
  const res = await fetch(base + path, {
    method,
    signal: AbortSignal.timeout(timeoutMs),
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as T) : (undefined as T) };
}

/** Reads a whole partition by paging until `nextOffset` reaches the log-end offset. */
export async function readPartitionFully(
  base: string,
  topic: string,
  partition: number,
  pageSize = 1000,
): Promise<{ records: any[]; logEndOffset: number }> {
  const records: any[] = [];
  let offset = 0;
  for (let page = 0; page < 10_000; page++) {
    const res = await callJson(
      base,
      "GET",
      `/v1/topics/${topic}/partitions/${partition}/records?offset=${offset}&maxRecords=${pageSize}`,
    );
    if (res.status !== 200) {
      throw new Error(
        `fetch ${topic}/${partition}@${offset}: ${res.status} ${JSON.stringify(res.body)}`,
      );
    }
    records.push(...(res.body.records as any[]));
    const { nextOffset, logEndOffset } = res.body as { nextOffset: number; logEndOffset: number };
    if (nextOffset >= logEndOffset) return { records, logEndOffset };
    if (nextOffset <= offset) throw new Error(`fetch made no progress at offset ${offset}`);
    offset = nextOffset;
  }
  throw new Error("too many pages");
}
