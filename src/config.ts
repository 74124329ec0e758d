import { z } from "zod";
import type { JwtConfig } from "./auth/jwt.js";
import { MIN_SECRET_BYTES } from "./auth/jwt.js";
import type { RateLimit } from "./auth/principal.js";
import { Secret } from "./auth/secret.js";

/**
 * All tunables live here. Topic-level settings keep Kafka's names so that people who know
 * Kafka can read them; server-level settings come from the environment.
 */

const MiB = 1024 * 1024;

export const topicConfigDefaults = {
  /** Kafka's default is 7 days; -1 keeps data forever. */
  "retention.ms": 7 * 24 * 60 * 60 * 1000,
  /** -1 means no size limit, as in Kafka. */
  "retention.bytes": -1,
  /** Smaller than Kafka's 1 GiB: sealed segments are read by range, but rolls rewrite them. */
  "segment.bytes": 64 * MiB,
  /** Roll an active segment at least hourly so small topics still get sealed segments. */
  "segment.ms": 60 * 60 * 1000,
  /** Kafka's default (1 MiB + record overhead). */
  "max.message.bytes": 1_048_588,
} as const;

export const TopicConfigSchema = z
  .object({
    "retention.ms": z.number().int().min(-1).default(topicConfigDefaults["retention.ms"]),
    "retention.bytes": z.number().int().min(-1).default(topicConfigDefaults["retention.bytes"]),
    "segment.bytes": z
      .number()
      .int()
      .min(1024)
      .max(5 * 1024 * MiB)
      .default(topicConfigDefaults["segment.bytes"]),
    "segment.ms": z.number().int().min(1).default(topicConfigDefaults["segment.ms"]),
    "max.message.bytes": z
      .number()
      .int()
      .min(1)
      .max(16 * MiB)
      .default(topicConfigDefaults["max.message.bytes"]),
  })
  .strict();

export type TopicConfig = z.output<typeof TopicConfigSchema>;
export type TopicConfigInput = z.input<typeof TopicConfigSchema>;

export const MAX_PARTITIONS = 1024;

/** Most records one produce request may carry, whatever the configuration says. */
export const MAX_RECORDS_PER_REQUEST = 10_000;

export interface LogConfig {
  /** How long a partition buffer waits for more records before flushing (Kafka's `linger.ms`). */
  lingerMs: number;
  /** Flush as soon as a partition buffer holds this many bytes. */
  flushBytes: number;
  /** Upper bound for a fetch's `waitMs`. */
  maxWaitMs: number;
  /** How often a long-poll re-reads the log-end offset to see other processes' commits. */
  pollIntervalMs: number;
  /** How long topic metadata is cached in this process. */
  topicCacheMs: number;
  /** Bytes of immutable objects kept in memory for reads. */
  objectCacheBytes: number;
  /** Conditional-commit attempts before a flush gives up with 503. */
  maxCommitAttempts: number;
  /**
   * A flush that has not committed this long after its upload gives up (503): maintenance may
   * delete an unreferenced object once it is orphanGraceMs old, so a commit must never land
   * that late.
   */
  commitTimeoutMs: number;
  /** Garbage collection leaves objects younger than this alone (in-flight writes and reads). */
  orphanGraceMs: number;
  /** How often the Node server runs maintenance; 0 turns the timer off. */
  maintenanceIntervalMs: number;
  /** Largest `maxBytes` a fetch may ask for (a Lambda response is at most 6 MB). */
  maxFetchBytes: number;
  /**
   * Chunks younger than this are never rolled. A writer resolving a lost commit answer looks for
   * its own chunk entry, so a roll must not replace it before the writer gives up: this must be
   * far above commitTimeoutMs (clock skew included).
   */
  rollMinAgeMs: number;
  /** A roll or retention step still pending after this long was cut short; the next pass aborts it. */
  intentTimeoutMs: number;
  /** A roll builds its segment in memory, so one segment holds at most this many bytes. */
  rollMaxBytes: number;
  /** Sealed segments are read in ranged GETs of about this size, cached by every reader alike. */
  segmentBlockBytes: number;
}

export const MIN_ORPHAN_GRACE_MS = 10 * 60 * 1000;

export const logConfigDefaults: LogConfig = {
  lingerMs: 5,
  flushBytes: 4 * MiB,
  maxWaitMs: 30_000,
  pollIntervalMs: 100,
  topicCacheMs: 1_000,
  objectCacheBytes: 64 * MiB,
  maxCommitAttempts: 100,
  commitTimeoutMs: 60_000,
  orphanGraceMs: 60 * 60 * 1000,
  maintenanceIntervalMs: 15 * 60 * 1000,
  maxFetchBytes: 64 * MiB,
  rollMinAgeMs: 10 * 60 * 1000,
  intentTimeoutMs: 30 * 60 * 1000,
  rollMaxBytes: 256 * MiB,
  segmentBlockBytes: 4 * MiB,
};

export interface GroupConfig {
  /** A member's lease when it does not ask for another. */
  sessionTimeoutMs: number;
  minSessionTimeoutMs: number;
  maxSessionTimeoutMs: number;
  /** How long a dead member still holds its partitions: the clock difference allowed (§4.3). */
  clockSkewMs: number;
  /** Members (live or dead) per group; bounds the state document's size. */
  maxMembers: number;
  /** Partitions all members' subscriptions may cover together; bounds it too. */
  maxPartitions: number;
}

export const groupConfigDefaults: GroupConfig = {
  sessionTimeoutMs: 30_000,
  minSessionTimeoutMs: 6_000,
  maxSessionTimeoutMs: 300_000,
  clockSkewMs: 1_000,
  maxMembers: 100,
  maxPartitions: 4_096,
};

/** Live tails over Server-Sent Events (`Accept: text/event-stream` on a partition's records). */
export interface SseConfig {
  /** A `: keepalive` comment goes out after this long without an event (proxies cut idle ones). */
  heartbeatMs: number;
  /** Sent as `retry:`: how long EventSource waits before it reconnects with Last-Event-ID. */
  retryMs: number;
  /** A stream ends after this long and the client reconnects; 0: open while the client stays. */
  maxStreamMs: number;
}

export const sseConfigDefaults: SseConfig = {
  heartbeatMs: 15_000,
  retryMs: 1_000,
  maxStreamMs: 0,
};

/** Authentication, scopes and per-principal limits (docs/rfcs/0005-auth-and-limits.md). */
export interface AuthConfig {
  /** `off` lets every request through as an administrator: loopback-only by default. */
  mode: "required" | "off";
  /** Token verification; with neither a secret nor a JWKS URL only API keys authenticate. */
  jwt: JwtConfig;
  /**
   * Where the cloud function reads the shared token secret (Secrets Manager), so that the
   * value never sits in the function's environment.
   */
  jwtSecretArn: string | undefined;
  /** How long a key lookup is trusted: a revocation takes effect within this time. */
  keyCacheMs: number;
  /** Each principal's request rate in this process, unless its key carries its own; null: none. */
  rateLimit: RateLimit | null;
  /** Open event streams per principal. */
  maxStreams: number;
}

export const authConfigDefaults = {
  issuer: "sluice",
  audience: "sluice",
  maxTtlS: 3600,
  keyCacheMs: 10_000,
  rateLimit: { perSecond: 100, burst: 200 },
  maxStreams: 16,
} as const;

export interface ServerConfig {
  host: string;
  port: number;
  dataDir: string;
  /** S3 (or S3-compatible) bucket for objects; the local directory when unset. */
  bucket: string | undefined;
  /** Key prefix inside the bucket, e.g. `sluice/`. */
  prefix: string;
  /** DynamoDB table for metadata; embedded SQLite when unset. */
  table: string | undefined;
  /** Largest accepted request body, checked before parsing. */
  maxRequestBytes: number;
  /** Most records in one produce request (at most MAX_RECORDS_PER_REQUEST). */
  maxRecordsPerRequest: number;
  auth: AuthConfig;
  log: LogConfig;
  groups: GroupConfig;
  sse: SseConfig;
  /**
   * Browser origins allowed to call the API (CORS), e.g. `https://app.example.com`; `["*"]`
   * allows any origin; empty (the default) sends no CORS headers at all.
   */
  corsOrigins: string[];
}

const intFromEnv = (fallback: number) =>
  z.coerce.number().int().nonnegative().optional().default(fallback);

const EnvSchema = z.object({
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: intFromEnv(8080),
  SLUICE_DATA_DIR: z.string().min(1).default("./data"),
  SLUICE_BUCKET: z.string().min(1).optional(),
  // A prefix is a folder: "sluice" and "sluice/" both mean keys under sluice/.
  SLUICE_PREFIX: z
    .string()
    .default("")
    .transform((p) => (p === "" || p.endsWith("/") ? p : `${p}/`)),
  SLUICE_TABLE: z.string().min(1).optional(),
  SLUICE_MAX_REQUEST_BYTES: intFromEnv(8 * MiB),
  SLUICE_LINGER_MS: intFromEnv(logConfigDefaults.lingerMs),
  SLUICE_FLUSH_BYTES: intFromEnv(logConfigDefaults.flushBytes),
  SLUICE_MAX_WAIT_MS: intFromEnv(logConfigDefaults.maxWaitMs),
  SLUICE_POLL_INTERVAL_MS: intFromEnv(logConfigDefaults.pollIntervalMs),
  SLUICE_TOPIC_CACHE_MS: intFromEnv(logConfigDefaults.topicCacheMs),
  SLUICE_OBJECT_CACHE_BYTES: intFromEnv(logConfigDefaults.objectCacheBytes),
  // Far above commitTimeoutMs: a slow writer's object must never look like an orphan.
  SLUICE_ORPHAN_GRACE_MS: z.coerce
    .number()
    .int()
    .min(MIN_ORPHAN_GRACE_MS)
    .optional()
    .default(logConfigDefaults.orphanGraceMs),
  SLUICE_MAINTENANCE_INTERVAL_MS: intFromEnv(logConfigDefaults.maintenanceIntervalMs),
  SLUICE_MAX_FETCH_BYTES: intFromEnv(logConfigDefaults.maxFetchBytes),
  SLUICE_ROLL_MIN_AGE_MS: z.coerce
    .number()
    .int()
    .min(3 * logConfigDefaults.commitTimeoutMs)
    .optional()
    .default(logConfigDefaults.rollMinAgeMs),
  SLUICE_INTENT_TIMEOUT_MS: intFromEnv(logConfigDefaults.intentTimeoutMs),
  SLUICE_ROLL_MAX_BYTES: intFromEnv(logConfigDefaults.rollMaxBytes),
  SLUICE_SEGMENT_BLOCK_BYTES: intFromEnv(logConfigDefaults.segmentBlockBytes),
  SLUICE_GROUP_SESSION_TIMEOUT_MS: intFromEnv(groupConfigDefaults.sessionTimeoutMs),
  SLUICE_GROUP_CLOCK_SKEW_MS: intFromEnv(groupConfigDefaults.clockSkewMs),
  SLUICE_GROUP_MAX_MEMBERS: intFromEnv(groupConfigDefaults.maxMembers),
  SLUICE_SSE_HEARTBEAT_MS: intFromEnv(sseConfigDefaults.heartbeatMs),
  SLUICE_SSE_RETRY_MS: intFromEnv(sseConfigDefaults.retryMs),
  SLUICE_SSE_MAX_STREAM_MS: intFromEnv(sseConfigDefaults.maxStreamMs),
  SLUICE_CORS_ORIGINS: z.string().default("").transform(parseCorsOrigins),
  SLUICE_MAX_RECORDS_PER_REQUEST: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_RECORDS_PER_REQUEST)
    .optional()
    .default(MAX_RECORDS_PER_REQUEST),
  SLUICE_AUTH: z.enum(["auto", "required", "off"]).default("auto"),
  SLUICE_JWT_SECRET: z
    .string()
    .refine((s) => Buffer.byteLength(s) >= MIN_SECRET_BYTES, {
      message: `must be at least ${MIN_SECRET_BYTES} bytes`,
    })
    .transform((s) => new Secret(s))
    .optional(),
  SLUICE_JWT_SECRET_ARN: z.string().min(1).optional(),
  // Keys fetched over plain HTTP could be swapped in transit: HTTPS, or loopback for tests.
  SLUICE_JWT_JWKS_URL: z
    .url({ protocol: /^https?$/ })
    .refine((u) => u.startsWith("https:") || isLoopback(new URL(u).hostname), {
      message: "must be an https URL (http only on a loopback address)",
    })
    .optional(),
  SLUICE_JWT_ISSUER: z.string().min(1).default(authConfigDefaults.issuer),
  SLUICE_JWT_AUDIENCE: z.string().min(1).default(authConfigDefaults.audience),
  SLUICE_JWT_MAX_TTL_S: z.coerce.number().int().min(1).default(authConfigDefaults.maxTtlS),
  SLUICE_KEY_CACHE_MS: intFromEnv(authConfigDefaults.keyCacheMs),
  SLUICE_RATE_LIMIT: z.string().optional().transform(parseRateLimit),
  SLUICE_MAX_STREAMS: z.coerce.number().int().min(1).default(authConfigDefaults.maxStreams),
});

/**
 * `perSecond` or `perSecond:burst` (the burst defaults to twice the rate), or `off`; unset
 * means the default.
 */
function parseRateLimit(value: string | undefined, ctx: z.RefinementCtx): RateLimit | null {
  if (value === undefined || value.trim() === "") return authConfigDefaults.rateLimit;
  if (value.trim() === "off") return null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?::\s*(\d+)\s*)?$/.exec(value);
  const perSecond = match ? Number(match[1]) : NaN;
  const burst = match?.[2] === undefined ? Math.max(1, Math.ceil(perSecond * 2)) : Number(match[2]);
  if (!(perSecond > 0) || !(burst >= 1)) {
    ctx.addIssue({
      code: "custom",
      message: 'a rate like "100" or "100:200" (per second:burst), or "off"',
    });
    return z.NEVER;
  }
  return { perSecond, burst };
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/i;

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/**
 * A comma-separated list of origins (`scheme://host[:port]`, as browsers send them in `Origin`),
 * or `*`. A trailing slash is dropped; anything with a path, query or credentials is refused,
 * since it could never match.
 */
function parseCorsOrigins(value: string, ctx: z.RefinementCtx): string[] {
  const items = value
    .split(",")
    .map((o) => o.trim().replace(/\/$/, ""))
    .filter((o) => o !== "");
  if (items.includes("*")) return ["*"];
  const origins: string[] = [];
  for (const item of items) {
    let origin: string | undefined;
    try {
      const url = new URL(item);
      if (url.origin !== "null" && url.origin === item.toLowerCase()) origin = url.origin;
    } catch {
      origin = undefined;
    }
    if (origin === undefined) {
      ctx.addIssue({
        code: "custom",
        message: `"${item}" is not an origin like https://host:port`,
      });
      return z.NEVER;
    }
    origins.push(origin);
  }
  return [...new Set(origins)];
}

/**
 * `auto` (the default) turns authentication on unless the server listens on a loopback
 * address with no token settings: the embedded server stays convenient, and anything
 * reachable from elsewhere asks for credentials.
 */
function authFromEnv(e: z.output<typeof EnvSchema>): AuthConfig {
  const tokenSettings =
    e.SLUICE_JWT_SECRET !== undefined ||
    e.SLUICE_JWT_SECRET_ARN !== undefined ||
    e.SLUICE_JWT_JWKS_URL !== undefined;
  const mode =
    e.SLUICE_AUTH === "auto"
      ? isLoopback(e.HOST) && !tokenSettings
        ? "off"
        : "required"
      : e.SLUICE_AUTH;
  return {
    mode,
    jwt: {
      secret: e.SLUICE_JWT_SECRET,
      jwksUrl: e.SLUICE_JWT_JWKS_URL,
      issuer: e.SLUICE_JWT_ISSUER,
      audience: e.SLUICE_JWT_AUDIENCE,
      maxTtlS: e.SLUICE_JWT_MAX_TTL_S,
    },
    jwtSecretArn: e.SLUICE_JWT_SECRET_ARN,
    keyCacheMs: e.SLUICE_KEY_CACHE_MS,
    rateLimit: e.SLUICE_RATE_LIMIT,
    maxStreams: e.SLUICE_MAX_STREAMS,
  };
}

/** Reads the server configuration from the environment; unknown variables are ignored. */
export function serverConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new Error(`invalid configuration: ${problems.join("; ")}`);
  }
  const e = parsed.data;
  return {
    host: e.HOST,
    port: e.PORT,
    dataDir: e.SLUICE_DATA_DIR,
    bucket: e.SLUICE_BUCKET,
    prefix: e.SLUICE_PREFIX,
    table: e.SLUICE_TABLE,
    maxRequestBytes: e.SLUICE_MAX_REQUEST_BYTES,
    maxRecordsPerRequest: e.SLUICE_MAX_RECORDS_PER_REQUEST,
    auth: authFromEnv(e),
    log: {
      ...logConfigDefaults,
      lingerMs: e.SLUICE_LINGER_MS,
      flushBytes: e.SLUICE_FLUSH_BYTES,
      maxWaitMs: e.SLUICE_MAX_WAIT_MS,
      pollIntervalMs: Math.max(1, e.SLUICE_POLL_INTERVAL_MS),
      topicCacheMs: e.SLUICE_TOPIC_CACHE_MS,
      objectCacheBytes: e.SLUICE_OBJECT_CACHE_BYTES,
      orphanGraceMs: e.SLUICE_ORPHAN_GRACE_MS,
      maintenanceIntervalMs: e.SLUICE_MAINTENANCE_INTERVAL_MS,
      maxFetchBytes: Math.max(1, e.SLUICE_MAX_FETCH_BYTES),
      rollMinAgeMs: e.SLUICE_ROLL_MIN_AGE_MS,
      intentTimeoutMs: e.SLUICE_INTENT_TIMEOUT_MS,
      rollMaxBytes: Math.max(1, e.SLUICE_ROLL_MAX_BYTES),
      segmentBlockBytes: Math.max(64 * 1024, e.SLUICE_SEGMENT_BLOCK_BYTES),
    },
    groups: {
      ...groupConfigDefaults,
      sessionTimeoutMs: e.SLUICE_GROUP_SESSION_TIMEOUT_MS,
      clockSkewMs: e.SLUICE_GROUP_CLOCK_SKEW_MS,
      maxMembers: Math.max(1, e.SLUICE_GROUP_MAX_MEMBERS),
    },
    sse: {
      heartbeatMs: Math.max(1, e.SLUICE_SSE_HEARTBEAT_MS),
      retryMs: e.SLUICE_SSE_RETRY_MS,
      maxStreamMs: e.SLUICE_SSE_MAX_STREAM_MS,
    },
    corsOrigins: e.SLUICE_CORS_ORIGINS,
  };
}
