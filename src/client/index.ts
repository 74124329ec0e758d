/**
 * Sluice's TypeScript client. It needs only fetch, TextEncoder, AbortController and setTimeout,
 * so it runs in Node ≥ 20, browsers, Cloudflare Workers and Deno; its wire types are inferred
 * from the server's zod schemas at compile time and import no server code at run time.
 */
export { SluiceClient, type ClientOptions, type FetchOptions, type TailOptions } from "./client.js";
export type { Admin } from "./admin.js";
export {
  BatchingProducer,
  type ProduceInput,
  type Producer,
  type ProducerOptions,
  type RecordMetadata,
} from "./producer.js";
export {
  GroupConsumer,
  type Consumer,
  type ConsumerOptions,
  type EachBatchPayload,
  type EachRecordPayload,
  type RunHandlers,
} from "./consumer.js";
export { SluiceApiError, isSluiceApiError } from "./errors.js";
export type { RetryOptions } from "./http.js";
export type {
  ApiKeyInfo,
  ConsumedRecord,
  CreateKeyRequest,
  CreatedApiKey,
  FetchResult,
  GroupDescription,
  MaintenanceReport,
  MemberView,
  MintTokenRequest,
  MintedToken,
  ResetBody,
  ResetOut,
  TopicConfig,
  TopicDescription,
  TopicInfo,
  TopicPartition,
} from "./types.js";
