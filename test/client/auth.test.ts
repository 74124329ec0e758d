import { inspect } from "node:util";
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/auth/api-keys.js";
import { JwtVerifier } from "../../src/auth/jwt.js";
import type { RateLimit } from "../../src/auth/principal.js";
import { Secret } from "../../src/auth/secret.js";
import { SluiceApiError, SluiceClient, type ClientOptions } from "../../src/client/index.js";
import { logConfigDefaults, serverConfigFromEnv } from "../../src/config.js";
import { createApp } from "../../src/http/app.js";
import { authFromConfig } from "../../src/http/auth.js";
import { SluiceLog } from "../../src/log/log.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";
import { BASE_URL, spyFetch } from "./support.js";

/** The client against the real app with authentication required, in process. */

const SECRET = "client-test-secret-of-at-least-32-bytes";

interface AuthApp {
  log: SluiceLog;
  meta: MemoryMetaStore;
  fetch: typeof fetch;
  /** A key stored directly, as `sluice keys create --direct` does. */
  key(scopes: string[], rateLimit?: RateLimit): Promise<string>;
  client(options?: Partial<ClientOptions>, fetchImpl?: typeof fetch): SluiceClient;
}

function authApp(options: { rateLimit?: RateLimit | null } = {}): AuthApp {
  const meta = new MemoryMetaStore();
  const log = new SluiceLog({
    store: new MemoryObjectStore(),
    meta,
    config: { ...logConfigDefaults, lingerMs: 2, pollIntervalMs: 20 },
  });
  const config = serverConfigFromEnv({ SLUICE_AUTH: "required", SLUICE_JWT_SECRET: SECRET });
  const app = createApp({
    log,
    maxRequestBytes: 8 * 1024 * 1024,
    auth: { ...authFromConfig(config.auth, meta), rateLimit: options.rateLimit ?? null },
  });
  const request = app.request as unknown as (
    input: Request | string,
    init?: RequestInit,
  ) => Promise<Response>;
  const fetchImpl: typeof fetch = async (input, init) =>
    input instanceof Request
      ? request(input)
      : request(input instanceof URL ? input.href : input, init);
  return {
    log,
    meta,
    fetch: fetchImpl,
    async key(scopes, rateLimit) {
      const { record, key } = generateApiKey(
        { scopes, description: "test", expiresAt: null, rateLimit: rateLimit ?? null },
        Date.now(),
      );
      await meta.putKey(record);
      return key.reveal();
    },
    client(clientOptions = {}, f = fetchImpl) {
      return new SluiceClient({
        url: BASE_URL,
        fetch: f,
        retry: { retries: 3, initialDelayMs: 1, maxDelayMs: 20 },
        ...clientOptions,
      });
    },
  };
}

/** Everything an error shows as text: message, string form, inspection, details. */
function errorText(err: unknown): string {
  const e = err as SluiceApiError;
  return [e.message, String(e), inspect(e), JSON.stringify(e.details ?? null)].join("\n");
}

async function failure(promise: Promise<unknown>): Promise<SluiceApiError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(SluiceApiError);
    return err as SluiceApiError;
  }
  throw new Error("expected the call to fail");
}

describe("client authentication", () => {
  let app: AuthApp;
  afterEach(async () => {
    await app.log.close();
  });

  it("sends the token as Authorization: Bearer on every request", async () => {
    app = authApp();
    const key = await app.key(["admin"]);
    const spy = spyFetch(app.fetch);
    const client = app.client(
      // The token replaces an authorization header however it is spelled; others stay.
      { token: key, headers: { Authorization: "Basic bm9wZQ==", "x-trace": "t-1" } },
      spy.fetch,
    );
    await client.admin.createTopic("orders", 2);
    const producer = client.producer();
    await producer.send("orders", [{ key: "k", value: { n: 1 } }]);
    await producer.close();
    expect((await client.fetch("orders", 0, 0)).nextOffset).toBeGreaterThanOrEqual(0);
    expect(await client.admin.listTopics()).toEqual([{ name: "orders", partitions: 2 }]);

    expect(spy.requests.length).toBeGreaterThanOrEqual(4);
    for (const request of spy.requests) {
      expect(request.headers.get("authorization")).toBe(`Bearer ${key}`);
      expect(request.headers.get("x-trace")).toBe("t-1");
    }
    // Nothing prints the credential: not the client, not its inspection.
    expect(inspect(client, { depth: 10 })).not.toContain(key);
    expect(JSON.stringify(client)).not.toContain(key);
  });

  it("still sends an authorization header given in `headers` when there is no token", async () => {
    app = authApp();
    const key = await app.key(["admin"]);
    const client = app.client({ headers: { authorization: `Bearer ${key}` } });
    expect(await client.admin.listTopics()).toEqual([]);
  });

  it("refuses a malformed token before sending it, without quoting it", () => {
    const token = "slk_with a space\n";
    let error: unknown;
    try {
      new SluiceClient({ url: BASE_URL, token });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).not.toContain("with a space");
    expect(() => new SluiceClient({ url: BASE_URL, token: "" })).toThrow(TypeError);
  });

  it("creates, lists and revokes keys and mints tokens through the admin API", async () => {
    app = authApp();
    const admin = app.client({ token: await app.key(["admin"]) });
    await admin.admin.createTopic("events.click", 1);
    await admin.admin.createTopic("orders", 1);

    const created = await admin.admin.createKey({
      scopes: ["produce:topic:events.*", "consume:topic:events.*"],
      description: "click tracker",
      expiresInSeconds: 3600,
      rateLimit: { perSecond: 50, burst: 100 },
    });
    expect(created).toMatchObject({
      scopes: ["produce:topic:events.*", "consume:topic:events.*"],
      description: "click tracker",
      revokedAt: null,
      rateLimit: { perSecond: 50, burst: 100 },
    });
    expect(created.key).toMatch(new RegExp(`^slk_${created.id}_[A-Za-z0-9_-]{43}$`));
    expect(created.expiresAt! - created.createdAt).toBe(3_600_000);

    const listed = await admin.admin.listKeys();
    const mine = listed.find((k) => k.id === created.id);
    expect(mine).toEqual({
      id: created.id,
      scopes: created.scopes,
      description: "click tracker",
      createdAt: created.createdAt,
      expiresAt: created.expiresAt,
      revokedAt: null,
      rateLimit: { perSecond: 50, burst: 100 },
    });
    expect(JSON.stringify(listed)).not.toContain(created.key);

    // The new key may do what its scopes say, and nothing else.
    const tracker = app.client({ token: created.key });
    await tracker.producer().send("events.click", [{ value: "hit", partition: 0 }]);
    expect(await tracker.admin.listTopics()).toEqual([{ name: "events.click", partitions: 1 }]);
    const forbidden = await failure(tracker.admin.createTopic("events.new", 1));
    expect(forbidden).toMatchObject({ status: 403, code: "forbidden", retryable: false });

    // An admin mints tokens for anything; a key only for what it holds itself.
    const minted = await admin.admin.mintToken({
      scopes: ["consume:topic:orders"],
      subject: "alice",
      ttlSeconds: 600,
    });
    expect(minted.scopes).toEqual(["consume:topic:orders"]);
    const jwt = serverConfigFromEnv({ SLUICE_JWT_SECRET: SECRET }).auth.jwt;
    const principal = await new JwtVerifier(jwt).verify(new Secret(minted.token));
    // Minted by a key: counted within it.
    expect(principal).toMatchObject({
      id: expect.stringMatching(/^token:key:\w+:alice$/),
      kind: "token",
    });
    const claims = decodeJwt(minted.token);
    expect(minted.expiresAt).toBe(claims.exp! * 1000);
    expect(claims.exp! - claims.iat!).toBe(600);
    const alice = app.client({ token: minted.token });
    expect(await alice.admin.listTopics()).toEqual([{ name: "orders", partitions: 1 }]);

    const narrower = await tracker.admin.mintToken({ scopes: ["consume:topic:events.click"] });
    expect(narrower.scopes).toEqual(["consume:topic:events.click"]);
    const wider = await failure(tracker.admin.mintToken({ scopes: ["consume:topic:orders"] }));
    expect(wider.code).toBe("forbidden");

    await admin.admin.revokeKey(created.id);
    await admin.admin.revokeKey(created.id); // revoking twice is harmless
    expect((await admin.admin.listKeys()).find((k) => k.id === created.id)!.revokedAt).toEqual(
      expect.any(Number),
    );
    const revoked = await failure(tracker.admin.listTopics());
    expect(revoked).toMatchObject({ status: 401, code: "unauthorized" });
    expect(errorText(revoked)).not.toContain(created.key);
  });

  it("surfaces 401 as `unauthorized`, never retried, without the token in any error", async () => {
    app = authApp();
    const realKey = await app.key(["admin"]);
    // A well-formed key with the wrong secret, and a token that is not one.
    const wrongKey = `${realKey.slice(0, -43)}${"A".repeat(43)}`;
    for (const token of [wrongKey, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"]) {
      const spy = spyFetch(app.fetch);
      const client = app.client({ token }, spy.fetch);
      const err = await failure(client.admin.listTopics());
      expect(err).toMatchObject({ status: 401, code: "unauthorized", retryable: false });
      expect(spy.requests).toHaveLength(1);
      expect(errorText(err)).not.toContain(token);
      expect(errorText(err)).not.toContain(token.slice(4, 30));
    }

    const anonymous = await failure(app.client().admin.listTopics());
    expect(anonymous).toMatchObject({ status: 401, code: "unauthorized" });
    expect(anonymous.message).toBe("credentials are required");
  });

  it("blanks the token out of an error page that echoes it", async () => {
    app = authApp();
    const key = await app.key(["admin"]);
    // A proxy in front of the server that quotes the request's headers in its error page.
    const echo: typeof fetch = (_input, init) =>
      Promise.resolve(
        new Response(`bad gateway; you sent ${new Headers(init?.headers).get("authorization")}`, {
          status: 502,
        }),
      );
    const client = app.client({ token: key, retry: { retries: 1, initialDelayMs: 1 } }, echo);
    const err = await failure(client.admin.listTopics());
    expect(err).toMatchObject({ status: 502, code: "http_502" });
    expect(err.message).toContain("Bearer [redacted]");
    expect(errorText(err)).not.toContain(key);

    // And out of a network failure whose description quotes it.
    const leaky: typeof fetch = () => Promise.reject(new TypeError(`connect failed for ${key}`));
    const netErr = await failure(
      app.client({ token: key, retry: { retries: 0 } }, leaky).admin.listTopics(),
    );
    expect(netErr.code).toBe("network_error");
    expect(netErr.message).not.toContain(key);
  });

  it("retries 429 `rate_limited` after its Retry-After", async () => {
    app = authApp({ rateLimit: { perSecond: 1, burst: 1 } });
    const key = await app.key(["admin"]);
    const answers: { status: number; retryAfter: string | null }[] = [];
    const spy = spyFetch(app.fetch, async (_request, send) => {
      const response = await send();
      answers.push({ status: response.status, retryAfter: response.headers.get("retry-after") });
      return response;
    });
    const client = app.client(
      { token: key, retry: { retries: 3, initialDelayMs: 1, maxDelayMs: 2_000 } },
      spy.fetch,
    );
    expect(await client.admin.listTopics()).toEqual([]);
    const started = Date.now();
    // Not idempotent, so retried on 429 only: the request was refused before it was read.
    const created = await client.admin.createKey({ scopes: ["consume:topic:t"] });
    expect(created.scopes).toEqual(["consume:topic:t"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(answers[0]!.status).toBe(200);
    expect(answers[1]).toEqual({ status: 429, retryAfter: "1" });
    expect(answers.at(-1)!.status).toBe(201);
    expect(
      (await app.meta.listKeys()).filter((k) => k.scopes[0] === "consume:topic:t"),
    ).toHaveLength(1);

    // With no retries left the caller sees the 429 itself, marked retryable.
    const impatient = app.client({ token: key, retry: { retries: 0 } });
    const err = await failure(impatient.admin.listTopics());
    expect(err).toMatchObject({ status: 429, code: "rate_limited", retryable: true });
    expect(err.details).toEqual({ retryAfterSeconds: 1 });
  });
});
