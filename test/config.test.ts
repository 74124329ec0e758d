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
