import { randomBytes, randomUUID } from "node:crypto";
import {
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { isSluiceError } from "../../src/errors.js";
import { topicConfigDefaults } from "../../src/config.js";
import { DynamoMetaStore, ensureTable } from "../../src/meta/dynamodb.js";
import type { CommittedOffset, GroupRecord } from "../../src/meta/group-store.js";
import type { ApiKeyRecord } from "../../src/meta/key-store.js";
import type { IndexEntry, Intent, TopicMeta } from "../../src/meta/meta-store.js";
import { groupStoreContract } from "../contract/group-store.case.js";
import { keyStoreContract } from "../contract/key-store.case.js";
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

// The same table again: keys are listed through the catalog partition too.
keyStoreContract("dynamodb", () => {
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

describe("DynamoMetaStore keys", () => {
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

  const key = (overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord => ({
    id: ulid(),
    secretHash: new Uint8Array(randomBytes(32)),
    scopes: ["produce:orders"],
    description: "checkout",
    createdAt: 1_700_000_000_000,
    expiresAt: null,
    revokedAt: null,
    rateLimit: null,
    ...overrides,
  });

  it("keeps the documented single-table layout, with the digest in the key item alone", async () => {
    const store = new DynamoMetaStore({ table, client });
    const bare = key();
    const full = key({ expiresAt: 1_800_000_000_000, rateLimit: { perSecond: 2.5, burst: 10 } });
    await store.putKey(bare);
    await store.putKey(full);

    // Nulls are absent attributes: a NULL revokedAt would defeat if_not_exists.
    const common = {
      id: { S: bare.id },
      scopes: { L: [{ S: "produce:orders" }] },
      description: { S: "checkout" },
      createdAt: { N: "1700000000000" },
    };
    expect(await raw(`key#${bare.id}`, "meta")).toEqual({
      pk: { S: `key#${bare.id}` },
      sk: { S: "meta" },
      ...common,
      secretHash: { B: bare.secretHash },
    });
    expect(await raw("catalog", `key#${bare.id}`)).toEqual({
      pk: { S: "catalog" },
      sk: { S: `key#${bare.id}` },
      ...common,
    });
    const fullCatalog = await raw("catalog", `key#${full.id}`);
    expect(fullCatalog).toMatchObject({
      expiresAt: { N: "1800000000000" },
      rateLimit: { M: { perSecond: { N: "2.5" }, burst: { N: "10" } } },
    });
    expect(fullCatalog).not.toHaveProperty("secretHash");
    expect(fullCatalog).not.toHaveProperty("revokedAt");

    // A revocation marks both items.
    expect(await store.revokeKey(full.id, 1_700_000_000_500)).toBe(true);
    expect((await raw(`key#${full.id}`, "meta"))?.revokedAt).toEqual({ N: "1700000000500" });
    expect((await raw("catalog", `key#${full.id}`))?.revokedAt).toEqual({ N: "1700000000500" });

    // An unknown key's revocation writes no item of either kind.
    const unknown = ulid();
    expect(await store.revokeKey(unknown, 1)).toBe(false);
    expect(await raw(`key#${unknown}`, "meta")).toBeUndefined();
    expect(await raw("catalog", `key#${unknown}`)).toBeUndefined();

    // The catalog holds topics, groups and keys; each list sees its own.
    const t = topic();
    await store.createTopic(t);
    expect((await store.listKeys()).map((k) => k.id)).not.toContain(t.name);
    expect((await store.listTopics()).map((x) => x.name)).not.toContain(bare.id);
    expect((await store.listGroups()).map((x) => x.name)).not.toContain(bare.id);
    await store.close();
  });

  it("takes a resend of its own put, whose answer was lost, as the success it was", async () => {
    const store = new DynamoMetaStore({ table, client });
    const k = key();
    await store.putKey(k);
    // DynamoDB matches a resend to its first attempt by ClientRequestToken for ten minutes
    // only; after that the put finds its own digest and must not report a conflict.
    await store.putKey({ ...k, secretHash: new Uint8Array(k.secretHash) });
    await expect(store.putKey({ ...k, secretHash: new Uint8Array(32) })).rejects.toSatisfy((err) =>
      isSluiceError(err, "conflict"),
    );
    expect(await store.getKey(k.id)).toEqual(k);
    await store.close();
  });
});

describe("DynamoMetaStore segments", () => {
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
  const pad = (n: number) => String(n).padStart(20, "0");

  const chunk = (baseOffset: number, count: number): IndexEntry => ({
    baseOffset,
    count,
    bytes: 10 * count,
    objectKey: `chunks/${randomUUID()}/${pad(baseOffset)}.log`,
    minTimestamp: 1_000 + baseOffset,
    maxTimestamp: 1_000 + baseOffset + count,
    kind: "chunk",
  });

  const sealedOf = (chunks: IndexEntry[], rollId = randomUUID()): IndexEntry => ({
    baseOffset: chunks[0]!.baseOffset,
    count: chunks.reduce((n, c) => n + c.count, 0),
    bytes: chunks.reduce((n, c) => n + c.bytes, 0),
    objectKey: `segments/${pad(chunks[0]!.baseOffset)}-${rollId}.log`,
    minTimestamp: chunks[0]!.minTimestamp,
    maxTimestamp: chunks[chunks.length - 1]!.maxTimestamp,
    kind: "sealed",
    footer: { position: 1_234, length: 80 },
  });

  const rollIntent = (chunks: IndexEntry[], sealed: IndexEntry, id: string): Intent => ({
    kind: "roll",
    baseOffset: sealed.baseOffset,
    id,
    objectKeys: chunks.map((c) => c.objectKey),
    sealedKey: sealed.objectKey,
    createdAt: 5_000,
    doneAt: null,
  });

  async function commitAll(store: DynamoMetaStore, t: TopicMeta, p: number, counts: number[]) {
    const entries: IndexEntry[] = [];
    for (const count of counts) {
      const { logEndOffset } = await store.getHead(t.id, p);
      const e = chunk(logEndOffset, count);
      const result = await store.commitAppend({
        topicId: t.id,
        partition: p,
        expectedLogEndOffset: logEndOffset,
        entry: e,
      });
      expect(result.committed).toBe(true);
      entries.push(e);
    }
    return entries;
  }

  /** Rolls `chunks` into one sealed entry through the port, as maintenance does. */
  async function roll(store: DynamoMetaStore, t: TopicMeta, p: number, chunks: IndexEntry[]) {
    const id = randomUUID();
    const sealed = sealedOf(chunks, id);
    const intent = rollIntent(chunks, sealed, id);
    expect(await store.beginIntent(t, p, intent)).toBe(true);
    expect(await store.replaceEntries(t.id, p, id, chunks, sealed, 6_000)).toBe(true);
    return { sealed, intent };
  }

  it("keeps the documented layout for sealed entries, intents and tombstones", async () => {
    const store = new DynamoMetaStore({ table, client });
    const t = topic(3);
    await store.createTopic(t);
    const chunks = await commitAll(store, t, 1, [2, 3]);
    const id = randomUUID();
    const sealed = sealedOf(chunks, id);
    expect(await store.beginIntent(t, 1, rollIntent(chunks, sealed, id))).toBe(true);
    const pk = `log#${t.id}#1`;
    expect(await raw(pk, `gc#roll#${pad(0)}`)).toEqual({
      pk: { S: pk },
      sk: { S: `gc#roll#${pad(0)}` },
      id: { S: id },
      objectKeys: { L: chunks.map((c) => ({ S: c.objectKey })) },
      sealedKey: { S: sealed.objectKey },
      createdAt: { N: "5000" },
    });

    expect(await store.replaceEntries(t.id, 1, id, chunks, sealed, 6_000)).toBe(true);
    expect(await raw(pk, `seg#${pad(0)}`)).toMatchObject({
      objectKey: { S: sealed.objectKey },
      count: { N: "5" },
      kind: { S: "sealed" },
      footerPosition: { N: "1234" },
      footerLength: { N: "80" },
    });
    expect(await raw(pk, `seg#${pad(2)}`)).toBeUndefined();
    expect(await raw(pk, `gc#roll#${pad(0)}`)).toMatchObject({ doneAt: { N: "6000" } });
    // Rolls never touch the head.
    expect(await raw(pk, "head")).toMatchObject({
      logStartOffset: { N: "0" },
      logEndOffset: { N: "5" },
    });

    expect(await store.deleteTopic(t.name, t.id)).toBe(true);
    const tombstone = await raw("catalog", `dead#${t.id}`);
    expect(tombstone).toMatchObject({
      id: { S: t.id },
      name: { S: t.name },
      partitions: { N: "3" },
      deletedAt: { N: expect.any(String) },
    });
    // Tombstones share the catalog partition without showing up as topics or groups.
    expect((await store.listTopics()).map((x) => x.id)).not.toContain(t.id);
    expect((await store.listGroups()).map((x) => x.name)).not.toContain(t.name);
    await store.close();
  });

  it("rolls, lists and retires through the port", async () => {
    const store = new DynamoMetaStore({ table, client });
    const t = topic(1);
    await store.createTopic(t);
    const chunks = await commitAll(store, t, 0, [2, 3, 4, 1, 5]);
    const { sealed: first, intent: firstRoll } = await roll(store, t, 0, chunks.slice(0, 2));
    const { sealed: second, intent: secondRoll } = await roll(store, t, 0, chunks.slice(2, 4));
    const active = chunks[4]!;

    expect(await store.readIndex(t.id, 0, 0, 10)).toEqual([first, second, active]);
    expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([first, second, active]);
    expect(await store.listEntries(t.id, 0, 1, 10)).toEqual([second, active]);
    expect(await store.listEntries(t.id, 0, 5, 1)).toEqual([second]);
    expect(await store.listEntries(t.id, 0, 11, 10)).toEqual([]);
    expect(await store.listEntries(t.id, 0, 0, 0)).toEqual([]);

    // A stale key: nothing changes, and the intent stays pending for its abort.
    const late = [chunks[4]!];
    const lateId = randomUUID();
    const lateSealed = sealedOf(late, lateId);
    expect(await store.beginIntent(t, 0, rollIntent(late, lateSealed, lateId))).toBe(true);
    const stale = { ...chunks[4]!, objectKey: "chunks/gone.log" };
    expect(await store.replaceEntries(t.id, 0, lateId, [stale], lateSealed, 7_000)).toBe(false);
    expect(await store.readIndex(t.id, 0, 0, 10)).toEqual([first, second, active]);
    expect(await store.abortIntent(t.id, 0, "roll", 10, lateId)).toBe(true);
    expect(await store.abortIntent(t.id, 0, "roll", 10, lateId)).toBe(false);

    const retireId = randomUUID();
    const retire: Intent = {
      kind: "retire",
      baseOffset: 0,
      id: retireId,
      objectKeys: [first.objectKey],
      sealedKey: null,
      createdAt: 8_000,
      doneAt: null,
    };
    expect(await store.beginIntent(t, 0, retire)).toBe(true);
    // Only one intent per kind and base.
    expect(await store.beginIntent(t, 0, { ...retire, id: randomUUID() })).toBe(false);
    expect(await store.advanceLogStart(t.id, 0, retireId, 5, [second], 9_000)).toBe(false);
    expect(await store.advanceLogStart(t.id, 0, retireId, 0, [first], 9_000)).toBe(true);
    expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 5, logEndOffset: 15 });
    expect(await store.readIndex(t.id, 0, 0, 10)).toEqual([]);
    expect(await store.readIndex(t.id, 0, 5, 10)).toEqual([second, active]);
    // Done: neither applies again nor aborts.
    expect(await store.advanceLogStart(t.id, 0, randomUUID(), 5, [second], 9_500)).toBe(false);
    expect(await store.abortIntent(t.id, 0, "retire", 0, retireId)).toBe(false);

    // By kind, then by base offset.
    expect(await store.listIntents(t.id, 0)).toEqual([
      { ...retire, doneAt: 9_000 },
      { ...firstRoll, doneAt: 6_000 },
      { ...secondRoll, doneAt: 6_000 },
    ]);
    await store.dropIntent(t.id, 0, "retire", 0);
    expect((await store.listIntents(t.id, 0)).map((i) => i.kind)).toEqual(["roll", "roll"]);
    await store.close();
  });

  it("pins the new log start in this process's next commit, and others learn it", async () => {
    const store = new DynamoMetaStore({ table, client });
    const other = new DynamoMetaStore({ table, client });
    const t = topic(1);
    await store.createTopic(t);
    const chunks = await commitAll(store, t, 0, [4, 6]);
    expect(await other.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 10 });
    const { sealed } = await roll(store, t, 0, chunks.slice(0, 1));
    const id = randomUUID();
    const retire: Intent = {
      kind: "retire",
      baseOffset: 0,
      id,
      objectKeys: [sealed.objectKey],
      sealedKey: null,
      createdAt: 1,
      doneAt: null,
    };
    expect(await store.beginIntent(t, 0, retire)).toBe(true);
    expect(await store.advanceLogStart(t.id, 0, id, 0, [sealed], 2)).toBe(true);

    const next = (expectedLogEndOffset: number) => ({
      topicId: t.id,
      partition: 0,
      expectedLogEndOffset,
      entry: chunk(expectedLogEndOffset, 1),
    });
    expect(await store.commitAppend(next(10))).toEqual({
      committed: true,
      head: { logStartOffset: 4, logEndOffset: 11 },
    });
    expect(await other.commitAppend(next(11))).toEqual({
      committed: true,
      head: { logStartOffset: 4, logEndOffset: 12 },
    });
    await store.close();
    await other.close();
  });

  it("swaps the most chunks allowed in one transaction", async () => {
    const store = new DynamoMetaStore({ table, client });
    const t = topic(1);
    await store.createTopic(t);
    const chunks = await commitAll(
      store,
      t,
      0,
      Array.from({ length: store.maxReplacedPerRoll }, () => 1),
    );
    const { sealed } = await roll(store, t, 0, chunks);
    expect(await store.readIndex(t.id, 0, 0, 200)).toEqual([sealed]);
    expect(store.maxReplacedPerRoll).toBe(99);
    expect(store.maxRemovedPerAdvance).toBe(98);
    await store.close();
  });

  it("admits one of 8 racing intents, and none for a deleted or re-created topic", async () => {
    const store = new DynamoMetaStore({ table, client });
    const t = topic(1);
    await store.createTopic(t);
    const intent = (id: string): Intent => ({
      kind: "roll",
      baseOffset: 0,
      id,
      objectKeys: [],
      sealedKey: `segments/${id}.log`,
      createdAt: 1,
      doneAt: null,
    });
    const results = await Promise.all(
      Array.from({ length: 8 }, () => store.beginIntent(t, 0, intent(randomUUID()))),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.listIntents(t.id, 0)).toHaveLength(1);

    expect(await store.beginIntent({ ...t, id: randomUUID() }, 0, intent(randomUUID()))).toBe(
      false,
    );
    expect(await store.deleteTopic(t.name, t.id)).toBe(true);
    expect(await store.beginIntent(t, 1, intent(randomUUID()))).toBe(false);
    expect(await store.listIntents(t.id, 1)).toEqual([]);
    await store.close();
  });

  it("lets exactly one of a swap and an abort apply", async () => {
    const store = new DynamoMetaStore({ table, client });
    const t = topic(1);
    await store.createTopic(t);
    for (let round = 0; round < 6; round++) {
      const chunks = await commitAll(store, t, 0, [1, 1]);
      const id = randomUUID();
      const sealed = sealedOf(chunks, id);
      expect(await store.beginIntent(t, 0, rollIntent(chunks, sealed, id))).toBe(true);
      const results = await Promise.allSettled([
        store.replaceEntries(t.id, 0, id, chunks, sealed, 1),
        store.abortIntent(t.id, 0, "roll", sealed.baseOffset, id),
      ]);
      // A transaction conflict may leave an outcome open; the survivor settles it.
      const [swapped, aborted] = results.map((r) => (r.status === "fulfilled" ? r.value : null));
      for (const r of results) {
        if (r.status === "rejected") {
          expect(isSluiceError(r.reason, "storage_unavailable")).toBe(true);
        }
      }
      expect(swapped && aborted).toBeFalsy();
      const index = await store.listEntries(t.id, 0, sealed.baseOffset, 10);
      const intents = await store.listIntents(t.id, 0);
      const mine = intents.find((i) => i.id === id);
      if (swapped) {
        expect(index).toEqual([sealed]);
        expect(mine?.doneAt).toBe(1);
      } else if (aborted) {
        expect(index).toEqual(chunks);
        expect(mine).toBeUndefined();
      }
    }
    await store.close();
  });

  it("purges a dead partition in steps of the limit, then forgets the topic", async () => {
    const store = new DynamoMetaStore({ table, client });
    const t = topic(2);
    await store.createTopic(t);
    // 60 entries, a head and an intent: more than two BatchWriteItem calls.
    await commitAll(
      store,
      t,
      1,
      Array.from({ length: 60 }, () => 1),
    );
    const id = randomUUID();
    await store.beginIntent(t, 1, {
      kind: "retire",
      baseOffset: 0,
      id,
      objectKeys: [],
      sealedKey: null,
      createdAt: 1,
      doneAt: null,
    });
    await commitAll(store, t, 0, [3]);
    expect(await store.deleteTopic(t.name, t.id)).toBe(true);
    const [dead] = (await store.listDeletedTopics()).filter((d) => d.id === t.id);
    expect(dead).toEqual({
      id: t.id,
      name: t.name,
      partitions: 2,
      deletedAt: expect.any(Number),
    });

    // The head goes last, so a writer that still has the topic cached never sees offset 0.
    expect(await store.purgePartition(t.id, 1, 50)).toBe(49);
    expect(await store.purgePartition(t.id, 1, 50)).toBe(12);
    expect(await store.getHead(t.id, 1)).toEqual({ logStartOffset: 0, logEndOffset: 60 });
    expect(await store.purgePartition(t.id, 1, 50)).toBe(1);
    expect(await store.purgePartition(t.id, 1, 50)).toBe(0);
    expect(await store.getHead(t.id, 1)).toEqual({ logStartOffset: 0, logEndOffset: 0 });
    expect(await store.listIntents(t.id, 1)).toEqual([]);
    expect(await store.purgePartition(t.id, 0, 0)).toBe(0);
    expect(await store.purgePartition(t.id, 0, 1_000)).toBe(1);
    expect(await store.purgePartition(t.id, 0, 1_000)).toBe(1);

    await store.forgetDeletedTopic(t.id);
    expect((await store.listDeletedTopics()).map((d) => d.id)).not.toContain(t.id);
    await store.close();
  });
});
