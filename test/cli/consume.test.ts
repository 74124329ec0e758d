import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Capture, cliHarness, until, type CliHarness } from "./support.js";

describe("sluice consume", () => {
  let c: CliHarness;
  beforeEach(async () => {
    c = await cliHarness();
    await c.client.admin.createTopic("orders", 2);
  });
  afterEach(() => c.close());

  const T0 = Date.parse("2024-05-01T12:00:00Z");
  /** p0: a, b, {"n":1} at T0, T0+1m, T0+2m; p1: [1,2] keyed "k" at T0+1m, then bytes at T0+3m. */
  const produceSample = async () => {
    const producer = c.client.producer();
    await producer.send("orders", [
      { value: "a", partition: 0, timestamp: T0 },
      { value: "b", partition: 0, timestamp: T0 + 60_000, key: "kb" },
      { value: { n: 1 }, partition: 0, timestamp: T0 + 120_000, headers: { h: "v" } },
      { value: [1, 2], partition: 1, timestamp: T0 + 60_000, key: "k" },
      { value: new Uint8Array([0, 1, 2]), partition: 1, timestamp: T0 + 180_000 },
    ]);
    await producer.close();
  };

  it("--from earliest prints every value, one per line, JSON values as JSON text", async () => {
    await produceSample();
    const result = await c.cli(["consume", "orders", "--from", "earliest"]);
    expect(result).toEqual({
      code: 0,
      stdout: 'a\nb\n{"n":1}\n[1,2]\nAAEC\n',
      stderr: "processed 5 records\n",
    });
    // earliest is the default without a group
    expect((await c.cli(["consume", "orders"])).stdout).toBe(result.stdout);
  });

  it("--print-key and --print-offset prefix tab-separated columns", async () => {
    await produceSample();
    const result = await c.cli(["consume", "orders", "--print-key", "--print-offset"]);
    expect(result.stdout).toBe(
      [
        "0:0\tnull\ta",
        "0:1\tkb\tb",
        '0:2\tnull\t{"n":1}',
        "1:0\tk\t[1,2]",
        "1:1\tnull\tAAEC",
        "",
      ].join("\n"),
    );
  });

  it("--json prints one JSON object per record (JSON Lines)", async () => {
    await produceSample();
    const result = await c.cli(["consume", "orders", "--json", "--partition", "0"]);
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      {
        topic: "orders",
        partition: 0,
        offset: 0,
        timestamp: T0,
        key: null,
        value: "a",
        headers: {},
      },
      {
        topic: "orders",
        partition: 0,
        offset: 1,
        timestamp: T0 + 60_000,
        key: "kb",
        value: "b",
        headers: {},
      },
      {
        topic: "orders",
        partition: 0,
        offset: 2,
        timestamp: T0 + 120_000,
        key: null,
        value: { n: 1 },
        headers: { h: "v" },
      },
    ]);
    const binary = await c.cli(["consume", "orders", "--json", "--partition", "1", "--from", "1"]);
    expect(JSON.parse(binary.stdout)).toMatchObject({ offset: 1, valueBase64: "AAEC" });
    expect(JSON.parse(binary.stdout)).not.toHaveProperty("value");
  });

  it("--from an ISO-8601 time starts each partition at its first record at or after it", async () => {
    await produceSample();
    const result = await c.cli([
      "consume",
      "orders",
      "--from",
      "2024-05-01T12:01:00Z",
      "--print-offset",
    ]);
    expect(result.stdout).toBe('0:1\tb\n0:2\t{"n":1}\n1:0\t[1,2]\n1:1\tAAEC\n');
    const later = await c.cli(["consume", "orders", "--from", "2024-05-01T14:02:30+02:00"]);
    expect(later.stdout).toBe("AAEC\n");
    // After every record: nothing to print, and no error.
    expect(await c.cli(["consume", "orders", "--from", "2030-01-01T00:00:00Z"])).toEqual({
      code: 0,
      stdout: "",
      stderr: "processed 0 records\n",
    });
  });

  it("--from an offset, --partition and --max", async () => {
    await produceSample();
    expect((await c.cli(["consume", "orders", "--partition", "0", "--from", "1"])).stdout).toBe(
      'b\n{"n":1}\n',
    );
    expect((await c.cli(["consume", "orders", "--max", "2"])).stdout).toBe("a\nb\n");
    expect((await c.cli(["consume", "orders", "--from", "latest"])).stdout).toBe("");
    const outside = await c.cli(["consume", "orders", "--partition", "0", "--from", "7"]);
    expect(outside.stdout).toBe("");
    expect(outside.stderr).toContain("partition 0: offset 7 is outside [0, 3]; starting at 3");
  });

  it("rejects a bad --from or --partition", async () => {
    const bad = await c.cli(["consume", "orders", "--from", "yesterday"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: usage: --from must be an ISO-8601 time/);
    const partition = await c.cli(["consume", "orders", "--partition", "5"]);
    expect(partition.code).toBe(1);
    expect(partition.stderr).toBe(
      "error: invalid_partition: topic orders has 2 partitions; there is no partition 5\n",
    );
  });

  it("--group consumes as a member, commits what it printed and leaves", async () => {
    await produceSample();
    const first = await c.cli(["consume", "orders", "--group", "billing", "--from", "earliest"]);
    expect(first.code).toBe(0);
    expect(first.stdout.split("\n").sort()).toEqual(["", "AAEC", "[1,2]", "a", "b", '{"n":1}']);
    expect(first.stderr).toBe("processed 5 records\n");

    const group = await c.client.admin.describeGroup("billing");
    expect(group.members).toEqual([]);
    expect(group.totalLag).toBe(0);
    expect(group.partitions.map((p) => [p.partition, p.currentOffset])).toEqual([
      [0, 3],
      [1, 2],
    ]);

    // Caught up: the next run prints only what was produced since.
    const producer = c.client.producer();
    await producer.send("orders", [{ value: "new", partition: 1 }]);
    await producer.close();
    const second = await c.cli(["consume", "orders", "--group", "billing", "--json"]);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ partition: 1, offset: 2, value: "new" });
  });

  it("--group with --max commits only the records it printed", async () => {
    await c.client.admin.createTopic("one", 1);
    const producer = c.client.producer();
    await producer.send(
      "one",
      ["a", "b", "c", "d"].map((value) => ({ value })),
    );
    await producer.close();
    const result = await c.cli([
      "consume",
      "one",
      "--group",
      "g",
      "--from",
      "earliest",
      "--max",
      "2",
    ]);
    expect(result.stdout).toBe("a\nb\n");
    const group = await c.client.admin.describeGroup("g");
    expect(group.partitions[0]).toMatchObject({ currentOffset: 2, lag: 2 });
    expect((await c.cli(["consume", "one", "--group", "g"])).stdout).toBe("c\nd\n");
  });

  it("--group on a new group without --from starts at the end (Kafka's latest)", async () => {
    await produceSample();
    expect(await c.cli(["consume", "orders", "--group", "fresh"])).toEqual({
      code: 0,
      stdout: "",
      stderr: "processed 0 records\n",
    });
  });

  it("--group refuses --partition and a --from other than earliest or latest", async () => {
    for (const args of [
      ["consume", "orders", "--group", "g", "--partition", "0"],
      ["consume", "orders", "--group", "g", "--from", "3"],
    ]) {
      const result = await c.cli(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^error: usage: /);
    }
  });

  it("--follow tails every partition until interrupted", async () => {
    await produceSample();
    const interrupt = new AbortController();
    const out = new Capture();
    const running = c.cli(["consume", "orders", "--follow", "--from", "latest"], {
      signal: interrupt.signal,
      out,
    });
    const producer = c.client.producer();
    await producer.send("orders", [
      { value: "x", partition: 0 },
      { value: "y", partition: 1 },
    ]);
    await producer.close();
    await until(() => out.text.split("\n").length === 3, "two records");
    interrupt.abort();
    const result = await running;
    expect(result.code).toBe(0);
    expect(out.text.split("\n").sort()).toEqual(["", "x", "y"]);
    expect(result.stderr).toBe("processed 2 records\n");
  });

  it("--follow --group leaves the group cleanly when interrupted, committed", async () => {
    const interrupt = new AbortController();
    const out = new Capture();
    const running = c.cli(
      ["consume", "orders", "--follow", "--group", "live", "--from", "earliest"],
      {
        signal: interrupt.signal,
        out,
      },
    );
    await until(
      async () =>
        (await c.client.admin.describeGroup("live").catch(() => null))?.members.length === 1,
      "the member to join",
    );
    await produceSample();
    await until(() => out.text.split("\n").length === 6, "five records");
    interrupt.abort();
    expect((await running).code).toBe(0);
    const group = await c.client.admin.describeGroup("live");
    expect(group.members).toEqual([]);
    expect(group.totalLag).toBe(0);
  });
});
