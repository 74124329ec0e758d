/**
 * AWS Lambda entry point for the scheduled maintenance pass (see src/log/maintenance.ts),
 * invoked by an EventBridge schedule.
 *
 * The stores are built once per instance, outside the handler, as in functions/http.ts, so a
 * warm instance reuses its clients. The event is not read: a pass always covers the whole
 * store, so a manual `aws lambda invoke` with any payload runs the same pass, and the report
 * it returns is what that command prints.
 *
 * Errors are not caught: a failed invocation is what Lambda's error metric counts and what its
 * asynchronous retries act on, and a repeated pass is harmless (deleting twice is a no-op).
 */
import type { ScheduledEvent } from "aws-lambda";
import { serverConfigFromEnv } from "../src/config.js";
import { SluiceLog } from "../src/log/log.js";
import type { MaintenanceReport } from "../src/log/maintenance.js";
import { logger } from "../src/logger.js";
import { openStores } from "../src/stores.js";

const config = serverConfigFromEnv();
const { store, meta } = await openStores(config);
const log = new SluiceLog({ store, meta, config: config.log, logger });

export function handler(_event: ScheduledEvent): Promise<MaintenanceReport> {
  return log.runMaintenance();
}
