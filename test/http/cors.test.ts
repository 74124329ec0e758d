import { describe, expect, it } from "vitest";
import { logConfigDefaults, serverConfigFromEnv } from "../../src/config.js";
import { createApp } from "../../src/http/app.js";
import { SluiceLog } from "../../src/log/log.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";

/** CORS for browser clients, configured by SLUICE_CORS_ORIGINS and passed as AppOptions. */

function appWith(corsOrigins?: string[]) {
  const log = new SluiceLog({
    store: new MemoryObjectStore(),
    meta: new MemoryMetaStore(),
    config: { ...logConfigDefaults, lingerMs: 1 },
  });
  const app = createApp({
    log,
    maxRequestBytes: 1024 * 1024,
    ...(corsOrigins === undefined ? {} : { corsOrigins }),
    sse: { maxStreamMs: 50 },
  });
  return app;
}

const allowed = "https://app.example.com";
const other = "https://evil.example.net";

const preflight = (origin: string, method = "POST", headers = "content-type,producer-id") =>
  new Request("http://sluice.test/v1/topics/orders/records", {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": method,
      "access-control-request-headers": headers,
    },
  });

/** Every CORS response header present, lower-cased. */
const corsHeaders = (res: Response) => {
  const names: string[] = [];
  res.headers.forEach((_, name) => {
    if (name.startsWith("access-control-")) names.push(name);
  });
  return names;
};

describe("CORS", () => {
  it("answers a preflight from a configured origin with the origin, methods and headers", async () => {
    const app = appWith([allowed, "http://localhost:5173"]);
    const res = await app.request(preflight(allowed));
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(allowed);
    const allowHeaders = res.headers.get("access-control-allow-headers")!.toLowerCase().split(",");
    expect(allowHeaders).toEqual(
      expect.arrayContaining([
        "content-type",
        "authorization",
        "last-event-id",
        "producer-id",
        "producer-epoch",
        "producer-seq",
      ]),
    );
    expect(res.headers.get("access-control-allow-methods")!.split(",")).toEqual(
      expect.arrayContaining(["GET", "POST", "DELETE"]),
    );
    expect(Number(res.headers.get("access-control-max-age"))).toBeGreaterThan(0);
    expect(res.headers.get("vary")).toMatch(/origin/i);

    // The second configured origin too, for an event stream's reconnect.
    const second = await app.request(preflight("http://localhost:5173", "GET", "last-event-id"));
    expect(second.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
  });

  it("marks real answers, errors and event streams of an allowed origin", async () => {
    const app = appWith([allowed]);
    const create = await app.request("/v1/topics", {
      method: "POST",
      headers: { origin: allowed, "content-type": "application/json" },
      body: JSON.stringify({ name: "orders" }),
    });
    expect(create.status).toBe(201);
    expect(create.headers.get("access-control-allow-origin")).toBe(allowed);
    expect(create.headers.get("access-control-expose-headers")).toMatch(/retry-after/i);

    const missing = await app.request("/v1/topics/nope", { headers: { origin: allowed } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("access-control-allow-origin")).toBe(allowed);
    const invalid = await app.request("/v1/topics/orders/partitions/0/records?offset=x", {
      headers: { origin: allowed },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.headers.get("access-control-allow-origin")).toBe(allowed);

    const stream = await app.request("/v1/topics/orders/partitions/0/records?offset=0", {
      headers: { origin: allowed, accept: "text/event-stream" },
    });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(stream.headers.get("access-control-allow-origin")).toBe(allowed);
    await stream.text();
  });

  it("gives a disallowed origin no CORS headers at all", async () => {
    const app = appWith([allowed]);
    const pre = await app.request(preflight(other));
    expect(corsHeaders(pre)).toEqual([]);
    const get = await app.request("/healthz", { headers: { origin: other } });
    expect(get.status).toBe(200);
    expect(corsHeaders(get)).toEqual([]);
    // Caches must not serve one origin's answer to another.
    expect(get.headers.get("vary")).toMatch(/origin/i);
    // A request without Origin (curl, servers) is served as before.
    const plain = await app.request("/healthz");
    expect(plain.status).toBe(200);
    expect(corsHeaders(plain)).toEqual([]);
  });

  it("allows any origin with *", async () => {
    const app = appWith(["*"]);
    const pre = await app.request(preflight(other));
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    const get = await app.request("/healthz", { headers: { origin: other } });
    expect(get.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("sends no CORS headers by default", async () => {
    for (const app of [appWith(), appWith([])]) {
      const pre = await app.request(preflight(allowed));
      expect(corsHeaders(pre)).toEqual([]);
      const get = await app.request("/healthz", { headers: { origin: allowed } });
      expect(get.status).toBe(200);
      expect(corsHeaders(get)).toEqual([]);
      expect(get.headers.get("vary")).toBeNull();
    }
  });

  it("reads SLUICE_CORS_ORIGINS: a comma-separated list of origins, or *", () => {
    expect(serverConfigFromEnv({}).corsOrigins).toEqual([]);
    expect(serverConfigFromEnv({ SLUICE_CORS_ORIGINS: "" }).corsOrigins).toEqual([]);
    expect(
      serverConfigFromEnv({
        SLUICE_CORS_ORIGINS:
          " https://app.example.com/ , http://localhost:5173,https://app.example.com",
      }).corsOrigins,
    ).toEqual(["https://app.example.com", "http://localhost:5173"]);
    expect(serverConfigFromEnv({ SLUICE_CORS_ORIGINS: "*" }).corsOrigins).toEqual(["*"]);
    expect(
      serverConfigFromEnv({ SLUICE_CORS_ORIGINS: "https://a.example, *" }).corsOrigins,
    ).toEqual(["*"]);
    for (const bad of ["app.example.com", "https://app.example.com/path", "ftp//x"]) {
      expect(() => serverConfigFromEnv({ SLUICE_CORS_ORIGINS: bad })).toThrow(
        /SLUICE_CORS_ORIGINS/,
      );
    }
  });
});
