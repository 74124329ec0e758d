import { randomUUID } from "node:crypto";
import {
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { topicConfigDefaults } from "../../src/config.js";
import { DynamoMetaStore, ensureTable } from "../../src/meta/dynamodb.js";
import type { CommittedOffset, GroupRecord } from "../../src/meta/group-store.js";
import type { TopicMeta } from "../../src/meta/meta-store.js";
import { groupStoreContract } from "../contract/group-store.case.js";
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

// The same table as the topics: groups share the catalog partition with them.
groupStoreContract("dynamodb", () => {
  const store = new DynamoMetaStore({ table, client });
  return Promise.resolve({ store, cleanup: () => store.close() });
});

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

describe("DynamoMetaStore groups", () => {
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

  const group = (): GroupRecord => ({
    name: `dynamo-group-${randomUUID().slice(0, 8)}`,
    incarnation: randomUUID(),
    createdAt: 1_700_000_000_000,
    version: 1,
    fence: 0,
    doc: '{"generation":0}',
  });

  const offset = (topic: string, partition: number, metadata: string | null = null) =>
    ({
      topic,
      partition,
      topicId: "topic-id",
      offset: partition,
      metadata,
      generation: null,
      memberId: null,
      committedAt: 1_700_000_000_001,
    }) satisfies CommittedOffset;

  it("keeps the documented single-table layout", async () => {
    const store = new DynamoMetaStore({ table, client });
    const g = group();
    const t = topic();
    await store.createTopic(t);
    expect(await store.putGroup(g, null)).toBe(true);
    expect(
      await store.writeOffsets(g.name, { incarnation: g.incarnation, fence: 0 }, [
        { value: offset("orders", 7), expected: null },
        { value: { ...offset("orders", 12), generation: 3, memberId: "m" }, expected: null },
      ]),
    ).toEqual({ ok: true });

    expect(await raw(`group#${g.name}`, "state")).toEqual({
      pk: { S: `group#${g.name}` },
      sk: { S: "state" },
      name: { S: g.name },
      incarnation: { S: g.incarnation },
      createdAt: { N: String(g.createdAt) },
      version: { N: "1" },
      fence: { N: "0" },
      doc: { S: g.doc },
    });
    expect(await raw("catalog", `group#${g.name}`)).toEqual({
      pk: { S: "catalog" },
      sk: { S: `group#${g.name}` },
      name: { S: g.name },
      incarnation: { S: g.incarnation },
      createdAt: { N: String(g.createdAt) },
    });
    // Zero-padded partitions, nulls stored as NULL, and the id of the write that stored it.
    const seven = await raw(`group#${g.name}`, "offset#orders#0007");
    expect(seven).toMatchObject({
      incarnation: { S: g.incarnation },
      topicId: { S: "topic-id" },
      offset: { N: "7" },
      metadata: { NULL: true },
      generation: { NULL: true },
      memberId: { NULL: true },
      committedAt: { N: "1700000000001" },
      writeId: { S: expect.any(String) },
    });
    expect(await raw(`group#${g.name}`, "offset#orders#0012")).toMatchObject({
      generation: { N: "3" },
      memberId: { S: "m" },
      writeId: seven?.writeId,
    });

    // The catalog holds both kinds; each list sees its own.
    expect((await store.listTopics()).map((x) => x.name)).toContain(t.name);
    expect((await store.listTopics()).map((x) => x.name)).not.toContain(g.name);
    expect((await store.listGroups()).map((x) => x.name)).toContain(g.name);
    expect((await store.listGroups()).map((x) => x.name)).not.toContain(t.name);

    expect(await store.deleteGroup(g.name, g.incarnation, 1)).toBe(true);
    expect(await raw(`group#${g.name}`, "state")).toBeUndefined();
    expect(await raw("catalog", `group#${g.name}`)).toBeUndefined();
    await store.close();
  });

  it("reads and purges offsets across query pages, in order", async () => {
    const store = new DynamoMetaStore({ table, client });
    const old = group();
    expect(await store.putGroup(old, null)).toBe(true);
    // 3 x 99 offsets of ~4 KB each: more than the 1 MB one Query page returns.
    const metadata = "m".repeat(4000);
    const values = Array.from({ length: 3 * store.maxOffsetsPerWrite }, (_, i) =>
      offset(`t${i % 3}`, Math.floor(i / 3), metadata),
    );
    for (let i = 0; i < values.length; i += store.maxOffsetsPerWrite) {
      const chunk = values.slice(i, i + store.maxOffsetsPerWrite);
      const writes = chunk.map((value) => ({ value, expected: null }));
      expect(
        await store.writeOffsets(old.name, { incarnation: old.incarnation, version: 1 }, writes),
      ).toEqual({ ok: true });
    }
    const firstPage = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": { S: `group#${old.name}` } },
        ConsistentRead: true,
      }),
    );
    expect(firstPage.LastEvaluatedKey).toBeDefined();

    const expected = [...values].sort((a, b) =>
      a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1,
    );
    expect(await store.getOffsets(old.name, old.incarnation)).toEqual(expected);

    // Re-created: the old incarnation's offsets are all purged, the group's state stays.
    expect(await store.deleteGroup(old.name, old.incarnation, 1)).toBe(true);
    const current = { ...group(), name: old.name };
    expect(await store.putGroup(current, null)).toBe(true);
    expect(await store.purgeOffsets(old.name, current.incarnation)).toBe(values.length);
    expect(await store.getOffsets(old.name, old.incarnation)).toEqual([]);
    expect(await store.getGroup(old.name)).toEqual(current);
    await store.close();
  });
});
