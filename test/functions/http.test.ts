import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
  LambdaFunctionURLEventWithIAMAuthorizer,
} from "aws-lambda";
import { pino } from "pino";
// Types only: importing the module runs its init, which beforeAll does once the env is set.
import type * as HttpFunction from "../../functions/http.js";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { MIN_SECRET_BYTES, mintToken } from "../../src/auth/jwt.js";
import { parseScope } from "../../src/auth/scopes.js";
import { Secret } from "../../src/auth/secret.js";
import { authConfigDefaults, serverConfigFromEnv, type AuthConfig } from "../../src/config.js";

/**
 * The Lambda entry point, driven with the payload format 2.0 events that an API Gateway HTTP
 * API and a Lambda Function URL really send (shapes from the AWS documentation's samples), over
 * the embedded adapters in a fresh directory: no cloud, no network. The function always
 * requires credentials: requests carry an administrator's token signed with the shared secret
 * (SLUICE_JWT_SECRET here; in the cloud, read from Secrets Manager, mocked below).
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
let resolveJwtSecret: typeof HttpFunction.resolveJwtSecret;
let dataDir: string;
const savedEnv: Record<string, string | undefined> = {};
const envKeys = [
  "SLUICE_DATA_DIR",
  "SLUICE_BUCKET",
  "SLUICE_TABLE",
  "SLUICE_AUTH",
  "SLUICE_JWT_SECRET",
  "SLUICE_JWT_SECRET_ARN",
  "SLUICE_JWT_JWKS_URL",
  "LOG_LEVEL",
] as const;
const tokenSettings = {
  issuer: authConfigDefaults.issuer,
  audience: authConfigDefaults.audience,
  maxTtlS: authConfigDefaults.maxTtlS,
};
/** The shared token secret the handler under test was started with. */
const jwtSecret = randomBytes(32).toString("base64url");
let adminToken: string;

async function adminTokenFor(secret: string): Promise<string> {
  const { token } = await mintToken(tokenSettings, new Secret(secret), {
    subject: "lambda-test",
    scopes: [parseScope("admin")!],
    ttlS: 3600,
  });
  return token;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "sluice-lambda-"));
  for (const key of envKeys) savedEnv[key] = process.env[key];
  // functions/http.ts reads its configuration when it is imported: set it first, and make sure
  // a developer's shell pointing at a bucket or table cannot send this test to the cloud.
  process.env.SLUICE_DATA_DIR = dataDir;
  delete process.env.SLUICE_BUCKET;
  delete process.env.SLUICE_TABLE;
  // `off` would be ignored: the function requires credentials whatever the setting says.
  process.env.SLUICE_AUTH = "off";
  process.env.SLUICE_JWT_SECRET = jwtSecret;
  delete process.env.SLUICE_JWT_SECRET_ARN;
  delete process.env.SLUICE_JWT_JWKS_URL;
  const http = await import("../../functions/http.js");
  handler = http.handler as unknown as HttpHandler;
  resolveJwtSecret = http.resolveJwtSecret;
  adminToken = await adminTokenFor(jwtSecret);
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
  /** `Authorization: Bearer <token>`: an administrator's token by default, null for none. */
  token?: string | null;
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
  const token = spec.token === undefined ? adminToken : spec.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
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
      headers: result.headers ?? {},
      contentType: typeof contentType === "string" ? contentType : undefined,
      json: result.body ? JSON.parse(result.body) : undefined,
    };
  }

  it("answers GET /healthz without credentials", async () => {
    const res = await invoke({ method: "GET", path: "/healthz", token: null });
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^application\/json\b/);
    expect(res.json).toEqual({ status: "ok" });
  });

  it("requires credentials even with SLUICE_AUTH=off: 401 unauthorized, WWW-Authenticate Bearer", async () => {
    for (const spec of [
      { method: "GET", path: "/v1/topics" },
      { method: "POST", path: "/v1/topics", body: { name: `${topic}-anon`, partitions: 1 } },
      { method: "GET", path: `/v1/topics/${topic}/partitions/0/records`, query: { offset: "0" } },
    ]) {
      const res = await invoke({ ...spec, token: null });
      expect(res.status, `${spec.method} ${spec.path}`).toBe(401);
      expect(res.contentType).toMatch(/^application\/json\b/);
      expect(res.json.error.code).toBe("unauthorized");
      expect(String(res.headers["www-authenticate"])).toMatch(/^Bearer\b/);
    }
    // Nothing was created on the way.
    const list = await invoke({ method: "GET", path: "/v1/topics" });
    expect(list.json.topics.map((t: { name: string }) => t.name)).not.toContain(`${topic}-anon`);
  });

  it("refuses a token signed with another secret: 401", async () => {
    const res = await invoke({
      method: "GET",
      path: "/v1/topics",
      token: await adminTokenFor(randomBytes(32).toString("base64url")),
    });
    expect(res.status).toBe(401);
    expect(res.json.error.code).toBe("unauthorized");
    expect(String(res.headers["www-authenticate"])).toMatch(/^Bearer\b/);
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

describe("functions/http: the token signing secret from Secrets Manager", () => {
  const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:SluiceJwtSecret-AbCdEf";
  /** A value the stack would generate: 64 letters and digits. */
  const cloudSecret = randomBytes(48).toString("base64url").replace(/[-_]/g, "x").slice(0, 64);
  let secretsMock: ReturnType<typeof mockClient>;

  const authWith = (env: Record<string, string>): AuthConfig =>
    serverConfigFromEnv({ HOST: "127.0.0.1", ...env }).auth;

  beforeAll(() => {
    secretsMock = mockClient(SecretsManagerClient);
  });
  afterEach(() => {
    secretsMock.reset();
  });
  afterAll(() => {
    secretsMock.restore();
  });

  describe("resolveJwtSecret", () => {
    it("leaves the settings alone, and sends nothing, without an ARN", async () => {
      const auth = authWith({ SLUICE_JWT_SECRET: jwtSecret });
      expect(await resolveJwtSecret(auth)).toBe(auth);
      expect(secretsMock.calls()).toHaveLength(0);
    });

    it("reads the secret by its ARN, once, and holds it as a Secret", async () => {
      secretsMock.on(GetSecretValueCommand, { SecretId: arn }).resolves({
        ARN: arn,
        Name: "SluiceJwtSecret",
        SecretString: cloudSecret,
      });
      const auth = authWith({ SLUICE_JWT_SECRET_ARN: arn });
      expect(auth.jwt.secret).toBeUndefined();
      const resolved = await resolveJwtSecret(auth, new SecretsManagerClient({}));
      const calls = secretsMock.commandCalls(GetSecretValueCommand);
      expect(calls).toHaveLength(1);
      expect(calls[0]!.args[0].input).toEqual({ SecretId: arn });
      expect(resolved.jwt.secret).toBeInstanceOf(Secret);
      expect(resolved.jwt.secret!.reveal()).toBe(cloudSecret);
      // Everything else as configured.
      expect({ ...resolved, jwt: { ...resolved.jwt, secret: undefined } }).toEqual(auth);
      // Printed or serialized by accident, it stays hidden.
      expect(JSON.stringify(resolved)).not.toContain(cloudSecret);
      expect(String(resolved.jwt.secret)).toBe("[redacted]");
    });

    it.each([
      { case: "too short", output: { SecretString: cloudSecret.slice(0, MIN_SECRET_BYTES - 1) } },
      { case: "empty", output: { SecretString: "" } },
      { case: "binary only", output: { SecretBinary: new TextEncoder().encode(cloudSecret) } },
    ])("refuses a secret that is $case, without echoing it", async ({ output }) => {
      secretsMock.on(GetSecretValueCommand).resolves(output);
      const failure = resolveJwtSecret(authWith({ SLUICE_JWT_SECRET_ARN: arn }));
      await expect(failure).rejects.toThrow(
        `the token signing secret ${arn} must be a SecretString of at least ${MIN_SECRET_BYTES} bytes`,
      );
      const err = await failure.then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(`${err?.message} ${String(err?.stack)}`).not.toContain(cloudSecret.slice(0, 16));
    });

    it("fails when the secret cannot be read, keeping the SDK's error as the cause", async () => {
      const notFound = new ResourceNotFoundException({
        message: "Secrets Manager can't find the specified secret.",
        $metadata: {},
      });
      secretsMock.on(GetSecretValueCommand).rejects(notFound);
      const failure = resolveJwtSecret(authWith({ SLUICE_JWT_SECRET_ARN: arn }));
      await expect(failure).rejects.toThrow(
        `cannot read the token signing secret ${arn} from Secrets Manager`,
      );
      expect(await failure.catch((e: unknown) => (e as Error).cause)).toBe(notFound);
    });

    it("refuses two sources for the one secret", async () => {
      const auth = authWith({ SLUICE_JWT_SECRET: jwtSecret, SLUICE_JWT_SECRET_ARN: arn });
      await expect(resolveJwtSecret(auth)).rejects.toThrow(/not both/);
      expect(secretsMock.calls()).toHaveLength(0);
    });
  });

  /**
   * The function as the stack configures it: SLUICE_JWT_SECRET_ARN, no secret value in the
   * environment. Each case loads a fresh copy of the module (and of the logger, at the most
   * verbose level, its output captured) over its own directory.
   */
  describe("at init", () => {
    const dirs: string[] = [];
    afterAll(async () => {
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    });

    async function init(): Promise<{
      module: Promise<typeof HttpFunction>;
      lines: string[];
    }> {
      const dir = await mkdtemp(join(tmpdir(), "sluice-lambda-secret-"));
      dirs.push(dir);
      process.env.SLUICE_DATA_DIR = dir;
      process.env.SLUICE_JWT_SECRET_ARN = arn;
      delete process.env.SLUICE_JWT_SECRET;
      process.env.LOG_LEVEL = "trace";
      vi.resetModules();
      // The copy of the logger that the fresh module will import: every line it writes, from
      // it or its children, goes through its destination, which records instead of printing.
      const { logger } = await import("../../src/logger.js");
      const lines: string[] = [];
      const destination = (logger as unknown as Record<symbol, { write(line: string): boolean }>)[
        pino.symbols.streamSym
      ]!;
      vi.spyOn(destination, "write").mockImplementation((line: string) => {
        lines.push(line);
        return true;
      });
      return { module: import("../../functions/http.js"), lines };
    }

    afterEach(() => {
      process.env.SLUICE_DATA_DIR = dataDir;
      process.env.SLUICE_JWT_SECRET = jwtSecret;
      delete process.env.SLUICE_JWT_SECRET_ARN;
      if (savedEnv.LOG_LEVEL === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = savedEnv.LOG_LEVEL;
      vi.restoreAllMocks();
    });

    it("verifies tokens signed with the secret read by ARN, mints with it, and logs none of it", async () => {
      secretsMock
        .on(GetSecretValueCommand, { SecretId: arn })
        .resolves({ SecretString: cloudSecret });
      const { module, lines } = await init();
      const fresh = (await module).handler as unknown as HttpHandler;
      expect(secretsMock.commandCalls(GetSecretValueCommand)).toHaveLength(1);
      const call = async (spec: RequestSpec) => {
        const result = await fresh(functionUrlEvent(spec), lambdaContext());
        return { status: result.statusCode, json: JSON.parse(result.body ?? "null") };
      };

      const admin = await adminTokenFor(cloudSecret);
      const created = await call({
        method: "POST",
        path: "/v1/topics",
        body: { name: "secret-by-arn", partitions: 1 },
        token: admin,
      });
      expect(created.status).toBe(201);
      // Not the secret the environment used to hold, nor none at all.
      for (const token of [adminToken, null]) {
        const refused = await call({ method: "GET", path: "/v1/topics", token });
        expect(refused.status).toBe(401);
        expect(refused.json.error.code).toBe("unauthorized");
      }

      // The function signs with the same secret: its token works for what it allows.
      const minted = await call({
        method: "POST",
        path: "/v1/auth/tokens",
        body: { scopes: ["produce:topic:secret-by-arn"], ttlSeconds: 60 },
        token: admin,
      });
      expect(minted.status).toBe(201);
      const produced = await call({
        method: "POST",
        path: "/v1/topics/secret-by-arn/records",
        body: { records: [{ value: "hello" }] },
        token: minted.json.token,
      });
      expect(produced.status).toBe(200);

      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) expect(line).not.toContain(cloudSecret);
      expect(JSON.stringify([created, minted, produced])).not.toContain(cloudSecret);
    });

    it("fails init on a secret too short to sign with, echoing it nowhere", async () => {
      const short = cloudSecret.slice(0, MIN_SECRET_BYTES - 1);
      secretsMock.on(GetSecretValueCommand).resolves({ SecretString: short });
      const { module, lines } = await init();
      const err = await module.then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toMatch(/must be a SecretString of at least 32 bytes/);
      expect(`${err?.message} ${String(err?.stack)}`).not.toContain(short);
      for (const line of lines) expect(line).not.toContain(short);
    });
  });
});
