import { Server as HttpServer, type ServerResponse } from "node:http";
import { serve } from "@hono/node-server";
import { isLoopback, type ServerConfig } from "../config.js";
import { GroupService } from "../groups/service.js";
import { createApp } from "../http/app.js";
import { authFromConfig } from "../http/auth.js";
import { SluiceLog } from "../log/log.js";
import { logger } from "../logger.js";
import { openStores } from "../stores.js";

/**
 * Runs the HTTP API until SIGINT/SIGTERM, then stops taking requests and flushes what is
 * buffered, so that a clean stop never drops an accepted append.
 */
export async function runServer(config: ServerConfig): Promise<void> {
  const { store, meta, description } = await openStores(config);
  const log = new SluiceLog({ store, meta, config: config.log, logger });
  const groups = new GroupService({ log, meta, config: config.groups, logger });
  const app = createApp({
    log,
    groups,
    maxRequestBytes: config.maxRequestBytes,
    logger,
    sse: config.sse,
    corsOrigins: config.corsOrigins,
    maxRecordsPerRequest: config.maxRecordsPerRequest,
    auth: authFromConfig(config.auth, meta),
  });
  const server = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, (info) => {
    const auth = config.auth.mode;
    logger.info(
      { host: info.address, port: info.port, storage: description, auth },
      "sluice listening",
    );
    if (auth === "off" && !isLoopback(config.host)) {
      logger.warn(
        { host: config.host },
        "authentication is off on a non-loopback address: anyone who can reach it may do anything",
      );
    }
  });

  // Garbage collection on a timer; every server may run it, and concurrent passes are safe.
  const maintenance =
    config.log.maintenanceIntervalMs > 0
      ? setInterval(() => {
          log.runMaintenance().catch((err: unknown) => logger.warn({ err }, "maintenance failed"));
        }, config.log.maintenanceIntervalMs).unref()
      : undefined;

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    clearInterval(maintenance);
    // No new connections; requests already accepted are still served, each connection
    // closing after its current answer instead of waiting for more.
    const httpClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    if (server instanceof HttpServer) {
      server.on("request", (_req, res: ServerResponse) => {
        if (!res.headersSent) res.setHeader("connection", "close");
      });
    }
    void log
      .close()
      // The drain has resolved the buffered appends: let their answers reach the sockets
      // before the process ends (bounded, in case a late request is still lingering).
      .then(() => finishResponses(server, httpClosed, 5_000))
      // Requests that arrived while the first drain ran have appended since: flush them too.
      .then(() => log.close())
      .then(() => Promise.all([store.close(), meta.close()]))
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

/**
 * Waits until every in-flight HTTP response is written: keep-alive connections are closed as
 * soon as they fall idle, so the server's close completes without waiting out their timeout.
 */
async function finishResponses(
  server: ReturnType<typeof serve>,
  closed: Promise<void>,
  graceMs: number,
): Promise<void> {
  const sweep = setInterval(() => {
    if (server instanceof HttpServer) server.closeIdleConnections();
  }, 10);
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
  try {
    await Promise.race([closed, grace]);
  } finally {
    clearInterval(sweep);
    clearTimeout(timer);
  }
}
