import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { partitionForKey } from "../../src/log/murmur2.js";
import { cliHarness, type CliHarness } from "./support.js";

describe("sluice produce", () => {
  let c: CliHarness;
  beforeEach(async () => {
    c = await cliHarness();
    await c.client.admin.createTopic("orders", 4);
  });
  afterEach(() => c.close());

  const readAll = async (partition: number) =>
    (await c.client.fetch("orders", partition, 0, { maxRecords: 1000 })).records;

  it("produces stdin lines with keys, printing PARTITION:OFFSET per line in input order", async () => {
    const keys = ["alice", "bob", "carol", "alice", "dave", "bob"];
    const stdin = keys.map((k, i) => `${k}=value ${i}\n`).join("");
    const result = await c.cli(["produce", "orders", "--key-separator", "="], { stdin });
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("produced 6 records\n");

    const lines = result.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(6);
    const next = new Map<number, number>();
    lines.forEach((l, i) => {
      const [partition, offset] = l.split(":").map(Number);
      // Kafka's partitioner: a key lands where it would in Kafka; offsets count up per partition.
      expect(partition).toBe(partitionForKey(new TextEncoder().encode(keys[i]), 4));
      expect(offset).toBe(next.get(partition!) ?? 0);
      next.set(partition!, offset! + 1);
    });

    const alice = await readAll(partitionForKey(new TextEncoder().encode("alice"), 4));
    expect(alice.filter((r) => r.key === "alice").map((r) => r.value)).toEqual([
      "value 0",
      "value 3",
    ]);
  });

  it("splits on the first separator only, and keeps values as strings", async () => {
    const result = await c.cli(["produce", "orders", "--key-separator", "::", "--partition", "2"], {
      stdin: 'k1::a::b\nk2::{"not":"parsed"}\n::empty key\n',
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("2:0\n2:1\n2:2\n");
    expect((await readAll(2)).map((r) => [r.key, r.value])).toEqual([
      ["k1", "a::b"],
      ["k2", '{"not":"parsed"}'],
      ["", "empty key"],
    ]);
  });

  it("parses values as JSON with --json-values and prints the offsets as JSON with --json", async () => {
    const result = await c.cli(
      ["produce", "orders", "--json-values", "--partition", "1", "--json"],
      { stdin: '{"item":"tea","qty":2}\n\n42\r\n"text"\n[1,2]\nnull' },
    );
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(
      [0, 1, 2, 3, 4].map((offset) => ({ partition: 1, offset })),
    );
    expect(result.stderr).toBe("produced 5 records\n");
    expect((await readAll(1)).map((r) => r.value)).toEqual([
      { item: "tea", qty: 2 },
      42,
      "text",
      [1, 2],
      null,
    ]);
  });

  it("produces nothing from an empty stdin", async () => {
    expect(await c.cli(["produce", "orders"])).toEqual({
      code: 0,
      stdout: "",
      stderr: "produced 0 records\n",
    });
  });

  it("reports a bad line after producing the lines before it", async () => {
    const noKey = await c.cli(["produce", "orders", "--key-separator", ":", "--partition", "0"], {
      stdin: "a:1\nb:2\nno separator\nc:3\n",
    });
    expect(noKey).toEqual({
      code: 1,
      stdout: "0:0\n0:1\n",
      stderr: 'produced 2 records\nerror: invalid_input: line 3 has no key separator ":"\n',
    });
    const badJson = await c.cli(["produce", "orders", "--json-values", "--partition", "3"], {
      stdin: '{"ok":true}\n{broken\n',
    });
    expect(badJson.code).toBe(1);
    expect(badJson.stdout).toBe("3:0\n");
    expect(badJson.stderr).toMatch(/^produced 1 record\nerror: invalid_json: line 2 is not JSON: /);
  });

  it("exits 1 with the server's code for an unknown topic", async () => {
    const result = await c.cli(["produce", "nope"], { stdin: "a\nb\n" });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      'produced 0 records\nerror: topic_not_found: topic "nope" does not exist\n',
    );
  });
});
