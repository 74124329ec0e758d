import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cliHarness, type CliHarness } from "./support.js";

describe("sluice groups", () => {
  let c: CliHarness;
  beforeEach(async () => {
    c = await cliHarness();
    await c.client.admin.createTopic("orders", 2);
    const producer = c.client.producer();
    await producer.send("orders", [
      ...["a", "b", "c"].map((value) => ({ value, partition: 0 })),
      ...["d", "e"].map((value) => ({ value, partition: 1 })),
    ]);
    await producer.close();
  });
  afterEach(() => c.close());

  /** A live member "member-1" of "billing" holding both partitions, committed at 2 on p0 only. */
  const joinAndCommit = async () => {
    const joined = await c.h.call("POST", "/v1/groups/billing/members", {
      topics: ["orders"],
      memberId: "member-1",
      resetPolicy: "earliest",
    });
    expect(joined.status).toBe(201);
    const committed = await c.h.call("POST", "/v1/groups/billing/offsets", {
      memberId: "member-1",
      generation: joined.body.generation,
      offsets: [{ topic: "orders", partition: 0, offset: 2 }],
    });
    expect(committed.status).toBe(200);
  };

  it("describe prints kafka-consumer-groups' table, with - where there is no offset", async () => {
    await joinAndCommit();
    const result = await c.cli(["groups", "describe", "billing"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      [
        "GROUP    TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID",
        "billing  orders  0          2               3               1    member-1",
        "billing  orders  1          -               2               2    member-1",
        "",
      ].join("\n"),
    );
    expect(result.stderr).toBe("group billing: stable, generation 1, 1 member (total lag 3)\n");

    await c.h.call("DELETE", "/v1/groups/billing/members/member-1");
    const empty = await c.cli(["groups", "describe", "billing"]);
    expect(empty.stdout).toBe(
      [
        "GROUP    TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID",
        "billing  orders  0          2               3               1    -",
        "billing  orders  1          -               2               2    -",
        "",
      ].join("\n"),
    );
    expect(empty.stderr).toBe("group billing has no active members (total lag 3)\n");
  });

  it("describe --json prints the API's description", async () => {
    await joinAndCommit();
    const result = await c.cli(["groups", "describe", "billing", "--json"]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    const body = JSON.parse(result.stdout);
    expect(body).toMatchObject({
      group: "billing",
      state: "stable",
      generation: 1,
      totalLag: 3,
      members: [{ memberId: "member-1", topics: ["orders"] }],
      partitions: [
        {
          topic: "orders",
          partition: 0,
          currentOffset: 2,
          logEndOffset: 3,
          lag: 1,
          memberId: "member-1",
        },
        {
          topic: "orders",
          partition: 1,
          currentOffset: null,
          logEndOffset: 2,
          lag: 2,
          memberId: "member-1",
        },
      ],
    });
  });

  it("lists groups", async () => {
    await joinAndCommit();
    const result = await c.cli(["groups", "list"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^GROUP {4}CREATED\nbilling {2}\d{4}-\d\d-\d\dT[\d:.]+Z\n$/);
    const json = await c.cli(["groups", "list", "--json"]);
    expect(JSON.parse(json.stdout)).toEqual([{ group: "billing", createdAt: expect.any(Number) }]);
  });

  it("reset-offsets: --dry-run shows the plan, then the reset moves the offsets", async () => {
    await joinAndCommit();
    const busy = await c.cli(["groups", "reset-offsets", "billing", "--to", "earliest"]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/^error: group_not_empty: /);
    await c.h.call("DELETE", "/v1/groups/billing/members/member-1");

    // Without --topic only partitions with an offset are reset; with it, all of the topic's.
    const all = await c.cli(["groups", "reset-offsets", "billing", "--to", "latest", "--dry-run"]);
    expect(all.stdout.split("\n").slice(1)).toEqual([
      "billing  orders  0          2                3",
      "",
    ]);
    const dry = await c.cli([
      "groups",
      "reset-offsets",
      "billing",
      "--to",
      "latest",
      "--topic",
      "orders",
      "--dry-run",
    ]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe(
      [
        "GROUP    TOPIC   PARTITION  PREVIOUS-OFFSET  NEW-OFFSET",
        "billing  orders  0          2                3",
        "billing  orders  1          -                2",
        "",
      ].join("\n"),
    );
    expect(dry.stderr).toBe("dry run: nothing changed (2 partitions would be reset)\n");
    expect((await c.client.admin.describeGroup("billing")).partitions[0]!.currentOffset).toBe(2);

    const one = await c.cli([
      "groups",
      "reset-offsets",
      "billing",
      "--to",
      "offset",
      "--offset",
      "1",
      "--topic",
      "orders:0",
      "--json",
    ]);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout)).toEqual({
      dryRun: false,
      offsets: [{ topic: "orders", partition: 0, previousOffset: 2, offset: 1 }],
    });
    const described = await c.client.admin.describeGroup("billing");
    expect(described.partitions.map((p) => p.currentOffset)).toEqual([1, null]);
  });

  it("reset-offsets --to datetime takes --datetime or --timestamp", async () => {
    await c.client.admin.createTopic("timed", 1);
    const T0 = Date.parse("2024-05-01T12:00:00Z");
    const producer = c.client.producer();
    await producer.send(
      "timed",
      [0, 1, 2, 3].map((i) => ({ value: i, timestamp: T0 + i * 60_000 })),
    );
    await producer.close();
    const byIso = await c.cli([
      "groups",
      "reset-offsets",
      "g",
      "--to",
      "datetime",
      "--datetime",
      "2024-05-01T12:01:30Z",
      "--topic",
      "timed",
    ]);
    expect(byIso.code).toBe(0);
    expect(byIso.stdout).toContain("g      timed  0          -                2\n");
    expect(byIso.stderr).toBe("reset 1 partition of group g\n");
    const byMs = await c.cli([
      "groups",
      "reset-offsets",
      "g",
      "--to",
      "datetime",
      "--timestamp",
      String(T0 + 60_000),
      "--topic",
      "timed",
      "--json",
    ]);
    expect(JSON.parse(byMs.stdout).offsets).toEqual([
      { topic: "timed", partition: 0, previousOffset: 2, offset: 1 },
    ]);
  });

  it("reset-offsets checks its flags before asking the server", async () => {
    for (const [args, message] of [
      [["--to", "sometime"], "--to must be earliest, latest, datetime or offset"],
      [["--to", "datetime"], "--to datetime needs one of --datetime ISO-8601 or --timestamp MS"],
      [["--to", "offset"], "--to offset needs --offset N"],
      [["--to", "earliest", "--offset", "3"], "--offset goes with --to offset"],
      [["--to", "datetime", "--datetime", "soon"], "--datetime must be an ISO-8601 time"],
    ] as const) {
      const result = await c.cli(["groups", "reset-offsets", "billing", ...args]);
      expect(result.code).toBe(2);
      expect(result.stderr.startsWith(`error: usage: ${message}`), result.stderr).toBe(true);
    }
  });

  it("deletes a group, and reports an unknown one", async () => {
    await joinAndCommit();
    await c.h.call("DELETE", "/v1/groups/billing/members/member-1");
    expect(await c.cli(["groups", "delete", "billing"])).toEqual({
      code: 0,
      stdout: "",
      stderr: "deleted group billing\n",
    });
    for (const args of [
      ["groups", "describe", "billing"],
      ["groups", "delete", "billing"],
    ]) {
      const result = await c.cli(args);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/^error: group_not_found: /);
    }
  });
});
