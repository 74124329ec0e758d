import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { SluiceError } from "../../src/errors.js";
import type { ObjectInfo } from "../../src/storage/object-store.js";
import { S3ObjectStore } from "../../src/storage/s3.js";

const ACCESS_KEY_ID = "AKIAFAKEFAKEFAKE1234";
const SECRET = "fake/secret+do-not-print-0123456789abcdef";
const credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET };
const body = new Uint8Array([1, 2, 3]);

describe("S3ObjectStore on a mocked client", () => {
  // Stubs S3Client.prototype.send: the SDK's middleware, retries included, never runs, so each
  // error below is what the adapter sees once the SDK has given up.
  let s3Mock: ReturnType<typeof mockClient>;
  let store: S3ObjectStore;

  beforeEach(() => {
    s3Mock = mockClient(S3Client);
    const client = new S3Client({ region: "us-east-1", maxAttempts: 1, credentials });
    store = new S3ObjectStore({ bucket: "bkt", prefix: "p/", client });
  });

  afterEach(() => {
    s3Mock.restore();
  });

  it.each([
    {
      what: "503 SlowDown",
      error: serviceError("SlowDown", 503, "Please reduce your request rate."),
    },
    { what: "500 InternalError", error: serviceError("InternalError", 500, "Internal error") },
    {
      what: "a timeout",
      error: Object.assign(new Error("the request socket timed out"), { name: "TimeoutError" }),
    },
    {
      what: "a reset connection",
      error: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }),
    },
  ])("reports a put that fails with $what as storage_unavailable", async ({ error }) => {
    s3Mock.on(PutObjectCommand).rejects(error);
    const err = await failure(store.put("t/0/a", body));
    expect(err).toMatchObject({ code: "storage_unavailable", retryable: true });
    expect(err.cause).toBe(error);
    expect(err.details).toEqual({ key: "t/0/a" });
  });

  it("sends the prefixed key and the length with a put", async () => {
    s3Mock.on(PutObjectCommand).resolves({});
    await store.put("t/0/a", body);
    expect(s3Mock.commandCalls(PutObjectCommand)[0]?.args[0].input).toMatchObject({
      Bucket: "bkt",
      Key: "p/t/0/a",
      ContentLength: 3,
    });
  });

  it("reports a missing key as not_found", async () => {
    s3Mock
      .on(GetObjectCommand)
      .rejects(
        new NoSuchKey({ message: "The specified key does not exist.", $metadata: meta(404) }),
      );
    await expect(store.get("t/0/a", { start: 0, end: 10 })).rejects.toMatchObject({
      code: "not_found",
      details: { key: "t/0/a" },
    });
  });

  it("answers a range past the end (416 InvalidRange) with no bytes", async () => {
    s3Mock.on(GetObjectCommand).rejects(serviceError("InvalidRange", 416, "Not satisfiable"));
    expect(await store.get("t/0/a", { start: 5000, end: 6000 })).toEqual(new Uint8Array(0));
    expect(s3Mock.commandCalls(GetObjectCommand)[0]?.args[0].input).toMatchObject({
      Key: "p/t/0/a",
      Range: "bytes=5000-5999",
    });
  });

  it("sends no request for an empty range", async () => {
    expect(await store.get("t/0/a", { start: 7, end: 7 })).toEqual(new Uint8Array(0));
    expect(s3Mock.calls()).toHaveLength(0);
  });

  it("reports access denied as a non-retryable internal error that quotes no credentials", async () => {
    const denied = serviceError(
      "AccessDenied",
      403,
      `Access Denied for ${ACCESS_KEY_ID} (signature of ${SECRET})`,
    );
    s3Mock.on(PutObjectCommand).rejects(denied);
    const err = await failure(store.put("t/0/a", body));
    expect(err).toMatchObject({ code: "internal", retryable: false });
    expect(err.cause).toBe(denied);
    for (const text of [err.message, JSON.stringify(err.details)]) {
      expect(text).not.toContain(ACCESS_KEY_ID);
      expect(text).not.toContain(SECRET);
    }
  });

  it("throws when DeleteObjects reports errors, ignoring missing keys", async () => {
    s3Mock.on(DeleteObjectsCommand).resolves({
      Errors: [
        { Key: "p/t/0/b", Code: "NoSuchKey", Message: "gone" },
        { Key: "p/t/0/a", Code: "AccessDenied", Message: "Access Denied" },
      ],
    });
    await expect(store.delete(["t/0/a", "t/0/b"])).rejects.toMatchObject({
      code: "internal",
      details: { keys: ["t/0/a"] },
    });
    s3Mock.on(DeleteObjectsCommand).resolves({
      Errors: [{ Key: "p/t/0/b", Code: "NoSuchKey", Message: "gone" }],
    });
    await store.delete(["t/0/b"]);
  });

  it("deletes in quiet batches of at most 1000 keys, and sends nothing for none", async () => {
    s3Mock.on(DeleteObjectsCommand).resolves({});
    await store.delete([]);
    expect(s3Mock.calls()).toHaveLength(0);
    const keys = Array.from({ length: 2500 }, (_, i) => `t/${i}`);
    await store.delete(keys);
    const batches = s3Mock.commandCalls(DeleteObjectsCommand).map((c) => c.args[0].input.Delete);
    expect(batches.map((d) => d?.Objects?.length)).toEqual([1000, 1000, 500]);
    expect(batches.every((d) => d?.Quiet === true)).toBe(true);
    expect(batches[2]?.Objects?.at(-1)).toEqual({ Key: "p/t/2499" });
  });

  it("lists across pages in order, strips the prefix, and fetches a page only when needed", async () => {
    const page = (keys: string[], next?: string) => ({
      Contents: keys.map((k) => ({ Key: `p/x/${k}`, Size: k.length, LastModified: new Date(0) })),
      IsTruncated: next !== undefined,
      NextContinuationToken: next,
    });
    s3Mock
      .on(ListObjectsV2Command)
      .resolvesOnce(page(["a", "b"], "t1"))
      .resolvesOnce(page(["c", "d/e"], "t2"))
      .resolvesOnce(page(["f"]));

    const first = await store.list("x/")[Symbol.asyncIterator]().next();
    expect(first.value).toMatchObject({ key: "x/a", size: 1 });
    expect(s3Mock.commandCalls(ListObjectsV2Command)).toHaveLength(1);

    s3Mock.resetHistory();
    const listed: ObjectInfo[] = [];
    for await (const info of store.list("x/")) listed.push(info);
    expect(listed.map((o) => o.key)).toEqual(["x/a", "x/b", "x/c", "x/d/e", "x/f"]);
    const inputs = s3Mock.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input);
    expect(inputs.map((i) => i.Prefix)).toEqual(["p/x/", "p/x/", "p/x/"]);
    expect(inputs.map((i) => i.ContinuationToken)).toEqual([undefined, "t1", "t2"]);
  });
});

describe("S3ObjectStore against a misbehaving HTTP endpoint", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("lets the SDK retry a throttled put until it succeeds", async () => {
    const server = await fakeS3((n) => (n <= 2 ? errorReply(503, "SlowDown") : { status: 200 }));
    const client = new S3Client({
      endpoint: server.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials,
      maxAttempts: 3,
    });
    onTestFinished(() => client.destroy());
    const store = new S3ObjectStore({ bucket: "bkt", prefix: "p/", client });
    await store.put("t/0/a", body);
    expect(server.requests).toEqual(Array(3).fill("PUT /bkt/p/t/0/a"));
  });

  it("gives up after the default client's 4 attempts with storage_unavailable", async () => {
    const server = await fakeS3(() => errorReply(500, "InternalError"));
    // The default client takes endpoint, region and credentials from the SDK's environment.
    vi.stubEnv("AWS_ENDPOINT_URL_S3", server.endpoint);
    vi.stubEnv("AWS_REGION", "us-east-1");
    vi.stubEnv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID);
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", SECRET);
    const store = new S3ObjectStore({ bucket: "bkt" });
    onTestFinished(() => store.close());
    const err = await failure(store.put("k", body));
    expect(err).toMatchObject({ code: "storage_unavailable" });
    expect(err.message).toContain("after 4 attempts");
    // Path-style, as a custom endpoint needs.
    expect(server.requests).toEqual(Array(4).fill("PUT /bkt/k"));
  });
});

function meta(httpStatusCode: number) {
  return { httpStatusCode, attempts: 1, totalRetryDelay: 0 };
}

function serviceError(name: string, status: number, message: string): S3ServiceException {
  return new S3ServiceException({
    name,
    message,
    $fault: status >= 500 ? "server" : "client",
    $metadata: meta(status),
  });
}

async function failure(promise: Promise<unknown>): Promise<SluiceError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SluiceError);
  return err as SluiceError;
}

interface Reply {
  status: number;
  body?: string;
}

function errorReply(status: number, code: string): Reply {
  return {
    status,
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>try again</Message><RequestId>r1</RequestId></Error>`,
  };
}

/** An HTTP server on 127.0.0.1 that answers the n-th request (from 1) with `reply(n)`. */
async function fakeS3(
  reply: (n: number) => Reply,
): Promise<{ endpoint: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url?.split("?")[0]}`);
    const { status, body: text = "" } = reply(requests.length);
    // The body is read to the end first, so the client never sees a reset mid-upload.
    req.resume().on("end", () => {
      res.writeHead(status, { "content-type": "application/xml", etag: '"0"' }).end(text);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  onTestFinished(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, "close");
  });
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}
