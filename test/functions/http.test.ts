import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
  LambdaFunctionURLEventWithIAMAuthorizer,
} from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * The Lambda entry point, driven with the payload format 2.0 events that an API Gateway HTTP
 * API and a Lambda Function URL really send (shapes from the AWS documentation's samples), over
 * the embedded adapters in a fresh directory: no cloud, no network.
 */

/**
 * The handler as the Lambda runtime calls it. Hono's own event type declares `body: string |
 * null`, but real events (and @types/aws-lambda) leave `body` out when there is none, which
 * the adapter handles (`if (event.body)`): so the handler is typed here by the AWS types.
 */
type HttpHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyStructuredResultV2>;

let handler: HttpHandler;
let dataDir: string;
const savedEnv: Record<string, string | undefined> = {};
const envKeys = ["SLUICE_DATA_DIR", "SLUICE_BUCKET", "SLUICE_TABLE"] as const;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "sluice-lambda-"));
  for (const key of envKeys) savedEnv[key] = process.env[key];
  // functions/http.ts reads its configuration when it is imported: set it first, and make sure
  // a developer's shell pointing at a bucket or table cannot send this test to the cloud.
  process.env.SLUICE_DATA_DIR = dataDir;
  delete process.env.SLUICE_BUCKET;
  delete process.env.SLUICE_TABLE;
  const http = await import("../../functions/http.js");
  handler = http.handler as unknown as HttpHandler;
});

afterAll(async () => {
  for (const key of envKeys) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
  await rm(dataDir, { recursive: true, force: true });
});

interface RequestSpec {
  method: string;
  path: string;
  query?: Record<string, string>;
  /** A JSON value to send, or raw text (sent as is, e.g. malformed JSON). */
  body?: unknown;
  /** Send the body base64-encoded with `isBase64Encoded: true`, as Lambda does for binary bodies. */
  base64?: boolean;
}

const accountId = "123456789012";
const sourceIp = "203.0.113.7";
const userAgent = "sluice-client/0.1 node/22";
let requestCount = 0;

/** The parts both sources share: headers, raw path and query, body and its encoding. */
function common(spec: RequestSpec, host: string) {
  const requestId = `req-${++requestCount}`;
  const rawQueryString = new URLSearchParams(spec.query ?? {}).toString();
  const text =
    spec.body === undefined
      ? undefined
      : typeof spec.body === "string"
        ? spec.body
        : JSON.stringify(spec.body);
  const headers: Record<string, string> = {
    accept: "application/json",
    host,
    "user-agent": userAgent,
    "x-amzn-trace-id": `Root=1-67891233-abcdef012345678912345678`,
    "x-forwarded-for": sourceIp,
    "x-forwarded-port": "443",
    "x-forwarded-proto": "https",
  };
  if (text !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(Buffer.byteLength(text));
  }
  const now = new Date();
  return {
    requestId,
    version: "2.0",
    routeKey: "$default",
    rawPath: spec.path,
    rawQueryString,
    headers,
    ...(spec.query ? { queryStringParameters: spec.query } : {}),
    ...(text === undefined
      ? { isBase64Encoded: false }
      : spec.base64
        ? { body: Buffer.from(text, "utf8").toString("base64"), isBase64Encoded: true }
        : { body: text, isBase64Encoded: false }),
    http: {
      method: spec.method,
      path: spec.path,
      protocol: "HTTP/1.1",
      sourceIp,
      userAgent,
    },
    // e.g. "25/Nov/2025:16:03:58 +0000", the format both services use.
    time: now.toUTCString().replace(/^\w+, (\d+) (\w+) (\d+) ([\d:]+) GMT$/, "$1/$2/$3:$4 +0000"),
    timeEpoch: now.getTime(),
  };
}

/** An API Gateway HTTP API `$default` route and stage, payload format 2.0. */
function httpApiEvent(spec: RequestSpec): APIGatewayProxyEventV2 {
  const apiId = "r3pmxmplak";
  const domainName = `${apiId}.execute-api.us-east-1.amazonaws.com`;
  const { requestId, http, time, timeEpoch, ...rest } = common(spec, domainName);
  return {
    ...rest,
    requestContext: {
      accountId,
      apiId,
      domainName,
      domainPrefix: apiId,
      http,
      requestId,
      routeKey: "$default",
      stage: "$default",
      time,
      timeEpoch,
    },
  };
}

/** A Lambda Function URL with AWS_IAM auth (the stack's default): the caller's SigV4 identity. */
function functionUrlEvent(spec: RequestSpec): LambdaFunctionURLEventWithIAMAuthorizer {
  const urlId = "a6bkrxw3fyydbq5edw4inkgx4e0ycwtd";
  const domainName = `${urlId}.lambda-url.us-east-1.on.aws`;
  const { requestId, http, time, timeEpoch, ...rest } = common(spec, domainName);
  return {
    ...rest,
    requestContext: {
      accountId,
      apiId: urlId,
      authorizer: {
        iam: {
          accessKey: "AKIAIOSFODNN7EXAMPLE",
          accountId,
          callerId: "AIDACKCEVSQ6C2EXAMPLE",
          cognitoIdentity: null,
          principalOrgId: "o-exampleorgid",
          userArn: `arn:aws:iam::${accountId}:user/producer`,
          userId: "AIDACKCEVSQ6C2EXAMPLE",
        },
      },
      domainName,
      domainPrefix: urlId,
      http,
      requestId,
      routeKey: "$default",
      stage: "$default",
      time,
      timeEpoch,
    },
  };
}

function lambdaContext(): Context {
  const deadline = Date.now() + 60_000;
  const fail = () => {
    throw new Error("the handler must return a promise, not use the legacy context callbacks");
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: "SluiceStack-HttpFunction",
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:us-east-1:${accountId}:function:SluiceStack-HttpFunction`,
    memoryLimitInMB: "1024",
    awsRequestId: `aws-req-${requestCount}`,
    logGroupName: "/aws/lambda/SluiceStack-HttpFunction",
    logStreamName: "2025/11/25/[$LATEST]0123456789abcdef0123456789abcdef",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: fail,
    fail,
    succeed: fail,
  };
}

const sources = [
  { source: "API Gateway HTTP API", makeEvent: httpApiEvent },
  { source: "Lambda Function URL", makeEvent: functionUrlEvent },
] as const;

describe.each(sources)("functions/http handler behind $source", ({ source, makeEvent }) => {
  const topic = source.startsWith("API") ? "via-http-api" : "via-function-url";

  async function invoke(spec: RequestSpec) {
    const result = await handler(makeEvent(spec), lambdaContext());
    // JSON answers go back as text, never base64: both services then pass them through as is.
    expect(result.isBase64Encoded).toBe(false);
    const contentType = result.headers?.["content-type"];
    return {
      status: result.statusCode,
      contentType: typeof contentType === "string" ? contentType : undefined,
      json: result.body ? JSON.parse(result.body) : undefined,
    };
  }

  it("answers GET /healthz", async () => {
    const res = await invoke({ method: "GET", path: "/healthz" });
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^application\/json\b/);
    expect(res.json).toEqual({ status: "ok" });
  });

  it("refuses to run maintenance in a request: 403 forbidden", async () => {
    const res = await invoke({ method: "POST", path: "/v1/admin/maintenance" });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe("forbidden");
  });

  it("creates a topic with 201", async () => {
    const res = await invoke({
      method: "POST",
      path: "/v1/topics",
      body: { name: topic, partitions: 2, config: { "retention.ms": 3_600_000 } },
    });
    expect(res.status).toBe(201);
    expect(res.contentType).toMatch(/^application\/json\b/);
    expect(res.json).toMatchObject({
      name: topic,
      partitions: 2,
      config: { "retention.ms": 3_600_000, "retention.bytes": -1 },
    });
  });

  it("produces with 200 and the offsets in request order", async () => {
    const res = await invoke({
      method: "POST",
      path: `/v1/topics/${topic}/records`,
      body: {
        records: [
          { value: { order: 1, item: "tea" }, partition: 1, headers: { trace: "t-1" } },
          { value: "second", key: "customer-7", partition: 1 },
        ],
      },
    });
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^application\/json\b/);
    expect(res.json).toEqual({
      offsets: [
        { partition: 1, offset: 0 },
        { partition: 1, offset: 1 },
      ],
    });
  });

  it("produces from a base64-encoded body (isBase64Encoded: true), UTF-8 intact", async () => {
    const res = await invoke({
      method: "POST",
      path: `/v1/topics/${topic}/records`,
      body: { records: [{ value: { note: "grüße ✓ 👩‍🚀" }, key: "clé", partition: 1 }] },
      base64: true,
    });
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^application\/json\b/);
    expect(res.json).toEqual({ offsets: [{ partition: 1, offset: 2 }] });
  });

  it("fetches the records with 200, from the query string", async () => {
    const res = await invoke({
      method: "GET",
      path: `/v1/topics/${topic}/partitions/1/records`,
      query: { offset: "0", maxRecords: "10" },
    });
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^application\/json\b/);
    expect(res.json).toMatchObject({ nextOffset: 3, logEndOffset: 3 });
    const records = res.json.records;
    expect(records.map((r: any) => r.offset)).toEqual([0, 1, 2]);
    expect(records[0]).toMatchObject({
      key: null,
      value: { order: 1, item: "tea" },
      headers: { trace: "t-1" },
    });
    expect(records[1]).toMatchObject({ key: "customer-7", value: "second", headers: {} });
    expect(records[2]).toMatchObject({ key: "clé", value: { note: "grüße ✓ 👩‍🚀" } });
    for (const record of records) expect(typeof record.timestamp).toBe("number");

    const other = await invoke({
      method: "GET",
      path: `/v1/topics/${topic}/partitions/0/records`,
      query: { offset: "0" },
    });
    expect(other.json).toEqual({ records: [], nextOffset: 0, logEndOffset: 0 });
  });

  it("answers a bad topic name with 400 and a JSON error code", async () => {
    const res = await invoke({
      method: "POST",
      path: "/v1/topics",
      body: { name: "no spaces allowed", partitions: 1 },
    });
    expect(res.status).toBe(400);
    expect(res.contentType).toMatch(/^application\/json\b/);
    expect(res.json.error).toMatchObject({ code: "invalid_name" });
    expect(typeof res.json.error.message).toBe("string");
  });

  it("answers malformed JSON in a base64-encoded body with 400 invalid_json", async () => {
    const res = await invoke({
      method: "POST",
      path: `/v1/topics/${topic}/records`,
      body: '{"records": [',
      base64: true,
    });
    expect(res.status).toBe(400);
    expect(res.contentType).toMatch(/^application\/json\b/);
    expect(res.json.error).toMatchObject({ code: "invalid_json" });
  });

  it("answers a negative offset with 400 invalid_offset", async () => {
    const res = await invoke({
      method: "GET",
      path: `/v1/topics/${topic}/partitions/0/records`,
      query: { offset: "-1" },
    });
    expect(res.status).toBe(400);
    expect(res.contentType).toMatch(/^application\/json\b/);
    expect(res.json.error).toMatchObject({ code: "invalid_offset" });
  });

  it("answers an unknown topic with 404 topic_not_found", async () => {
    const res = await invoke({
      method: "GET",
      path: "/v1/topics/never-created/partitions/0/records",
      query: { offset: "0" },
    });
    expect(res.status).toBe(404);
    expect(res.json.error).toMatchObject({ code: "topic_not_found" });
  });
});
