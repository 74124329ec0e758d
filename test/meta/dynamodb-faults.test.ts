import { randomUUID } from "node:crypto";
import {
  type AttributeValue,
  type DynamoDBClient,
  PutItemCommand,
  ResourceNotFoundException,
  ConditionalCheckFailedException,
  ThrottlingException,
  TransactionCanceledException,
  TransactionConflictException,
  type CancellationReason,
} from "@aws-sdk/client-dynamodb";
import {
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type TransactWriteCommandInput,
  TransactWriteCommand,
} from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { topicConfigDefaults } from "../../src/config.js";
import { isSluiceError } from "../../src/errors.js";
import { DynamoMetaStore, ensureTable } from "../../src/meta/dynamodb.js";
import type { CommittedOffset, GroupRecord, OffsetWrite } from "../../src/meta/group-store.js";
import type { CommitRequest, IndexEntry, Intent, TopicMeta } from "../../src/meta/meta-store.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";
import { makeHarness } from "../support/harness.js";
import {
  type DynamoEndpoint,
  dynamoEndpoint,
  makeDynamoClient,
} from "../support/standins/dynamodb.js";

const table = `sluice-faults-${randomUUID().slice(0, 8)}`;
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

const topic = (): TopicMeta => ({
  name: `faults-${randomUUID().slice(0, 8)}`,
  id: randomUUID(),
  partitions: 1,
  config: { ...topicConfigDefaults },
  createdAt: Date.now(),
});

const entry = (baseOffset: number, count: number): IndexEntry => ({
  baseOffset,
  count,
  bytes: count * 10,
  objectKey: `objects/${randomUUID()}.log`,
  minTimestamp: 1,
  maxTimestamp: 2,
  kind: "chunk",
});

const canceled = (...reasons: CancellationReason[]) =>
  new TransactionCanceledException({
    message: `Transaction cancelled, reasons [${reasons.map((r) => r.Code).join(", ")}]`,
    $metadata: { httpStatusCode: 400 },
    CancellationReasons: reasons,
  });

/** A raw head item as DynamoDB returns it in a cancellation reason. */
const headItem = (logStartOffset: number, logEndOffset: number) => ({
  pk: { S: "ignored" },
  sk: { S: "head" },
  logStartOffset: { N: String(logStartOffset) },
  logEndOffset: { N: String(logEndOffset) },
});

/** A topic whose partition 0 holds one committed entry [0, 4). */
async function seeded(store: DynamoMetaStore) {
  const t = topic();
  await store.createTopic(t);
  const first = entry(0, 4);
  await store.commitAppend({ topicId: t.id, partition: 0, expectedLogEndOffset: 0, entry: first });
  const next: CommitRequest = {
    topicId: t.id,
    partition: 0,
    expectedLogEndOffset: 4,
    entry: entry(4, 3),
  };
  return { t, first, next };
}

/**
 * Lets the next TransactWriteItems through to DynamoDB and then throws a timeout in place of
 * its answer: the write happened, its sender cannot know. `insideRetries` puts the fault
 * where the SDK retries it (resending the same request); otherwise the adapter sees it.
 */
function loseNextCommitAnswer(
  faulty: DynamoDBClient,
  { insideRetries }: { insideRetries: boolean },
) {
  const fault = { armed: false, lost: 0 };
  const loseAnswer = async <T>(context: { commandName?: string }, send: () => Promise<T>) => {
    const result = await send();
    if (fault.armed && context.commandName === "TransactWriteItemsCommand") {
      fault.armed = false;
      fault.lost++;
      throw Object.assign(new Error("the answer never came"), { name: "TimeoutError" });
    }
    return result;
  };
  const name = "loseCommitAnswer";
  if (insideRetries) {
    faulty.middlewareStack.add((next, context) => (args) => loseAnswer(context, () => next(args)), {
      step: "deserialize",
      name,
    });
  } else {
    faulty.middlewareStack.add((next, context) => (args) => loseAnswer(context, () => next(args)), {
      step: "initialize",
      name,
    });
  }
  return fault;
}

/**
 * Lets the next TransactWriteItems reach DynamoDB, drops its answer, and sends it once more,
 * serialized anew: the resend carries a new ClientRequestToken, so DynamoDB cannot answer it
 * with the first attempt's success (as after its ten-minute idempotency window). `between`
 * runs after the first attempt has landed.
 */
function resendNextTransaction(faulty: DynamoDBClient, between?: () => Promise<void>) {
  const fault = { armed: false, resent: 0, resendError: undefined as string | undefined };
  faulty.middlewareStack.add(
    (next, context) => async (args) => {
      if (!fault.armed || context.commandName !== "TransactWriteItemsCommand") return next(args);
      fault.armed = false;
      await next(args);
      await between?.();
      fault.resent++;
      try {
        return await next(args);
      } catch (err) {
        fault.resendError = (err as Error).name;
        throw err;
      }
    },
    { step: "initialize", name: "resendTransaction" },
  );
  return fault;
}

const group = (): GroupRecord => ({
  name: `faults-group-${randomUUID().slice(0, 8)}`,
  incarnation: randomUUID(),
  createdAt: 1_700_000_000_000,
  version: 1,
  fence: 0,
  doc: '{"generation":1}',
});

const committed = (topic: string, partition: number, offset: number): CommittedOffset => ({
  topic,
  partition,
  topicId: "topic-id",
  offset,
  metadata: `at ${offset}`,
  generation: 1,
  memberId: "member-a",
  committedAt: Date.now(),
});

/** A document-client item as DynamoDB returns it raw, in a cancellation reason. */
const rawItem = (item: Record<string, unknown>): Record<string, AttributeValue> =>
  Object.fromEntries(
    Object.entries(item).map(([k, v]): [string, AttributeValue] => [
      k,
      v === null ? { NULL: true } : typeof v === "number" ? { N: String(v) } : { S: v as string },
    ]),
  );

/** Stubs the prototype, so every document client, the adapter's included, answers from it. */
const mockDynamo = () => mockClient(DynamoDBDocumentClient);

/** The sealed entry a roll of `chunks` uploads, under the roll's unique key. */
const sealedOf = (chunks: IndexEntry[], rollId: string): IndexEntry => ({
  baseOffset: chunks[0]!.baseOffset,
  count: chunks.reduce((n, c) => n + c.count, 0),
  bytes: chunks.reduce((n, c) => n + c.bytes, 0) + 80,
  objectKey: `segments/${String(chunks[0]!.baseOffset).padStart(20, "0")}-${rollId}.log`,
  minTimestamp: 1,
  maxTimestamp: 2,
  kind: "sealed",
  footer: { position: chunks.reduce((n, c) => n + c.bytes, 0), length: 80 },
});

const pendingIntent = (kind: Intent["kind"], baseOffset: number, id: string): Intent => ({
  kind,
  baseOffset,
  id,
  objectKeys: [],
  sealedKey: null,
  createdAt: 1,
  doneAt: null,
});

/** A raw intent item as DynamoDB returns it in a cancellation reason. */
const intentItem = (id: string, doneAt?: number) => ({
  id: { S: id },
  objectKeys: { L: [] },
  createdAt: { N: "1" },
  ...(doneAt === undefined ? {} : { doneAt: { N: String(doneAt) } }),
});

/** Three chunks [0, 6) and the sealed entry rolling the first two; nothing is written. */
const swap = () => {
  const chunks = [entry(0, 2), entry(2, 2), entry(4, 2)];
  const rollId = randomUUID();
  return { chunks, rollId, sealed: sealedOf(chunks.slice(0, 2), rollId) };
};

/** Two sealed segments [0, 5) and [5, 9). */
const segments = (): IndexEntry[] => [
  { ...sealedOf([entry(0, 5)], randomUUID()) },
  { ...sealedOf([entry(5, 4)], randomUUID()) },
];

describe("DynamoMetaStore with DynamoDB answers injected", () => {
  let store: DynamoMetaStore;
  let ddb: ReturnType<typeof mockDynamo> | undefined;

  beforeEach(() => {
    store = new DynamoMetaStore({ table, client });
  });

  afterEach(async () => {
    ddb?.restore();
    ddb = undefined;
    await store.close();
  });

  it("reports throttling that outlasted the SDK's retries as storage_unavailable and moves nothing", async () => {
    const { t, first, next } = await seeded(store);
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      .rejects(new ThrottlingException({ message: "Rate exceeded", $metadata: {} }));

    const err = await store.commitAppend(next).catch((e: unknown) => e);
    expect(isSluiceError(err, "storage_unavailable")).toBe(true);
    expect((err as Error).cause).toBeInstanceOf(ThrottlingException);

    ddb.restore();
    expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 4 });
    expect(await store.readIndex(t.id, 0, 0, 10)).toEqual([first]);
  });

  it("reports a failed head condition as a lost race with the head DynamoDB returned", async () => {
    const { next } = await seeded(store);
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      .rejects(
        canceled({ Code: "ConditionalCheckFailed", Item: headItem(2, 9) }, { Code: "None" }),
      );

    expect(await store.commitAppend(next)).toEqual({
      committed: false,
      head: { logStartOffset: 2, logEndOffset: 9 },
    });
  });

  it("refuses, without retry, an entry that already exists beyond the log end", async () => {
    const { next } = await seeded(store);
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      .rejects(
        canceled(
          { Code: "None" },
          { Code: "ConditionalCheckFailed", Item: { objectKey: { S: "someone/else.log" } } },
        ),
      );

    const err = await store.commitAppend(next).catch((e: unknown) => e);
    expect(isSluiceError(err, "internal")).toBe(true);
    expect((err as { retryable: boolean }).retryable).toBe(false);
  });

  it("reports a transaction conflict as storage_unavailable", async () => {
    const { next } = await seeded(store);
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      .rejects(canceled({ Code: "TransactionConflict" }, { Code: "None" }));

    const err = await store.commitAppend(next).catch((e: unknown) => e);
    expect(isSluiceError(err, "storage_unavailable")).toBe(true);
  });

  it("recognizes its own earlier attempt by the object key at the base", async () => {
    const { next } = await seeded(store);
    const sameObject = { objectKey: { S: next.entry.objectKey } };
    const otherObject = { objectKey: { S: "another/writer.log" } };
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: headItem(0, 12) },
          { Code: "ConditionalCheckFailed", Item: sameObject },
        ),
      )
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: headItem(0, 12) },
          { Code: "ConditionalCheckFailed", Item: otherObject },
        ),
      );

    expect(await store.commitAppend(next)).toEqual({
      committed: true,
      head: { logStartOffset: 0, logEndOffset: 7 },
    });
    expect(await store.commitAppend(next)).toEqual({
      committed: false,
      head: { logStartOffset: 0, logEndOffset: 12 },
    });
  });

  it("tells a producer conflict from a lost race and from a transient cancellation", async () => {
    const { next } = await seeded(store);
    const withProducer: CommitRequest = {
      ...next,
      producers: [
        {
          producerId: "p",
          expected: 3,
          state: {
            epoch: 0,
            lastSeq: 4,
            recent: [{ seq: 4, baseOffset: 4, count: 3 }],
            updatedAt: 1,
            version: 4,
          },
        },
      ],
    };
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      .rejectsOnce(canceled({ Code: "None" }, { Code: "None" }, { Code: "ConditionalCheckFailed" }))
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: headItem(0, 12) },
          { Code: "None" },
          { Code: "ConditionalCheckFailed" },
        ),
      )
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: headItem(0, 12) },
          { Code: "None" },
          { Code: "None" },
        ),
      )
      .rejectsOnce(canceled({ Code: "None" }, { Code: "None" }, { Code: "TransactionConflict" }))
      // A resend of our own commit: our object at the base decides, whatever the producer says.
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: headItem(0, 7) },
          { Code: "ConditionalCheckFailed", Item: { objectKey: { S: next.entry.objectKey } } },
          { Code: "ConditionalCheckFailed" },
        ),
      );

    expect(await store.commitAppend(withProducer)).toEqual({
      committed: false,
      head: { logStartOffset: 0, logEndOffset: 4 },
      producerConflict: true,
    });
    expect(await store.commitAppend(withProducer)).toEqual({
      committed: false,
      head: { logStartOffset: 0, logEndOffset: 12 },
      producerConflict: true,
    });
    expect(await store.commitAppend(withProducer)).toEqual({
      committed: false,
      head: { logStartOffset: 0, logEndOffset: 12 },
    });
    const err = await store.commitAppend(withProducer).catch((e: unknown) => e);
    expect(isSluiceError(err, "storage_unavailable")).toBe(true);
    expect(await store.commitAppend(withProducer)).toEqual({
      committed: true,
      head: { logStartOffset: 0, logEndOffset: 7 },
    });
  });

  it("takes a create cancelled by its own topic id for a replay of itself", async () => {
    const t = topic();
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      .rejectsOnce(canceled({ Code: "ConditionalCheckFailed", Item: { id: { S: t.id } } }))
      .rejectsOnce(canceled({ Code: "ConditionalCheckFailed", Item: { id: { S: "another" } } }));

    await store.createTopic(t);
    await expect(store.createTopic(t)).rejects.toSatisfy((err) =>
      isSluiceError(err, "topic_exists"),
    );
  });

  it("reports throttling of a group write as storage_unavailable and changes nothing", async () => {
    const g = group();
    expect(await store.putGroup(g, null)).toBe(true);
    ddb = mockDynamo();
    const throttled = new ThrottlingException({ message: "Rate exceeded", $metadata: {} });
    ddb.on(TransactWriteCommand).rejects(throttled).on(PutCommand).rejects(throttled);

    for (const write of [
      () => store.putGroup({ ...g, version: 2, doc: "{}" }, 1),
      () => store.putGroup(group(), null),
      () => store.deleteGroup(g.name, g.incarnation, 1),
      () =>
        store.writeOffsets(g.name, { incarnation: g.incarnation, fence: 0 }, [
          { value: committed("t", 0, 1), expected: null },
        ]),
    ]) {
      const err = await write().catch((e: unknown) => e);
      expect(isSluiceError(err, "storage_unavailable")).toBe(true);
      expect((err as Error).cause).toBe(throttled);
    }

    ddb.restore();
    expect(await store.getGroup(g.name)).toEqual(g);
    expect(await store.getOffsets(g.name, g.incarnation)).toEqual([]);
  });

  it("reports a replace that met a transaction in flight as storage_unavailable", async () => {
    const g = group();
    ddb = mockDynamo();
    ddb.on(PutCommand).rejects(
      new TransactionConflictException({
        message: "Transaction is ongoing for the item",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const err = await store.putGroup({ ...g, version: 2 }, 1).catch((e: unknown) => e);
    expect(isSluiceError(err, "storage_unavailable")).toBe(true);
  });

  it("reports offsets cancelled by a transaction conflict as storage_unavailable", async () => {
    const g = group();
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      .rejects(canceled({ Code: "None" }, { Code: "TransactionConflict" }));
    const err = await store
      .writeOffsets(g.name, { incarnation: g.incarnation, version: 1 }, [
        { value: committed("t", 0, 1), expected: null },
      ])
      .catch((e: unknown) => e);
    expect(isSluiceError(err, "storage_unavailable")).toBe(true);
  });

  it("takes an offset write cancelled by its own items for a replay, and equal values for none", async () => {
    const g = group();
    const guard = { incarnation: g.incarnation, fence: 3 };
    const writes: OffsetWrite[] = [
      { value: committed("t", 0, 5), expected: 2 },
      { value: committed("t", 1, 8), expected: null },
    ];
    /** What DynamoDB answers when every item already holds what `input` writes. */
    const ownItems = (input: TransactWriteCommandInput, guardCode: string, change = {}) =>
      canceled(
        { Code: guardCode },
        ...input.TransactItems!.slice(1).map((item) => ({
          Code: "ConditionalCheckFailed",
          Item: rawItem({ ...item.Put!.Item, ...change }),
        })),
      );
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      .callsFakeOnce((input: TransactWriteCommandInput) => {
        throw ownItems(input, "None");
      })
      // Written while the guard held; the fence moved since. Still our success.
      .callsFakeOnce((input: TransactWriteCommandInput) => {
        throw ownItems(input, "ConditionalCheckFailed");
      })
      // The very same values, but stored by another call: this one's `expected` was wrong.
      .callsFakeOnce((input: TransactWriteCommandInput) => {
        throw ownItems(input, "None", { writeId: "another-call" });
      });

    expect(await store.writeOffsets(g.name, guard, writes)).toEqual({ ok: true });
    expect(await store.writeOffsets(g.name, guard, writes)).toEqual({ ok: true });
    expect(await store.writeOffsets(g.name, guard, writes)).toEqual({
      ok: false,
      conflict: "offset",
    });
  });

  it("takes a replace cancelled by exactly its own record for a replay", async () => {
    const g = group();
    const v2 = { ...g, version: 2, doc: '{"generation":2}' };
    const stored = (record: GroupRecord) =>
      Object.assign(
        new ConditionalCheckFailedException({
          message: "The conditional request failed",
          $metadata: { httpStatusCode: 400 },
        }),
        { Item: rawItem({ pk: `group#${record.name}`, sk: "state", ...record }) },
      );
    ddb = mockDynamo();
    ddb
      .on(PutCommand)
      .rejectsOnce(stored(v2))
      .rejectsOnce(stored({ ...v2, doc: '{"generation":2,"other":true}' }))
      .rejectsOnce(stored({ ...v2, incarnation: randomUUID() }));

    expect(await store.putGroup(v2, 1)).toBe(true);
    expect(await store.putGroup(v2, 1)).toBe(false);
    expect(await store.putGroup(v2, 1)).toBe(false);
  });

  it("purges only what it still finds as it was, and reports a throttled purge", async () => {
    const g = group();
    const items = ["t#0000", "t#0001", "t#0002"].map((p) => ({
      pk: `group#${g.name}`,
      sk: `offset#${p}`,
      incarnation: "old",
    }));
    const rewritten = new ConditionalCheckFailedException({
      message: "The conditional request failed",
      $metadata: { httpStatusCode: 400 },
    });
    ddb = mockDynamo();
    ddb.on(QueryCommand).resolves({ Items: items });
    ddb
      .on(DeleteCommand)
      .resolvesOnce({})
      // Another incarnation's commit replaced this one since the query: not ours to delete.
      .rejectsOnce(rewritten)
      .resolvesOnce({})
      .rejects(new ThrottlingException({ message: "Rate exceeded", $metadata: {} }));

    expect(await store.purgeOffsets(g.name, g.incarnation)).toBe(2);
    const deletes = ddb.commandCalls(DeleteCommand).map((c) => c.args[0].input);
    expect(deletes.map((d) => d.ExpressionAttributeValues)).toEqual(
      items.map(() => ({ ":seen": "old" })),
    );
    expect(deletes.map((d) => d.Key!.sk).sort()).toEqual(items.map((i) => i.sk));

    const err = await store.purgeOffsets(g.name).catch((e: unknown) => e);
    expect(isSluiceError(err, "storage_unavailable")).toBe(true);
  });

  it("tells unavailable from broken for reads", async () => {
    ddb = mockDynamo();
    ddb
      .on(GetCommand)
      .rejectsOnce(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }))
      .rejectsOnce(
        new ResourceNotFoundException({ message: "Requested resource not found", $metadata: {} }),
      );

    const unavailable = await store.getHead(randomUUID(), 0).catch((e: unknown) => e);
    expect(isSluiceError(unavailable, "storage_unavailable")).toBe(true);
    const broken = await store.getTopic("missing-table").catch((e: unknown) => e);
    expect(isSluiceError(broken, "internal")).toBe(true);
  });

  it("takes a swap cancelled by its own done intent and sealed entry for a replay of itself", async () => {
    const { chunks, rollId, sealed } = swap();
    const replaced = chunks.slice(0, 2);
    const atBase = (objectKey: string) => ({
      Code: "ConditionalCheckFailed",
      Item: { objectKey: { S: objectKey } },
    });
    const chunkGone = { Code: "ConditionalCheckFailed" };
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      // The first attempt applied and its answer was lost: DynamoDB could not match the resend.
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: intentItem(rollId, 42) },
          atBase(sealed.objectKey),
          chunkGone,
        ),
      )
      // Retention has removed the segment since: still ours.
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: intentItem(rollId, 42) },
          chunkGone,
          chunkGone,
        ),
      )
      // The intent was dropped after the grace period; our sealed key is still at the base.
      .rejectsOnce(canceled(chunkGone, atBase(sealed.objectKey), chunkGone))
      // Another roller's swap applied: another id on the intent.
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: intentItem("another-roll", 42) },
          atBase("segments/another.log"),
          chunkGone,
        ),
      )
      // Our intent, done, but another object at the base: not this swap.
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: intentItem(rollId, 42) },
          atBase("segments/another.log"),
          chunkGone,
        ),
      )
      // Still pending (not ours to finish), and a chunk was renamed: a plain lost race.
      .rejectsOnce(canceled({ Code: "None" }, { Code: "None" }, chunkGone))
      // Gone, and the base still holds a chunk.
      .rejectsOnce(canceled(chunkGone, atBase(chunks[0]!.objectKey), { Code: "None" }));

    const replace = () => store.replaceEntries(randomUUID(), 0, rollId, replaced, sealed, 43);
    expect(await replace()).toBe(true);
    expect(await replace()).toBe(true);
    expect(await replace()).toBe(true);
    expect(await replace()).toBe(false);
    expect(await replace()).toBe(false);
    expect(await replace()).toBe(false);
    expect(await replace()).toBe(false);

    const [first] = ddb.commandCalls(TransactWriteCommand).map((c) => c.args[0].input);
    const items = first!.TransactItems!;
    expect(items).toHaveLength(3);
    expect(items[0]!.Update).toMatchObject({
      Key: { sk: `gc#roll#${"0".repeat(20)}` },
      ConditionExpression: "#id = :id AND attribute_not_exists(doneAt)",
      ExpressionAttributeValues: { ":id": rollId, ":now": 43 },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    });
    expect(items[1]!.Put).toMatchObject({
      Item: { sk: `seg#${"0".repeat(20)}`, footerPosition: 40, footerLength: 80 },
      ExpressionAttributeValues: { ":chunk": replaced[0]!.objectKey },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    });
    expect(items[2]!.Delete).toMatchObject({
      Key: { sk: `seg#${"2".padStart(20, "0")}` },
      ExpressionAttributeValues: { ":objectKey": replaced[1]!.objectKey },
    });
  });

  it("takes an advance cancelled by its own done intent for a replay, and pins the head it saw", async () => {
    const removed = segments();
    const intentId = randomUUID();
    const topicId = randomUUID();
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      // Applied, answer lost; meanwhile a later step moved the log start on to 12.
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: headItem(12, 20) },
          { Code: "ConditionalCheckFailed", Item: intentItem(intentId, 7) },
          { Code: "ConditionalCheckFailed" },
          { Code: "ConditionalCheckFailed" },
        ),
      )
      // The next commit of this process pins the start the cancellation returned.
      .resolvesOnce({})
      // Another retire step applied from the same log start.
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed", Item: headItem(9, 20) },
          { Code: "ConditionalCheckFailed", Item: intentItem("another-retire", 7) },
          { Code: "ConditionalCheckFailed" },
          { Code: "ConditionalCheckFailed" },
        ),
      )
      // Throttled inside the transaction: the outcome is open.
      .rejectsOnce(
        canceled(
          { Code: "None" },
          { Code: "ConditionalCheckFailed", Item: intentItem("another-retire", 7) },
          { Code: "ThrottlingError" },
          { Code: "None" },
        ),
      );

    const advance = () => store.advanceLogStart(topicId, 0, intentId, 0, removed, 8);
    expect(await advance()).toBe(true);
    expect(
      await store.commitAppend({
        topicId,
        partition: 0,
        expectedLogEndOffset: 20,
        entry: entry(20, 1),
      }),
    ).toEqual({ committed: true, head: { logStartOffset: 12, logEndOffset: 21 } });
    expect(await advance()).toBe(false);
    const err = await advance().catch((e: unknown) => e);
    expect(isSluiceError(err, "storage_unavailable")).toBe(true);

    const calls = ddb.commandCalls(TransactWriteCommand).map((c) => c.args[0].input);
    expect(calls[1]!.TransactItems![0]!.Update!.ExpressionAttributeValues).toMatchObject({
      ":start": 12,
    });
    const items = calls[0]!.TransactItems!;
    expect(items).toHaveLength(4);
    expect(items[0]!.Update).toMatchObject({
      Key: { sk: "head" },
      UpdateExpression: "SET logStartOffset = :next",
      ConditionExpression: "logStartOffset = :expected",
      ExpressionAttributeValues: { ":next": 9, ":expected": 0 },
    });
    expect(items[1]!.Update).toMatchObject({
      Key: { sk: `gc#retire#${"0".repeat(20)}` },
      ExpressionAttributeValues: { ":id": intentId, ":now": 8 },
    });
    expect(items.slice(2).map((i) => i.Delete!.ExpressionAttributeValues)).toEqual(
      removed.map((e) => ({ ":objectKey": e.objectKey })),
    );
  });

  it("reports throttled or conflicting segment writes as storage_unavailable", async () => {
    const { chunks, rollId, sealed } = swap();
    const throttled = new ThrottlingException({ message: "Rate exceeded", $metadata: {} });
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      .rejectsOnce(throttled)
      .rejectsOnce(throttled)
      .rejectsOnce(throttled)
      // A failed condition next to a conflict: the conflict may hide our own earlier success.
      .rejectsOnce(
        canceled(
          { Code: "TransactionConflict" },
          { Code: "ConditionalCheckFailed" },
          { Code: "None" },
        ),
      )
      .rejectsOnce(
        canceled(
          { Code: "None" },
          { Code: "TransactionConflict" },
          { Code: "ConditionalCheckFailed" },
          { Code: "None" },
        ),
      );
    ddb.on(DeleteCommand).rejects(throttled).on(QueryCommand).rejects(throttled);

    const t = topic();
    for (const write of [
      () => store.replaceEntries(t.id, 0, rollId, chunks.slice(0, 2), sealed, 1),
      () => store.advanceLogStart(t.id, 0, randomUUID(), 0, segments(), 1),
      () => store.beginIntent(t, 0, pendingIntent("roll", 0, rollId)),
      () => store.replaceEntries(t.id, 0, rollId, chunks.slice(0, 2), sealed, 1),
      () => store.advanceLogStart(t.id, 0, randomUUID(), 0, segments(), 1),
      () => store.abortIntent(t.id, 0, "roll", 0, rollId),
      () => store.dropIntent(t.id, 0, "roll", 0),
      () => store.forgetDeletedTopic(t.id),
      () => store.listIntents(t.id, 0),
      () => store.listEntries(t.id, 0, 0, 10),
      () => store.listDeletedTopics(),
      () => store.purgePartition(t.id, 0, 10),
    ]) {
      const err = await write().catch((e: unknown) => e);
      expect(isSluiceError(err, "storage_unavailable")).toBe(true);
    }
  });

  it("takes an intent cancelled by its own id for a replay of beginIntent", async () => {
    const t = topic();
    const id = randomUUID();
    ddb = mockDynamo();
    ddb
      .on(TransactWriteCommand)
      // The topic was deleted since, but our intent was written first.
      .rejectsOnce(
        canceled(
          { Code: "ConditionalCheckFailed" },
          { Code: "ConditionalCheckFailed", Item: intentItem(id) },
        ),
      )
      .rejectsOnce(
        canceled({ Code: "None" }, { Code: "ConditionalCheckFailed", Item: intentItem("other") }),
      )
      .rejectsOnce(canceled({ Code: "ConditionalCheckFailed" }, { Code: "None" }));

    expect(await store.beginIntent(t, 0, pendingIntent("retire", 3, id))).toBe(true);
    expect(await store.beginIntent(t, 0, pendingIntent("retire", 3, id))).toBe(false);
    expect(await store.beginIntent(t, 0, pendingIntent("retire", 3, id))).toBe(false);
  });

  it("purges in batches of 25, resending unprocessed deletes", async () => {
    const topicId = randomUUID();
    const pk = `log#${topicId}#0`;
    const keys = Array.from({ length: 30 }, (_, i) => ({
      pk,
      sk: `seg#${String(i).padStart(20, "0")}`,
    }));
    ddb = mockDynamo();
    ddb.on(QueryCommand).resolves({ Items: keys });
    ddb
      .on(BatchWriteCommand)
      .resolvesOnce({
        UnprocessedItems: { [table]: keys.slice(3, 5).map((Key) => ({ DeleteRequest: { Key } })) },
      })
      .resolvesOnce({})
      .resolvesOnce({});

    expect(await store.purgePartition(topicId, 0, 30)).toBe(30);
    const batches = ddb
      .commandCalls(BatchWriteCommand)
      .map((c) => c.args[0].input.RequestItems![table]!.map((r) => r.DeleteRequest!.Key));
    expect(batches).toEqual([keys.slice(0, 25), keys.slice(3, 5), keys.slice(25)]);
    const [query] = ddb.commandCalls(QueryCommand).map((c) => c.args[0].input);
    expect(query).toMatchObject({
      ConsistentRead: true,
      Limit: 30,
      ProjectionExpression: "pk, sk",
    });

    // DynamoDB keeps leaving work undone: unavailable, after a bounded number of resends.
    ddb
      .on(BatchWriteCommand)
      .resolves({ UnprocessedItems: { [table]: [{ DeleteRequest: { Key: keys[0]! } }] } });
    const err = await store.purgePartition(topicId, 0, 30).catch((e: unknown) => e);
    expect(isSluiceError(err, "storage_unavailable")).toBe(true);
  });
});

describe("DynamoMetaStore against DynamoDB Local with faults", () => {
  let faulty: DynamoDBClient | undefined;

  afterEach(() => {
    faulty?.destroy();
    faulty = undefined;
  });

  it("refuses to commit over an index entry that lies beyond the log end", async () => {
    const store = new DynamoMetaStore({ table, client });
    const { t, first, next } = await seeded(store);
    // The table breaks its invariant: an entry at the log end that no head covers.
    await client.send(
      new PutItemCommand({
        TableName: table,
        Item: {
          pk: { S: `log#${t.id}#0` },
          sk: { S: `seg#${"4".padStart(20, "0")}` },
          objectKey: { S: "stray" },
        },
      }),
    );

    await expect(store.commitAppend(next)).rejects.toSatisfy((err) =>
      isSluiceError(err, "internal"),
    );
    expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 4 });
    expect((await store.readIndex(t.id, 0, 0, 1))[0]).toEqual(first);
    await store.close();
  });

  it("commits once when the SDK resends a commit whose answer it lost", async () => {
    faulty = makeDynamoClient(dynamo.endpoint);
    const fault = loseNextCommitAnswer(faulty, { insideRetries: true });
    const store = new DynamoMetaStore({ table, client: faulty });
    const { t, first, next } = await seeded(store);

    fault.armed = true;
    expect(await store.commitAppend(next)).toEqual({
      committed: true,
      head: { logStartOffset: 0, logEndOffset: 7 },
    });
    expect(fault.lost).toBe(1);
    expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 7 });
    expect(await store.readIndex(t.id, 0, 0, 10)).toEqual([first, next.entry]);
    await store.close();
  });

  it("commits once, with its producer states, when a resend cannot be matched by its token", async () => {
    faulty = makeDynamoClient(dynamo.endpoint);
    const fault = resendNextTransaction(faulty);
    const store = new DynamoMetaStore({ table, client: faulty });
    const { t, first, next } = await seeded(store);
    const state = {
      epoch: 2,
      lastSeq: 0,
      recent: [{ seq: 0, baseOffset: 4, count: 3 }],
      updatedAt: 5,
      version: 1,
    };

    fault.armed = true;
    expect(
      await store.commitAppend({
        ...next,
        producers: [{ producerId: "p-1", expected: null, state }],
      }),
    ).toEqual({ committed: true, head: { logStartOffset: 0, logEndOffset: 7 } });
    expect(fault.resendError).toBe("TransactionCanceledException");
    expect(await store.readIndex(t.id, 0, 0, 10)).toEqual([first, next.entry]);
    expect(await store.getProducers(t.id, 0, ["p-1"])).toEqual(new Map([["p-1", state]]));
    await store.close();
  });

  it("gives a produce whose commit answer was lost exactly one offset", async () => {
    faulty = makeDynamoClient(dynamo.endpoint);
    const fault = loseNextCommitAnswer(faulty, { insideRetries: false });
    const meta = new DynamoMetaStore({ table, client: faulty });
    const h = makeHarness({ store: new MemoryObjectStore(), meta });
    try {
      const name = topic().name;
      expect((await h.call("POST", "/v1/topics", { name, partitions: 1 })).status).toBe(201);

      fault.armed = true;
      const lost = await h.call("POST", `/v1/topics/${name}/records`, {
        records: [{ value: "once" }],
      });
      expect(fault.lost).toBe(1);
      expect(lost).toEqual({ status: 200, body: { offsets: [{ partition: 0, offset: 0 }] } });
      // The writer found its object at the base instead of uploading or committing it again.
      expect(h.store.puts).toBe(1);

      const after = await h.call("POST", `/v1/topics/${name}/records`, {
        records: [{ value: "twice" }],
      });
      expect(after.body.offsets).toEqual([{ partition: 0, offset: 1 }]);

      const read = await h.call("GET", `/v1/topics/${name}/partitions/0/records?offset=0`);
      expect(read.body.records.map((r: any) => [r.offset, r.value])).toEqual([
        [0, "once"],
        [1, "twice"],
      ]);
      expect(read.body.logEndOffset).toBe(2);
      const { id } = await h.log.topics.get(name);
      expect((await meta.readIndex(id, 0, 0, 10)).map((e) => [e.baseOffset, e.count])).toEqual([
        [0, 1],
        [1, 1],
      ]);
    } finally {
      await h.log.close();
      await meta.close();
    }
  });

  it("writes offsets once when the SDK resends a transaction whose answer it lost", async () => {
    faulty = makeDynamoClient(dynamo.endpoint);
    const fault = loseNextCommitAnswer(faulty, { insideRetries: true });
    const store = new DynamoMetaStore({ table, client: faulty });
    const g = group();
    expect(await store.putGroup(g, null)).toBe(true);
    const values = [committed("t", 0, 4), committed("t", 1, 9)];

    fault.armed = true;
    expect(
      await store.writeOffsets(
        g.name,
        { incarnation: g.incarnation, fence: 0 },
        values.map((value) => ({ value, expected: null })),
      ),
    ).toEqual({ ok: true });
    expect(fault.lost).toBe(1);
    expect(await store.getOffsets(g.name, g.incarnation)).toEqual(values);
    await store.close();
  });

  it("recognizes its own offsets when a resend cannot be matched by its token", async () => {
    faulty = makeDynamoClient(dynamo.endpoint);
    const writer = new DynamoMetaStore({ table, client });
    const g = group();
    expect(await writer.putGroup(g, null)).toBe(true);
    const guard = { incarnation: g.incarnation, fence: 0 };
    const before = [committed("t", 0, 4), committed("t", 1, 9)];
    await writer.writeOffsets(
      g.name,
      guard,
      before.map((value) => ({ value, expected: null })),
    );
    // Between the first attempt and the resend a member lost a partition: the fence moved.
    const fenced = { ...g, version: 2, fence: 1 };
    const fault = resendNextTransaction(faulty, async () => {
      expect(await writer.putGroup(fenced, 1)).toBe(true);
    });
    const store = new DynamoMetaStore({ table, client: faulty });

    const writes: OffsetWrite[] = [
      { value: committed("t", 0, 6), expected: 4 },
      // Only the metadata changes: its condition still holds after the first attempt.
      { value: { ...committed("t", 1, 9), metadata: "again" }, expected: 9 },
      { value: committed("t", 2, 1), expected: null },
    ];
    fault.armed = true;
    expect(await store.writeOffsets(g.name, guard, writes)).toEqual({ ok: true });
    expect(fault.resent).toBe(1);
    expect(fault.resendError).toBe("TransactionCanceledException");
    expect(await store.getOffsets(g.name, g.incarnation)).toEqual(writes.map((w) => w.value));

    // The same call made again by the caller is a new write: its `expected` is now stale.
    expect(await store.writeOffsets(g.name, { ...guard, fence: 1 }, writes)).toEqual({
      ok: false,
      conflict: "offset",
    });
    await store.close();
    await writer.close();
  });

  it("recognizes its own group write when a resend cannot be matched by its token", async () => {
    faulty = makeDynamoClient(dynamo.endpoint);
    const fault = resendNextTransaction(faulty);
    const store = new DynamoMetaStore({ table, client: faulty });
    const g = group();

    fault.armed = true;
    expect(await store.putGroup(g, null)).toBe(true);
    expect(fault.resendError).toBe("TransactionCanceledException");
    expect(await store.getGroup(g.name)).toEqual(g);
    expect((await store.listGroups()).filter((x) => x.name === g.name)).toHaveLength(1);
    // Another create of the same name is not a replay: a new incarnation.
    expect(await store.putGroup({ ...g, incarnation: randomUUID() }, null)).toBe(false);
    await store.close();
  });

  /** A topic with chunks [0, 2), [2, 4), [4, 6), and a pending roll intent for the first two. */
  async function pendingRoll(store: DynamoMetaStore) {
    const t = topic();
    await store.createTopic(t);
    const chunks: IndexEntry[] = [];
    for (const base of [0, 2, 4]) {
      const e = entry(base, 2);
      await store.commitAppend({
        topicId: t.id,
        partition: 0,
        expectedLogEndOffset: base,
        entry: e,
      });
      chunks.push(e);
    }
    const rollId = randomUUID();
    const sealed = sealedOf(chunks.slice(0, 2), rollId);
    expect(
      await store.beginIntent(t, 0, {
        ...pendingIntent("roll", 0, rollId),
        objectKeys: chunks.slice(0, 2).map((c) => c.objectKey),
        sealedKey: sealed.objectKey,
      }),
    ).toBe(true);
    return { t, chunks, rollId, sealed };
  }

  for (const how of ["the SDK resends it", "a resend cannot be matched by its token"]) {
    it(`swaps once when ${how} after a lost answer`, async () => {
      faulty = makeDynamoClient(dynamo.endpoint);
      const lost = how.startsWith("the SDK")
        ? loseNextCommitAnswer(faulty, { insideRetries: true })
        : resendNextTransaction(faulty);
      const store = new DynamoMetaStore({ table, client: faulty });
      const { t, chunks, rollId, sealed } = await pendingRoll(store);

      lost.armed = true;
      expect(await store.replaceEntries(t.id, 0, rollId, chunks.slice(0, 2), sealed, 77)).toBe(
        true,
      );
      expect("lost" in lost ? lost.lost : lost.resent).toBe(1);
      if ("resendError" in lost) expect(lost.resendError).toBe("TransactionCanceledException");
      expect(await store.readIndex(t.id, 0, 0, 10)).toEqual([sealed, chunks[2]]);
      expect(await store.listIntents(t.id, 0)).toMatchObject([{ id: rollId, doneAt: 77 }]);
      expect(await store.getHead(t.id, 0)).toEqual({ logStartOffset: 0, logEndOffset: 6 });
      await store.close();
    });
  }

  it("advances once when a resend cannot be matched by its token, and pins the new start", async () => {
    faulty = makeDynamoClient(dynamo.endpoint);
    const fault = resendNextTransaction(faulty);
    const transactions = { count: 0 };
    faulty.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === "TransactWriteItemsCommand") transactions.count++;
        return next(args);
      },
      { step: "initialize", name: "countTransactions" },
    );
    const store = new DynamoMetaStore({ table, client: faulty });
    const { t, chunks, rollId, sealed } = await pendingRoll(store);
    expect(await store.replaceEntries(t.id, 0, rollId, chunks.slice(0, 2), sealed, 1)).toBe(true);
    const retireId = randomUUID();
    expect(await store.beginIntent(t, 0, pendingIntent("retire", 0, retireId))).toBe(true);

    fault.armed = true;
    expect(await store.advanceLogStart(t.id, 0, retireId, 0, [sealed], 2)).toBe(true);
    expect(fault.resendError).toBe("TransactionCanceledException");
    expect(await store.listEntries(t.id, 0, 0, 10)).toEqual([chunks[2]]);
    expect((await store.listIntents(t.id, 0)).find((i) => i.kind === "retire")).toMatchObject({
      id: retireId,
      doneAt: 2,
    });

    // This process's next commit conditions on the new start: one transaction, no relearning.
    transactions.count = 0;
    expect(
      await store.commitAppend({
        topicId: t.id,
        partition: 0,
        expectedLogEndOffset: 6,
        entry: entry(6, 1),
      }),
    ).toEqual({ committed: true, head: { logStartOffset: 4, logEndOffset: 7 } });
    expect(transactions.count).toBe(1);
    await store.close();
  });
});
