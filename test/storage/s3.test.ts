import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { S3Client } from "@aws-sdk/client-s3";
import { S3ObjectStore } from "../../src/storage/s3.js";
import type { ObjectInfo } from "../../src/storage/object-store.js";
import { objectStoreContract } from "../contract/object-store.case.js";
import { makeS3Client, s3Endpoint } from "../support/standins/s3.js";
import type { S3Endpoint } from "../support/standins/s3.js";

// One stand-in for the whole file: the contract and the tests below each write under their own
// run prefix, so they can share a bucket.
let s3: S3Endpoint | undefined;
let client: S3Client | undefined;

function endpoint(): { s3: S3Endpoint; client: S3Client } {
  if (s3 === undefined || client === undefined) throw new Error("the S3 stand-in did not start");
  return { s3, client };
}

beforeAll(async () => {
  s3 = await s3Endpoint();
  client = makeS3Client(s3.endpoint);
});

afterAll(async () => {
  client?.destroy();
  await s3?.stop();
});

objectStoreContract("s3", () => {
  const { s3, client } = endpoint();
  return Promise.resolve({
    store: new S3ObjectStore({ bucket: s3.bucket, prefix: "contract/", client }),
    cleanup: () => Promise.resolve(),
  });
});

describe("S3ObjectStore", () => {
  const run = `s3-${Date.now()}-${randomBytes(4).toString("hex")}`;
  const body = Uint8Array.from({ length: 100 }, (_, i) => i);

  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("keeps keys under its prefix and lists them without it", async () => {
    const { s3, client } = endpoint();
    const store = new S3ObjectStore({ bucket: s3.bucket, prefix: `${run}/inner/`, client });
    const outer = new S3ObjectStore({ bucket: s3.bucket, client });
    await store.put("t/0/a", body);
    await outer.put(`${run}/outside`, body);
    expect(await outer.get(`${run}/inner/t/0/a`)).toEqual(body);
    expect((await collect(store.list(""))).map((o) => o.key)).toEqual(["t/0/a"]);
    expect((await collect(outer.list(`${run}/`))).map((o) => o.key)).toEqual([
      `${run}/inner/t/0/a`,
      `${run}/outside`,
    ]);
    // A client it was given is not its to close.
    await store.close();
    expect(await outer.get(`${run}/outside`)).toEqual(body);
  });

  it("reads a one-byte range at the start, which s3rver widens to the whole object", async () => {
    const { s3, client } = endpoint();
    const store = new S3ObjectStore({ bucket: s3.bucket, prefix: `${run}/`, client });
    await store.put("one", body);
    expect(await store.get("one", { start: 0, end: 1 })).toEqual(body.subarray(0, 1));
  });

  it("builds its own client from the SDK's environment, path-style for a custom endpoint", async () => {
    const { s3 } = endpoint();
    // With AWS_ENDPOINT_URL_S3 already set, the environment is MinIO's or S3's own.
    if (!process.env.AWS_ENDPOINT_URL_S3) {
      vi.stubEnv("AWS_ENDPOINT_URL_S3", s3.endpoint);
      vi.stubEnv("AWS_REGION", "us-east-1");
      vi.stubEnv("AWS_ACCESS_KEY_ID", "S3RVER");
      vi.stubEnv("AWS_SECRET_ACCESS_KEY", "S3RVER");
    }
    const store = new S3ObjectStore({ bucket: s3.bucket, prefix: `${run}/env/` });
    try {
      await store.put("k", body);
      expect(await store.get("k", { start: 10, end: 20 })).toEqual(body.subarray(10, 20));
    } finally {
      await store.close();
    }
  });

  it.each(["x", "/", "a//", "../", "a b/"])(
    "refuses the prefix option %j with invalid_config",
    (prefix) => {
      expect(() => new S3ObjectStore({ bucket: "b", prefix, client: endpoint().client })).toThrow(
        expect.objectContaining({ code: "invalid_config" }),
      );
    },
  );
});

async function collect(items: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const item of items) out.push(item);
  return out;
}
