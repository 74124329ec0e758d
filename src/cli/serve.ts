import { serve } from "@hono/node-server";
import type { ServerConfig } from "../config.js";
import { createApp } from "../http/app.js";
import { SluiceLog } from "../log/log.js";
import { logger } from "../logger.js";
import { openStores } from "../stores.js";

/**
 * Runs the HTTP API until SIGINT/SIGTERM, then stops taking requests and flushes what is
 * buffered, so that a clean stop never drops an accepted append.
 */
export function runServer(config: ServerConfig): void {
  const { store, meta, description } = openStores(config);
  const log = new SluiceLog({ store, meta, config: config.log, logger });
  const app = createApp({ log, maxRequestBytes: config.maxRequestBytes, logger });
  const server = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, (info) => {
    logger.info({ host: info.address, port: info.port, storage: description }, "sluice listening");
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    server.close();
    void log
      .close()
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
