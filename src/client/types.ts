import type { z } from "@hono/zod-openapi";
// Types only: the schemas define the wire format, and nothing of the server reaches a bundle.
import type * as api from "../http/schemas.js";

/** The wire types, inferred from the zod schemas the server validates and documents with. */

/** `POST /v1/topics`'s answer. */
export type TopicInfo = z.output<typeof api.TopicOut>;
/** `GET /v1/topics/{topic}`'s answer. */
export type TopicDescription = z.output<typeof api.TopicDescription>;
/** Kafka's topic settings by their Kafka names (`retention.ms`, …). */
export type TopicConfig = z.output<typeof api.TopicConfigOut>;
/** `GET /v1/groups/{group}`'s answer: members, committed offsets and lag. */
export type GroupDescription = z.output<typeof api.GroupDescription>;
/** `POST /v1/groups/{group}/offsets/reset`'s body. */
export type ResetBody = z.input<typeof api.ResetBody>;
/** `POST /v1/groups/{group}/offsets/reset`'s answer. */
export type ResetOut = z.output<typeof api.ResetOut>;
/** `POST /v1/admin/maintenance`'s answer. */
export type MaintenanceReport = z.output<typeof api.MaintenanceReport>;
/** `POST /v1/auth/keys`'s body: the new key's scopes, description, lifetime and rate. */
export type CreateKeyRequest = z.input<typeof api.CreateKeyBody>;
/** An API key as listed: everything but its secret. */
export type ApiKeyInfo = z.output<typeof api.KeyInfo>;
/** `POST /v1/auth/keys`'s answer: the key itself (`key`) is in this answer only. */
export type CreatedApiKey = z.output<typeof api.KeyCreatedOut>;
/** `POST /v1/auth/tokens`'s body. */
export type MintTokenRequest = z.input<typeof api.MintTokenBody>;
/** `POST /v1/auth/tokens`'s answer. */
export type MintedToken = z.output<typeof api.TokenOut>;
/** What a group member is told on every answer (RFC 0002 §3). */
export type MemberView = z.output<typeof api.MemberView>;

export type WireRecord = z.output<typeof api.RecordOut>;
export type WireProduceRecord = z.input<typeof api.ProduceRecordIn>;
export type ProduceAnswer = z.output<typeof api.ProduceOut>;
export type WireFetchAnswer = z.output<typeof api.FetchOut>;
export type GroupFetchAnswer = z.output<typeof api.GroupFetchOut>;
export type JoinRequest = z.input<typeof api.JoinBody>;
export type HeartbeatRequest = z.input<typeof api.HeartbeatBody>;
export type GroupFetchRequest = z.input<typeof api.GroupFetchBody>;
export type CommitRequest = z.input<typeof api.CommitBody>;
export type CommitAnswer = z.output<typeof api.CommitOut>;
export type ListOffsetsAnswer = z.output<typeof api.ListOffsetsOut>;

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A record as a consumer sees it. */
export interface ConsumedRecord {
  offset: number;
  timestamp: number;
  /** The UTF-8 key; null for a keyless record and for a binary key (see `keyBase64`). */
  key: string | null;
  /** A binary key, base64. */
  keyBase64?: string;
  /** The JSON value as produced; for a binary value, its bytes as a Uint8Array. */
  value: unknown;
  /** A binary value, base64. */
  valueBase64?: string;
  headers: Record<string, string>;
}

export interface FetchResult {
  records: ConsumedRecord[];
  /** The offset to fetch next. */
  nextOffset: number;
  logEndOffset: number;
}
