import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { partitionForKey } from "../../src/log/murmur2.js";
import { makeHarness, type Harness } from "../support/harness.js";
import type { TestStores } from "../support/stores.js";

/**
 * The HTTP API end to end through the real Hono app, run unchanged against every adapter pair.
 */
export function apiSuite(kind: string, makeStores: () => Promise<TestStores>): void {
  describe(`HTTP API v1 over ${kind}`, () => {
    let stores: TestStores;
    let h: Harness;

    beforeEach(async () => {
      stores = await makeStores();
      h = makeHarness(stores);
    });
    afterEach(async () => {
      await h.log.close();
      await stores.cleanup();
    });

    const createTopic = async (name: string, partitions = 1, config?: object) => {
      const res = await h.call("POST", "/v1/topics", { name, partitions, config });
      expect(res.status).toBe(201);
      return res.body;
    };
    const produce = (topic: string, records: object[]) =>
      h.call("POST", `/v1/topics/${topic}/records`, { records });
    const fetchRecords = (topic: string, partition: number, query: string) =>
      h.call("GET", `/v1/topics/${topic}/partitions/${partition}/records?${query}`);

    describe("topics", () => {
      it("creates a topic with Kafka-named defaults and describes it", async () => {
        const created = await createTopic("orders", 3, { "retention.ms": 60_000 });
        expect(created).toMatchObject({ name: "orders", partitions: 3 });
        expect(created.config).toMatchObject({
          "retention.ms": 60_000,
          "retention.bytes": -1,
          "max.message.bytes": 1_048_588,
        });
        const described = await h.call("GET", "/v1/topics/orders");
        expect(described.status).toBe(200);
        expect(described.body.partitions).toEqual(
          [0, 1, 2].map((partition) => ({
            partition,
            logStartOffset: 0,
            logEndOffset: 0,
            // Kafka always has an active segment, even an empty one.
            segments: [
              {
                baseOffset: 0,
                count: 0,
                bytes: 0,
                minTimestamp: null,
                maxTimestamp: null,
                state: "active",
                chunks: 0,
              },
            ],
          })),
        );
        const list = await h.call("GET", "/v1/topics");
        expect(list.body.topics).toContainEqual({ name: "orders", partitions: 3 });
      });

      it("refuses a duplicate name with 409 and keeps the original", async () => {
        await createTopic("dup", 2);
        const again = await h.call("POST", "/v1/topics", { name: "dup", partitions: 5 });
        expect(again.status).toBe(409);
        expect(again.body.error.code).toBe("topic_exists");
        expect((await h.call("GET", "/v1/topics/dup")).body.partitions).toHaveLength(2);
      });

      it("deletes a topic; a re-created topic of the same name starts empty", async () => {
        await createTopic("phoenix");
        await produce("phoenix", [{ value: "old" }, { value: "older" }]);
        expect((await h.call("DELETE", "/v1/topics/phoenix")).status).toBe(204);
        expect((await h.call("GET", "/v1/topics/phoenix")).body.error.code).toBe("topic_not_found");
        expect((await produce("phoenix", [{ value: 1 }])).status).toBe(404);
        await createTopic("phoenix");
        const fetched = await fetchRecords("phoenix", 0, "offset=0");
        expect(fetched.body).toEqual({ records: [], nextOffset: 0, logEndOffset: 0 });
        const produced = await produce("phoenix", [{ value: "new" }]);
        expect(produced.body.offsets).toEqual([{ partition: 0, offset: 0 }]);
        const after = await fetchRecords("phoenix", 0, "offset=0");
        expect(after.body.records.map((r: any) => r.value)).toEqual(["new"]);
      });
    });

    describe("produce and fetch", () => {
      it("reads back every record byte-for-byte at the offset it was acknowledged with", async () => {
        await createTopic("roundtrip");
        const binary = [randomBytes(0), randomBytes(1), randomBytes(1000), randomBytes(70_000)];
        const records: Record<string, any>[] = [
          { value: { nested: { list: [1, 2.5, "three", null, true] }, emoji: "👩‍🚀" } },
          { value: null },
          { value: "just a string", key: "user-1", headers: { trace: "abc", ünï: "cødé" } },
          { value: 0 },
          { value: [] },
          ...binary.map((b, i) => ({
            valueBase64: b.toString("base64"),
            keyBase64: randomBytes(i * 3).toString("base64"),
            timestamp: 1_700_000_000_000 + i,
          })),
        ];
        const produced = await produce("roundtrip", records);
        expect(produced.status).toBe(200);
        expect(produced.body.offsets).toEqual(
          records.map((_, offset) => ({ partition: 0, offset })),
        );

        const fetched = await fetchRecords("roundtrip", 0, "offset=0");
        expect(fetched.status).toBe(200);
        expect(fetched.body.nextOffset).toBe(records.length);
        expect(fetched.body.logEndOffset).toBe(records.length);
        const got = fetched.body.records;
        expect(got.map((r: any) => r.offset)).toEqual(records.map((_, i) => i));
        expect(got[0].value).toEqual(records[0]!.value);
        expect(got[1].value).toBeNull();
        expect(got[2]).toMatchObject({
          key: "user-1",
          value: "just a string",
          headers: records[2]!.headers,
        });
        expect(got[3].value).toBe(0);
        expect(got[4].value).toEqual([]);
        binary.forEach((bytes, i) => {
          const record = got[5 + i];
          expect(Buffer.from(record.valueBase64, "base64").equals(bytes)).toBe(true);
          expect(record.keyBase64).toBe(records[5 + i]!.keyBase64);
          expect(record.timestamp).toBe(1_700_000_000_000 + i);
          expect(record).not.toHaveProperty("value");
        });
        expect(got[0].key).toBeNull();
        expect(typeof got[0].timestamp).toBe("number");
      });

      it("routes keyed records with Kafka's murmur2 partitioner and honours explicit partitions", async () => {
        await createTopic("keyed", 6);
        const keys = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
        const produced = await produce(
          "keyed",
          keys.map((key) => ({ key, value: key })),
        );
        const encoder = new TextEncoder();
        expect(produced.body.offsets.map((o: any) => o.partition)).toEqual(
          keys.map((key) => partitionForKey(encoder.encode(key), 6)),
        );
        const explicit = await produce("keyed", [{ key: "alice", partition: 5, value: "x" }]);
        expect(explicit.body.offsets[0].partition).toBe(5);
      });

      it("sends one request's keyless records to a single partition, in order", async () => {
        await createTopic("sticky", 4);
        const produced = await produce("sticky", [{ value: 1 }, { value: 2 }, { value: 3 }]);
        const partitions = new Set(produced.body.offsets.map((o: any) => o.partition));
        expect(partitions.size).toBe(1);
        expect(produced.body.offsets.map((o: any) => o.offset)).toEqual([0, 1, 2]);
      });

      it("pages with maxRecords and maxBytes, always returning at least one record", async () => {
        await createTopic("paging");
        const values = Array.from({ length: 25 }, (_, i) => ({ value: "x".repeat(100), i }));
        for (let i = 0; i < 25; i += 5) {
          await produce(
            "paging",
            values.slice(i, i + 5).map((v) => ({ value: v })),
          );
        }
        const seen: number[] = [];
        let offset = 0;
        while (offset < 25) {
          const page = await fetchRecords("paging", 0, `offset=${offset}&maxRecords=7`);
          expect(page.body.records.length).toBeLessThanOrEqual(7);
          seen.push(...page.body.records.map((r: any) => r.value.i));
          offset = page.body.nextOffset;
        }
        expect(seen).toEqual(values.map((v) => v.i));
        const tiny = await fetchRecords("paging", 0, "offset=3&maxBytes=1");
        expect(tiny.body.records).toHaveLength(1);
        expect(tiny.body.records[0].offset).toBe(3);
        expect(tiny.body.nextOffset).toBe(4);
        const middle = await fetchRecords("paging", 0, "offset=12&maxBytes=250");
        expect(middle.body.records.map((r: any) => r.offset)).toEqual([12, 13]);
      });

      it("answers a fetch at the log end with no records, and past it with 416 and the range", async () => {
        await createTopic("ends");
        await produce("ends", [{ value: 1 }, { value: 2 }]);
        const atEnd = await fetchRecords("ends", 0, "offset=2");
        expect(atEnd.body).toEqual({ records: [], nextOffset: 2, logEndOffset: 2 });
        const past = await fetchRecords("ends", 0, "offset=3");
        expect(past.status).toBe(416);
        expect(past.body.error).toMatchObject({
          code: "offset_out_of_range",
          details: { logStartOffset: 0, logEndOffset: 2 },
        });
      });

      it("answers Kafka's ListOffsets: earliest, latest, and the first offset at or after a time", async () => {
        await createTopic("times");
        await produce("times", [
          { value: 0, timestamp: 1000 },
          { value: 1, timestamp: 3000 },
        ]);
        await produce("times", [
          { value: 2, timestamp: 2000 },
          { value: 3, timestamp: 5000 },
        ]);
        const offsetAt = async (timestamp: string) => {
          const res = await h.call(
            "GET",
            `/v1/topics/times/partitions/0/offsets?timestamp=${timestamp}`,
          );
          expect(res.status).toBe(200);
          expect(res.body).toMatchObject({
            topic: "times",
            partition: 0,
            logStartOffset: 0,
            logEndOffset: 4,
          });
          return res.body.offset;
        };
        expect(await offsetAt("earliest")).toBe(0);
        expect(await offsetAt("latest")).toBe(4);
        expect(await offsetAt("0")).toBe(0);
        expect(await offsetAt("1500")).toBe(1);
        // Timestamps need not grow with offsets: 2000 is first reached at offset 1 (3000).
        expect(await offsetAt("2000")).toBe(1);
        expect(await offsetAt("3500")).toBe(3);
        expect(await offsetAt("5000")).toBe(3);
        expect(await offsetAt("5001")).toBeNull();
        const bad = await h.call(
          "GET",
          "/v1/topics/times/partitions/0/offsets?timestamp=yesterday",
        );
        expect(bad.status).toBe(400);
        expect(bad.body.error.code).toBe("invalid_request");
        const wrongPartition = await h.call(
          "GET",
          "/v1/topics/times/partitions/3/offsets?timestamp=latest",
        );
        expect(wrongPartition.body.error.code).toBe("invalid_partition");
      });

      it("wakes a long-poll as soon as records are committed", async () => {
        await createTopic("tail");
        const started = Date.now();
        const poll = fetchRecords("tail", 0, "offset=0&waitMs=20000");
        await new Promise((r) => setTimeout(r, 100));
        await produce("tail", [{ value: "wake" }]);
        const result = await poll;
        expect(result.body.records.map((r: any) => r.value)).toEqual(["wake"]);
        // Far below waitMs: the poll returned because of the commit, not the timeout.
        expect(Date.now() - started).toBeLessThan(10_000);
      });

      it("ends an idle long-poll after waitMs with no records", async () => {
        await createTopic("idle");
        const result = await fetchRecords("idle", 0, "offset=0&waitMs=150");
        expect(result.body).toEqual({ records: [], nextOffset: 0, logEndOffset: 0 });
      });
    });

    describe("bad input gets a 4xx with a code and changes nothing", () => {
      const snapshot = async () => {
        const topics = (await h.call("GET", "/v1/topics")).body.topics;
        const described = await Promise.all(
          topics.map(async (t: any) => (await h.call("GET", `/v1/topics/${t.name}`)).body),
        );
        return { described, objects: h.store.puts };
      };

      beforeEach(async () => {
        await createTopic("good", 2, { "max.message.bytes": 2_000 });
        await produce("good", [{ value: "seed", partition: 0 }]);
      });

      const long = "a".repeat(250);
      const cases: [string, string, string, unknown, number, string][] = [
        ["topic name with /", "POST", "/v1/topics", { name: "a/b" }, 400, "invalid_name"],
        ["topic name ..", "POST", "/v1/topics", { name: ".." }, 400, "invalid_name"],
        ["topic name .", "POST", "/v1/topics", { name: "." }, 400, "invalid_name"],
        ["topic name over 249", "POST", "/v1/topics", { name: long }, 400, "invalid_name"],
        ["empty topic name", "POST", "/v1/topics", { name: "" }, 400, "invalid_name"],
        ["topic name with space", "POST", "/v1/topics", { name: "a b" }, 400, "invalid_name"],
        [
          "zero partitions",
          "POST",
          "/v1/topics",
          { name: "z", partitions: 0 },
          400,
          "invalid_request",
        ],
        [
          "string partitions",
          "POST",
          "/v1/topics",
          { name: "z", partitions: "2" },
          400,
          "invalid_request",
        ],
        [
          "unknown config",
          "POST",
          "/v1/topics",
          { name: "z", config: { "x.y": 1 } },
          400,
          "invalid_config",
        ],
        [
          "bad config value",
          "POST",
          "/v1/topics",
          { name: "z", config: { "retention.ms": "1" } },
          400,
          "invalid_config",
        ],
        ["bad JSON on create", "POST", "/v1/topics", "{nope", 400, "invalid_json"],
        ["encoded / in path", "GET", "/v1/topics/a%2Fb", undefined, 400, "invalid_name"],
        ["encoded ../ in path", "DELETE", "/v1/topics/..%2Fgood", undefined, 400, "invalid_name"],
        // URLs resolve %2E%2E as a dot segment: the path becomes /v1/, which no route serves.
        [
          "encoded .. as a whole segment",
          "DELETE",
          "/v1/topics/%2E%2E",
          undefined,
          404,
          "not_found",
        ],
        ["long name in path", "GET", `/v1/topics/${long}`, undefined, 400, "invalid_name"],
        [
          "unknown topic",
          "POST",
          "/v1/topics/missing/records",
          { records: [{ value: 1 }] },
          404,
          "topic_not_found",
        ],
        [
          "bad JSON on produce",
          "POST",
          "/v1/topics/good/records",
          '{"records": [',
          400,
          "invalid_json",
        ],
        [
          "no records field",
          "POST",
          "/v1/topics/good/records",
          { value: 1 },
          400,
          "invalid_request",
        ],
        [
          "empty records",
          "POST",
          "/v1/topics/good/records",
          { records: [] },
          400,
          "invalid_request",
        ],
        [
          "record without value",
          "POST",
          "/v1/topics/good/records",
          { records: [{ key: "k" }] },
          400,
          "invalid_request",
        ],
        [
          "value and valueBase64",
          "POST",
          "/v1/topics/good/records",
          { records: [{ value: 1, valueBase64: "AA==" }] },
          400,
          "invalid_request",
        ],
        [
          "invalid base64 value",
          "POST",
          "/v1/topics/good/records",
          { records: [{ valueBase64: "not base64!" }] },
          400,
          "invalid_encoding",
        ],
        [
          "invalid base64 key",
          "POST",
          "/v1/topics/good/records",
          { records: [{ keyBase64: "@@", value: 1 }] },
          400,
          "invalid_encoding",
        ],
        [
          "non-string header",
          "POST",
          "/v1/topics/good/records",
          { records: [{ value: 1, headers: { a: 1 } }] },
          400,
          "invalid_request",
        ],
        [
          "unknown record field",
          "POST",
          "/v1/topics/good/records",
          { records: [{ value: 1, extra: 2 }] },
          400,
          "invalid_request",
        ],
        [
          "negative timestamp",
          "POST",
          "/v1/topics/good/records",
          { records: [{ value: 1, timestamp: -5 }] },
          400,
          "invalid_request",
        ],
        [
          "negative partition",
          "POST",
          "/v1/topics/good/records",
          { records: [{ value: 1, partition: -1 }] },
          400,
          "invalid_partition",
        ],
        [
          "unknown partition (with a valid record beside it)",
          "POST",
          "/v1/topics/good/records",
          {
            records: [
              { value: 1, partition: 0 },
              { value: 2, partition: 2 },
            ],
          },
          400,
          "invalid_partition",
        ],
        [
          "record over max.message.bytes (with a valid record beside it)",
          "POST",
          "/v1/topics/good/records",
          {
            records: [
              { value: "ok", partition: 0 },
              { value: "x".repeat(3_000), partition: 0 },
            ],
          },
          413,
          "record_too_large",
        ],
        [
          "negative offset",
          "GET",
          "/v1/topics/good/partitions/0/records?offset=-1",
          undefined,
          400,
          "invalid_offset",
        ],
        [
          "non-numeric offset",
          "GET",
          "/v1/topics/good/partitions/0/records?offset=abc",
          undefined,
          400,
          "invalid_offset",
        ],
        [
          "fractional offset",
          "GET",
          "/v1/topics/good/partitions/0/records?offset=1.5",
          undefined,
          400,
          "invalid_offset",
        ],
        [
          "missing offset",
          "GET",
          "/v1/topics/good/partitions/0/records",
          undefined,
          400,
          "invalid_offset",
        ],
        [
          "unsafe offset",
          "GET",
          "/v1/topics/good/partitions/0/records?offset=99999999999999999",
          undefined,
          400,
          "invalid_offset",
        ],
        [
          "unknown partition on fetch",
          "GET",
          "/v1/topics/good/partitions/2/records?offset=0",
          undefined,
          400,
          "invalid_partition",
        ],
        [
          "non-numeric partition",
          "GET",
          "/v1/topics/good/partitions/x/records?offset=0",
          undefined,
          400,
          "invalid_partition",
        ],
        [
          "zero maxRecords",
          "GET",
          "/v1/topics/good/partitions/0/records?offset=0&maxRecords=0",
          undefined,
          400,
          "invalid_request",
        ],
        ["unknown route", "GET", "/v1/nothing", undefined, 404, "not_found"],
      ];

      it.each(cases)("%s", async (_name, method, path, body, status, code) => {
        const before = await snapshot();
        const res = await h.call(method, path, body);
        expect(res.status).toBe(status);
        expect(res.body.error.code).toBe(code);
        expect(typeof res.body.error.message).toBe("string");
        expect(await snapshot()).toEqual(before);
      });

      it("refuses a body over the request limit with 413 before parsing it", async () => {
        const small = makeHarness(stores, {}, 1024);
        const res = await small.call("POST", "/v1/topics/good/records", {
          records: [{ value: "x".repeat(2048) }],
        });
        expect(res.status).toBe(413);
        expect(res.body.error.code).toBe("payload_too_large");
        expect(small.store.puts).toBe(0);
      });
    });

    it("serves liveness, metrics and an OpenAPI document generated from the schemas", async () => {
      expect((await h.call("GET", "/healthz")).body).toEqual({ status: "ok" });
      await createTopic("metered");
      await produce("metered", [{ value: 1 }, { value: 2 }]);
      const metrics = await h.call("GET", "/v1/metrics");
      expect(metrics.body.topics.metered).toMatchObject({
        produceRequests: 1,
        recordsIn: 2,
        flushes: 1,
      });
      const doc = await h.call("GET", "/v1/openapi.json");
      expect(doc.status).toBe(200);
      expect(Object.keys(doc.body.paths)).toEqual(
        expect.arrayContaining([
          "/v1/topics",
          "/v1/topics/{topic}",
          "/v1/topics/{topic}/records",
          "/v1/topics/{topic}/partitions/{partition}/records",
        ]),
      );
      expect(doc.body.components.schemas.ProduceRecord).toBeDefined();
    });
  });
}
