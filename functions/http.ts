/**
 * AWS Lambda entry point for the HTTP API, behind a Function URL or an API Gateway HTTP API
 * (both send the payload format 2.0 event, which Hono's adapter reads).
 *
 * The log is built once per instance, outside the handler, so warm invocations reuse the
 * clients and the object cache. An instance serves one request at a time, so a request's own
 * records are the whole flush: lingering would only add latency.
 */
import { defaultIsContentTypeBinary, handle } from "hono/aws-lambda";
import { serverConfigFromEnv } from "../src/config.js";
import { GroupService } from "../src/groups/service.js";
import { createApp } from "../src/http/app.js";
import { SluiceLog } from "../src/log/log.js";
import { logger } from "../src/logger.js";
import { openStores } from "../src/stores.js";

const config = serverConfigFromEnv();
const { store, meta } = await openStores(config);
const log = new SluiceLog({ store, meta, config: { ...config.log, lingerMs: 0 }, logger });

const groups = new GroupService({ log, meta, config: config.groups, logger });

export const app = createApp({
  log,
  groups,
  maxRequestBytes: config.maxRequestBytes,
  logger,
  maintenance: false,
  // The adapter buffers whole responses: an event stream answers one batch (or one wait) and
  // ends, and EventSource reconnects with Last-Event-ID.
  sse: { ...config.sse, bounded: true },
  corsOrigins: config.corsOrigins,
});
// Event streams are text: sent as is, not grown by a third in base64 against the 6 MB limit.
export const handler = handle(app, {
  isContentTypeBinary: (type) =>
    !/^text\/event-stream\s*(;|$)/i.test(type) && defaultIsContentTypeBinary(type),
});
