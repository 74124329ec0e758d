import { randomBytes } from "node:crypto";
import {
  type AttributeValue,
  type CancellationReason,
  ConditionalCheckFailedException,
  type CreateTableCommandInput,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException,
  TransactionCanceledException,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
} from "@aws-sdk/lib-dynamodb";
import type { TopicConfig } from "../config.js";
import { SluiceError } from "../errors.js";
import {
  checkGroupPut,
  checkOffsetWrites,
  type CommittedOffset,
  type GroupGuard,
  type GroupRecord,
  type GroupStore,
  type GroupSummary,
  type OffsetWrite,
  type OffsetWriteResult,
} from "./group-store.js";
import type {
  CommitRequest,
  CommitResult,
  IndexEntry,
  MetaStore,
  PartitionHead,
  SegmentKind,
  TopicMeta,
} from "./meta-store.js";
import { checkCommitRequest } from "./meta-store.js";

/**
 * Single-table layout (DESIGN.md, "Key-value table"), string keys `pk` / `sk`:
 *
 * | item             | pk                  | sk                            |
 * |------------------|---------------------|-------------------------------|
 * | topic            | `topic#{name}`      | `meta`                        |
 * | catalog entry    | `catalog`           | `topic#{name}`                |
 * | head             | `log#{topicId}#{p}` | `head`                        |
 * | index entry      | `log#{topicId}#{p}` | `seg#{base:20 digits}`        |
 * | group state      | `group#{name}`      | `state`                       |
 * | group catalog    | `catalog`           | `group#{name}`                |
 * | committed offset | `group#{name}`      | `offset#{topic}#{p:4 digits}` |
 *
 * listTopics and listGroups read the catalog partition, each under its own prefix: a copy of
 * every topic item (and the name, incarnation and creation time of every group), written and
 * deleted in the same transaction as the item it lists. A sparse GSI would avoid the copy, but
 * GSIs are only eventually consistent, so a topic could be missing from the list just after
 * its creation succeeded, and a Scan would read every index entry of every partition. Topics
 * and groups are few and created rarely, so one hot catalog partition costs nothing.
 *
 * Heads are not created with the topic: a missing head reads as {0, 0} and the first commit
 * creates it, which keeps createTopic one small transaction for up to 1024 partitions.
 *
 * A group's state and its committed offsets share the partition key, so one Query reads every
 * offset of a group (docs/rfcs/0002-consumer-groups.md §2). Names never contain `#`, which
 * sorts below every character they may hold, so offset sort keys order by topic, then by the
 * zero-padded partition. A group's state item holds its document as one string attribute
 * (`doc`); an offset item also holds the id of the writeOffsets call that wrote it (`writeId`),
 * by which a resend recognizes its own earlier success.
 */
const catalogPk = "catalog";
const topicPk = (name: string) => `topic#${name}`;
const topicMetaSk = "meta";
const catalogSk = (name: string) => `topic#${name}`;
const groupPk = (name: string) => `group#${name}`;
const groupStateSk = "state";
const groupCatalogSk = (name: string) => `group#${name}`;
const offsetPrefix = "offset#";
/**
 * Part of the stored key format, so fixed: partitions are below 1024 (MAX_PARTITIONS). Results
 * are sorted in code as well, so the order would survive more digits, but the keys would not.
 */
const offsetPartitionDigits = 4;
const offsetTopicPrefix = (topic: string) => `${offsetPrefix}${topic}#`;
const offsetSk = (topic: string, partition: number) =>
  offsetTopicPrefix(topic) + String(partition).padStart(offsetPartitionDigits, "0");
const partitionPk = (topicId: string, partition: number) => `log#${topicId}#${partition}`;
const headSk = "head";
const segPrefix = "seg#";
const segDigits = 20;
const segSk = (baseOffset: number) => segPrefix + String(baseOffset).padStart(segDigits, "0");
/** Every index entry's sort key sorts at or below this one. */
const lastSegSk = segPrefix + "9".repeat(segDigits);

/** Transactions one commit may send while it learns a log start offset that moved. */
const commitAttempts = 3;

/** DynamoDB's limit on the items of one TransactWriteItems. */
const maxTransactItems = 100;
/** Conditional deletes a purge keeps in flight. */
const purgeConcurrency = 8;

/** Cancellation reasons that say "try again later": the transaction wrote nothing. */
const transientReasons = new Set([
  "TransactionConflict",
  "ThrottlingError",
  "ProvisionedThroughputExceeded",
]);

/** Error names the SDK gives up on after its own retries that a later attempt may cure. */
const transientErrorNames = new Set([
  "ThrottlingException",
  "ProvisionedThroughputExceededException",
  "RequestLimitExceeded",
  "InternalServerError",
  "ServiceUnavailable",
  "TransactionInProgressException",
  // A single-item write that met an item held by a transaction in flight; the SDK does not
  // retry it, but a later attempt finds the transaction finished.
  "TransactionConflictException",
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
]);

const transientNetworkCodes = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
]);

export interface DynamoMetaStoreOptions {
  table: string;
  /** Owned by the caller, who destroys it; without one the store builds and owns its own. */
  client?: DynamoDBClient;
}

/** The CreateTable input for the metadata table, shared by tests and infrastructure code. */
export function tableDefinition(name: string): CreateTableCommandInput {
  return {
    TableName: name,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [
      { AttributeName: "pk", AttributeType: "S" },
      { AttributeName: "sk", AttributeType: "S" },
    ],
    KeySchema: [
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ],
  };
}

/** Creates the table unless it exists, and waits until it is ACTIVE. For tests and local use. */
export async function ensureTable(client: DynamoDBClient, name: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: name }));
  } catch (err) {
    if (!(err instanceof ResourceNotFoundException)) throw err;
    try {
      await client.send(new CreateTableCommand(tableDefinition(name)));
    } catch (createErr) {
      // Another process created it first.
      if (!(createErr instanceof ResourceInUseException)) throw createErr;
    }
  }
  await waitUntilTableExists({ client, maxWaitTime: 120 }, { TableName: name });
}

/**
 * The cloud MetaStore on one DynamoDB table. Every read is strongly consistent, and a commit
 * is one TransactWriteItems that moves the head and stores the index entry together.
 *
 * Writes that the SDK retries after a lost answer carry the same ClientRequestToken, which
 * DynamoDB uses to answer a replay with the first attempt's success. The adapter does not rely
 * on that alone: a create or commit cancelled by an item that it wrote itself (same topic id,
 * same object key) is recognized as its own success, so a replay never turns into a failure
 * report and, for a commit, never into a second offset for the same object. Group writes do the
 * same: a put finding exactly its own record (an incarnation's version is written once), and
 * offset writes finding their own write id on every item.
 */
export class DynamoMetaStore implements MetaStore, GroupStore {
  readonly #table: string;
  readonly #client: DynamoDBClient;
  readonly #ownsClient: boolean;
  readonly #doc: DynamoDBDocumentClient;
  /**
   * The log start offset last seen per partition, where it is not 0. A commit's condition pins
   * it, so that the head it reports is exact without a read after the write (TransactWriteItems
   * returns no values); a stale guess costs one cancelled transaction, which teaches the current
   * value. Leaving out the zeros keeps the map to partitions whose log start has moved.
   */
  readonly #logStarts = new Map<string, number>();

  constructor({ table, client }: DynamoMetaStoreOptions) {
    this.#table = table;
    this.#ownsClient = client === undefined;
    // Endpoint, region and credentials come from the SDK's own environment variables.
    this.#client =
      client ??
      new DynamoDBClient({
        maxAttempts: 5,
        // Without throwOnRequestTimeout the SDK only logs a request that outlived its timeout.
        requestHandler: {
          connectionTimeout: 3_000,
          requestTimeout: 10_000,
          throwOnRequestTimeout: true,
        },
      });
    this.#doc = DynamoDBDocumentClient.from(this.#client);
  }

  async createTopic(topic: TopicMeta): Promise<void> {
    const fields = {
      name: topic.name,
      id: topic.id,
      partitions: topic.partitions,
      config: topic.config,
      createdAt: topic.createdAt,
    };
    try {
      await this.#doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.#table,
                Item: { pk: topicPk(topic.name), sk: topicMetaSk, ...fields },
                ConditionExpression: "attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure: "ALL_OLD",
              },
            },
            {
              Put: {
                TableName: this.#table,
                Item: { pk: catalogPk, sk: catalogSk(topic.name), ...fields },
              },
            },
          ],
        }),
      );
    } catch (err) {
      const [existing] = cancellationReasons(err);
      if (existing?.Code !== "ConditionalCheckFailed") throw storageError("createTopic", err);
      // Topic ids are new on every create: the same id means a replay of this very create.
      if (existing.Item?.id?.S === topic.id) return;
      throw new SluiceError("topic_exists", `topic ${topic.name} already exists`);
    }
  }

  async getTopic(name: string): Promise<TopicMeta | undefined> {
    const item = await this.#getItem("getTopic", { pk: topicPk(name), sk: topicMetaSk });
    return item && toTopic(item);
  }

  async listTopics(): Promise<TopicMeta[]> {
    return (await this.#queryCatalog("listTopics", catalogSk(""))).map(toTopic);
  }

  async deleteTopic(name: string, id: string): Promise<boolean> {
    try {
      await this.#doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Delete: {
                TableName: this.#table,
                Key: { pk: topicPk(name), sk: topicMetaSk },
                ConditionExpression: "#id = :id",
                ExpressionAttributeNames: { "#id": "id" },
                ExpressionAttributeValues: { ":id": id },
              },
            },
            { Delete: { TableName: this.#table, Key: { pk: catalogPk, sk: catalogSk(name) } } },
          ],
        }),
      );
      return true;
    } catch (err) {
      const [topicReason] = cancellationReasons(err);
      if (topicReason?.Code === "ConditionalCheckFailed") return false;
      throw storageError("deleteTopic", err);
    }
  }

  async getHead(topicId: string, partition: number): Promise<PartitionHead> {
    const pk = partitionPk(topicId, partition);
    const { Item } = await this.#call("getHead", () =>
      this.#doc.send(
        new GetCommand({
          TableName: this.#table,
          Key: { pk, sk: headSk },
          ProjectionExpression: "logStartOffset, logEndOffset",
          ConsistentRead: true,
        }),
      ),
    );
    const head: PartitionHead = {
      logStartOffset: Item ? Number(Item.logStartOffset) : 0,
      logEndOffset: Item ? Number(Item.logEndOffset) : 0,
    };
    this.#rememberLogStart(pk, head.logStartOffset);
    return head;
  }

  async commitAppend(request: CommitRequest): Promise<CommitResult> {
    checkCommitRequest(request);
    const { topicId, partition, expectedLogEndOffset: expected, entry } = request;
    const pk = partitionPk(topicId, partition);
    const next = expected + entry.count;
    for (let attempt = 0; attempt < commitAttempts; attempt++) {
      // The start offset never exceeds the end offset, so an empty log's start is 0.
      const start = expected === 0 ? 0 : (this.#logStarts.get(pk) ?? 0);
      try {
        await this.#doc.send(this.#commitCommand(pk, expected, start, entry));
        return { committed: true, head: { logStartOffset: start, logEndOffset: next } };
      } catch (err) {
        const [headReason, entryReason] = cancellationReasons(err);
        if (headReason?.Code !== "ConditionalCheckFailed") {
          if (headReason?.Code === "None" && entryReason?.Code === "ConditionalCheckFailed") {
            // The head is where the caller expects it, yet an entry already sits at that base:
            // the table breaks its own invariant. Committing, or reporting a lost race that
            // the caller would retry at the same base forever, could only make it worse.
            throw new SluiceError(
              "internal",
              `index entry ${segSk(expected)} of ${pk} lies beyond the log end; refusing to commit`,
              { cause: err, details: { topicId, partition, baseOffset: expected } },
            );
          }
          throw storageError("commitAppend", err);
        }
        const current = headReason.Item && headFromItem(headReason.Item);
        if (current) this.#rememberLogStart(pk, current.logStartOffset);
        // Object keys are unique: our object at our base is an earlier attempt of this commit.
        if (entryReason?.Item?.objectKey?.S === entry.objectKey) {
          return {
            committed: true,
            head: { logStartOffset: current?.logStartOffset ?? start, logEndOffset: next },
          };
        }
        // Only the pinned start was stale, and a cancelled transaction wrote nothing: resend.
        if (current?.logEndOffset === expected && current.logStartOffset !== start) continue;
        return { committed: false, head: current ?? (await this.getHead(topicId, partition)) };
      }
    }
    throw new SluiceError(
      "storage_unavailable",
      `metadata commitAppend failed: the log start offset of ${pk} kept moving`,
    );
  }

  async readIndex(
    topicId: string,
    partition: number,
    offset: number,
    limit: number,
  ): Promise<IndexEntry[]> {
    if (limit <= 0 || !(offset >= 0)) return [];
    const pk = partitionPk(topicId, partition);
    const [floor] = await this.#queryAll(
      "readIndex",
      {
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :lowest AND :offset",
        ExpressionAttributeValues: {
          ":pk": pk,
          ":lowest": segSk(0),
          ":offset": segSk(Math.floor(Math.min(offset, Number.MAX_SAFE_INTEGER))),
        },
        ScanIndexForward: false,
      },
      1,
    );
    if (!floor) return [];
    const first = toEntry(floor);
    if (limit === 1) return [first];
    const rest = await this.#queryAll(
      "readIndex",
      {
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :after AND :last",
        ExpressionAttributeValues: {
          ":pk": pk,
          ":after": segSk(first.baseOffset + 1),
          ":last": lastSegSk,
        },
      },
      limit - 1,
    );
    return [first, ...rest.map(toEntry)];
  }

  readonly maxOffsetsPerWrite = maxTransactItems - 1;

  async getGroup(name: string): Promise<GroupRecord | undefined> {
    const item = await this.#getItem("getGroup", { pk: groupPk(name), sk: groupStateSk });
    return item && toGroup(item);
  }

  async listGroups(): Promise<GroupSummary[]> {
    const items = await this.#queryCatalog("listGroups", groupCatalogSk(""));
    return items.map((item) => ({
      name: item.name as string,
      incarnation: item.incarnation as string,
      createdAt: item.createdAt as number,
    }));
  }

  async putGroup(record: GroupRecord, expectedVersion: number | null): Promise<boolean> {
    checkGroupPut(record, expectedVersion);
    const state = {
      pk: groupPk(record.name),
      sk: groupStateSk,
      name: record.name,
      incarnation: record.incarnation,
      createdAt: record.createdAt,
      version: record.version,
      fence: record.fence,
      doc: record.doc,
    };
    if (expectedVersion === null) {
      try {
        await this.#doc.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Put: {
                  TableName: this.#table,
                  Item: state,
                  ConditionExpression: "attribute_not_exists(pk)",
                  ReturnValuesOnConditionCheckFailure: "ALL_OLD",
                },
              },
              {
                Put: {
                  TableName: this.#table,
                  Item: {
                    pk: catalogPk,
                    sk: groupCatalogSk(record.name),
                    name: record.name,
                    incarnation: record.incarnation,
                    createdAt: record.createdAt,
                  },
                },
              },
            ],
          }),
        );
        return true;
      } catch (err) {
        const [existing] = cancellationReasons(err);
        if (existing?.Code !== "ConditionalCheckFailed") throw storageError("putGroup", err);
        // Incarnations are new on every create: finding exactly this record is our own replay.
        return existing.Item !== undefined && sameGroup(existing.Item, record);
      }
    }
    // A replace touches the state item alone, so it is a single conditional Put: half the
    // write units of a one-item transaction, on the path every lease renewal takes. The
    // incarnation is pinned too: a group deleted and re-created may be back at the same version.
    try {
      await this.#doc.send(
        new PutCommand({
          TableName: this.#table,
          Item: state,
          ConditionExpression: "#version = :expected AND #incarnation = :incarnation",
          ExpressionAttributeNames: { "#version": "version", "#incarnation": "incarnation" },
          ExpressionAttributeValues: {
            ":expected": expectedVersion,
            ":incarnation": record.incarnation,
          },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return true;
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw storageError("putGroup", err);
      // A put whose answer was lost and that the SDK sent again finds its own record.
      return err.Item !== undefined && sameGroup(err.Item, record);
    }
  }

  async deleteGroup(name: string, incarnation: string, expectedVersion: number): Promise<boolean> {
    try {
      await this.#doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Delete: {
                TableName: this.#table,
                Key: { pk: groupPk(name), sk: groupStateSk },
                ConditionExpression: "#incarnation = :incarnation AND #version = :expected",
                ExpressionAttributeNames: { "#incarnation": "incarnation", "#version": "version" },
                ExpressionAttributeValues: {
                  ":incarnation": incarnation,
                  ":expected": expectedVersion,
                },
              },
            },
            {
              Delete: { TableName: this.#table, Key: { pk: catalogPk, sk: groupCatalogSk(name) } },
            },
          ],
        }),
      );
      return true;
    } catch (err) {
      const [stateReason] = cancellationReasons(err);
      if (stateReason?.Code === "ConditionalCheckFailed") return false;
      throw storageError("deleteGroup", err);
    }
  }

  async getOffsets(group: string, incarnation: string, topic?: string): Promise<CommittedOffset[]> {
    const items = await this.#queryAll(
      "getOffsets",
      {
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues: {
          ":pk": groupPk(group),
          ":prefix": topic === undefined ? offsetPrefix : offsetTopicPrefix(topic),
        },
      },
      Infinity,
    );
    return items
      .filter((item) => item.incarnation === incarnation)
      .map(toOffset)
      .sort(byTopicAndPartition);
  }

  async writeOffsets(
    group: string,
    guard: GroupGuard,
    writes: OffsetWrite[],
  ): Promise<OffsetWriteResult> {
    checkOffsetWrites(writes, this.maxOffsetsPerWrite);
    const pk = groupPk(group);
    // Marks every item this call writes, as an object key marks a commit: a resend that
    // DynamoDB cannot match to the first attempt finds it on the items (#isOwnOffsetWrite).
    const writeId = randomBytes(12).toString("base64url");
    const pinned =
      "fence" in guard
        ? { name: "fence", value: guard.fence }
        : { name: "version", value: guard.version };
    try {
      await this.#doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: this.#table,
                Key: { pk, sk: groupStateSk },
                ConditionExpression: "#incarnation = :incarnation AND #pinned = :pinned",
                ExpressionAttributeNames: { "#incarnation": "incarnation", "#pinned": pinned.name },
                ExpressionAttributeValues: {
                  ":incarnation": guard.incarnation,
                  ":pinned": pinned.value,
                },
              },
            },
            ...writes.map(({ value, expected }) => ({
              Put: {
                TableName: this.#table,
                Item: offsetItem(pk, guard.incarnation, writeId, value),
                ...offsetCondition(guard.incarnation, value.topicId, expected),
                ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
              },
            })),
          ],
        }),
      );
      return { ok: true };
    } catch (err) {
      const [guardReason, ...offsetReasons] = cancellationReasons(err);
      if (guardReason === undefined) throw storageError("writeOffsets", err);
      if (await this.#isOwnOffsetWrite(pk, writeId, writes, offsetReasons)) {
        return { ok: true };
      }
      if (guardReason.Code === "ConditionalCheckFailed") return { ok: false, conflict: "group" };
      if (offsetReasons.some((r) => r.Code === "ConditionalCheckFailed")) {
        return { ok: false, conflict: "offset" };
      }
      throw storageError("writeOffsets", err);
    }
  }

  async purgeOffsets(group: string, keep?: string): Promise<number> {
    const pk = groupPk(group);
    const items = await this.#queryAll(
      "purgeOffsets",
      {
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues: { ":pk": pk, ":prefix": offsetPrefix },
        ProjectionExpression: "sk, #incarnation",
        ExpressionAttributeNames: { "#incarnation": "incarnation" },
      },
      Infinity,
    );
    const doomed = items.filter((item) => item.incarnation !== keep);
    let deleted = 0;
    // One conditional DeleteItem per item, not BatchWriteItem: a batch cannot be conditional,
    // so an offset that a new incarnation wrote since the query would be lost with it.
    const worker = async () => {
      for (let item = doomed.pop(); item !== undefined; item = doomed.pop()) {
        try {
          await this.#doc.send(
            new DeleteCommand({
              TableName: this.#table,
              Key: { pk, sk: item.sk },
              ConditionExpression: "#incarnation = :seen",
              ExpressionAttributeNames: { "#incarnation": "incarnation" },
              ExpressionAttributeValues: { ":seen": item.incarnation },
            }),
          );
          deleted++;
        } catch (err) {
          // Rewritten (or removed) since the query: no longer ours to delete.
          if (err instanceof ConditionalCheckFailedException) continue;
          doomed.length = 0; // stops the other workers too
          throw storageError("purgeOffsets", err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(purgeConcurrency, doomed.length) }, worker));
    return deleted;
  }

  close(): Promise<void> {
    // The document client's own destroy() does nothing; the connections live in the client.
    if (this.#ownsClient) this.#client.destroy();
    return Promise.resolve();
  }

  #rememberLogStart(pk: string, logStartOffset: number): void {
    if (logStartOffset === 0) this.#logStarts.delete(pk);
    else this.#logStarts.set(pk, logStartOffset);
  }

  #commitCommand(pk: string, expected: number, start: number, entry: IndexEntry) {
    return new TransactWriteCommand({
      TransactItems: [
        {
          Update: {
            TableName: this.#table,
            Key: { pk, sk: headSk },
            // With the start pinned by the condition, setting it is exact for both an existing
            // head and the one the first commit creates.
            UpdateExpression: "SET logEndOffset = :next, logStartOffset = :start",
            ConditionExpression:
              expected === 0
                ? "attribute_not_exists(pk) OR (logEndOffset = :expected AND logStartOffset = :start)"
                : "logEndOffset = :expected AND logStartOffset = :start",
            ExpressionAttributeValues: {
              ":next": expected + entry.count,
              ":expected": expected,
              ":start": start,
            },
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          },
        },
        {
          Put: {
            TableName: this.#table,
            Item: {
              pk,
              sk: segSk(entry.baseOffset),
              objectKey: entry.objectKey,
              count: entry.count,
              bytes: entry.bytes,
              minTimestamp: entry.minTimestamp,
              maxTimestamp: entry.maxTimestamp,
              kind: entry.kind,
            },
            ConditionExpression: "attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          },
        },
      ],
    });
  }

  /**
   * Whether a cancelled writeOffsets is a resend of itself whose first attempt succeeded: its
   * answer was lost, and DynamoDB did not match the resend to it by ClientRequestToken (which
   * the SDK keeps across its retries, but DynamoDB remembers for ten minutes only). A
   * transaction is all-or-nothing, so it succeeded if every item still carries its write id;
   * the guard is not consulted, since it held when those items were written.
   *
   * Equal values do not count: the same offset written again on top of itself is a new write,
   * which its `expected` must justify.
   */
  async #isOwnOffsetWrite(
    pk: string,
    writeId: string,
    writes: OffsetWrite[],
    reasons: CancellationReason[],
  ): Promise<boolean> {
    if (writes.length === 0 || reasons.length !== writes.length) return false;
    const unseen: OffsetWrite[] = [];
    for (const [i, write] of writes.entries()) {
      const reason = reasons[i]!;
      if (reason.Code === "ConditionalCheckFailed") {
        if (reason.Item?.writeId?.S !== writeId) return false;
      } else if (reason.Code === "None" && write.expected === write.value.offset) {
        // Its condition holds with our item stored too (the offset did not move), so
        // DynamoDB returned no item: read it.
        unseen.push(write);
      } else {
        return false;
      }
    }
    if (unseen.length === writes.length) return false;
    for (const { value } of unseen) {
      const { Item } = await this.#call("writeOffsets", () =>
        this.#doc.send(
          new GetCommand({
            TableName: this.#table,
            Key: { pk, sk: offsetSk(value.topic, value.partition) },
            ProjectionExpression: "writeId",
            ConsistentRead: true,
          }),
        ),
      );
      if (Item?.writeId !== writeId) return false;
    }
    return true;
  }

  /** A strongly consistent read of one item. */
  async #getItem(
    action: string,
    key: { pk: string; sk: string },
  ): Promise<Record<string, unknown> | undefined> {
    const { Item } = await this.#call(action, () =>
      this.#doc.send(new GetCommand({ TableName: this.#table, Key: key, ConsistentRead: true })),
    );
    return Item;
  }

  /**
   * The catalog entries under one prefix (topics or groups). Sort keys compare as UTF-8 bytes
   * and names are ASCII, so the result is in name order.
   */
  #queryCatalog(action: string, prefix: string): Promise<Record<string, unknown>[]> {
    return this.#queryAll(
      action,
      {
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues: { ":pk": catalogPk, ":prefix": prefix },
      },
      Infinity,
    );
  }

  /** A strongly consistent query, following pages until `limit` items or the end. */
  async #queryAll(
    action: string,
    input: Omit<QueryCommandInput, "TableName" | "ConsistentRead" | "Limit">,
    limit: number,
  ): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const page = await this.#call(action, () =>
        this.#doc.send(
          new QueryCommand({
            ...input,
            TableName: this.#table,
            ConsistentRead: true,
            ExclusiveStartKey,
            ...(Number.isFinite(limit) ? { Limit: limit - items.length } : {}),
          }),
        ),
      );
      items.push(...(page.Items ?? []));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey && items.length < limit);
    return items;
  }

  async #call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw storageError(action, err);
    }
  }
}

function cancellationReasons(err: unknown): CancellationReason[] {
  return err instanceof TransactionCanceledException ? (err.CancellationReasons ?? []) : [];
}

function toTopic(item: Record<string, unknown>): TopicMeta {
  return {
    name: item.name as string,
    id: item.id as string,
    partitions: item.partitions as number,
    config: item.config as TopicConfig,
    createdAt: item.createdAt as number,
  };
}

function toEntry(item: Record<string, unknown>): IndexEntry {
  return {
    baseOffset: Number((item.sk as string).slice(segPrefix.length)),
    count: item.count as number,
    bytes: item.bytes as number,
    objectKey: item.objectKey as string,
    minTimestamp: item.minTimestamp as number,
    maxTimestamp: item.maxTimestamp as number,
    kind: item.kind as SegmentKind,
  };
}

function toGroup(item: Record<string, unknown>): GroupRecord {
  return {
    name: item.name as string,
    incarnation: item.incarnation as string,
    createdAt: item.createdAt as number,
    version: item.version as number,
    fence: item.fence as number,
    doc: item.doc as string,
  };
}

/** Whether a raw state item (from a failed condition) is exactly this record. */
function sameGroup(raw: Record<string, AttributeValue>, record: GroupRecord): boolean {
  const stored = toGroup(plainItem(raw));
  return (
    stored.name === record.name &&
    stored.incarnation === record.incarnation &&
    stored.createdAt === record.createdAt &&
    stored.version === record.version &&
    stored.fence === record.fence &&
    stored.doc === record.doc
  );
}

function offsetItem(pk: string, incarnation: string, writeId: string, value: CommittedOffset) {
  return {
    pk,
    sk: offsetSk(value.topic, value.partition),
    topic: value.topic,
    partition: value.partition,
    incarnation,
    writeId,
    topicId: value.topicId,
    offset: value.offset,
    metadata: value.metadata,
    generation: value.generation,
    memberId: value.memberId,
    committedAt: value.committedAt,
  };
}

/**
 * `expected` null: no offset of this incarnation and topic id may be stored (one of another
 * incarnation or topic id counts as none). Otherwise exactly `expected` must be.
 */
function offsetCondition(incarnation: string, topicId: string, expected: number | null) {
  const ExpressionAttributeNames = { "#incarnation": "incarnation", "#topicId": "topicId" };
  const values = { ":incarnation": incarnation, ":topicId": topicId };
  return expected === null
    ? {
        ConditionExpression:
          "attribute_not_exists(pk) OR #incarnation <> :incarnation OR #topicId <> :topicId",
        ExpressionAttributeNames,
        ExpressionAttributeValues: values,
      }
    : {
        ConditionExpression:
          "#incarnation = :incarnation AND #topicId = :topicId AND #offset = :expected",
        ExpressionAttributeNames: { ...ExpressionAttributeNames, "#offset": "offset" },
        ExpressionAttributeValues: { ...values, ":expected": expected },
      };
}

/** Absent and NULL attributes both read as null. */
function toOffset(item: Record<string, unknown>): CommittedOffset {
  return {
    topic: item.topic as string,
    partition: item.partition as number,
    topicId: item.topicId as string,
    offset: item.offset as number,
    metadata: (item.metadata ?? null) as string | null,
    generation: (item.generation ?? null) as number | null,
    memberId: (item.memberId ?? null) as string | null,
    committedAt: item.committedAt as number,
  };
}

function byTopicAndPartition(a: CommittedOffset, b: CommittedOffset): number {
  if (a.topic !== b.topic) return a.topic < b.topic ? -1 : 1;
  return a.partition - b.partition;
}

/**
 * The scalar attributes of a raw item, as the document client would give them: cancellation
 * reasons and condition failures carry raw attribute values, since it leaves errors alone.
 */
function plainItem(raw: Record<string, AttributeValue>): Record<string, unknown> {
  const plain: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (value.S !== undefined) plain[name] = value.S;
    else if (value.N !== undefined) plain[name] = Number(value.N);
    else if (value.NULL) plain[name] = null;
    else if (value.BOOL !== undefined) plain[name] = value.BOOL;
  }
  return plain;
}

/** Cancellation reasons carry raw attribute values: the document client leaves errors alone. */
function headFromItem(item: Record<string, AttributeValue>): PartitionHead {
  return {
    logStartOffset: Number(item.logStartOffset?.N ?? 0),
    logEndOffset: Number(item.logEndOffset?.N ?? 0),
  };
}

/**
 * What the SDK could not cure with its own retries: `storage_unavailable` when a later attempt
 * may succeed (throttling, 5xx, timeouts, dropped connections), `internal` otherwise.
 */
function storageError(action: string, err: unknown): SluiceError {
  if (err instanceof SluiceError) return err;
  const transient = isTransient(err);
  const reasons = cancellationReasons(err).map((r) => r.Code);
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return new SluiceError(
    transient ? "storage_unavailable" : "internal",
    `metadata ${action} failed: ${message}`,
    { cause: err, ...(reasons.length > 0 ? { details: { cancellationReasons: reasons } } : {}) },
  );
}

function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const { $metadata, $retryable, code } = err as Error & {
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
    code?: unknown;
  };
  if (err instanceof TransactionCanceledException) {
    return cancellationReasons(err).some(
      (r) => r.Code !== undefined && transientReasons.has(r.Code),
    );
  }
  return (
    transientErrorNames.has(err.name) ||
    (typeof code === "string" && transientNetworkCodes.has(code)) ||
    ($metadata?.httpStatusCode ?? 0) >= 500 ||
    $retryable !== undefined
  );
}
