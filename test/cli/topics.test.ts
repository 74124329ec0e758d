import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cliHarness, type CliHarness } from "./support.js";

describe("sluice topics", () => {
  let c: CliHarness;
  beforeEach(async () => {
    c = await cliHarness();
  });
  afterEach(() => c.close());

  it("creates a topic with --partitions and --config, and lists it", async () => {
    const created = await c.cli([
      "topics",
      "create",
      "orders",
      "--partitions",
      "3",
      "--config",
      "retention.ms=60000",
      "--config",
      "segment.bytes=1048576",
    ]);
    expect(created).toEqual({
      code: 0,
      stdout: "",
      stderr: "created topic orders with 3 partitions\n",
    });
    const described = await c.client.admin.describeTopic("orders");
    expect(described.config).toMatchObject({ "retention.ms": 60_000, "segment.bytes": 1_048_576 });

    await c.cli(["topics", "create", "a-much-longer-topic-name"]);
    const listed = await c.cli(["topics", "list"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toBe(
      [
        "TOPIC                     PARTITIONS",
        "a-much-longer-topic-name  1",
        "orders                    3",
        "",
      ].join("\n"),
    );
    const json = await c.cli(["topics", "list", "--json"]);
    expect(JSON.parse(json.stdout)).toEqual([
      { name: "a-much-longer-topic-name", partitions: 1 },
      { name: "orders", partitions: 3 },
    ]);
  });

  it("describes a topic's partitions as a table, and as JSON with --json", async () => {
    await c.cli(["topics", "create", "orders", "--partitions", "2"]);
    const producer = c.client.producer();
    await producer.send(
      "orders",
      Array.from({ length: 12 }, (_, i) => ({ value: i, partition: 0 })),
    );
    await producer.close();

    const table = await c.cli(["topics", "describe", "orders"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toBe(
      [
        "PARTITION  LOG-START-OFFSET  LOG-END-OFFSET  SEGMENTS",
        "0          0                 12              1",
        "1          0                 0               1",
        "",
      ].join("\n"),
    );
    // The topic's own settings go to stderr, so that stdout is only the table.
    expect(table.stderr).toMatch(/^topic orders \(id \w+, created .+\): retention\.ms=604800000,/);

    const json = await c.cli(["topics", "describe", "orders", "--json"]);
    expect(json.code).toBe(0);
    const body = JSON.parse(json.stdout);
    expect(body).toMatchObject({
      name: "orders",
      config: { "retention.ms": 604_800_000 },
      partitions: [
        { partition: 0, logStartOffset: 0, logEndOffset: 12 },
        { partition: 1, logStartOffset: 0, logEndOffset: 0 },
      ],
    });
    expect(body.partitions[0].segments).toHaveLength(1);
    expect(json.stderr).toBe("");
  });

  it("deletes a topic", async () => {
    await c.cli(["topics", "create", "orders"]);
    expect(await c.cli(["topics", "delete", "orders"])).toEqual({
      code: 0,
      stdout: "",
      stderr: "deleted topic orders\n",
    });
    expect(await c.client.admin.listTopics()).toEqual([]);
  });

  it("prints the server's error code and exits 1 for an unknown topic", async () => {
    for (const args of [
      ["topics", "describe", "nope"],
      ["topics", "delete", "nope"],
      ["consume", "nope"],
    ]) {
      expect(await c.cli(args)).toEqual({
        code: 1,
        stdout: "",
        stderr: 'error: topic_not_found: topic "nope" does not exist\n',
      });
    }
    const json = await c.cli(["topics", "describe", "nope", "--json"]);
    expect(json.code).toBe(1);
    expect(json.stderr).toBe('error: topic_not_found: topic "nope" does not exist\n');
  });

  it("prints other API errors the same way", async () => {
    await c.cli(["topics", "create", "orders"]);
    const again = await c.cli(["topics", "create", "orders"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: topic_exists: /);
    const bad = await c.cli(["topics", "create", "bad/name"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: invalid_name: /);
  });

  it("exits 2 with the usage for bad arguments", async () => {
    const cases: [string[], string][] = [
      [["topics", "describe"], "error: usage: missing NAME"],
      [["topics", "describe", "a", "b"], 'error: usage: unexpected argument "b"'],
      [["topics", "create", "t", "--partitions", "two"], "error: usage: --partitions must be"],
      [["topics", "create", "t", "--config", "retention.ms"], "error: usage: --config takes"],
      [["topics", "create", "t", "--bogus"], "error: usage: Unknown option '--bogus'"],
      [["topics", "frobnicate"], 'error: usage: unknown command "topics frobnicate"'],
      [["nonsense"], 'error: usage: unknown command "nonsense"'],
    ];
    for (const [args, message] of cases) {
      const result = await c.cli(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr.startsWith(message), result.stderr).toBe(true);
    }
    expect(await c.client.admin.listTopics()).toEqual([]);
  });

  it("prints the usage on --help", async () => {
    for (const args of [
      ["topics", "--help"],
      ["topics", "create", "--help"],
      ["topics", "-h"],
    ]) {
      const result = await c.cli(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain("sluice topics create NAME [--partitions N]");
    }
  });
});
