import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { tableDefinition } from "../../src/meta/dynamodb.js";

/**
 * infra/docker-compose.yml cannot run here (no Docker), so these checks read it as text: the
 * table it creates must be the adapter's, and nothing may listen beyond the loopback address.
 */
const compose = readFileSync(new URL("../../infra/docker-compose.yml", import.meta.url), "utf8");
/** The YAML without comments, so that commented-out lines cannot satisfy a check. */
const body = compose
  .split("\n")
  .filter((line) => !line.trimStart().startsWith("#"))
  .join("\n");

describe("infra/docker-compose.yml", () => {
  it("creates the table with tableDefinition's attributes, keys and billing", () => {
    const definition = tableDefinition("sluice");
    const attributes = (definition.AttributeDefinitions ?? [])
      .map((a) => `AttributeName=${a.AttributeName},AttributeType=${a.AttributeType}`)
      .join(" ");
    const keys = (definition.KeySchema ?? [])
      .map((k) => `AttributeName=${k.AttributeName},KeyType=${k.KeyType}`)
      .join(" ");
    expect(definition.GlobalSecondaryIndexes ?? []).toEqual([]);
    expect(definition.LocalSecondaryIndexes ?? []).toEqual([]);
    // The command is a folded YAML scalar: compare with whitespace runs collapsed.
    const flat = body.replace(/\s+/g, " ");
    expect(flat).toContain(`aws dynamodb create-table --table-name sluice`);
    expect(flat).toContain(`--attribute-definitions ${attributes} `);
    expect(flat).toContain(`--key-schema ${keys} `);
    expect(flat).toContain(`--billing-mode ${definition.BillingMode}`);
  });

  it("creates the bucket and runs DynamoDB Local in memory with one shared database", () => {
    expect(body).toContain('command: ["mb", "--ignore-existing", "local/sluice"]');
    expect(body).toContain('command: ["-jar", "DynamoDBLocal.jar", "-inMemory", "-sharedDb"]');
    expect(body).toMatch(/image: amazon\/dynamodb-local:\d/);
  });

  it("publishes ports 9000 and 8000 on 127.0.0.1 only", () => {
    const published = [...body.matchAll(/^\s*-\s*"([^"]*:\d+)"/gm)].map((m) => m[1]!);
    expect(published).toEqual(
      expect.arrayContaining(["127.0.0.1:9000:9000", "127.0.0.1:8000:8000"]),
    );
    for (const port of published) expect(port).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
  });

  it("pins every image to a release", () => {
    const images = [...body.matchAll(/^\s*image:\s*(\S+)/gm)].map((m) => m[1]!);
    expect(images.length).toBe(4);
    for (const image of images) expect(image).toMatch(/^[\w./-]+:(?!latest$)[\w.-]+$/);
  });
});
