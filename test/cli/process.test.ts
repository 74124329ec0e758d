import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  callJson,
  killAllServers,
  makeDataDir,
  startServer,
  type ServerProcess,
} from "../support/server-process.js";

const repoRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const mainScript = join(repoRoot, "src", "cli", "main.ts");

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `node --import tsx src/cli/main.ts ARGS…`, as `sluice` runs; stdin is written, then closed. */
function sluice(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string; onStdout?: (text: string) => void } = {},
): { done: Promise<Run>; kill: (signal: NodeJS.Signals) => void } {
  const child = spawn(process.execPath, ["--import", "tsx", mainScript, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    options.onStdout?.(stdout);
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  child.stdin.end(options.stdin ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), 25_000);
  const done = new Promise<Run>((resolveRun) =>
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code, signal, stdout, stderr });
    }),
  );
  return { done, kill: (signal) => child.kill(signal) };
}

describe("the sluice CLI as a process, against `sluice serve`", () => {
  let data: Awaited<ReturnType<typeof makeDataDir>>;
  let server: ServerProcess;

  beforeAll(async () => {
    data = await makeDataDir("sluice-cli-");
    server = await startServer({ dataDir: data.dir, env: { SLUICE_LINGER_MS: "2" } });
  }, 60_000);

  afterAll(async () => {
    await killAllServers();
    await data?.cleanup();
  });

  it("creates a topic, produces stdin lines and consumes them back", async () => {
    const env = { SLUICE_URL: server.url };
    const created = await sluice(["topics", "create", "e2e", "--partitions", "3"], { env }).done;
    expect(created).toMatchObject({ code: 0, stderr: "created topic e2e with 3 partitions\n" });

    const lines = Array.from({ length: 30 }, (_, i) => `key-${i % 7}\t{"n":${i}}`);
    const produced = await sluice(
      ["produce", "e2e", "--key-separator", "\t", "--json-values", "--url", server.url],
      { stdin: lines.join("\n") + "\n" },
    ).done;
    expect(produced.stderr).toBe("produced 30 records\n");
    expect(produced.code).toBe(0);
    expect(produced.stdout.trimEnd().split("\n")).toHaveLength(30);

    const consumed = await sluice(["consume", "e2e", "--from", "earliest", "--print-key"], { env })
      .done;
    expect(consumed.code).toBe(0);
    expect(consumed.stderr).toBe("processed 30 records\n");
    expect(consumed.stdout.trimEnd().split("\n").sort()).toEqual([...lines].sort());

    const described = await sluice(["topics", "describe", "e2e", "--json"], { env }).done;
    const partitions = JSON.parse(described.stdout).partitions as { logEndOffset: number }[];
    expect(partitions.reduce((sum, p) => sum + p.logEndOffset, 0)).toBe(30);
  });

  it("follows as a group member until SIGINT, then commits and leaves", async () => {
    const env = { SLUICE_URL: server.url };
    await sluice(["topics", "create", "live"], { env }).done;
    let printed = "";
    const follower = sluice(
      ["consume", "live", "--group", "tail", "--from", "earliest", "--follow"],
      {
        env,
        onStdout: (text) => (printed = text),
      },
    );
    await sluice(["produce", "live"], { env, stdin: "one\ntwo\nthree\n" }).done;
    const deadline = Date.now() + 20_000;
    while (printed.split("\n").length < 4 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    follower.kill("SIGINT");
    const run = await follower.done;
    expect(run).toMatchObject({ code: 0, stdout: "one\ntwo\nthree\n" });
    expect(run.stderr).toBe("processed 3 records\n");

    const group = await callJson(server.url, "GET", "/v1/groups/tail");
    expect(group.body).toMatchObject({
      members: [],
      totalLag: 0,
      partitions: [{ topic: "live", partition: 0, currentOffset: 3 }],
    });
  });

  it("reports an unknown topic and an unreachable server with exit code 1", async () => {
    const unknown = await sluice(["topics", "describe", "nope"], {
      env: { SLUICE_URL: server.url },
    }).done;
    expect(unknown).toMatchObject({
      code: 1,
      stdout: "",
      stderr: 'error: topic_not_found: topic "nope" does not exist\n',
    });
    const unreachable = await sluice(["topics", "list", "--url", "http://127.0.0.1:9"]).done;
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(
      /^error: network_error: cannot reach http:\/\/127.0.0.1:9: GET \/v1\/topics failed: /,
    );
  });

  it("runs as the package's bin from any directory", async () => {
    const child = spawn(
      process.execPath,
      [join(repoRoot, "src", "cli", "bin.js"), "topics", "list"],
      {
        cwd: tmpdir(),
        env: { ...process.env, SLUICE_URL: server.url },
      },
    );
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    const code = await new Promise((r) => child.once("close", r));
    expect(code).toBe(0);
    expect(stdout).toMatch(/^TOPIC +PARTITIONS\n/);
  });
});
