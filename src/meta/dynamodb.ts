import {
  type AttributeValue,
  type CancellationReason,
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
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
} from "@aws-sdk/lib-dynamodb";
import type { TopicConfig } from "../config.js";
import { SluiceError } from "../errors.js";
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
 * | item          | pk                      | sk                    |
 * |---------------|-------------------------|-----------------------|
 * | topic         | `topic#{name}`          | `meta`                |
 * | catalog entry | `catalog`               | `topic#{name}`        |
 * | head          | `log#{topicId}#{p}`     | `head`                |
 * | index entry   | `log#{topicId}#{p}`     | `seg#{base:20 digits}`|
 *
 * listTopics reads the catalog partition: a copy of every topic item, written and deleted in
 * the same transaction as the topic item. A sparse GSI would avoid the copy, but GSIs are only
 * eventually consistent, so a topic could be missing from the list just after its creation
 * succeeded, and a Scan would read every index entry of every partition. Topics are few and
 * created rarely, so one hot catalog partition costs nothing.
 *
 * Heads are not created with the topic: a missing head reads as {0, 0} and the first commit
 * creates it, which keeps createTopic one small transaction for up to 1024 partitions.
 */
const catalogPk = "catalog";
const topicPk = (name: string) => `topic#${name}`;
const topicMetaSk = "meta";
const catalogSk = (name: string) => `topic#${name}`;
const partitionPk = (topicId: string, partition: number) => `log#${topicId}#${partition}`;
const headSk = "head";
const segPrefix = "seg#";
const segDigits = 20;
const segSk = (baseOffset: number) => segPrefix + String(baseOffset).padStart(segDigits, "0");
/** Every index entry's sort key sorts at or below this one. */
const lastSegSk = segPrefix + "9".repeat(segDigits);

/** Transactions one commit may send while it learns a log start offset that moved. */
const commitAttempts = 3;

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
 * report and, for a commit, never into a second offset for the same object.
 */
export class DynamoMetaStore implements MetaStore {
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
    const { Item } = await this.#call("getTopic", () =>
      this.#doc.send(
        new GetCommand({
          TableName: this.#table,
          Key: { pk: topicPk(name), sk: topicMetaSk },
          ConsistentRead: true,
        }),
      ),
    );
    return Item && toTopic(Item);
  }

  async listTopics(): Promise<TopicMeta[]> {
    const items = await this.#queryAll(
      "listTopics",
      {
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues: { ":pk": catalogPk, ":prefix": catalogSk("") },
      },
      Infinity,
    );
    // Sort keys are compared as UTF-8 bytes; names are ASCII, so this is name order.
    return items.map(toTopic);
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
