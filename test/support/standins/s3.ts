import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";

export interface S3Endpoint {
  endpoint: string;
  bucket: string;
  stop: () => Promise<void>;
}

/** The fixed account s3rver checks signatures against. */
const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const runner = fileURLToPath(new URL("./s3rver-runner.js", import.meta.url));

/**
 * An S3 endpoint and an empty bucket of its own: `AWS_ENDPOINT_URL_S3` (MinIO, real S3) when
 * set, else s3rver as a child process on 127.0.0.1.
 */
export async function s3Endpoint(): Promise<S3Endpoint> {
  const bucket = `sluice-test-${Date.now()}-${randomBytes(4).toString("hex")}`;
  const configured = process.env.AWS_ENDPOINT_URL_S3;
  return configured === undefined || configured === ""
    ? startS3rver(bucket)
    : freshBucket(configured, bucket);
}

/** A client for the endpoint: s3rver's fixed account, or the SDK's own credential chain. */
export function makeS3Client(endpoint: string): S3Client {
  const external = endpoint === process.env.AWS_ENDPOINT_URL_S3;
  return new S3Client({
    endpoint,
    region: process.env.AWS_REGION ?? "us-east-1",
    forcePathStyle: true,
    credentials: external ? undefined : S3RVER_CREDENTIALS,
    // A wedged stand-in should fail a test in seconds, not at the test timeout.
    requestHandler: { connectionTimeout: 2_000, socketTimeout: 10_000 },
  });
}

async function freshBucket(endpoint: string, bucket: string): Promise<S3Endpoint> {
  const client = makeS3Client(endpoint);
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    endpoint,
    bucket,
    // The bucket is new, so everything in it is the tests' own.
    stop: async () => {
      try {
        for (;;) {
          const page = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
          const objects = (page.Contents ?? []).map(({ Key }) => ({ Key }));
          if (objects.length === 0) break;
          await client.send(
            new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }),
          );
        }
        await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      } finally {
        client.destroy();
      }
    },
  };
}

async function startS3rver(bucket: string): Promise<S3Endpoint> {
  const directory = await mkdtemp(join(tmpdir(), "sluice-s3rver-"));
  // stdin stays a pipe: the runner exits when it closes, so a crashed test run leaves no server.
  const child = spawn(process.execPath, ["--openssl-legacy-provider", runner, directory, bucket], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const exited = once(child, "exit");
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    await rm(directory, { recursive: true, force: true });
  };

  try {
    const port = await Promise.race([
      firstLine(child.stdout).then((line) => (JSON.parse(line) as { port: number }).port),
      exited.then(([code, signal]) => {
        throw new Error(`s3rver exited before listening (${String(code ?? signal)})`);
      }),
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`s3rver did not listen within ${START_TIMEOUT_MS} ms`)),
          START_TIMEOUT_MS,
        ).unref(),
      ),
    ]);
    return { endpoint: `http://127.0.0.1:${port}`, bucket, stop };
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; its stderr:\n${stderr}`, { cause: err });
  }
}

async function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  for await (const line of createInterface({ input: stream })) return line;
  throw new Error("s3rver closed its stdout without a line");
}
