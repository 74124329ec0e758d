/**
 * AWS Lambda entry point for the scheduled maintenance pass (src/log/maintenance.ts, and
 * docs/rfcs/0003-segments.md §7), invoked by an EventBridge schedule. One pass, per partition:
 * deletes what earlier rolls and retention replaced once past the grace period, aborts rolls
 * and retention steps cut short, applies retention (retention.ms, retention.bytes) to sealed
 * segments, and rolls the active segment's chunks into sealed segments; then it purges deleted
 * topics' items and lists the bucket for orphan uploads and deleted topics' objects.
 *
 * The stores are built once per instance, outside the handler, as in functions/http.ts, so a
 * warm instance reuses its clients. The event is not read: a pass always covers every topic,
 * so a manual `aws lambda invoke` with any payload runs the same pass, and the report it
 * returns is what that command prints.
 *
 * Errors are not caught: a failed invocation is what Lambda's error metric counts and what its
 * asynchronous retries act on. A repeated or overlapping pass is harmless: every index change
 * is a conditional write, and deleting twice is a no-op. One partition's failure is logged and
 * skipped by the pass itself, so it does not fail the invocation.
 */
import type { Context, ScheduledEvent } from "aws-lambda";
import { serverConfigFromEnv } from "../src/config.js";
import { SluiceLog } from "../src/log/log.js";
import type { MaintenanceReport } from "../src/log/maintenance.js";
import { logger } from "../src/logger.js";
import { openStores } from "../src/stores.js";

const config = serverConfigFromEnv();
const { store, meta } = await openStores(config);
const log = new SluiceLog({ store, meta, config: config.log, logger });

/**
 * No roll starts in the last minutes before the timeout, so that the deleted topics and the
 * object listing, which come after the rolls, still run: a roll of 256 MiB takes tens of seconds.
 */
const ROLL_MARGIN_MS = 3 * 60 * 1000;

export function handler(
  _event: ScheduledEvent,
  context?: Pick<Context, "getRemainingTimeInMillis">,
): Promise<MaintenanceReport> {
  const remaining = context?.getRemainingTimeInMillis();
  return log.runMaintenance(
    remaining === undefined ? {} : { rollUntil: Date.now() + remaining - ROLL_MARGIN_MS },
  );
}
