import { describe, expect, it } from "vitest";
import { MIN_ORPHAN_GRACE_MS, serverConfigFromEnv } from "../src/config.js";

describe("server configuration from the environment", () => {
  it("has the documented defaults", () => {
    const config = serverConfigFromEnv({});
    expect(config).toMatchObject({ host: "127.0.0.1", port: 8080, dataDir: "./data", prefix: "" });
    expect(config.log.orphanGraceMs).toBeGreaterThan(10 * config.log.commitTimeoutMs);
  });

  it("refuses an orphan grace period short enough to delete a slow writer's object", () => {
    expect(() => serverConfigFromEnv({ SLUICE_ORPHAN_GRACE_MS: "1000" })).toThrow(
      /SLUICE_ORPHAN_GRACE_MS/,
    );
    expect(
      serverConfigFromEnv({ SLUICE_ORPHAN_GRACE_MS: String(MIN_ORPHAN_GRACE_MS) }).log
        .orphanGraceMs,
    ).toBe(MIN_ORPHAN_GRACE_MS);
  });

  it("reads a prefix as a folder and refuses malformed numbers", () => {
    expect(serverConfigFromEnv({ SLUICE_PREFIX: "sluice" }).prefix).toBe("sluice/");
    expect(() => serverConfigFromEnv({ PORT: "eighty" })).toThrow(/PORT/);
  });
});

describe("authentication settings", () => {
  const secret = "s".repeat(32);

  it("leaves the embedded server open on loopback and requires credentials anywhere else", () => {
    expect(serverConfigFromEnv({}).auth.mode).toBe("off");
    expect(serverConfigFromEnv({ HOST: "localhost" }).auth.mode).toBe("off");
    expect(serverConfigFromEnv({ HOST: "::1" }).auth.mode).toBe("off");
    expect(serverConfigFromEnv({ HOST: "0.0.0.0" }).auth.mode).toBe("required");
    expect(serverConfigFromEnv({ HOST: "192.168.1.10" }).auth.mode).toBe("required");
  });

  it("requires credentials on loopback too once token settings are present", () => {
    expect(serverConfigFromEnv({ SLUICE_JWT_SECRET: secret }).auth.mode).toBe("required");
    expect(serverConfigFromEnv({ SLUICE_AUTH: "required" }).auth.mode).toBe("required");
    expect(serverConfigFromEnv({ HOST: "0.0.0.0", SLUICE_AUTH: "off" }).auth.mode).toBe("off");
  });

  it("refuses a short signing secret without printing it", () => {
    const short = "short-secret-value";
    let message = "";
    try {
      serverConfigFromEnv({ SLUICE_JWT_SECRET: short });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/SLUICE_JWT_SECRET: must be at least 32 bytes/);
    expect(message).not.toContain(short);
    expect(JSON.stringify(serverConfigFromEnv({ SLUICE_JWT_SECRET: secret }))).not.toContain(
      secret,
    );
  });

  it("reads rate limits as rate[:burst] or off", () => {
    expect(serverConfigFromEnv({}).auth.rateLimit).toEqual({ perSecond: 100, burst: 200 });
    expect(serverConfigFromEnv({ SLUICE_RATE_LIMIT: "5" }).auth.rateLimit).toEqual({
      perSecond: 5,
      burst: 10,
    });
    expect(serverConfigFromEnv({ SLUICE_RATE_LIMIT: "5:7" }).auth.rateLimit).toEqual({
      perSecond: 5,
      burst: 7,
    });
    expect(serverConfigFromEnv({ SLUICE_RATE_LIMIT: "off" }).auth.rateLimit).toBeNull();
    expect(() => serverConfigFromEnv({ SLUICE_RATE_LIMIT: "fast" })).toThrow(/SLUICE_RATE_LIMIT/);
  });

  it("caps records per request at the hard limit", () => {
    expect(serverConfigFromEnv({}).maxRecordsPerRequest).toBe(10_000);
    expect(
      serverConfigFromEnv({ SLUICE_MAX_RECORDS_PER_REQUEST: "500" }).maxRecordsPerRequest,
    ).toBe(500);
    expect(() => serverConfigFromEnv({ SLUICE_MAX_RECORDS_PER_REQUEST: "20000" })).toThrow();
  });
});
