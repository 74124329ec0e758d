import { describe, expect, it } from "vitest";
import { logConfigDefaults } from "../../src/config.js";
import { SluiceLog, type ProduceRecord } from "../../src/log/log.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";
import { CountingObjectStore } from "../support/counting-store.js";

const MiB = 1024 * 1024;

/**
 * docs/rfcs/0003-segments.md §11: a sequential reader of a sealed segment pays one footer GET
 * and one GET per 4 MiB block, every one with an explicit byte range.
 */
describe("read cost of a sealed segment", () => {
  it("reads 64 MiB sequentially with 1 MiB fetches in at most 0.3 ranged GETs per MiB", async () => {
    const store = new MemoryObjectStore();
    const meta = new MemoryMetaStore();
    const config = { ...logConfigDefaults, lingerMs: 0, rollMinAgeMs: 0 };
    const writer = new SluiceLog({ store, meta, config });
    await writer.topics.create("cost", 1, { "segment.ms": 1, "retention.ms": -1 });
    const value = new Uint8Array(64 * 1024).fill(7);
    const record: ProduceRecord = {
      key: null,
      keyEncoding: "utf8",
      value,
      valueEncoding: "binary",
      headers: {},
    };
    for (let i = 0; i < 64 * MiB; i += 48 * value.byteLength) {
      await writer.produce(
        "cost",
        Array.from({ length: 48 }, () => record),
      );
    }
    await new Promise((r) => setTimeout(r, 2));
    const report = await writer.runMaintenance();
    expect(report).toMatchObject({ segmentsRolled: 1 });
    await writer.close();

    const counting = new CountingObjectStore(store);
    const reader = new SluiceLog({ store: counting, meta, config });
    let offset = 0;
    let bytes = 0;
    for (;;) {
      const page = await reader.fetch("cost", 0, offset, {
        maxRecords: 100_000,
        maxBytes: MiB,
        waitMs: 0,
      });
      if (page.records.length === 0) break;
      bytes += page.records.reduce((sum, r) => sum + r.value.byteLength, 0);
      offset = page.nextOffset;
    }
    expect(bytes).toBeGreaterThanOrEqual(64 * MiB);
    expect(counting.getLog.every((g) => g.range !== undefined)).toBe(true);
    const perMiB = counting.gets / (bytes / MiB);
    expect(perMiB).toBeLessThanOrEqual(0.3);
  }, 60_000);
});
