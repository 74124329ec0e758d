import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { SluiceError } from "../errors.js";
import {
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  isValidKeyPrefix,
  isValidObjectKey,
} from "./object-store.js";
import type { ByteRange, ObjectInfo, ObjectStore } from "./object-store.js";

export interface S3ObjectStoreOptions {
  bucket: string;
  /** Prepended to every key: `""` or ending in `/`, e.g. `sluice/`. */
  prefix?: string;
  /** A client to use, and to leave open on close; by default one from the SDK's own settings. */
  client?: S3Client;
}

/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;
/** Error names that mean "try again later", whatever status they came with. */
const TRANSIENT_NAMES = new Set([
  "SlowDown",
  "ServiceUnavailable",
  "InternalError",
  "RequestTimeout",
  "TimeoutError",
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
]);
/** Socket errors: the service may be fine, the path to it was not. */
const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

/**
 * Objects in an S3 bucket (or any S3-compatible store), under an optional key prefix. Nothing
 * here relies on conditional writes, which S3 look-alikes ignore: the key-value table is the
 * commit point, and a retried PUT of an immutable object writes the same bytes again.
 */
export class S3ObjectStore implements ObjectStore {
  readonly #client: S3Client;
  readonly #ownsClient: boolean;
  readonly #bucket: string;
  readonly #prefix: string;

  constructor(options: S3ObjectStoreOptions) {
    const prefix = options.prefix ?? "";
    if (prefix !== "" && !(prefix.endsWith("/") && isValidKeyPrefix(prefix))) {
      throw new SluiceError(
        "invalid_config",
        `invalid S3 key prefix ${JSON.stringify(prefix)}: it must be empty or end in "/"`,
        { details: { prefix } },
      );
    }
    this.#bucket = options.bucket;
    this.#prefix = prefix;
    this.#ownsClient = options.client === undefined;
    this.#client = options.client ?? defaultClient();
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    assertValidKey(key);
    await this.#call(`put ${key}`, { key }, () =>
      this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: this.#prefix + key,
          Body: body,
          ContentLength: body.length,
        }),
      ),
    );
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    assertValidKey(key);
    if (range !== undefined) {
      assertValidRange(range);
      // `bytes=10-9` is no range at all: HTTP would ignore it and send the whole object.
      if (range.start === range.end) return new Uint8Array(0);
    }
    try {
      const out = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: this.#prefix + key,
          // Always first-last: suffix ranges (`bytes=-N`) are what S3 look-alikes get wrong.
          Range: range === undefined ? undefined : `bytes=${range.start}-${range.end - 1}`,
        }),
      );
      if (out.Body === undefined) throw new Error("GetObject answered without a body");
      const bytes = await out.Body.transformToByteArray();
      return range === undefined ? bytes : cut(bytes, range, out.ContentRange);
    } catch (err) {
      const { name, status } = facts(err);
      // A range that starts at or past the end: S3 answers 416, the port answers no bytes.
      if (name === "InvalidRange" || status === 416) return new Uint8Array(0);
      if (status === 404 && name !== "NoSuchBucket") {
        throw new SluiceError("not_found", `no object at key ${key}`, { details: { key } });
      }
      throw storageError(err, `get ${key}`, { key });
    }
  }

  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    assertValidPrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.#call(`list ${prefix}`, { prefix }, () =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: this.#prefix + prefix,
            ContinuationToken: token,
          }),
        ),
      );
      for (const object of page.Contents ?? []) {
        const key = object.Key?.slice(this.#prefix.length);
        // Objects another tool put under our prefix may have keys no get or delete accepts.
        if (key === undefined || !isValidObjectKey(key)) continue;
        yield { key, size: object.Size ?? 0, lastModified: object.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async delete(keys: readonly string[]): Promise<void> {
    // All keys are checked before any is removed, so a bad request changes nothing.
    keys.forEach(assertValidKey);
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const out = await this.#call(`delete of ${batch.length} keys`, { keys: batch.length }, () =>
        this.#client.send(
          new DeleteObjectsCommand({
            Bucket: this.#bucket,
            Delete: { Quiet: true, Objects: batch.map((key) => ({ Key: this.#prefix + key })) },
          }),
        ),
      );
      // S3 reports a missing key as deleted; a look-alike reporting NoSuchKey means the same.
      const failed = (out.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
      const first = failed[0];
      if (first !== undefined) {
        const code = first.Code ?? "unknown error";
        throw new SluiceError(
          TRANSIENT_NAMES.has(code) ? "storage_unavailable" : "internal",
          `S3 could not delete ${failed.length} of ${batch.length} keys: ${code}`,
          { details: { keys: failed.map((e) => e.Key?.slice(this.#prefix.length)) } },
        );
      }
    }
  }

  close(): Promise<void> {
    if (this.#ownsClient) this.#client.destroy();
    return Promise.resolve();
  }

  async #call<T>(what: string, details: Record<string, unknown>, request: () => Promise<T>) {
    try {
      return await request();
    } catch (err) {
      throw storageError(err, what, details);
    }
  }
}

function defaultClient(): S3Client {
  return new S3Client({
    // Custom endpoints (MinIO and friends) seldom serve bucket subdomains.
    forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL),
    maxAttempts: 4,
    // The SDK sets no timeouts, so a stalled connection would hang a flush for good. The socket
    // timeout counts inactivity, so a slow but moving upload of a big segment still finishes.
    requestHandler: { connectionTimeout: 5_000, socketTimeout: 30_000 },
  });
}

/**
 * The asked-for bytes of a ranged GET's body. HTTP lets a server answer a range with more than
 * was asked (the whole object with a 200, or a wider 206, as s3rver does for `bytes=0-0`), so
 * the body is cut by where its Content-Range says it starts.
 */
function cut(bytes: Uint8Array, range: ByteRange, contentRange: string | undefined): Uint8Array {
  const first = Number(/^bytes (\d+)-/.exec(contentRange ?? "")?.[1] ?? 0);
  return bytes.subarray(range.start - first, range.end - first);
}

interface ErrorFacts {
  name: string;
  code: string | undefined;
  status: number | undefined;
  attempts: number | undefined;
  retryable: boolean;
}

/** What the SDK puts on its errors (service exceptions and raw socket errors alike). */
function facts(err: unknown): ErrorFacts {
  const e = (typeof err === "object" && err !== null ? err : {}) as {
    name?: unknown;
    code?: unknown;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: number; attempts?: number };
  };
  return {
    name: typeof e.name === "string" ? e.name : "Error",
    code: typeof e.code === "string" ? e.code : undefined,
    status: e.$metadata?.httpStatusCode,
    attempts: e.$metadata?.attempts,
    retryable: e.$retryable !== undefined,
  };
}

/**
 * Reached only after the SDK's own retries gave up. The service's message is left out: it can
 * quote request details such as the access key id; the error itself stays as the cause.
 */
function storageError(err: unknown, what: string, details: Record<string, unknown>): SluiceError {
  const { name, code, status, attempts, retryable } = facts(err);
  const transient =
    retryable ||
    TRANSIENT_NAMES.has(name) ||
    (code !== undefined && NETWORK_CODES.has(code)) ||
    (status !== undefined && (status >= 500 || status === 429));
  const message =
    `S3 ${what} failed: ${code ?? name}` +
    (status === undefined ? "" : ` (HTTP ${status})`) +
    (attempts === undefined || attempts < 2 ? "" : ` after ${attempts} attempts`);
  return new SluiceError(transient ? "storage_unavailable" : "internal", message, {
    details,
    cause: err,
  });
}
