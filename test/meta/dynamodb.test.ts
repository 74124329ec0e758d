import { randomUUID } from "node:crypto";
import { type DynamoDBClient, GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { topicConfigDefaults } from "../../src/config.js";
import { DynamoMetaStore, ensureTable } from "../../src/meta/dynamodb.js";
import type { TopicMeta } from "../../src/meta/meta-store.js";
import { metaStoreContract } from "../contract/meta-store.case.js";
import {
  type DynamoEndpoint,
  dynamoEndpoint,
  makeDynamoClient,
} from "../support/standins/dynamodb.js";

const table = `sluice-meta-${randomUUID().slice(0, 8)}`;
let dynamo: DynamoEndpoint;
let client: DynamoDBClient;

beforeAll(async () => {
  dynamo = await dynamoEndpoint();
  client = makeDynamoClient(dynamo.endpoint);
  await ensureTable(client, table);
});

afterAll(async () => {
  client?.destroy();
  await dynamo?.stop();
});

metaStoreContract("dynamodb", () =>
  Promise.resolve({
    store: new DynamoMetaStore({ table, client }),
    cleanup: () => Promise.resolve(),
  }),
);

const topic = (partitions = 2): TopicMeta => ({
  name: `dynamo-${randomUUID().slice(0, 8)}`,
  id: randomUUID(),
  partitions,
  config: { ...topicConfigDefaults },
  createdAt: Date.now(),
});

describe("DynamoMetaStore", () => {
  it("keeps the documented single-table layout", async () => {
    const store = new DynamoMetaStore({ table, client });
    const t = topic();
    await store.createTopic(t);
    const entry = {
      baseOffset: 0,
      count: 3,
      bytes: 300,
      objectKey: "k/0",
      minTimestamp: 1,
      maxTimestamp: 2,
      kind: "chunk" as const,
    };
    await store.commitAppend({ topicId: t.id, partition: 1, expectedLogEndOffset: 0, entry });

    const raw = async (pk: string, sk: string) =>
      (
        await client.send(
          new GetItemCommand({
            TableName: table,
            Key: { pk: { S: pk }, sk: { S: sk } },
            ConsistentRead: true,
          }),
        )
      ).Item;
    expect((await raw(`topic#${t.name}`, "meta"))?.id).toEqual({ S: t.id });
    expect((await raw("catalog", `topic#${t.name}`))?.id).toEqual({ S: t.id });
    expect(await raw(`log#${t.id}#1`, "head")).toMatchObject({
      logStartOffset: { N: "0" },
      logEndOffset: { N: "3" },
    });
    expect(await raw(`log#${t.id}#1`, `seg#${"0".repeat(20)}`)).toMatchObject({
      objectKey: { S: "k/0" },
      count: { N: "3" },
      kind: { S: "chunk" },
    });
    // Heads appear with the first commit; an unwritten partition has none.
    expect(await raw(`log#${t.id}#0`, "head")).toBeUndefined();
    await store.close();
  });

  it("reports the exact head after another writer moved the log start offset", async () => {
    const store = new DynamoMetaStore({ table, client });
    const t = topic();
    await store.createTopic(t);
    const commit = (expectedLogEndOffset: number, count: number) =>
      store.commitAppend({
        topicId: t.id,
        partition: 0,
        expectedLogEndOffset,
        entry: {
          baseOffset: expectedLogEndOffset,
          count,
          bytes: count,
          objectKey: `k/${expectedLogEndOffset}`,
          minTimestamp: 1,
          maxTimestamp: 1,
          kind: "chunk",
        },
      });
    await commit(0, 10);
    // What retention will do: drop the front of the log behind this store's back.
    await client.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { pk: { S: `log#${t.id}#0` }, sk: { S: "head" } },
        UpdateExpression: "SET logStartOffset = :start",
        ExpressionAttributeValues: { ":start": { N: "5" } },
      }),
    );

    expect(await commit(10, 3)).toEqual({
      committed: true,
      head: { logStartOffset: 5, logEndOffset: 13 },
    });
    expect(await commit(13, 1)).toEqual({
      committed: true,
      head: { logStartOffset: 5, logEndOffset: 14 },
    });
    expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 5, logEndOffset: 14 });
    await store.close();
  });

  it("creates a topic with the most partitions allowed in one step", async () => {
    const store = new DynamoMetaStore({ table, client });
    const t = topic(1024);
    await store.createTopic(t);
    expect(await store.getHead(t.id, 1023)).toEqual({ logStartOffset: 0, logEndOffset: 0 });
    await store.close();
  });

  it("finds an existing table", async () => {
    await ensureTable(client, table);
  });

  it("builds its own client from the SDK's environment when given none", async () => {
    vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", dynamo.endpoint);
    vi.stubEnv("AWS_REGION", "us-east-1");
    vi.stubEnv("AWS_ACCESS_KEY_ID", "local");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "local");
    try {
      const store = new DynamoMetaStore({ table });
      const t = topic();
      await store.createTopic(t);
      expect(await store.getTopic(t.name)).toEqual(t);
      await store.close();
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
