/**
 * Peers on the same records: Redis Streams (XADD, append-only file fsynced `always`, then
 * `everysec`) and NATS JetStream (file storage, publish with ack), servers started here on
 * 127.0.0.1 with temporary directories. Each worker has its own connection, as each Sluice
 * producer has its own keep-alive socket.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createClient } from "redis";
import { freePort, startChild } from "./children.js";
import type { RunPlan } from "./config.js";
import { cellName, measureCell, writeResult } from "./measure.js";
import { payloadOf } from "./produce.js";
import type { PeerInfo, WriteResult } from "./types.js";

type Cell = { recordBytes: number; batch: number; concurrency: number };
type Plan = Pick<RunPlan, "durationMs" | "warmupMs" | "repeats">;

export interface PeerHooks {
  step: (label: string) => void;
  tick: () => void;
  note: (message: string) => void;
}

function have(binary: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${binary}`], { encoding: "utf8" }).status === 0;
}

/**
 * Whether the peers' servers are installed: if not and this runs as root, apt-get installs them;
 * otherwise the peers are skipped (the caller notes why).
 */
export function ensurePeerBinaries(note: (m: string) => void): { redis: boolean; nats: boolean } {
  let redis = have("redis-server");
  let nats = have("nats-server");
  if ((!redis || !nats) && process.getuid?.() === 0) {
    note("peers: installing redis-server and nats-server with apt-get");
    const res = spawnSync("apt-get", ["install", "-y", "redis-server", "nats-server"], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      stdio: "ignore",
      timeout: 10 * 60_000,
    });
    if (res.status !== 0) note(`peers: apt-get install failed (${res.status ?? res.signal})`);
    redis = have("redis-server");
    nats = have("nats-server");
  }
  return { redis, nats };
}

function redisClient(port: number) {
  return createClient({ socket: { host: "127.0.0.1", port, connectTimeout: 5_000 } });
}
type Redis = ReturnType<typeof redisClient>;

export async function runRedis(
  cells: Cell[],
  everysecCells: Cell[],
  plan: Plan,
  hooks: PeerHooks,
): Promise<{ info: PeerInfo[]; results: WriteResult[] }> {
  const dir = await mkdtemp(join(tmpdir(), "sluice-bench-redis-"));
  const port = await freePort();
  // prettier-ignore
  const args = [
    "--port", String(port), "--bind", "127.0.0.1", "--dir", dir,
    "--appendonly", "yes", "--appendfsync", "always", "--save", "",
    // The bench deletes each cell's stream and compacts the file itself, between cells.
    "--auto-aof-rewrite-percentage", "0", "--daemonize", "no", "--logfile", "",
  ];
  const server = await startChild("redis-server", args, (line) =>
    line.includes("Ready to accept connections") ? true : undefined,
  );
  const maxConcurrency = Math.max(1, ...cells.map((c) => c.concurrency));
  const clients: Redis[] = [];
  const results: WriteResult[] = [];
  const info: PeerInfo[] = [];
  try {
    for (let i = 0; i < maxConcurrency; i++) {
      const client = redisClient(port);
      client.on("error", () => undefined);
      await client.connect();
      clients.push(client);
    }
    const admin = clients[0]!;
    const version = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1] ?? "?";
    let seq = 0;
    const run = async (cell: Cell, system: string) => {
      hooks.step(`${system} ${cellName(cell)}`);
      const key = `bench-${seq++}`;
      const payload = payloadOf(cell.recordBytes);
      const measured = await measureCell({ system, ...cell }, plan, async (w) => {
        const client = clients[w]!;
        if (cell.batch === 1) {
          await client.xAdd(key, "*", { v: payload });
          return;
        }
        const multi = client.multi();
        for (let i = 0; i < cell.batch; i++) multi.xAdd(key, "*", { v: payload });
        await multi.execAsPipeline();
      });
      results.push(writeResult(measured));
      await admin.del(key);
      await compactAof(admin);
      hooks.tick();
    };
    for (const cell of cells) await run(cell, "redis (fsync always)");
    info.push({
      name: "redis (fsync always)",
      version,
      durability:
        "XADD, append-only file with appendfsync always (fsync before the reply); batches pipelined",
    });
    if (everysecCells.length > 0) {
      await admin.configSet("appendfsync", "everysec");
      for (const cell of everysecCells) await run(cell, "redis (fsync everysec)");
      info.push({
        name: "redis (fsync everysec)",
        version,
        durability:
          "XADD, append-only file fsynced once a second: up to ~1 s of acks lost on a crash",
      });
    }
  } finally {
    await Promise.allSettled(clients.map((c) => c.quit()));
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return { info, results };
}

/** Rewrites the append-only file after a cell's stream is gone, so the disk does not fill. */
async function compactAof(admin: Redis): Promise<void> {
  try {
    await admin.bgRewriteAof();
  } catch {
    return; // one already running
  }
  for (let i = 0; i < 600; i++) {
    const persistence = await admin.info("persistence");
    if (
      persistence.includes("aof_rewrite_in_progress:0") &&
      persistence.includes("aof_rewrite_scheduled:0")
    ) {
      return;
    }
    await sleep(100);
  }
}

export async function runNats(
  cells: Cell[],
  plan: Plan,
  hooks: PeerHooks,
): Promise<{ info: PeerInfo[]; results: WriteResult[] }> {
  const dir = await mkdtemp(join(tmpdir(), "sluice-bench-nats-"));
  const port = await freePort();
  const server = await startChild(
    "nats-server",
    ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir],
    (line) => (line.includes("Server is ready") ? true : undefined),
  );
  const version =
    spawnSync("nats-server", ["--version"], { encoding: "utf8" }).stdout.trim().split(" v")[1] ??
    "?";
  const maxConcurrency = Math.max(1, ...cells.map((c) => c.concurrency));
  const connections: NatsConnection[] = [];
  const results: WriteResult[] = [];
  try {
    for (let i = 0; i < maxConcurrency; i++) {
      connections.push(await connect({ servers: `127.0.0.1:${port}`, timeout: 5_000 }));
    }
    const clients: JetStreamClient[] = connections.map((nc) => jetstream(nc, { timeout: 60_000 }));
    const jsm = await jetstreamManager(connections[0]!);
    let seq = 0;
    for (const cell of cells) {
      const system = "nats jetstream (file)";
      hooks.step(`${system} ${cellName(cell)}`);
      const name = `BENCH${seq++}`;
      const subject = `bench.${name}`;
      await jsm.streams.add({ name, subjects: [subject], storage: "file" });
      const data = new TextEncoder().encode(payloadOf(cell.recordBytes));
      const measured = await measureCell({ system, ...cell }, plan, async (w) => {
        const js = clients[w]!;
        if (cell.batch === 1) {
          await js.publish(subject, data);
          return;
        }
        await Promise.all(Array.from({ length: cell.batch }, () => js.publish(subject, data)));
      });
      results.push(writeResult(measured));
      await jsm.streams.delete(name);
      hooks.tick();
    }
  } finally {
    await Promise.allSettled(connections.map((nc) => nc.close()));
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return {
    info: [
      {
        name: "nats jetstream (file)",
        version,
        durability:
          `publish awaited for its PubAck; file storage, nats-server ${version} has no ` +
          "per-write fsync (sync_interval came in 2.10): acks can be lost on a machine crash",
      },
    ],
    results,
  };
}
