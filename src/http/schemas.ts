import { z } from "@hono/zod-openapi";
import { MAX_PARTITIONS, TopicConfigSchema } from "../config.js";
import { errorCodes, type ErrorCode } from "../errors.js";
import { NAME_PATTERN, isValidName } from "../log/names.js";

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

export const PartitionState = z.object({
  partition: z.number().int(),
  logStartOffset: z.number().int(),
  logEndOffset: z.number().int(),
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

export const MAX_RECORDS_PER_REQUEST = 10_000;

export const ProduceBody = z
  .object({ records: z.array(ProduceRecordIn).min(1).max(MAX_RECORDS_PER_REQUEST) })
  .strict()
  .openapi("ProduceRequest");

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
