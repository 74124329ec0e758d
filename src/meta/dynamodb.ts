import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
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
  BatchGetCommand,
  BatchWriteCommand,
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
import type { ApiKeyInfo, ApiKeyRecord, KeyStore } from "./key-store.js";
import type {
  CommitRequest,
  CommitResult,
  DeletedTopic,
  IndexEntry,
  Intent,
  IntentKind,
  MetaStore,
  PartitionHead,
  ProducerBatch,
  ProducerState,
  ProducerWrite,
  SegmentKind,
  TopicMeta,
} from "./meta-store.js";
import {
  checkAdvanceRequest,
  checkCommitRequest,
  checkReplaceRequest,
  MAX_REPLACED_PER_ROLL,
} from "./meta-store.js";

/**
 * Single-table layout (DESIGN.md, "Key-value table"), string keys `pk` / `sk`:
 *
 * | item             | pk                  | sk                            |
 * |------------------|---------------------|-------------------------------|
 * | topic            | `topic#{name}`      | `meta`                        |
 * | catalog entry    | `catalog`           | `topic#{name}`                |
 * | head             | `log#{topicId}#{p}` | `head`                        |
 * | index entry      | `log#{topicId}#{p}` | `seg#{base:20 digits}`        |
 * | intent           | `log#{topicId}#{p}` | `gc#{kind}#{base:20 digits}`  |
 * | producer state   | `log#{topicId}#{p}` | `producer#{producerId}`       |
 * | tombstone        | `catalog`           | `dead#{topicId}`              |
 * | group state      | `group#{name}`      | `state`                       |
 * | group catalog    | `catalog`           | `group#{name}`                |
 * | committed offset | `group#{name}`      | `offset#{topic}#{p:4 digits}` |
 * | API key          | `key#{id}`          | `meta`                        |
 * | key catalog      | `catalog`           | `key#{id}`                    |
 *
 * listTopics, listGroups, listKeys and listDeletedTopics read the catalog partition, each under
 * its own prefix: a copy of every topic item (and the name, incarnation and creation time of
 * every group, and every attribute of every API key but its digest), written, changed and
 * deleted in the same transaction as the item it lists, and a tombstone of every deleted topic,
 * written in the transaction that deletes it. A sparse GSI would avoid the copy, but GSIs are
 * only eventually consistent, so a topic could be missing from the list just after its creation
 * succeeded, and a Scan would read every index entry of every partition. Topics, groups and keys
 * are few and created rarely, so one hot catalog partition costs nothing.
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
 *
 * Segments (docs/rfcs/0003-segments.md §3): a sealed index entry also holds `footerPosition` and
 * `footerLength`. An intent item holds `id`, `objectKeys`, `sealedKey` (a roll's; absent for a
 * retire), `createdAt` and, once its change has applied, `doneAt`. The transaction that applies
 * a roll or a retention step sets `doneAt` on the condition that the intent is still pending with
 * the caller's id, so a resend of it after a lost answer finds its own id with `doneAt` set.
 *
 * Idempotent produce (docs/rfcs/0004-idempotent-produce.md §3): a producer state item holds
 * `epoch`, `lastSeq`, `recent` (a list of `{seq, baseOffset, count}` maps), `updatedAt` and
 * `version`. It is written only by a commit's transaction, on the condition that its version is
 * the one the writer read (or that it does not exist yet).
 *
 * API keys (docs/rfcs/0005-auth-and-limits.md §3): a key item holds `id`, `secretHash` (binary:
 * the SHA-256 of the secret, never the secret), `scopes` (a list of strings), `description`,
 * `createdAt` and, only when set, `expiresAt`, `revokedAt` and `rateLimit` (a map of `perSecond`
 * and `burst`); an absent attribute reads as null. Its catalog entry holds the same attributes
 * but `secretHash`, so listing keys never reads a digest, while getKey, on the authentication
 * path, reads the key item alone and keeps that load off the catalog partition. A put writes
 * both in one transaction, on the condition that the key item is new; a revocation updates both
 * in one transaction, on the condition that they exist, with
 * `SET revokedAt = if_not_exists(revokedAt, :at)`, which keeps the first revocation's time.
 * That is why null is stored as an absent attribute: a NULL `revokedAt` would count as set.
 * Keys are never deleted, so only GetItem, PutItem, UpdateItem and Query touch them.
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
const intentPrefix = "gc#";
/** Sorts by kind, then by base offset: the order listIntents promises. */
const intentSk = (kind: IntentKind, baseOffset: number) =>
  `${intentPrefix}${kind}#${String(baseOffset).padStart(segDigits, "0")}`;
const producerSk = (producerId: string) => `producer#${producerId}`;
const deadPrefix = "dead#";
const deadSk = (topicId: string) => deadPrefix + topicId;
const keyPk = (id: string) => `key#${id}`;
const keyMetaSk = "meta";
const keyCatalogSk = (id: string) => `key#${id}`;

/** Transactions one commit may send while it learns a log start offset that moved. */
const commitAttempts = 3;

/** DynamoDB's limit on the items of one TransactWriteItems. */
const maxTransactItems = 100;
/** Conditional deletes a purge keeps in flight. */
const purgeConcurrency = 8;
/** DynamoDB's limit on the keys of one BatchGetItem. */
const maxBatchGetKeys = 100;
/** DynamoDB's limit on the requests of one BatchWriteItem. */
const maxBatchWriteItems = 25;
/** BatchWriteItem calls one batch may take while DynamoDB leaves some of its deletes undone. */
const batchWriteAttempts = 6;
/** The first pause before resending unprocessed deletes; it doubles with every resend. */
const batchWriteBackoffMs = 20;

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
 * offset writes finding their own write id on every item, and API keys finding their own digest.
 */
export class DynamoMetaStore implements MetaStore, GroupStore, KeyStore {
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
    // The tombstone needs the partition count, which the transaction cannot read; partitions
    // never change under one id, and the transaction's condition pins the id we read here.
    const item = await this.#getItem("deleteTopic", { pk: topicPk(name), sk: topicMetaSk });
    if (item?.id !== id) return false;
    const tombstone = {
      pk: catalogPk,
      sk: deadSk(id),
      id,
      name,
      partitions: item.partitions as number,
      deletedAt: Date.now(),
    };
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
            // Topic ids are new on every create, so this id is tombstoned once.
            { Put: { TableName: this.#table, Item: tombstone } },
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
    const producers = request.producers ?? [];
    const pk = partitionPk(topicId, partition);
    const next = expected + entry.count;
    for (let attempt = 0; attempt < commitAttempts; attempt++) {
      // The start offset never exceeds the end offset, so an empty log's start is 0.
      const start = expected === 0 ? 0 : (this.#logStarts.get(pk) ?? 0);
      try {
        await this.#doc.send(this.#commitCommand(pk, expected, start, entry, producers));
        return { committed: true, head: { logStartOffset: start, logEndOffset: next } };
      } catch (err) {
        const [headReason, entryReason, ...producerReasons] = cancellationReasons(err);
        // Object keys are unique: our object at our base is an earlier attempt of this commit,
        // which wrote the producer states too (that is why their conditions fail now).
        if (entryReason?.Item?.objectKey?.S === entry.objectKey) {
          const current = headReason?.Item && headFromItem(headReason.Item);
          if (current) this.#rememberLogStart(pk, current.logStartOffset);
          return {
            committed: true,
            head: { logStartOffset: current?.logStartOffset ?? start, logEndOffset: next },
          };
        }
        const producerConflict = producerReasons.some((r) => r.Code === "ConditionalCheckFailed");
        if (
          producerConflict &&
          headReason?.Code === "None" &&
          entryReason?.Code === "None" &&
          producerReasons.every((r) => r.Code === "ConditionalCheckFailed" || r.Code === "None")
        ) {
          // The head held, with the start pinned: it is exactly the expected one.
          return {
            committed: false,
            head: { logStartOffset: start, logEndOffset: expected },
            producerConflict,
          };
        }
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
        // Only the pinned start was stale, and a cancelled transaction wrote nothing: resend.
        if (current?.logEndOffset === expected && current.logStartOffset !== start) continue;
        return {
          committed: false,
          head: current ?? (await this.getHead(topicId, partition)),
          ...(producerConflict ? { producerConflict } : {}),
        };
      }
    }
    throw new SluiceError(
      "storage_unavailable",
      `metadata commitAppend failed: the log start offset of ${pk} kept moving`,
    );
  }

  async getProducers(
    topicId: string,
    partition: number,
    producerIds: readonly string[],
  ): Promise<Map<string, ProducerState>> {
    const pk = partitionPk(topicId, partition);
    const found = new Map<string, ProducerState>();
    const ids = [...new Set(producerIds)];
    for (let i = 0; i < ids.length; i += maxBatchGetKeys) {
      const keys = ids.slice(i, i + maxBatchGetKeys).map((id) => ({ pk, sk: producerSk(id) }));
      for (const item of await this.#batchGet(keys)) {
        const id = (item.sk as string).slice(producerSk("").length);
        found.set(id, toProducer(item));
      }
    }
    return found;
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

  async listEntries(
    topicId: string,
    partition: number,
    from: number,
    limit: number,
  ): Promise<IndexEntry[]> {
    if (limit <= 0 || !(from <= Number.MAX_SAFE_INTEGER)) return [];
    const items = await this.#queryAll(
      "listEntries",
      {
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :last",
        ExpressionAttributeValues: {
          ":pk": partitionPk(topicId, partition),
          ":from": segSk(Math.max(0, Math.ceil(from))),
          ":last": lastSegSk,
        },
      },
      limit,
    );
    return items.map(toEntry);
  }

  async beginIntent(
    topic: { name: string; id: string },
    partition: number,
    intent: Intent,
  ): Promise<boolean> {
    const item = intentItem(partitionPk(topic.id, partition), intent);
    try {
      await this.#doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: this.#table,
                Key: { pk: topicPk(topic.name), sk: topicMetaSk },
                ConditionExpression: "#id = :topicId",
                ExpressionAttributeNames: { "#id": "id" },
                ExpressionAttributeValues: { ":topicId": topic.id },
              },
            },
            {
              Put: {
                TableName: this.#table,
                Item: item,
                ConditionExpression: "attribute_not_exists(sk)",
                ReturnValuesOnConditionCheckFailure: "ALL_OLD",
              },
            },
          ],
        }),
      );
      return true;
    } catch (err) {
      const reasons = cancellationReasons(err);
      // Intent ids are unique: finding ours is a resend of this very call, which succeeded.
      if (reasons[1]?.Item?.id?.S === intent.id) return true;
      if (conditionFailed(reasons)) return false;
      throw storageError("beginIntent", err);
    }
  }

  async replaceEntries(
    topicId: string,
    partition: number,
    intentId: string,
    replaced: IndexEntry[],
    sealed: IndexEntry,
    now: number,
  ): Promise<boolean> {
    checkReplaceRequest(replaced, sealed);
    const pk = partitionPk(topicId, partition);
    const [first, ...rest] = replaced as [IndexEntry, ...IndexEntry[]];
    try {
      await this.#doc.send(
        new TransactWriteCommand({
          TransactItems: [
            this.#finishIntent(pk, "roll", sealed.baseOffset, intentId, now),
            {
              // The same sort key as the first chunk: the sealed entry takes its place.
              Put: {
                TableName: this.#table,
                Item: entryItem(pk, sealed),
                ConditionExpression: "objectKey = :chunk",
                ExpressionAttributeValues: { ":chunk": first.objectKey },
                ReturnValuesOnConditionCheckFailure: "ALL_OLD",
              },
            },
            ...rest.map((e) => this.#deleteEntry(pk, e)),
          ],
        }),
      );
      return true;
    } catch (err) {
      const reasons = cancellationReasons(err);
      if (isOwnReplacement(reasons, intentId, sealed.objectKey)) return true;
      if (conditionFailed(reasons)) return false;
      throw storageError("replaceEntries", err);
    }
  }

  async advanceLogStart(
    topicId: string,
    partition: number,
    intentId: string,
    expected: number,
    removed: IndexEntry[],
    now: number,
  ): Promise<boolean> {
    checkAdvanceRequest(expected, removed, this.maxRemovedPerAdvance);
    const pk = partitionPk(topicId, partition);
    const last = removed[removed.length - 1]!;
    const next = last.baseOffset + last.count;
    try {
      await this.#doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              // A partition holding sealed entries has had commits, so its head exists; were
              // it missing, the condition fails and nothing is written.
              Update: {
                TableName: this.#table,
                Key: { pk, sk: headSk },
                UpdateExpression: "SET logStartOffset = :next",
                ConditionExpression: "logStartOffset = :expected",
                ExpressionAttributeValues: { ":next": next, ":expected": expected },
                ReturnValuesOnConditionCheckFailure: "ALL_OLD",
              },
            },
            this.#finishIntent(pk, "retire", expected, intentId, now),
            ...removed.map((e) => this.#deleteEntry(pk, e)),
          ],
        }),
      );
      // This process's next commit pins the new start; others learn it from one cancellation.
      this.#rememberLogStart(pk, next);
      return true;
    } catch (err) {
      const reasons = cancellationReasons(err);
      const [headReason, intentReason] = reasons;
      const current = headReason?.Item && headFromItem(headReason.Item);
      if (isOwnDoneIntent(intentReason, intentId)) {
        // The start may have moved on since; the head the cancellation returned is current.
        this.#rememberLogStart(pk, current ? current.logStartOffset : next);
        return true;
      }
      if (current) this.#rememberLogStart(pk, current.logStartOffset);
      if (conditionFailed(reasons)) return false;
      throw storageError("advanceLogStart", err);
    }
  }

  async abortIntent(
    topicId: string,
    partition: number,
    kind: IntentKind,
    baseOffset: number,
    id: string,
  ): Promise<boolean> {
    try {
      await this.#doc.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: { pk: partitionPk(topicId, partition), sk: intentSk(kind, baseOffset) },
          ConditionExpression: "#id = :id AND attribute_not_exists(doneAt)",
          ExpressionAttributeNames: { "#id": "id" },
          ExpressionAttributeValues: { ":id": id },
        }),
      );
      return true;
    } catch (err) {
      // Done, replaced or gone. A resend of an abort that succeeded lands here too; false only
      // makes the caller leave the sealed upload to the orphan scan.
      if (err instanceof ConditionalCheckFailedException) return false;
      throw storageError("abortIntent", err);
    }
  }

  async listIntents(topicId: string, partition: number): Promise<Intent[]> {
    const items = await this.#queryAll(
      "listIntents",
      {
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues: {
          ":pk": partitionPk(topicId, partition),
          ":prefix": intentPrefix,
        },
      },
      Infinity,
    );
    return items.map(toIntent);
  }

  async dropIntent(
    topicId: string,
    partition: number,
    kind: IntentKind,
    baseOffset: number,
  ): Promise<void> {
    await this.#call("dropIntent", () =>
      this.#doc.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: { pk: partitionPk(topicId, partition), sk: intentSk(kind, baseOffset) },
        }),
      ),
    );
  }

  async listDeletedTopics(): Promise<DeletedTopic[]> {
    const items = await this.#queryCatalog("listDeletedTopics", deadPrefix);
    return items.map((item) => ({
      id: item.id as string,
      name: item.name as string,
      partitions: item.partitions as number,
      deletedAt: item.deletedAt as number,
    }));
  }

  /**
   * BatchWriteItem, not conditional deletes: a dead topic's items are never written again
   * except by a writer that still had it cached, and the next pass purges what that wrote.
   */
  async purgePartition(topicId: string, partition: number, limit: number): Promise<number> {
    if (!(limit >= 1)) return 0;
    const pk = partitionPk(topicId, partition);
    const keys = await this.#queryAll(
      "purgePartition",
      {
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": pk },
        ProjectionExpression: "pk, sk",
      },
      Math.floor(limit),
    );
    // The head goes last: a writer that still has the topic cached must keep failing its
    // commits against it, not see an empty partition and commit at offset 0 again.
    const others = keys.filter(({ sk }) => sk !== headSk);
    const doomed = others.length > 0 ? others : keys;
    let deleted = 0;
    for (let i = 0; i < doomed.length; i += maxBatchWriteItems) {
      const batch = doomed.slice(i, i + maxBatchWriteItems);
      await this.#deleteBatch(batch.map(({ sk }) => ({ pk, sk: sk as string })));
      deleted += batch.length;
    }
    return deleted;
  }

  async forgetDeletedTopic(id: string): Promise<void> {
    await this.#call("forgetDeletedTopic", () =>
      this.#doc.send(
        new DeleteCommand({ TableName: this.#table, Key: { pk: catalogPk, sk: deadSk(id) } }),
      ),
    );
  }

  readonly maxReplacedPerRoll = MAX_REPLACED_PER_ROLL;
  /** One transaction: the head, the intent and the removed entries. */
  readonly maxRemovedPerAdvance = maxTransactItems - 2;

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

  async putKey(record: ApiKeyRecord): Promise<void> {
    const fields = keyInfoItem(record);
    try {
      await this.#doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.#table,
                Item: {
                  pk: keyPk(record.id),
                  sk: keyMetaSk,
                  ...fields,
                  secretHash: new Uint8Array(record.secretHash),
                },
                ConditionExpression: "attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure: "ALL_OLD",
              },
            },
            {
              Put: {
                TableName: this.#table,
                Item: { pk: catalogPk, sk: keyCatalogSk(record.id), ...fields },
              },
            },
          ],
        }),
      );
    } catch (err) {
      const [existing] = cancellationReasons(err);
      if (existing?.Code !== "ConditionalCheckFailed") throw storageError("putKey", err);
      // Digests are new with every key (the secret is random): ours is a replay of this put.
      if (sameBytes(existing.Item?.secretHash?.B, record.secretHash)) return;
      throw new SluiceError("conflict", `API key ${record.id} already exists`);
    }
  }

  async getKey(id: string): Promise<ApiKeyRecord | undefined> {
    const item = await this.#getItem("getKey", { pk: keyPk(id), sk: keyMetaSk });
    return (
      item && { ...toKeyInfo(item), secretHash: new Uint8Array(item.secretHash as Uint8Array) }
    );
  }

  async listKeys(): Promise<ApiKeyInfo[]> {
    return (await this.#queryCatalog("listKeys", keyCatalogSk(""))).map(toKeyInfo);
  }

  async revokeKey(id: string, at: number): Promise<boolean> {
    // Both items exist or neither does: they are written together and never deleted.
    const revoke = (Key: { pk: string; sk: string }) => ({
      Update: {
        TableName: this.#table,
        Key,
        UpdateExpression: "SET revokedAt = if_not_exists(revokedAt, :at)",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":at": at },
      },
    });
    try {
      await this.#doc.send(
        new TransactWriteCommand({
          TransactItems: [
            revoke({ pk: keyPk(id), sk: keyMetaSk }),
            revoke({ pk: catalogPk, sk: keyCatalogSk(id) }),
          ],
        }),
      );
      return true;
    } catch (err) {
      const [keyReason] = cancellationReasons(err);
      if (keyReason?.Code === "ConditionalCheckFailed") return false;
      throw storageError("revokeKey", err);
    }
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

  /** The transaction item marking a pending intent done, iff it still has this id. */
  #finishIntent(pk: string, kind: IntentKind, baseOffset: number, id: string, now: number) {
    return {
      Update: {
        TableName: this.#table,
        Key: { pk, sk: intentSk(kind, baseOffset) },
        UpdateExpression: "SET doneAt = :now",
        ConditionExpression: "#id = :id AND attribute_not_exists(doneAt)",
        ExpressionAttributeNames: { "#id": "id" },
        ExpressionAttributeValues: { ":id": id, ":now": now },
        ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
      },
    };
  }

  /** The transaction item deleting an index entry, iff it still names its object. */
  #deleteEntry(pk: string, entry: IndexEntry) {
    return {
      Delete: {
        TableName: this.#table,
        Key: { pk, sk: segSk(entry.baseOffset) },
        ConditionExpression: "objectKey = :objectKey",
        ExpressionAttributeValues: { ":objectKey": entry.objectKey },
      },
    };
  }

  /** Deletes up to 25 items, resending what DynamoDB leaves unprocessed, with a backoff. */
  async #deleteBatch(keys: { pk: string; sk: string }[]): Promise<void> {
    let requests = keys.map((Key) => ({ DeleteRequest: { Key } }));
    for (let attempt = 0; ; attempt++) {
      const { UnprocessedItems } = await this.#call("purgePartition", () =>
        this.#doc.send(new BatchWriteCommand({ RequestItems: { [this.#table]: requests } })),
      );
      const left = UnprocessedItems?.[this.#table] ?? [];
      if (left.length === 0) return;
      if (attempt + 1 >= batchWriteAttempts) {
        throw new SluiceError(
          "storage_unavailable",
          `metadata purgePartition failed: ${left.length} deletes still unprocessed after ${batchWriteAttempts} attempts`,
        );
      }
      requests = left as typeof requests;
      await sleep(batchWriteBackoffMs * 2 ** attempt);
    }
  }

  /** A strongly consistent BatchGetItem, resending unprocessed keys with backoff. */
  async #batchGet(keys: { pk: string; sk: string }[]): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let left = keys;
    for (let attempt = 0; left.length > 0; attempt++) {
      if (attempt > 0) {
        if (attempt >= batchWriteAttempts) {
          throw new SluiceError(
            "storage_unavailable",
            `metadata getProducers failed: ${left.length} keys still unprocessed after ${batchWriteAttempts} attempts`,
          );
        }
        await sleep(batchWriteBackoffMs * 2 ** (attempt - 1));
      }
      const { Responses, UnprocessedKeys } = await this.#call("getProducers", () =>
        this.#doc.send(
          new BatchGetCommand({
            RequestItems: { [this.#table]: { Keys: left, ConsistentRead: true } },
          }),
        ),
      );
      items.push(...(Responses?.[this.#table] ?? []));
      left = (UnprocessedKeys?.[this.#table]?.Keys ?? []) as typeof left;
    }
    return items;
  }

  #commitCommand(
    pk: string,
    expected: number,
    start: number,
    entry: IndexEntry,
    producers: ProducerWrite[],
  ) {
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
            Item: entryItem(pk, entry),
            ConditionExpression: "attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          },
        },
        ...producers.map(({ producerId, expected: version, state }) => ({
          Put: {
            TableName: this.#table,
            Item: producerItem(pk, producerId, state),
            ...(version === null
              ? { ConditionExpression: "attribute_not_exists(sk)" }
              : {
                  ConditionExpression: "#version = :version",
                  ExpressionAttributeNames: { "#version": "version" },
                  ExpressionAttributeValues: { ":version": version },
                }),
          },
        })),
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

/** An API key's attributes but its digest: the catalog entry, and the rest of the key item. */
function keyInfoItem(key: ApiKeyInfo) {
  return {
    id: key.id,
    scopes: [...key.scopes],
    description: key.description,
    createdAt: key.createdAt,
    ...(key.expiresAt === null ? {} : { expiresAt: key.expiresAt }),
    ...(key.revokedAt === null ? {} : { revokedAt: key.revokedAt }),
    ...(key.rateLimit === null
      ? {}
      : { rateLimit: { perSecond: key.rateLimit.perSecond, burst: key.rateLimit.burst } }),
  };
}

/** Absent attributes read as null. */
function toKeyInfo(item: Record<string, unknown>): ApiKeyInfo {
  const rateLimit = item.rateLimit as { perSecond: number; burst: number } | undefined;
  return {
    id: item.id as string,
    scopes: [...(item.scopes as string[])],
    description: item.description as string,
    createdAt: item.createdAt as number,
    expiresAt: (item.expiresAt ?? null) as number | null,
    revokedAt: (item.revokedAt ?? null) as number | null,
    rateLimit: rateLimit ? { perSecond: rateLimit.perSecond, burst: rateLimit.burst } : null,
  };
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function toEntry(item: Record<string, unknown>): IndexEntry {
  const entry: IndexEntry = {
    baseOffset: Number((item.sk as string).slice(segPrefix.length)),
    count: item.count as number,
    bytes: item.bytes as number,
    objectKey: item.objectKey as string,
    minTimestamp: item.minTimestamp as number,
    maxTimestamp: item.maxTimestamp as number,
    kind: item.kind as SegmentKind,
  };
  if (item.footerPosition !== undefined) {
    entry.footer = {
      position: item.footerPosition as number,
      length: item.footerLength as number,
    };
  }
  return entry;
}

function entryItem(pk: string, entry: IndexEntry) {
  return {
    pk,
    sk: segSk(entry.baseOffset),
    objectKey: entry.objectKey,
    count: entry.count,
    bytes: entry.bytes,
    minTimestamp: entry.minTimestamp,
    maxTimestamp: entry.maxTimestamp,
    kind: entry.kind,
    ...(entry.footer
      ? { footerPosition: entry.footer.position, footerLength: entry.footer.length }
      : {}),
  };
}

function producerItem(pk: string, producerId: string, state: ProducerState) {
  return {
    pk,
    sk: producerSk(producerId),
    epoch: state.epoch,
    lastSeq: state.lastSeq,
    recent: state.recent.map(({ seq, baseOffset, count }) => ({ seq, baseOffset, count })),
    updatedAt: state.updatedAt,
    version: state.version,
  };
}

function toProducer(item: Record<string, unknown>): ProducerState {
  return {
    epoch: item.epoch as number,
    lastSeq: item.lastSeq as number,
    recent: (item.recent as ProducerBatch[]).map(({ seq, baseOffset, count }) => ({
      seq: Number(seq),
      baseOffset: Number(baseOffset),
      count: Number(count),
    })),
    updatedAt: item.updatedAt as number,
    version: item.version as number,
  };
}

/** Always pending: `doneAt` is set only by the change the intent guards. */
function intentItem(pk: string, intent: Intent) {
  return {
    pk,
    sk: intentSk(intent.kind, intent.baseOffset),
    id: intent.id,
    objectKeys: intent.objectKeys,
    ...(intent.sealedKey === null ? {} : { sealedKey: intent.sealedKey }),
    createdAt: intent.createdAt,
  };
}

function toIntent(item: Record<string, unknown>): Intent {
  // `gc#{kind}#{base}`
  const [, kind, base] = (item.sk as string).split("#");
  return {
    kind: kind as IntentKind,
    baseOffset: Number(base),
    id: item.id as string,
    objectKeys: [...((item.objectKeys ?? []) as string[])],
    sealedKey: (item.sealedKey ?? null) as string | null,
    createdAt: item.createdAt as number,
    doneAt: (item.doneAt ?? null) as number | null,
  };
}

/** Whether a cancelled transaction found the intent already done with this id. */
function isOwnDoneIntent(reason: CancellationReason | undefined, id: string): boolean {
  return (
    reason?.Code === "ConditionalCheckFailed" &&
    reason.Item?.id?.S === id &&
    reason.Item.doneAt?.N !== undefined
  );
}

/**
 * Whether a cancelled swap is a resend of one that applied (its answer was lost), from the
 * values DynamoDB returned for the intent and for the entry at the segment's base:
 * - the intent is done with our id, and the base holds our sealed object, or nothing (retention
 *   has removed the segment since); another object there is not our swap;
 * - the intent is gone (dropped a grace period after it was done), and the base holds our sealed
 *   object: sealed keys are new with every roll, so only this swap can have put it there.
 */
function isOwnReplacement(
  [intentReason, sealedReason]: CancellationReason[],
  intentId: string,
  sealedKey: string,
): boolean {
  if (sealedReason?.Code !== "ConditionalCheckFailed") return false;
  const atBase = sealedReason.Item?.objectKey?.S;
  if (isOwnDoneIntent(intentReason, intentId)) return atBase === undefined || atBase === sealedKey;
  return (
    intentReason?.Code === "ConditionalCheckFailed" &&
    intentReason.Item === undefined &&
    atBase === sealedKey
  );
}

/**
 * Whether a cancelled transaction failed on a condition alone: the answer is a definite "no".
 * A reason that says "try again later" leaves the outcome open, whatever else failed.
 */
function conditionFailed(reasons: CancellationReason[]): boolean {
  return (
    reasons.some((r) => r.Code === "ConditionalCheckFailed") &&
    reasons.every((r) => r.Code === "ConditionalCheckFailed" || r.Code === "None")
  );
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
