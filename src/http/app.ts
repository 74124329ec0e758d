import { OpenAPIHono, createRoute, type z } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { SluiceError } from "../errors.js";
import { GroupService, groupStoreOf } from "../groups/service.js";
import { logger as defaultLogger, type Logger } from "../logger.js";
import type { SluiceLog } from "../log/log.js";
import type { Authenticator } from "../auth/authenticator.js";
import type { JwtConfig } from "../auth/jwt.js";
import type { RateLimit } from "../auth/principal.js";
import { StreamLimiter } from "../auth/rate-limit.js";
import { MAX_RECORDS_PER_REQUEST } from "../config.js";
import { keyStoreOf, type KeyStore } from "../meta/key-store.js";
import { authMiddleware, streamSlot, visible } from "./auth.js";
import { registerAuthRoutes } from "./auth-routes.js";
import { corsMiddleware } from "./cors.js";
import { toErrorResponse, validationError } from "./errors.js";
import { registerGroupRoutes } from "./groups.js";
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS, errors, json, prebuiltJson } from "./openapi.js";
import { fetchResponseJson, toProduceRecord } from "./records.js";
import {
  CreateTopicBody,
  DescribeQuery,
  FetchHeaders,
  FetchOrTailQuery,
  FetchOut,
  ListOffsetsOut,
  ListOffsetsQuery,
  MaintenanceQuery,
  MaintenanceReport,
  PartitionParams,
  ProduceBody,
  ProduceHeaders,
  ProduceOut,
  TopicDescription,
  TopicList,
  TopicOut,
  TopicParams,
  TailEvents,
} from "./schemas.js";
import {
  sseOptionsDefaults,
  tailResponse,
  tailStart,
  wantsEventStream,
  type SseOptions,
} from "./sse.js";

export interface AppOptions {
  log: SluiceLog;
  /** Request bodies over this size are refused before they are parsed. */
  maxRequestBytes: number;
  logger?: Logger;
  /** Consumer groups; by default served from the log's metadata table at the system clock. */
  groups?: GroupService;
  /**
   * Whether `POST /v1/admin/maintenance` runs a pass (default true). The HTTP function in the
   * cloud says no: a roll may need more memory and time than a request has, and maintenance
   * has a function and a role of its own.
   */
  maintenance?: boolean;
  /**
   * Event streams of a partition's records (`Accept: text/event-stream`). Set `bounded` where
   * responses are buffered (Lambda): each answer then ends after one batch or one wait.
   */
  sse?: Partial<SseOptions>;
  /** Origins allowed by CORS (`["*"]`: any); none, the default, sends no CORS headers. */
  corsOrigins?: readonly string[];
  /** Most records in one produce request (default and ceiling MAX_RECORDS_PER_REQUEST). */
  maxRecordsPerRequest?: number;
  /** Credentials, scopes and limits; by default authentication is off and nothing is limited. */
  auth?: Partial<AppAuth>;
}

export interface AppAuth {
  /** Verifies credentials; undefined turns authentication off (every caller is an administrator). */
  authenticator: Authenticator | undefined;
  /** Where API keys live; by default the log's metadata table. */
  keys: KeyStore;
  /** Token settings; minting needs its secret. */
  jwt: JwtConfig | undefined;
  /** Each principal's request rate unless its credential carries one; null: unlimited. */
  rateLimit: RateLimit | null;
  /** Open event streams per principal. */
  maxStreams: number;
  now: () => number;
}

const routes = {
  createTopic: createRoute({
    method: "post",
    path: "/v1/topics",
    request: { body: { content: { "application/json": { schema: CreateTopicBody } } } },
    responses: { 201: json(TopicOut, "created"), ...errors(400, 409, 503) },
  }),
  listTopics: createRoute({
    method: "get",
    path: "/v1/topics",
    responses: { 200: json(TopicList, "topics"), ...errors(503) },
  }),
  describeTopic: createRoute({
    method: "get",
    path: "/v1/topics/{topic}",
    request: { params: TopicParams, query: DescribeQuery },
    responses: { 200: json(TopicDescription, "topic"), ...errors(400, 404, 503) },
  }),
  deleteTopic: createRoute({
    method: "delete",
    path: "/v1/topics/{topic}",
    request: { params: TopicParams },
    responses: { 204: { description: "deleted" }, ...errors(400, 404, 503) },
  }),
  produce: createRoute({
    method: "post",
    path: "/v1/topics/{topic}/records",
    request: {
      params: TopicParams,
      headers: ProduceHeaders,
      body: { content: { "application/json": { schema: ProduceBody } }, required: true },
    },
    responses: {
      200: json(
        ProduceOut,
        "offsets in request order, sent once durable; a resend of a committed idempotent request gets the original offsets",
      ),
      ...errors(400, 403, 404, 409, 413, 503),
    },
  }),
  fetch: createRoute({
    method: "get",
    path: "/v1/topics/{topic}/partitions/{partition}/records",
    request: { params: PartitionParams, query: FetchOrTailQuery, headers: FetchHeaders },
    responses: {
      200: {
        content: {
          "application/json": { schema: FetchOut },
          "text/event-stream": { schema: TailEvents },
        },
        description: "records from the offset, or with Accept: text/event-stream a live tail",
      },
      ...errors(400, 404, 416, 503),
    },
  }),
  listOffsets: createRoute({
    method: "get",
    path: "/v1/topics/{topic}/partitions/{partition}/offsets",
    request: { params: PartitionParams, query: ListOffsetsQuery },
    responses: {
      200: json(ListOffsetsOut, "Kafka's ListOffsets: by time, earliest or latest"),
      ...errors(400, 404, 503),
    },
  }),
  maintenance: createRoute({
    method: "post",
    path: "/v1/admin/maintenance",
    request: { query: MaintenanceQuery },
    responses: {
      200: json(MaintenanceReport, "one pass: rolls, retention and cleanup"),
      ...errors(400, 403, 404, 503),
    },
  }),
};

export function createApp(options: AppOptions): OpenAPIHono {
  const { log } = options;
  const logger = options.logger ?? defaultLogger;
  const app = new OpenAPIHono({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error);
    },
  });

  const auth: AppAuth = {
    authenticator: undefined,
    keys: options.auth?.keys ?? keyStoreOf(log.meta),
    jwt: undefined,
    rateLimit: null,
    maxStreams: Infinity,
    now: Date.now,
    ...options.auth,
  };
  const maxRecords = Math.min(
    options.maxRecordsPerRequest ?? MAX_RECORDS_PER_REQUEST,
    MAX_RECORDS_PER_REQUEST,
  );
  const streams = new StreamLimiter(auth.maxStreams);

  app.onError((err, c) => toErrorResponse(err, c, logger));
  const cors = corsMiddleware(options.corsOrigins ?? []);
  if (cors) app.use("*", cors);
  app.use("*", authMiddleware(auth, logger));
  app.notFound((c) =>
    toErrorResponse(
      new SluiceError("not_found", `no route for ${c.req.method} ${c.req.path}`),
      c,
      logger,
    ),
  );
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: options.maxRequestBytes,
      onError: () => {
        throw new SluiceError(
          "payload_too_large",
          `request bodies are limited to ${options.maxRequestBytes} bytes`,
        );
      },
    }),
  );

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/v1/metrics", (c) => c.json({ topics: log.metrics.snapshot() }));
  app.openapi(routes.maintenance, async (c) => {
    if (options.maintenance === false) {
      throw new SluiceError(
        "forbidden",
        "maintenance does not run here; invoke the maintenance function instead",
      );
    }
    const { topic } = c.req.valid("query");
    return c.json(await log.runMaintenance(topic === undefined ? {} : { topic }), 200);
  });

  app.openapi(routes.createTopic, async (c) => {
    const body = c.req.valid("json");
    const topic = await log.topics.create(body.name, body.partitions, body.config);
    return c.json({ name: topic.name, partitions: topic.partitions, config: topic.config }, 201);
  });

  app.openapi(routes.listTopics, async (c) => {
    const topics = (await log.topics.list()).filter((t) => visible(c, "topic", t.name));
    return c.json({ topics: topics.map((t) => ({ name: t.name, partitions: t.partitions })) }, 200);
  });

  app.openapi(routes.describeTopic, async (c) => {
    const { topic: name } = c.req.valid("param");
    const { segments } = c.req.valid("query");
    const { topic, partitions } = await log.topics.describe(name, {
      segments: segments === "true",
    });
    return c.json(
      {
        name: topic.name,
        id: topic.id,
        createdAt: topic.createdAt,
        config: topic.config,
        partitions,
      },
      200,
    );
  });

  app.openapi(routes.deleteTopic, async (c) => {
    const { topic } = c.req.valid("param");
    await log.topics.delete(topic);
    return c.body(null, 204);
  });

  app.openapi(routes.produce, async (c) => {
    const { topic } = c.req.valid("param");
    const { records } = c.req.valid("json");
    if (records.length > maxRecords) {
      throw new SluiceError("payload_too_large", `at most ${maxRecords} records per request`);
    }
    const h = c.req.valid("header");
    const id = h["producer-id"];
    const epoch = h["producer-epoch"];
    const seq = h["producer-seq"];
    const producer =
      id === undefined || epoch === undefined || seq === undefined
        ? {}
        : { producer: { id, epoch, seq } };
    const offsets = await log.produce(topic, records.map(toProduceRecord), producer);
    return c.json({ offsets }, 200);
  });

  app.openapi(routes.fetch, async (c) => {
    const { topic, partition } = c.req.valid("param");
    const query = c.req.valid("query");
    const headers = c.req.valid("header");
    if (wantsEventStream(headers.accept)) {
      const offset = tailStart(headers["last-event-id"], query.offset);
      const limits = {
        maxRecords: query.maxRecords ?? DEFAULT_MAX_RECORDS,
        maxBytes: query.maxBytes ?? DEFAULT_MAX_BYTES,
      };
      const request = { topic, partition, offset, ...limits, waitMs: query.waitMs };
      const release = streamSlot(c, streams);
      const sse = { ...sseOptionsDefaults, ...options.sse };
      return tailResponse(c, log, request, sse, logger, release);
    }
    const result = await log.fetch(topic, partition, tailStart(undefined, query.offset), {
      maxRecords: query.maxRecords ?? DEFAULT_MAX_RECORDS,
      maxBytes: query.maxBytes ?? DEFAULT_MAX_BYTES,
      waitMs: query.waitMs ?? 0,
      signal: c.req.raw.signal,
    });
    return prebuiltJson<z.output<typeof FetchOut>>(fetchResponseJson(result));
  });

  app.openapi(routes.listOffsets, async (c) => {
    const { topic, partition } = c.req.valid("param");
    const { timestamp } = c.req.valid("query");
    const { offset, head } = await log.listOffset(topic, partition, timestamp);
    return c.json({ topic, partition, timestamp, offset, ...head }, 200);
  });

  registerAuthRoutes(app, auth);

  registerGroupRoutes(
    app,
    options.groups ?? new GroupService({ log, meta: groupStoreOf(log.meta), logger }),
  );

  app.doc31("/v1/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Sluice",
      version: "1",
      description: "A serverless, Kafka-style event log on object storage",
    },
  });

  return app;
}
