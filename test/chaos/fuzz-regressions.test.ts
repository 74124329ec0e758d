import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { logConfigDefaults } from "../../src/config.js";
import { errorCodes } from "../../src/errors.js";
import { createApp } from "../../src/http/app.js";
import { SluiceLog } from "../../src/log/log.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";

/**
 * Bugs the HTTP fuzzer (fuzz.ts, issue #8) found, one minimal reproduction each, named after
 * the bug; the fuzzer generates their inputs too.
 */

function app() {
  const log = new SluiceLog({
    store: new MemoryObjectStore(),
    meta: new MemoryMetaStore(),
    config: { ...logConfigDefaults, lingerMs: 1 },
    logger: pino({ level: "silent" }),
  });
  const app = createApp({ log, maxRequestBytes: 64 * 1024, logger: pino({ level: "silent" }) });
  return async (method: string, path: string, body?: string | object) => {
    const res = await app.request(`http://sluice.test${path}`, {
      method,
      ...(body === undefined
        ? {}
        : {
            headers: { "content-type": "application/json" },
            body: typeof body === "string" ? body : JSON.stringify(body),
          }),
    });
    const text = await res.text();
    return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  };
}

/** A 4xx with a known code and its status, or a 2xx: never a 5xx. */
function expectAnswered(res: { status: number; text: string }, what: string) {
  expect(res.status, `${what}: ${res.text.slice(0, 200)}`).toBeLessThan(500);
  if (res.status >= 400) {
    const { code } = (JSON.parse(res.text) as { error: { code: keyof typeof errorCodes } }).error;
    expect(errorCodes[code]?.status, what).toBe(res.status);
  }
}

describe("HTTP fuzzing regressions", () => {
  it("deep-json-value: a record value nested 5,000 deep is stored or refused, never a 500", async () => {
    // JSON.parse takes it (the body is 10 KB, far under the limit) and so does validation
    // (`value` is z.unknown()); JSON.stringify in toProduceRecord then overflows the stack.
    const request = app();
    expect((await request("POST", "/v1/topics", { name: "orders" })).status).toBe(201);
    const depth = 5_000;
    const body = `{"records":[{"value":${"[".repeat(depth)}${"]".repeat(depth)}}]}`;
    const res = await request("POST", "/v1/topics/orders/records", body);
    expectAnswered(res, "produce");
    if (res.status === 200) {
      const fetched = await request("GET", "/v1/topics/orders/partitions/0/records?offset=0");
      expectAnswered(fetched, "fetch");
    }
  });

  describe("prototype-member-id: a member id named like an Object.prototype property", () => {
    // The group document keeps members in a plain object: `doc.members[memberId]` finds
    // Object.prototype's function for `toString`, so heartbeat, fetch, commit, leave and join
    // all throw a TypeError (500); `__proto__` cannot even be stored as a member.
    it.each(["toString", "__proto__", "constructor", "hasOwnProperty", "valueOf"])(
      "%s is never a 500, and a join that succeeds makes a working member",
      async (id) => {
        const request = app();
        expect((await request("POST", "/v1/topics", { name: "orders" })).status).toBe(201);
        const commit = { offsets: [{ topic: "orders", partition: 0, offset: 0 }] };
        // The group exists (a memberless commit creates it) and has no such member.
        expect((await request("POST", "/v1/groups/billing/offsets", commit)).status).toBe(200);
        const member = `/v1/groups/billing/members/${id}`;
        expectAnswered(await request("POST", `${member}/heartbeat`, {}), "heartbeat");
        expectAnswered(await request("POST", `${member}/fetch`, {}), "fetch");
        expectAnswered(
          await request("POST", "/v1/groups/billing/offsets", {
            ...commit,
            memberId: id,
            generation: 1,
          }),
          "member commit",
        );
        expectAnswered(await request("DELETE", member), "leave");

        const join = await request("POST", "/v1/groups/billing/members", {
          topics: ["orders"],
          memberId: id,
        });
        expectAnswered(join, "join");
        if (join.status < 300) {
          const described = (await request("GET", "/v1/groups/billing")).json() as {
            members: { memberId: string }[];
          };
          expect(described.members.map((m) => m.memberId)).toEqual([id]);
          expect((await request("POST", `${member}/heartbeat`, {})).status).toBe(200);
        }
      },
    );
  });

  it("proto-topic-in-group: a member subscribed to topic __proto__ is assigned its partitions", async () => {
    // `__proto__` is a valid topic name, but the group document keeps its topic snapshots in a
    // plain object where `doc.topics["__proto__"] = …` sets the prototype instead: the topic is
    // never in the snapshot, the member is never assigned anything, and every request
    // recomputes the target (the generation climbs by 2 per heartbeat). No 5xx, so the fuzzer's
    // properties do not see it; found while reproducing prototype-member-id.
    const request = app();
    expect((await request("POST", "/v1/topics", { name: "__proto__", partitions: 2 })).status).toBe(
      201,
    );
    const join = await request("POST", "/v1/groups/g/members", {
      topics: ["__proto__"],
      memberId: "m1",
    });
    expect(join.status).toBe(201);
    const first = join.json() as { generation: number; assignments: unknown[] };
    expect(first.assignments).toEqual([
      { topic: "__proto__", partition: 0 },
      { topic: "__proto__", partition: 1 },
    ]);
    const beat = (await request("POST", "/v1/groups/g/members/m1/heartbeat", {})).json();
    expect(beat.generation).toBe(first.generation);
  });
});
