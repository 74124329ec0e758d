import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { SignJWT, exportJWK, generateKeyPair, type JWK } from "jose";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey, type NewApiKey } from "../../src/auth/api-keys.js";
import { Authenticator } from "../../src/auth/authenticator.js";
import { mintToken, type JwtConfig } from "../../src/auth/jwt.js";
import type { RateLimit } from "../../src/auth/principal.js";
import { parseScopes } from "../../src/auth/scopes.js";
import { Secret } from "../../src/auth/secret.js";
import { logConfigDefaults } from "../../src/config.js";
import { createApp } from "../../src/http/app.js";
import { routePermissions } from "../../src/http/permissions.js";
import { SluiceLog } from "../../src/log/log.js";
import { REDACTED_PATHS } from "../../src/logger.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";

/**
 * Authentication, scopes and limits over HTTP (docs/rfcs/0005-auth-and-limits.md §5). Every
 * credential a test uses is remembered, and the last test scans every response body and every
 * log line of the file for them.
 */

const SECRET = "test-secret-0123456789abcdef-0123456789abcdef";
const OTHER_SECRET = "another-secret-0123456789abcdef-0123456789ab";
const credentials = new Set<string>([SECRET, OTHER_SECRET]);
const bodies: string[] = [];
const logLines: string[] = [];

const jwtConfig = (overrides: Partial<JwtConfig> = {}): JwtConfig => ({
  secret: new Secret(SECRET),
  jwksUrl: undefined,
  issuer: "sluice",
  audience: "sluice",
  maxTtlS: 3600,
  ...overrides,
});

interface Fixture {
  meta: MemoryMetaStore;
  clock: { now: number };
  request: (path: string, init?: RequestInit & { token?: string }) => Promise<Response>;
  key: (scopes: string[], extra?: Partial<NewApiKey>) => Promise<string>;
  token: (scopes: string[], options?: { ttlS?: number; subject?: string }) => Promise<string>;
}

function fixture(
  options: {
    jwt?: JwtConfig;
    meta?: MemoryMetaStore;
    rateLimit?: RateLimit | null;
    maxStreams?: number;
    maxRecordsPerRequest?: number;
  } = {},
): Fixture {
  const meta = options.meta ?? new MemoryMetaStore();
  const clock = { now: Date.now() };
  const now = () => clock.now;
  const jwt = options.jwt ?? jwtConfig();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level: "debug", redact: { paths: REDACTED_PATHS } }, sink);
  const log = new SluiceLog({
    store: new MemoryObjectStore(),
    meta,
    config: { ...logConfigDefaults, lingerMs: 1 },
    logger,
  });
  const app = createApp({
    log,
    logger,
    maxRequestBytes: 64 * 1024,
    maxRecordsPerRequest: options.maxRecordsPerRequest ?? 100,
    sse: { maxStreamMs: 2_000, heartbeatMs: 50 },
    auth: {
      authenticator: new Authenticator({ keys: meta, jwt, keyCacheMs: 10_000, now }),
      keys: meta,
      jwt,
      rateLimit: options.rateLimit ?? null,
      maxStreams: options.maxStreams ?? 16,
      now,
    },
  });
  return {
    meta,
    clock,
    request: async (path, init = {}) => {
      const { token, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
      if (rest.body !== undefined) headers.set("content-type", "application/json");
      const res = await app.request(`http://sluice.test${path}`, { ...rest, headers });
      // Issuing a key or a token answers with it, once, by design: every other body is scanned.
      const issuing = rest.method === "POST" && /^\/v1\/auth\/(keys|tokens)$/.test(path);
      if (!issuing && !(headers.get("accept") ?? "").includes("event-stream")) {
        bodies.push(await res.clone().text());
      }
      return res;
    },
    key: async (scopes, extra = {}) => {
      const { record, key } = generateApiKey(
        { scopes, description: "test", expiresAt: null, rateLimit: null, ...extra },
        clock.now,
      );
      await meta.putKey(record);
      credentials.add(key.reveal());
      return key.reveal();
    },
    token: async (scopes, { ttlS = 600, subject = "user-1" } = {}) => {
      const { token } = await mintToken(
        jwt,
        new Secret(SECRET),
        { subject, scopes: parseScopes(scopes), ttlS },
        clock.now,
      );
      credentials.add(token);
      return token;
    },
  };
}

/** Signs claims by hand, for tokens the minting code would never produce. */
async function signed(
  claims: Record<string, unknown>,
  secret = SECRET,
  header: { alg: string } = { alg: "HS256" },
): Promise<string> {
  const token = await new SignJWT(claims)
    .setProtectedHeader(header)
    .sign(new TextEncoder().encode(secret));
  credentials.add(token);
  return token;
}

const seconds = (ms: number) => Math.floor(ms / 1000);
const validClaims = (now: number) => ({
  iss: "sluice",
  aud: "sluice",
  sub: "user-1",
  iat: seconds(now),
  exp: seconds(now) + 600,
  scope: "admin",
});

async function errorOf(res: Response): Promise<{ code: string; details?: { reason?: string } }> {
  return ((await res.json()) as { error: { code: string; details?: { reason?: string } } }).error;
}

const produce = (records: unknown[] = [{ value: { n: 1 } }]) => ({
  method: "POST",
  body: JSON.stringify({ records }),
});

async function withTopics(f: Fixture, ...names: string[]): Promise<void> {
  const admin = await f.key(["admin"]);
  for (const name of names) {
    const res = await f.request("/v1/topics", {
      method: "POST",
      token: admin,
      body: JSON.stringify({ name, partitions: 1 }),
    });
    expect(res.status).toBe(201);
  }
}

describe("authentication", () => {
  it("serves /healthz and the API description without credentials", async () => {
    const f = fixture();
    expect((await f.request("/healthz")).status).toBe(200);
    expect((await f.request("/v1/openapi.json")).status).toBe(200);
  });

  it("answers 401 with WWW-Authenticate when credentials are missing", async () => {
    const f = fixture();
    const res = await f.request("/v1/topics");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="sluice"/);
    expect(await errorOf(res)).toMatchObject({
      code: "unauthorized",
      details: { reason: "missing" },
    });
  });

  it.each([
    ["a malformed header", "Basic dXNlcjpwYXNz"],
    ["an empty bearer", "Bearer "],
    ["garbage", "Bearer not-a-token"],
    [
      "a key-shaped string with a bad id",
      "Bearer slk_notanid_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ],
  ])("refuses %s with 401 invalid", async (_name, header) => {
    const f = fixture();
    credentials.add(header.replace(/^\w+ /, ""));
    const res = await f.request("/v1/topics", { headers: { authorization: header } });
    expect(res.status).toBe(401);
    expect((await errorOf(res)).code).toBe("unauthorized");
  });

  it("accepts a valid token and a valid key", async () => {
    const f = fixture();
    expect((await f.request("/v1/topics", { token: await f.token(["admin"]) })).status).toBe(200);
    expect((await f.request("/v1/topics", { token: await f.key(["admin"]) })).status).toBe(200);
  });

  describe("refuses tokens with 401", () => {
    const cases: [string, (now: number) => Promise<string>, string][] = [
      ["expired", (now) => signed({ ...validClaims(now), exp: seconds(now) - 60 }), "expired"],
      ["for another audience", (now) => signed({ ...validClaims(now), aud: "other" }), "invalid"],
      ["from another issuer", (now) => signed({ ...validClaims(now), iss: "evil" }), "invalid"],
      ["with a wrong signature", (now) => signed(validClaims(now), OTHER_SECRET), "invalid"],
      ["without exp", (now) => signed({ ...validClaims(now), exp: undefined }), "invalid"],
      ["without sub", (now) => signed({ ...validClaims(now), sub: undefined }), "invalid"],
      [
        "living longer than the maximum",
        (now) => signed({ ...validClaims(now), exp: seconds(now) + 7200 }),
        "invalid",
      ],
      [
        "not yet valid",
        (now) => signed({ ...validClaims(now), nbf: seconds(now) + 600 }),
        "invalid",
      ],
      ["with an unknown scope", (now) => signed({ ...validClaims(now), scope: "root" }), "invalid"],
      [
        "issued in the future, to stretch its lifetime",
        (now) =>
          signed({
            ...validClaims(now),
            iat: seconds(now) + 86_400,
            exp: seconds(now) + 86_400 + 600,
          }),
        "invalid",
      ],
      [
        "with a subject that is not a string",
        (now) => signed({ ...validClaims(now), sub: { a: 1 } }),
        "invalid",
      ],
      ["with an empty subject", (now) => signed({ ...validClaims(now), sub: "" }), "invalid"],
      [
        "signed with HS512 (outside the list)",
        (now) => signed(validClaims(now), SECRET, { alg: "HS512" }),
        "invalid",
      ],
      [
        "with alg none",
        (now) => {
          const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
          const token = `${part({ alg: "none", typ: "JWT" })}.${part(validClaims(now))}.`;
          credentials.add(token);
          return Promise.resolve(token);
        },
        "invalid",
      ],
    ];
    it.each(cases)("%s", async (_name, make, reason) => {
      const f = fixture();
      const res = await f.request("/v1/topics", { token: await make(f.clock.now) });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
      expect(await errorOf(res)).toMatchObject({ code: "unauthorized", details: { reason } });
    });
  });

  it("turns a token away once it expires, after the 30 s clock tolerance", async () => {
    const f = fixture();
    const token = await f.token(["admin"], { ttlS: 60 });
    expect((await f.request("/v1/topics", { token })).status).toBe(200);
    f.clock.now += 60_000 + 29_000;
    expect((await f.request("/v1/topics", { token })).status).toBe(200);
    f.clock.now += 2_000;
    const res = await f.request("/v1/topics", { token });
    expect(res.status).toBe(401);
    expect((await errorOf(res)).details?.reason).toBe("expired");
  });

  it("refuses tokens when only API keys are configured", async () => {
    const f = fixture({ jwt: jwtConfig({ secret: undefined }) });
    const token = await signed(validClaims(f.clock.now));
    expect((await f.request("/v1/topics", { token })).status).toBe(401);
  });
});

describe("tokens from a JWKS (the customer's identity provider)", () => {
  let server: Server;
  let jwksUrl: string;
  let privateKey: CryptoKey;
  let publicJwk: JWK;

  beforeAll(async () => {
    const pair = await generateKeyPair("RS256", { extractable: true });
    privateKey = pair.privateKey;
    publicJwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
    server = createServer((_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys: [publicJwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("answers 503, not 401, while the key set answers with an error", async () => {
    const failing = createServer((_req, res) => {
      res.statusCode = 500;
      res.end("down");
    });
    await new Promise<void>((resolve) => failing.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(failing.address() as AddressInfo).port}/jwks.json`;
      const f = fixture({ jwt: jwtConfig({ secret: undefined, jwksUrl: url }) });
      const res = await f.request("/v1/topics", { token: await rs256(f.clock.now) });
      expect(res.status).toBe(503);
      expect((await errorOf(res)).code).toBe("storage_unavailable");
    } finally {
      await new Promise<void>((resolve) => failing.close(() => resolve()));
    }
  });

  const rs256 = async (now: number) => {
    const token = await new SignJWT({ ...validClaims(now), scope: "consume:topic:orders" })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .sign(privateKey);
    credentials.add(token);
    return token;
  };

  it("accepts RS256 tokens signed by the provider's key, with their scopes", async () => {
    const f = fixture({ jwt: jwtConfig({ secret: undefined, jwksUrl }) });
    await withTopics(f, "orders", "payments");
    const token = await rs256(f.clock.now);
    expect((await f.request("/v1/topics/orders", { token })).status).toBe(200);
    expect((await f.request("/v1/topics/payments", { token })).status).toBe(403);
  });

  it("refuses an HS256 token keyed with the public key (algorithm confusion)", async () => {
    const f = fixture({ jwt: jwtConfig({ secret: undefined, jwksUrl }) });
    const token = await signed(validClaims(f.clock.now), JSON.stringify(publicJwk));
    expect((await f.request("/v1/topics", { token })).status).toBe(401);
    // With a shared secret configured as well, HS256 is checked against that secret only.
    const both = fixture({ jwt: jwtConfig({ jwksUrl }) });
    expect((await both.request("/v1/topics", { token })).status).toBe(401);
  });
});

describe("API keys", () => {
  it("refuses a revoked key at once here and within the key cache time elsewhere", async () => {
    const f = fixture();
    const other = fixture({ meta: f.meta });
    other.clock.now = f.clock.now;
    const admin = await f.key(["admin"]);
    const created = await f.request("/v1/auth/keys", {
      method: "POST",
      token: admin,
      body: JSON.stringify({ scopes: ["consume:topic:*"], description: "reader" }),
    });
    expect(created.status).toBe(201);
    const { id, key } = (await created.json()) as { id: string; key: string };
    credentials.add(key);
    expect((await f.request("/v1/topics", { token: key })).status).toBe(200);
    expect((await other.request("/v1/topics", { token: key })).status).toBe(200);

    const listed = await f.request("/v1/auth/keys", { token: admin });
    const { keys } = (await listed.json()) as { keys: { id: string; secretHash?: unknown }[] };
    expect(keys.find((k) => k.id === id)).toBeDefined();
    expect(keys.every((k) => k.secretHash === undefined)).toBe(true);

    expect(
      (await f.request(`/v1/auth/keys/${id}`, { method: "DELETE", token: admin })).status,
    ).toBe(204);
    const res = await f.request("/v1/topics", { token: key });
    expect(res.status).toBe(401);
    expect((await errorOf(res)).details?.reason).toBe("revoked");
    // The other instance trusts its cached lookup until the cache time has passed.
    expect((await other.request("/v1/topics", { token: key })).status).toBe(200);
    other.clock.now += 10_001;
    expect((await other.request("/v1/topics", { token: key })).status).toBe(401);
  });

  it("refuses an expired key, and a key's secret that does not match its id", async () => {
    const f = fixture();
    const key = await f.key(["admin"], { expiresAt: f.clock.now + 1_000 });
    expect((await f.request("/v1/topics", { token: key })).status).toBe(200);
    f.clock.now += 1_000;
    const res = await f.request("/v1/topics", { token: key });
    expect((await errorOf(res)).details?.reason).toBe("expired");

    const good = await f.key(["admin"]);
    const forged = `${good.slice(0, -4)}AAAA`;
    credentials.add(forged);
    expect((await f.request("/v1/topics", { token: forged })).status).toBe(401);
  });

  it("never takes an API key from the URL", async () => {
    const f = fixture();
    await withTopics(f, "orders");
    const key = await f.key(["admin"]);
    const res = await f.request(
      `/v1/topics/orders/partitions/0/records?offset=0&access_token=${key}`,
      {
        headers: { accept: "text/event-stream" },
      },
    );
    expect(res.status).toBe(401);
  });
});

describe("scopes", () => {
  it("lets a topic-A token act on topic A only", async () => {
    const f = fixture();
    await withTopics(f, "orders", "payments");
    const token = await f.token(["produce:topic:orders", "consume:topic:orders"]);
    expect((await f.request("/v1/topics/orders/records", { ...produce(), token })).status).toBe(
      200,
    );
    const res = await f.request("/v1/topics/payments/records", { ...produce(), token });
    expect(res.status).toBe(403);
    expect((await errorOf(res)).code).toBe("forbidden");
    expect(
      (await f.request("/v1/topics/payments/partitions/0/records?offset=0", { token })).status,
    ).toBe(403);
  });

  it("matches prefix scopes on the name, not on the characters around it", async () => {
    const f = fixture();
    await withTopics(f, "events.click", "eventsX", "orders");
    const token = await f.token(["produce:topic:events.*"]);
    expect(
      (await f.request("/v1/topics/events.click/records", { ...produce(), token })).status,
    ).toBe(200);
    expect((await f.request("/v1/topics/eventsX/records", { ...produce(), token })).status).toBe(
      403,
    );
    expect((await f.request("/v1/topics/orders/records", { ...produce(), token })).status).toBe(
      403,
    );
    // Percent-encoding reaches the same name the route serves.
    expect(
      (await f.request("/v1/topics/events%2Eclick/records", { ...produce(), token })).status,
    ).toBe(200);
    // Producing is not consuming.
    expect(
      (await f.request("/v1/topics/events.click/partitions/0/records?offset=0", { token })).status,
    ).toBe(403);
  });

  it("keeps administration to admin and filters lists to what a principal may see", async () => {
    const f = fixture();
    await withTopics(f, "events.a", "events.b", "orders");
    const token = await f.token(["consume:topic:events.*"]);
    const create = await f.request("/v1/topics", {
      method: "POST",
      token,
      body: JSON.stringify({ name: "events.c", partitions: 1 }),
    });
    expect(create.status).toBe(403);
    expect((await f.request("/v1/topics/events.a", { method: "DELETE", token })).status).toBe(403);
    expect((await f.request("/v1/metrics", { token })).status).toBe(403);
    expect((await f.request("/v1/admin/maintenance", { method: "POST", token })).status).toBe(403);
    const list = (await (await f.request("/v1/topics", { token })).json()) as {
      topics: { name: string }[];
    };
    expect(list.topics.map((t) => t.name).sort()).toEqual(["events.a", "events.b"]);
  });

  it("checks a group's topics on join, on a new subscription, on commit and on fetch", async () => {
    const f = fixture();
    await withTopics(f, "orders", "payments");
    const reader = await f.token(["consume:group:billing", "consume:topic:orders"]);
    const join = (topics: string[], token: string) =>
      f.request("/v1/groups/billing/members", {
        method: "POST",
        token,
        body: JSON.stringify({ topics }),
      });
    expect((await join(["payments"], reader)).status).toBe(403);
    expect((await join(["orders"], await f.token(["consume:topic:orders"]))).status).toBe(403);
    const joined = await join(["orders"], reader);
    expect(joined.status).toBe(201);
    const { memberId } = (await joined.json()) as { memberId: string };

    const heartbeat = await f.request(`/v1/groups/billing/members/${memberId}/heartbeat`, {
      method: "POST",
      token: reader,
      body: JSON.stringify({ topics: ["orders", "payments"] }),
    });
    expect(heartbeat.status).toBe(403);
    const commit = await f.request("/v1/groups/billing/offsets", {
      method: "POST",
      token: reader,
      body: JSON.stringify({ offsets: [{ topic: "payments", partition: 0, offset: 0 }] }),
    });
    expect(commit.status).toBe(403);

    // A member id is no credential: a caller allowed the group but not its topics reads nothing.
    const groupOnly = await f.token(["consume:group:billing"], { subject: "someone-else" });
    const fetched = await f.request(`/v1/groups/billing/members/${memberId}/fetch`, {
      method: "POST",
      token: groupOnly,
      body: "{}",
    });
    expect(fetched.status).toBe(403);
    const own = await f.request(`/v1/groups/billing/members/${memberId}/fetch`, {
      method: "POST",
      token: reader,
      body: "{}",
    });
    expect(own.status).toBe(200);
  });

  it("gives every route of the API a permission, and no stale entries", async () => {
    const f = fixture();
    const doc = (await (await f.request("/v1/openapi.json")).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    const undocumented = ["GET /healthz", "GET /v1/openapi.json", "GET /v1/metrics"];
    expect([...documented, ...undocumented].sort()).toEqual(Object.keys(routePermissions).sort());
  });

  it("refuses every guarded route to a token without scopes, before reading the body", async () => {
    const f = fixture();
    const token = await f.token([]);
    const memberId = "01J0000000000000000000000M";
    for (const [route, permission] of Object.entries(routePermissions)) {
      if (permission.need === "public" || permission.need === "listed") continue;
      const [method, template] = route.split(" ") as [string, string];
      const path = template
        .replace("{topic}", "orders")
        .replace("{group}", "billing")
        .replace("{partition}", "0")
        .replace("{memberId}", memberId)
        .replace("{keyId}", "01J00000000000000000000000");
      const init = method === "GET" || method === "DELETE" ? {} : { body: "{not json" };
      const res = await f.request(path, { method, token, ...init });
      expect({ route, status: res.status }).toEqual({ route, status: 403 });
      const anonymous = await f.request(path, { method, ...init });
      expect({ route, status: anonymous.status }).toEqual({ route, status: 401 });
    }
  });
});

describe("minting tokens", () => {
  const mint = (f: Fixture, token: string, body: object) =>
    f.request("/v1/auth/tokens", { method: "POST", token, body: JSON.stringify(body) });

  it("lets a key mint short-lived tokens for scopes it holds, for a user", async () => {
    const f = fixture();
    await withTopics(f, "events.click", "orders");
    const backend = await f.key(["produce:topic:events.*"]);
    const res = await mint(f, backend, {
      scopes: ["produce:topic:events.click"],
      subject: "user-42",
      ttlSeconds: 300,
    });
    expect(res.status).toBe(201);
    const { token, expiresAt } = (await res.json()) as { token: string; expiresAt: number };
    credentials.add(token);
    expect(expiresAt).toBe((seconds(f.clock.now) + 300) * 1000);
    expect(
      (await f.request("/v1/topics/events.click/records", { ...produce(), token })).status,
    ).toBe(200);
    expect((await f.request("/v1/topics/orders/records", { ...produce(), token })).status).toBe(
      403,
    );

    expect((await mint(f, backend, { scopes: ["consume:topic:orders"] })).status).toBe(403);
    expect((await mint(f, backend, { scopes: ["produce:topic:*"] })).status).toBe(403);
    expect((await mint(f, backend, { scopes: ["admin"] })).status).toBe(403);
    // A token cannot mint: it would outlive itself.
    expect((await mint(f, token, { scopes: ["produce:topic:events.click"] })).status).toBe(403);
    expect(
      (await mint(f, backend, { scopes: ["produce:topic:events.x"], ttlSeconds: 7200 })).status,
    ).toBe(400);
  });

  it("mints nothing that outlives its minter, and counts minted tokens within it", async () => {
    const f = fixture({ rateLimit: { perSecond: 1, burst: 1 } });
    const backend = await f.key(["produce:topic:events.*"], { expiresAt: f.clock.now + 60_000 });
    const res = await mint(f, backend, {
      scopes: ["produce:topic:events.a"],
      subject: "u",
      ttlSeconds: 900,
    });
    const { token, expiresAt } = (await res.json()) as { token: string; expiresAt: number };
    credentials.add(token);
    expect(expiresAt).toBeLessThanOrEqual(f.clock.now + 60_000);

    // A user's bucket under one minter is not another minter's user of the same name.
    const other = await f.key(["produce:topic:events.*"]);
    const res2 = await mint(f, other, { scopes: ["produce:topic:events.a"], subject: "u" });
    const { token: token2 } = (await res2.json()) as { token: string };
    credentials.add(token2);
    expect((await f.request("/v1/topics", { token })).status).toBe(200);
    expect((await f.request("/v1/topics", { token })).status).toBe(429);
    expect((await f.request("/v1/topics", { token: token2 })).status).toBe(200);

    // An admin token's children die with it: the chain cannot outlive the first token.
    const root = await f.token(["admin"], { ttlS: 120 });
    const child = await mint(f, root, { scopes: ["admin"], ttlSeconds: 3600 });
    const { expiresAt: childExpiry } = (await child.json()) as { expiresAt: number };
    expect(childExpiry).toBeLessThanOrEqual((seconds(f.clock.now) + 120) * 1000);
  });
});

describe("limits", () => {
  it("answers 429 with Retry-After once a principal's rate is spent", async () => {
    const f = fixture({ rateLimit: { perSecond: 1, burst: 2 } });
    const key = await f.key(["admin"]);
    expect((await f.request("/v1/topics", { token: key })).status).toBe(200);
    expect((await f.request("/v1/topics", { token: key })).status).toBe(200);
    const limited = await f.request("/v1/topics", { token: key });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("1");
    expect((await errorOf(limited)).code).toBe("rate_limited");
    // Other principals have buckets of their own.
    expect((await f.request("/v1/topics", { token: await f.key(["admin"]) })).status).toBe(200);
    f.clock.now += 1_000;
    expect((await f.request("/v1/topics", { token: key })).status).toBe(200);
  });

  it("uses a key's own rate over the server's", async () => {
    const f = fixture({ rateLimit: { perSecond: 1000, burst: 1000 } });
    const key = await f.key(["admin"], { rateLimit: { perSecond: 0.5, burst: 1 } });
    expect((await f.request("/v1/topics", { token: key })).status).toBe(200);
    const limited = await f.request("/v1/topics", { token: key });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("2");
  });

  it("answers 413 for too many records and for a body over the byte limit, changing nothing", async () => {
    const f = fixture({ maxRecordsPerRequest: 3 });
    await withTopics(f, "orders");
    const token = await f.key(["admin"]);
    const four = [1, 2, 3, 4].map((n) => ({ value: { n } }));
    const res = await f.request("/v1/topics/orders/records", { ...produce(four), token });
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe("payload_too_large");
    const big = [{ value: "x".repeat(70 * 1024) }];
    expect((await f.request("/v1/topics/orders/records", { ...produce(big), token })).status).toBe(
      413,
    );
    const offsets = await f.request("/v1/topics/orders/partitions/0/offsets?timestamp=latest", {
      token,
    });
    expect(((await offsets.json()) as { offset: number }).offset).toBe(0);
  });

  it("caps open event streams per principal and takes a token from the URL for them", async () => {
    const f = fixture({ maxStreams: 1 });
    await withTopics(f, "orders");
    const token = await f.token(["consume:topic:orders"]);
    const url = `/v1/topics/orders/partitions/0/records?offset=0&access_token=${token}`;
    const sse = { headers: { accept: "text/event-stream" } };
    const abort = new AbortController();
    const first = await f.request(url, { ...sse, signal: abort.signal });
    expect(first.status).toBe(200);
    const second = await f.request(url, sse);
    expect(second.status).toBe(429);
    expect(second.headers.get("retry-after")).toBe("1");
    abort.abort();
    await first.body?.cancel().catch(() => undefined);
    // The slot comes back when the first stream ends.
    await expect
      .poll(async () => {
        const again = await f.request(url, sse);
        await again.body?.cancel();
        return again.status;
      })
      .toBe(200);
    // Outside event streams the URL carries no credential, even with the event-stream Accept.
    const plain = await f.request(url);
    expect(plain.status).toBe(401);
    const admin = await f.token(["admin"]);
    const metrics = await f.request(`/v1/metrics?access_token=${admin}`, sse);
    expect(metrics.status).toBe(401);
  });
});

describe("secrets", () => {
  it("appear in no response body and no log line", () => {
    expect(logLines.length).toBeGreaterThan(10);
    expect(bodies.length).toBeGreaterThan(10);
    for (const credential of credentials) {
      if (credential.length < 16) continue;
      for (const text of [...bodies, ...logLines]) expect(text).not.toContain(credential);
    }
  });

  it("print as [redacted] however they are turned into text", () => {
    const secret = new Secret("super-secret-value-1234567890");
    expect(String(secret)).toBe("[redacted]");
    expect(JSON.stringify({ secret })).toBe('{"secret":"[redacted]"}');
    // eslint-disable-next-line @typescript-eslint/restrict-template-expressions -- the conversion under test
    expect(`${secret}`).toBe("[redacted]");
    const lines: string[] = [];
    const logger = pino(
      { redact: { paths: REDACTED_PATHS } },
      new Writable({
        write(chunk: Buffer, _e, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    );
    logger.info({ secret, headers: { authorization: "Bearer abc123abc123abc123" } }, "x");
    logger.info({ req: { headers: { authorization: "Bearer abc123abc123abc123" } } }, "y");
    expect(lines.join("")).not.toContain("abc123abc123abc123");
    expect(lines.join("")).not.toContain("super-secret-value");
  });
});
