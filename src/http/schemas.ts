import { z } from "@hono/zod-openapi";
import { MAX_SCOPES } from "../auth/scopes.js";
import { MAX_PARTITIONS, MAX_RECORDS_PER_REQUEST, TopicConfigSchema } from "../config.js";
import { errorCodes, type ErrorCode } from "../errors.js";
import { NAME_PATTERN, isValidName } from "../log/names.js";
import { MAX_PRODUCER_NUMBER, PRODUCER_ID_PATTERN } from "../meta/meta-store.js";

/**
 * The API's one schema: requests are validated with it, the OpenAPI document is generated from
 * it, and the client's types are inferred from it.
 */

const nameSchema = (kind: string) =>
  z
    .string()
    .regex(NAME_PATTERN)
    .refine(isValidName, { message: `${kind} name may not be "." or ".."` });

export const TopicName = nameSchema("topic").openapi({
  description: 'Kafka\'s rule: 1-249 of [a-zA-Z0-9._-], not "." or ".."',
  example: "orders",
});

/** Offsets and partitions arrive as decimal strings in paths and queries: no signs, no exponents. */
const decimal = (max: number) =>
  z
    .string()
    .regex(/^\d{1,16}$/, "must be a non-negative integer")
    .transform(Number)
    .pipe(z.number().int().max(max));

export const TopicParams = z.object({
  topic: TopicName.openapi({ param: { name: "topic", in: "path" } }),
});

export const PartitionParams = TopicParams.extend({
  partition: decimal(MAX_PARTITIONS - 1).openapi({
    param: { name: "partition", in: "path" },
    type: "integer",
    example: "0",
  }),
});

export const CreateTopicBody = z
  .object({
    name: TopicName,
    partitions: z.number().int().min(1).max(MAX_PARTITIONS).default(1),
    config: TopicConfigSchema.partial().optional(),
  })
  .strict()
  .openapi("CreateTopicRequest");

export const TopicConfigOut = z.object(TopicConfigSchema.shape).openapi("TopicConfig");

export const TopicOut = z
  .object({ name: z.string(), partitions: z.number().int(), config: TopicConfigOut })
  .openapi("Topic");

export const TopicList = z
  .object({ topics: z.array(z.object({ name: z.string(), partitions: z.number().int() })) })
  .openapi("TopicList");

export const SegmentState = z
  .object({
    baseOffset: z.number().int(),
    count: z.number().int(),
    bytes: z.number().int(),
    minTimestamp: z.number().int().nullable(),
    maxTimestamp: z.number().int().nullable(),
    state: z.enum(["sealed", "active"]),
    chunks: z
      .number()
      .int()
      .optional()
      .openapi({ description: "active segment only: flush objects not rolled yet" }),
  })
  .openapi("Segment");

export const PartitionState = z.object({
  partition: z.number().int(),
  logStartOffset: z.number().int(),
  logEndOffset: z.number().int(),
  segments: z
    .array(SegmentState)
    .optional()
    .openapi({ description: "oldest first, the active segment last; absent with ?segments=false" }),
});

export const DescribeQuery = z.object({
  segments: z
    .enum(["true", "false"])
    .default("true")
    .openapi({ description: "list each partition's segments (one index query per partition)" }),
});

export const TopicDescription = z
  .object({
    name: z.string(),
    id: z.string(),
    createdAt: z.number().int(),
    config: TopicConfigOut,
    partitions: z.array(PartitionState),
  })
  .openapi("TopicDescription");

const base64 = z.base64().openapi({ description: "standard base64 with padding" });

export const ProduceRecordIn = z
  .object({
    key: z
      .string()
      .optional()
      .openapi({ description: "UTF-8 key; picks the partition by murmur2" }),
    keyBase64: base64.optional(),
    value: z.unknown().optional().openapi({ description: "any JSON value; read back equal" }),
    valueBase64: base64.optional(),
    headers: z.record(z.string(), z.string()).optional(),
    partition: z.number().int().min(0).optional(),
    timestamp: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .strict()
  .superRefine((record, ctx) => {
    const hasValue = Object.hasOwn(record, "value");
    if (hasValue === (record.valueBase64 !== undefined)) {
      ctx.addIssue({ code: "custom", message: "exactly one of value and valueBase64 is required" });
    }
    if (record.key !== undefined && record.keyBase64 !== undefined) {
      ctx.addIssue({ code: "custom", message: "key and keyBase64 are mutually exclusive" });
    }
  })
  .openapi("ProduceRecord");

export const ProduceBody = z
  .object({ records: z.array(ProduceRecordIn).min(1).max(MAX_RECORDS_PER_REQUEST) })
  .strict()
  .openapi("ProduceRequest");

const producerNumber = z
  .string()
  .regex(/^\d{1,10}$/, `must be an integer 0..${MAX_PRODUCER_NUMBER}`)
  .transform(Number)
  .pipe(z.number().int().max(MAX_PRODUCER_NUMBER));

/**
 * Idempotent produce (docs/rfcs/0004-idempotent-produce.md): all three headers or none. Header
 * names are case-insensitive; the validator sees them lower-cased.
 */
export const ProduceHeaders = z
  .object({
    "producer-id": z
      .string()
      .regex(PRODUCER_ID_PATTERN, "must be 1-64 of [A-Za-z0-9._-]")
      .optional()
      .openapi({
        description:
          "Producer-Id: makes the request idempotent, with Producer-Epoch and Producer-Seq",
        example: "billing-7",
      }),
    "producer-epoch": producerNumber.optional().openapi({
      type: "integer",
      description:
        "Producer-Epoch: 0..2147483647; a higher epoch fences the producer's older ones (403 producer_fenced)",
      example: "0",
    }),
    "producer-seq": producerNumber.optional().openapi({
      type: "integer",
      description:
        "Producer-Seq: 0..2147483647, one per request and partition, starting at 0 in each epoch; a resend of a committed one answers the original offsets, a gap is 409 out_of_order_sequence",
      example: "0",
    }),
  })
  .superRefine((headers, ctx) => {
    const given = [headers["producer-id"], headers["producer-epoch"], headers["producer-seq"]];
    const count = given.filter((h) => h !== undefined).length;
    if (count !== 0 && count !== 3) {
      ctx.addIssue({
        code: "custom",
        message: "Producer-Id, Producer-Epoch and Producer-Seq go together: all three or none",
      });
    }
  });

export const ProduceOut = z
  .object({
    offsets: z.array(z.object({ partition: z.number().int(), offset: z.number().int() })),
  })
  .openapi("ProduceResponse");

export const FetchQuery = z.object({
  offset: decimal(Number.MAX_SAFE_INTEGER).openapi({ type: "integer", example: "0" }),
  maxRecords: decimal(100_000).pipe(z.number().min(1)).optional().openapi({ type: "integer" }),
  maxBytes: decimal(64 * 1024 * 1024)
    .pipe(z.number().min(1))
    .optional()
    .openapi({ type: "integer" }),
  waitMs: decimal(Number.MAX_SAFE_INTEGER).optional().openapi({ type: "integer" }),
});

/**
 * A fetch's query, as the route reads it: `offset` may be left out only by an event stream
 * that resumes from `Last-Event-ID` (checked by the handler).
 */
export const FetchOrTailQuery = FetchQuery.extend({
  offset: FetchQuery.shape.offset.optional().openapi({
    type: "integer",
    example: "0",
    description:
      "the first offset to read; required, except for an event stream resumed by Last-Event-ID",
  }),
});

export const FetchHeaders = z.object({
  accept: z.string().optional().openapi({
    description: "`text/event-stream` tails the partition live as Server-Sent Events",
  }),
  "last-event-id": z.string().optional().openapi({
    description:
      "event streams only: the next offset to read (the last event's id); wins over `offset`",
  }),
});

export const TailEvents = z.string().openapi({
  description:
    "Server-Sent Events: `retry: <ms>` first; per record `id: <offset + 1>`, `event: record`, " +
    "`data: <the record as in FetchResponse>`; `: keepalive` comments while idle; " +
    "`event: error` with an Error body, then the stream ends",
});

export const ListOffsetsQuery = z.object({
  timestamp: z
    .string()
    .regex(
      /^(earliest|latest|\d{1,16})$/,
      'must be "earliest", "latest" or milliseconds since the epoch',
    )
    .transform((t) => (t === "earliest" || t === "latest" ? t : Number(t)))
    .pipe(z.union([z.enum(["earliest", "latest"]), z.number().int().max(Number.MAX_SAFE_INTEGER)]))
    .openapi({ type: "string", example: "1700000000000" }),
});

export const ListOffsetsOut = z
  .object({
    topic: z.string(),
    partition: z.number().int(),
    timestamp: z.union([z.enum(["earliest", "latest"]), z.number().int()]),
    offset: z.number().int().nullable().openapi({
      description: "null when no record has a timestamp at or after the one asked for",
    }),
    logStartOffset: z.number().int(),
    logEndOffset: z.number().int(),
  })
  .openapi("ListOffsetsResponse");

export const RecordOut = z
  .object({
    offset: z.number().int(),
    timestamp: z.number().int(),
    key: z.string().nullable().optional(),
    keyBase64: z.string().optional(),
    // z.json() would be exact, but its recursion overflows the OpenAPI generator.
    value: z.any().optional().openapi({ description: "the JSON value as produced" }),
    valueBase64: z.string().optional(),
    headers: z.record(z.string(), z.string()),
  })
  .openapi("Record");

export const FetchOut = z
  .object({
    records: z.array(RecordOut),
    nextOffset: z.number().int(),
    logEndOffset: z.number().int(),
  })
  .openapi("FetchResponse");

export const ErrorOut = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(errorCodes) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  })
  .openapi("Error");

/* Consumer groups (docs/rfcs/0002-consumer-groups.md §3). */

export const GroupName = nameSchema("group").openapi({
  description: "the topic rule: 1-249 of [a-zA-Z0-9._-]",
  example: "billing",
});

/** Client-chosen member ids travel in paths, so they keep to a path-safe alphabet. */
const MemberId = z
  .string()
  .regex(/^[a-zA-Z0-9._-]{1,128}$/)
  .openapi({ description: "1-128 of [a-zA-Z0-9._-]", example: "01J9ZK8Q3R5W7Y9A1C3E5G7J9K" });

export const GroupParams = z.object({
  group: GroupName.openapi({ param: { name: "group", in: "path" } }),
});

export const MemberParams = GroupParams.extend({
  memberId: MemberId.openapi({ param: { name: "memberId", in: "path" } }),
});

const PartitionNumber = z
  .number()
  .int()
  .min(0)
  .max(MAX_PARTITIONS - 1);
const Subscription = z.array(TopicName).min(1).max(100);

const TopicPartitionIn = z.object({ topic: TopicName, partition: PartitionNumber }).strict();

export const JoinBody = z
  .object({
    topics: Subscription,
    memberId: MemberId.optional().openapi({
      description: "chosen by the client so that a join whose answer was lost can be retried",
    }),
    clientId: z.string().max(255).nullable().optional(),
    sessionTimeoutMs: z
      .number()
      .int()
      .optional()
      .openapi({ description: "6000-300000, default 30000" }),
    resetPolicy: z.enum(["earliest", "latest"]).optional().openapi({
      description: 'where a partition without a committed offset starts; default "latest"',
    }),
  })
  .strict()
  .openapi("JoinGroupRequest");

export const HeartbeatBody = z
  .object({
    released: z.array(TopicPartitionIn).max(4096).optional().openapi({
      description: "revoking partitions whose processed position is committed",
    }),
    topics: Subscription.optional().openapi({ description: "a new subscription" }),
  })
  .strict()
  .openapi("HeartbeatRequest");

export const GroupFetchBody = z
  .object({
    maxRecords: z.number().int().min(1).max(100_000).optional().openapi({ description: "500" }),
    maxBytes: z
      .number()
      .int()
      .min(1)
      .max(64 * 1024 * 1024)
      .optional()
      .openapi({ description: "1 MiB" }),
    waitMs: z.number().int().min(0).optional(),
    autoCommit: z.boolean().optional().openapi({
      description: "commit the returned positions before answering: at-most-once for the batch",
    }),
  })
  .strict()
  .openapi("GroupFetchRequest");

export const CommitBody = z
  .object({
    offsets: z
      .array(
        z
          .object({
            topic: TopicName,
            partition: PartitionNumber,
            offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
            metadata: z.string().nullable().optional().openapi({ description: "at most 4 KiB" }),
          })
          .strict(),
      )
      .min(1)
      .max(500),
    memberId: MemberId.optional(),
    generation: z.number().int().min(0).optional(),
    rewind: z.boolean().optional(),
  })
  .strict()
  .openapi("CommitRequest");

export const ResetBody = z
  .object({
    to: z.enum(["earliest", "latest", "timestamp", "offset"]),
    timestamp: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    topic: TopicName.optional(),
    partitions: z.array(PartitionNumber).min(1).max(MAX_PARTITIONS).optional(),
    dryRun: z.boolean().optional(),
  })
  .strict()
  .openapi("ResetOffsetsRequest");

const TopicPartitionOut = z.object({ topic: z.string(), partition: z.number().int() });
const GroupStateOut = z.enum(["empty", "reconciling", "stable"]);

export const MemberView = z
  .object({
    memberId: z.string(),
    generation: z.number().int(),
    state: GroupStateOut,
    assignments: z.array(TopicPartitionOut),
    revoking: z.array(TopicPartitionOut),
    pending: z.array(TopicPartitionOut),
    heartbeatIntervalMs: z.number().int(),
    leaseExpiresInMs: z.number().int(),
  })
  .openapi("MemberView");

export const GroupFetchOut = MemberView.extend({
  partitions: z.array(
    TopicPartitionOut.extend({
      records: z.array(RecordOut),
      nextOffset: z.number().int(),
      logEndOffset: z.number().int(),
      reset: z.object({ from: z.number().int().nullable(), to: z.number().int() }).optional(),
    }),
  ),
}).openapi("GroupFetchResponse");

export const CommitOut = z
  .object({
    offsets: z.array(TopicPartitionOut.extend({ offset: z.number().int(), moved: z.boolean() })),
  })
  .openapi("CommitResponse");

export const ResetOut = z
  .object({
    dryRun: z.boolean(),
    offsets: z.array(
      TopicPartitionOut.extend({
        previousOffset: z.number().int().nullable(),
        offset: z.number().int(),
      }),
    ),
  })
  .openapi("ResetOffsetsResponse");

export const GroupDescription = z
  .object({
    group: z.string(),
    state: GroupStateOut,
    generation: z.number().int(),
    resetPolicy: z.enum(["earliest", "latest"]),
    members: z.array(
      z.object({
        memberId: z.string(),
        clientId: z.string().nullable(),
        topics: z.array(z.string()),
        leaseExpiresInMs: z.number().int(),
        assignments: z.array(TopicPartitionOut),
        revoking: z.array(TopicPartitionOut),
        pending: z.array(TopicPartitionOut),
      }),
    ),
    partitions: z.array(
      TopicPartitionOut.extend({
        currentOffset: z.number().int().nullable(),
        logStartOffset: z.number().int(),
        logEndOffset: z.number().int(),
        lag: z.number().int(),
        memberId: z.string().nullable(),
        metadata: z.string().nullable(),
      }),
    ),
    totalLag: z.number().int(),
  })
  .openapi("GroupDescription");

export const GroupList = z
  .object({ groups: z.array(z.object({ group: z.string(), createdAt: z.number().int() })) })
  .openapi("GroupList");

export const MaintenanceQuery = z.object({
  topic: TopicName.optional().openapi({
    param: { name: "topic", in: "query" },
    description: "roll and retain only this topic's partitions",
  }),
});

export const MaintenanceReport = z
  .object({
    partitions: z.number().int(),
    objectsScanned: z.number().int(),
    orphansDeleted: z.number().int(),
    deletedTopicObjectsDeleted: z.number().int(),
    segmentsRolled: z.number().int(),
    chunksReplaced: z.number().int(),
    segmentsRetired: z.number().int(),
    intentsAborted: z.number().int(),
    garbageObjectsDeleted: z.number().int(),
    deletedTopicItemsDeleted: z.number().int(),
    rollsFailed: z.number().int(),
  })
  .openapi("MaintenanceReport");

const ScopeList = z
  .array(z.string().max(300))
  .min(1)
  .max(MAX_SCOPES)
  .openapi({ example: ["produce:topic:events.*", "consume:group:analytics"] });

const RateLimitIn = z
  .object({
    perSecond: z.number().positive().max(1_000_000),
    burst: z.number().int().min(1).max(1_000_000),
  })
  .strict();

export const CreateKeyBody = z
  .object({
    scopes: ScopeList,
    description: z.string().max(256).optional(),
    expiresInSeconds: z
      .number()
      .int()
      .min(60)
      .max(10 * 365 * 86_400)
      .optional(),
    rateLimit: RateLimitIn.optional().openapi({
      description: "this key's request rate per instance, instead of the server's",
    }),
  })
  .strict()
  .openapi("CreateKeyRequest");

export const KeyParams = z.object({
  keyId: z
    .string()
    .regex(/^[0-9A-HJKMNP-TV-Z]{26}$/, "a key id is 26 characters of Crockford base32")
    .openapi({ param: { name: "keyId", in: "path" } }),
});

export const KeyInfo = z
  .object({
    id: z.string(),
    scopes: z.array(z.string()),
    description: z.string(),
    createdAt: z.number().int(),
    expiresAt: z.number().int().nullable(),
    revokedAt: z.number().int().nullable(),
    rateLimit: z.object({ perSecond: z.number(), burst: z.number().int() }).nullable(),
  })
  .openapi("ApiKey");

export const KeyCreatedOut = KeyInfo.extend({
  key: z.string().openapi({ description: "the key itself, shown this once and never again" }),
}).openapi("CreatedApiKey");

export const KeyList = z.object({ keys: z.array(KeyInfo) }).openapi("ApiKeyList");

export const MintTokenBody = z
  .object({
    scopes: ScopeList,
    subject: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces")
      .optional()
      .openapi({ description: "who the token is for (`sub`); default: the caller" }),
    ttlSeconds: z.number().int().min(1).optional().openapi({ description: "default 900" }),
  })
  .strict()
  .openapi("MintTokenRequest");

export const TokenOut = z
  .object({
    token: z.string(),
    expiresAt: z.number().int(),
    scopes: z.array(z.string()),
  })
  .openapi("Token");
